//! Progress bars for long jobs: drawn on a terminal (stderr), silent otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps. indicatif draws on stderr only when it is a terminal, so output
/// redirected to a file or a pipe stays clean.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A spinner for a step whose length is unknown (one database transaction).
pub(crate) fn spinner(what: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(what.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}
