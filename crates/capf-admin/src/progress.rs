//! Progress of long jobs (checking the rows of a large CSV file, one bulk transaction).

/// Told how a long job advances; a terminal draws a bar, a web page may push events.
pub trait Progress {
    /// A step begins: `len` units of work, or `None` when its length is unknown (one database
    /// transaction).
    fn start(&mut self, what: &str, len: Option<u64>);
    /// `n` more units are done.
    fn advance(&mut self, n: u64);
    /// The step is over.
    fn finish(&mut self);
}

/// Progress that nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _what: &str, _len: Option<u64>) {}
    fn advance(&mut self, _n: u64) {}
    fn finish(&mut self) {}
}

#[cfg(feature = "terminal")]
pub use terminal::TerminalProgress;

#[cfg(feature = "terminal")]
mod terminal {
    use std::time::Duration;

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    /// A progress bar (or a spinner for a step of unknown length) on standard error; indicatif
    /// draws only when standard error is a terminal, so output redirected to a file or a pipe
    /// stays clean.
    #[derive(Debug, Default)]
    pub struct TerminalProgress {
        bar: Option<ProgressBar>,
    }

    /// The bar (a length) or spinner (none) for the step `what`, drawn to `target`.
    fn new_bar(what: &str, len: Option<u64>, target: ProgressDrawTarget) -> ProgressBar {
        match len {
            Some(len) => {
                let bar = ProgressBar::with_draw_target(Some(len), target);
                if let Ok(style) =
                    ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(what.to_owned());
                bar
            }
            None => {
                let spinner = ProgressBar::with_draw_target(None, target);
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                    spinner.set_style(style);
                }
                spinner.set_message(what.to_owned());
                spinner.enable_steady_tick(Duration::from_millis(100));
                spinner
            }
        }
    }

    impl super::Progress for TerminalProgress {
        fn start(&mut self, what: &str, len: Option<u64>) {
            let bar = new_bar(what, len, ProgressDrawTarget::stderr());
            if let Some(old) = self.bar.replace(bar) {
                old.finish_and_clear();
            }
        }

        fn advance(&mut self, n: u64) {
            if let Some(bar) = &self.bar {
                bar.inc(n);
            }
        }

        fn finish(&mut self) {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use std::io;
        use std::sync::{Arc, Mutex};

        use indicatif::TermLike;

        use super::*;

        /// A terminal 80 columns wide that keeps what is written to it; `None` is a cleared
        /// line.
        #[derive(Clone, Debug, Default)]
        struct Screen(Arc<Mutex<Vec<Option<String>>>>);

        impl Screen {
            /// What the line shows now: the text written since it was last cleared, without
            /// the padding that blanks the rest of it.
            fn last(&self) -> String {
                let events = self.0.lock().unwrap();
                let from = events
                    .iter()
                    .rposition(Option::is_none)
                    .map_or(0, |i| i + 1);
                events[from..]
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            }
        }

        impl TermLike for Screen {
            fn width(&self) -> u16 {
                80
            }
            fn move_cursor_up(&self, _: usize) -> io::Result<()> {
                Ok(())
            }
            fn move_cursor_down(&self, _: usize) -> io::Result<()> {
                Ok(())
            }
            fn move_cursor_right(&self, _: usize) -> io::Result<()> {
                Ok(())
            }
            fn move_cursor_left(&self, _: usize) -> io::Result<()> {
                Ok(())
            }
            fn write_line(&self, s: &str) -> io::Result<()> {
                self.write_str(s)
            }
            fn write_str(&self, s: &str) -> io::Result<()> {
                self.0.lock().unwrap().push(Some(s.to_owned()));
                Ok(())
            }
            fn clear_line(&self) -> io::Result<()> {
                self.0.lock().unwrap().push(None);
                Ok(())
            }
            fn flush(&self) -> io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn the_bar_shows_the_step_its_share_done_and_the_count() {
            let screen = Screen::default();
            let bar = new_bar(
                "checking rows",
                Some(10),
                ProgressDrawTarget::term_like(Box::new(screen.clone())),
            );
            bar.inc(4);
            bar.force_draw();
            let line = screen.last();
            let expected = format!(
                "checking rows [{}>{}] 4/10 (",
                "=".repeat(16),
                " ".repeat(23)
            );
            assert!(line.starts_with(&expected), "{line:?}");
            bar.inc(6);
            bar.force_draw();
            let line = screen.last();
            let expected = format!("checking rows [{}] 10/10 (", "=".repeat(40));
            assert!(line.starts_with(&expected), "{line:?}");
            bar.finish_and_clear();
            assert_eq!(screen.last(), "", "the bar is cleared at the end");
        }

        #[test]
        fn a_step_of_unknown_length_shows_a_spinner_with_the_step() {
            let screen = Screen::default();
            let spinner = new_bar(
                "applying 3 devices",
                None,
                ProgressDrawTarget::term_like(Box::new(screen.clone())),
            );
            spinner.force_draw();
            let line = screen.last();
            assert!(line.ends_with(" applying 3 devices"), "{line:?}");
            assert_eq!(line.chars().count(), " applying 3 devices".len() + 1);
            spinner.finish_and_clear();
            assert_eq!(screen.last(), "");
        }
    }
}
