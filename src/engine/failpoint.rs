//! Fault injection for the tests: `TENANTIZE_FAILPOINT=before-commit:N` or `after-commit:N`
//! kills the process with SIGKILL right before or right after the N-th unit of work of the run
//! commits (a transaction, a batch, or a statement that runs outside a transaction);
//! `before-commit:STEP#K` and `after-commit:STEP#K` aim at the K-th unit (from 1) of the step
//! with id STEP. The step form is the one to use past a batched backfill: its batches are
//! sized by observed commit latency, so their number, and every later unit's N, depends on
//! the machine's load. `TENANTIZE_FAILPOINT_TRACE=FILE` appends "N<TAB>step id" per unit, so
//! a test can aim at a stage. Unset, both cost one atomic increment per unit.
//!
//! Only debug builds (the test suite's) read these variables: a release build, the one
//! `cargo install` ships, ignores them, so no environment can make a production run kill
//! itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    BeforeCommit,
    AfterCommit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    /// The N-th unit of the run.
    Run(u64),
    /// The K-th unit of this step.
    OfStep(String, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Point {
    when: When,
    unit: Unit,
}

/// Whether this build honours the variables at all.
const ENABLED: bool = cfg!(debug_assertions);

fn configured() -> Option<&'static Point> {
    if !ENABLED {
        return None;
    }
    static POINT: OnceLock<Option<Point>> = OnceLock::new();
    POINT.get_or_init(|| parse(&std::env::var("TENANTIZE_FAILPOINT").ok()?)).as_ref()
}

fn parse(text: &str) -> Option<Point> {
    let (kind, unit) = text.split_once(':')?;
    let when = match kind.trim() {
        "before-commit" => When::BeforeCommit,
        "after-commit" => When::AfterCommit,
        _ => return None,
    };
    let unit = unit.trim();
    let unit = match unit.parse() {
        Ok(n) => Unit::Run(n),
        Err(_) => {
            let (step, k) = unit.rsplit_once('#')?;
            Unit::OfStep(step.to_string(), k.parse().ok()?)
        }
    };
    Some(Point { when, unit })
}

static UNITS: AtomicU64 = AtomicU64::new(0);

fn die() -> ! {
    // SAFETY: raising a signal on our own process has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    unreachable!("SIGKILL cannot be caught")
}

/// Units committed so far per step (for `STEP#K`).
static STEP_UNITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
/// The run's number of the unit whose commit is to be followed by the kill (`after-commit`).
static KILL_AFTER: AtomicU64 = AtomicU64::new(0);

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
    let Some(point) = configured() else { return n };
    let hit = match &point.unit {
        Unit::Run(target) => *target == n,
        Unit::OfStep(step, k) => {
            let mut units = STEP_UNITS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
            let of_step = units.entry(step_id.to_string()).or_default();
            *of_step += 1;
            step == step_id && *of_step == *k
        }
    };
    if hit {
        match point.when {
            When::BeforeCommit => die(),
            When::AfterCommit => KILL_AFTER.store(n, Ordering::SeqCst),
        }
    }
    n
}

/// Called right after unit `n` committed.
pub fn after_commit(n: u64) {
    if ENABLED && n != 0 && KILL_AFTER.load(Ordering::SeqCst) == n {
        die();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse("before-commit:7"), Some(Point { when: When::BeforeCommit, unit: Unit::Run(7) }));
        assert_eq!(
            parse("after-commit:4.backfill:public.issue_comments#3"),
            Some(Point {
                when: When::AfterCommit,
                unit: Unit::OfStep("4.backfill:public.issue_comments".into(), 3)
            })
        );
        assert_eq!(parse("after-commit:4.backfill:public.t"), None);
        assert_eq!(parse("during:3"), None);
    }
}
