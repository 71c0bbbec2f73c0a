//! What the commands print. Rust's `println!` panics when the reader has gone away
//! (`tenantize status … | head -1` closes the pipe: EPIPE); here a closed pipe ends the output
//! quietly instead: what follows is dropped and the command finishes with its own exit code
//! (a run in progress is never abandoned because nobody reads its output).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_FAILED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout; a broken pipe closes the output for good, without a word.
pub fn stdout(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            stderr(&format!("warning: cannot write to standard output: {e}\n"));
        }
    }
}

/// Write `text` to stderr; if even that fails there is nobody left to tell.
pub fn stderr(text: &str) {
    if STDERR_FAILED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_all(text.as_bytes()).is_err() {
        STDERR_FAILED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout was closed by its reader (or failed) during this process.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::stdout(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(&format!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::stderr(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::out::stderr(&format!($($arg)*)) };
}
