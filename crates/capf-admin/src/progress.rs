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

    use indicatif::{ProgressBar, ProgressStyle};

    /// A progress bar (or a spinner for a step of unknown length) on standard error; indicatif
    /// draws only when standard error is a terminal, so output redirected to a file or a pipe
    /// stays clean.
    #[derive(Debug, Default)]
    pub struct TerminalProgress {
        bar: Option<ProgressBar>,
    }

    impl super::Progress for TerminalProgress {
        fn start(&mut self, what: &str, len: Option<u64>) {
            let bar = match len {
                Some(len) => {
                    let bar = ProgressBar::new(len);
                    if let Ok(style) =
                        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
                    {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_message(what.to_owned());
                    bar
                }
                None => {
                    let spinner = ProgressBar::new_spinner();
                    spinner.set_message(what.to_owned());
                    spinner.enable_steady_tick(Duration::from_millis(100));
                    spinner
                }
            };
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
}
