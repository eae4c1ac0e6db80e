//! Progress displays on a terminal only (SPEC section 10): hidden when
//! stderr is not a TTY, so scripts and logs stay quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar over `len` items.
pub fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(len), target());
    b.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("template parses")
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

/// A bar over `len` bytes.
pub fn bytes(len: u64, msg: &'static str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(len), target());
    b.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("template parses")
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

/// A counter of unknown length.
pub fn spinner(msg: &'static str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(None, target());
    b.set_style(ProgressStyle::with_template("{spinner} {msg} {pos}").expect("template parses"));
    b.set_message(msg);
    b
}
