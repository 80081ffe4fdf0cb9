//! Progress bars (indicatif) for long commands, drawn on standard error only when it is a
//! terminal and `--quiet` is off: piped or redirected, a command prints no progress.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::output::Notes;

/// A counter of documents whose total is not known (export reads until the end).
pub fn counter(notes: &Notes, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(notes));
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {{human_pos}} {what} ({{rate}}, {{elapsed}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_spinner())
    // indicatif's own `per_sec` shows four decimals of a document count.
    .with_key(
        "rate",
        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        },
    );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `total` bytes of input, with a message for the running counts.
pub fn bytes(notes: &Notes, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(notes));
    let style = ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn target(notes: &Notes) -> ProgressDrawTarget {
    if notes.progress() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
