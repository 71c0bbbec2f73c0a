//! Fault injection for the tests: `TENANTIZE_FAILPOINT=before-commit:N` or `after-commit:N`
//! kills the process with SIGKILL right before or right after the N-th unit of work of the run
//! commits (a transaction, a batch, or a statement that runs outside a transaction).
//! `TENANTIZE_FAILPOINT_TRACE=FILE` appends "N<TAB>step id" per unit, so a test can aim at a
//! stage. Unset, both cost one atomic increment per unit.
//!
//! Only debug builds (the test suite's) read these variables: a release build, the one
//! `cargo install` ships, ignores them, so no environment can make a production run kill
//! itself.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    BeforeCommit(u64),
    AfterCommit(u64),
}

/// Whether this build honours the variables at all.
const ENABLED: bool = cfg!(debug_assertions);

fn configured() -> Option<Point> {
    if !ENABLED {
        return None;
    }
    static POINT: OnceLock<Option<Point>> = OnceLock::new();
    *POINT.get_or_init(|| {
        let text = std::env::var("TENANTIZE_FAILPOINT").ok()?;
        let (kind, n) = text.split_once(':')?;
        let n: u64 = n.trim().parse().ok()?;
        match kind.trim() {
            "before-commit" => Some(Point::BeforeCommit(n)),
            "after-commit" => Some(Point::AfterCommit(n)),
            _ => None,
        }
    })
}

static UNITS: AtomicU64 = AtomicU64::new(0);

fn die() -> ! {
    // SAFETY: raising a signal on our own process has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    unreachable!("SIGKILL cannot be caught")
}

/// Called when a unit of work of `step_id` is about to commit; returns its number in the run.
pub fn before_commit(step_id: &str) -> u64 {
    let n = UNITS.fetch_add(1, Ordering::SeqCst) + 1;
    if !ENABLED {
        return n;
    }
    if let Ok(path) = std::env::var("TENANTIZE_FAILPOINT_TRACE") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{n}\t{step_id}");
        }
    }
    if configured() == Some(Point::BeforeCommit(n)) {
        die();
    }
    n
}

/// Called right after unit `n` committed.
pub fn after_commit(n: u64) {
    if configured() == Some(Point::AfterCommit(n)) {
        die();
    }
}
