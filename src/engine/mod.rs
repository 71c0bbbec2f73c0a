//! Runs a plan against a database: journal, advisory lock, lock_timeout with retries, batched
//! backfill, rollback. Reports through [`Event`]s and never prints.

mod apply;
mod backfill;
mod cutover;
mod exec;
mod failpoint;
mod machine;
mod pace;
mod preflight;
mod rollback;
mod run;
mod step_checks;
mod wal;

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

pub use apply::{ApplyOutcome, ApplyRequest, StopAfter, apply};
pub use preflight::{DriftReport, drift};
pub use rollback::{GuardCount, RollbackOutcome, RollbackRequest, RollbackTarget, guard_counts, rollback};
pub use run::status;
// The journal's types, as the front ends see them.
pub use crate::db::journal::{JournalStep, StepState};

use crate::db::{ConnSpec, DbError, LockHolder, describe_pg_error};
use crate::event::{Event, EventSender};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("preflight refused:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<String>),
    #[error("step {step_id} failed: {error}")]
    StepFailed { step_id: String, error: String },
    /// `undone`: steps rolled back by this run before it failed.
    #[error("rollback of step {step_id} failed{}: {error}; run rollback again to resume", after_undone(*undone))]
    RollbackFailed { step_id: String, error: String, undone: usize },
    #[error("cancelled during step {step_id}; what is done is journaled, run {} again to resume", command_of(*direction))]
    Cancelled { step_id: String, direction: crate::db::journal::Direction },
    #[error("{0}")]
    Connection(String),
    #[error(transparent)]
    PlanFile(#[from] crate::plan::file::PlanFileError),
    /// The tables the remaining steps touch no longer look as they did when the plan was
    /// built. `started`: some steps of the plan have run (a new plan cannot take over then).
    #[error("the database has drifted from the plan:\n{}\n{}", lines.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"), drift_advice(*started))]
    Drift { lines: Vec<String>, started: bool },
    #[error("another tenantize run holds the lock on this database: {0}")]
    Locked(LockHolder),
    #[error(
        "the journal holds a different plan in progress ({other_hash:.12}…, {done} steps applied); \
         finish it or roll it back first: without a plan file, `tenantize apply` and \
         `tenantize rollback --all` use the journal's copy of it"
    )]
    OtherPlanActive { other_hash: String, done: i64 },
    #[error("{0}")]
    Usage(String),
    #[error("database error: {0}")]
    Database(String),
}

fn drift_advice(started: bool) -> &'static str {
    if started {
        "nothing was changed by this run. Steps of this plan are already applied, so a new plan \
         cannot take over from here: undo the change (then apply again), or roll this plan back \
         with `tenantize rollback PLAN --all` (it leaves the change as it is) and build a new plan"
    } else {
        "nothing was changed: build a new plan with `tenantize plan`"
    }
}

impl From<DbError> for EngineError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Connect(e) => EngineError::Connection(e.to_string()),
            DbError::Query(text) => EngineError::Database(text),
            DbError::Locked(holder) => EngineError::Locked(holder),
            DbError::JournalSchema(text) => EngineError::Preflight(vec![text]),
            DbError::JournalVersion(text) => EngineError::Usage(text),
        }
    }
}

fn command_of(direction: crate::db::journal::Direction) -> &'static str {
    match direction {
        crate::db::journal::Direction::Forward => "apply",
        crate::db::journal::Direction::Rollback => "rollback",
    }
}

fn after_undone(undone: usize) -> String {
    match undone {
        0 => String::new(),
        n => format!(
            " after {} had been rolled back",
            crate::event::describe::count(n as u64, "step", "steps")
        ),
    }
}

pub(crate) fn db_error(e: tokio_postgres::Error) -> EngineError {
    EngineError::Database(describe_pg_error(&e))
}

/// Operational knobs of a run (not part of the plan: the same plan may run with other timeouts).
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `lock_timeout` for short DDL under strong locks.
    pub lock_timeout_ms: u64,
    /// `lock_timeout` for long work under weak locks (VALIDATE, CONCURRENTLY).
    pub long_lock_timeout_ms: u64,
    /// `statement_timeout` for short DDL (0: none).
    pub ddl_statement_timeout_ms: u64,
    /// How often a statement that timed out on its lock is tried again.
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    /// How often the monitor connection looks for blockers and index-build progress.
    pub monitor_interval_ms: u64,
    pub application_name: String,
    /// Cancel a routine autovacuum that blocks a statement (never one preventing wraparound).
    pub cancel_autovacuum: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            lock_timeout_ms: 100,
            long_lock_timeout_ms: 600_000,
            ddl_statement_timeout_ms: 60_000,
            max_attempts: 30,
            retry_base_ms: 100,
            retry_cap_ms: 5_000,
            monitor_interval_ms: 200,
            application_name: "tenantize".to_string(),
            cancel_autovacuum: true,
        }
    }
}

/// How a front end steers a running engine: cancel the step safely, pause a backfill.
#[derive(Clone)]
pub struct Control {
    pub cancel: CancellationToken,
    pub pause: watch::Receiver<bool>,
}

impl Control {
    /// A control nobody steers (headless runs: Ctrl-C cancels through the token).
    pub fn detached() -> (Control, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (Control { cancel: CancellationToken::new(), pause: rx }, tx)
    }
}

/// The three connections of a run: DDL (holds the advisory lock, runs the steps), monitor
/// (blockers, index-build progress) and checks (counts with `row_security = off`).
pub(crate) struct Session {
    pub ddl: Client,
    pub ddl_pid: i32,
    pub monitor: Client,
    pub checks: Client,
}

impl Session {
    pub async fn open(spec: &ConnSpec, settings: &RunSettings) -> Result<Session, EngineError> {
        let connect = |suffix: &'static str| {
            let name = format!("{}{}", settings.application_name, suffix);
            async move { spec.connect(&name).await.map_err(|e| EngineError::Connection(e.to_string())) }
        };
        let ddl = connect("").await?;
        let monitor = connect(" monitor").await?;
        let checks = spec
            .connect_for_counts(&format!("{} checks", settings.application_name))
            .await
            .map_err(|e| EngineError::Connection(e.to_string()))?;
        let ddl_pid: i32 = ddl.query_one("SELECT pg_backend_pid()", &[]).await.map_err(db_error)?.get(0);
        Ok(Session { ddl, ddl_pid, monitor, checks })
    }

    /// Leave nothing of ours on the server sessions (a session pool hands them to others
    /// next): settings, prepared statements, any advisory lock.
    pub async fn close(&self) {
        for client in [&self.ddl, &self.monitor, &self.checks] {
            crate::db::conn::discard(client).await;
        }
    }
}

pub(crate) fn emit(events: &EventSender, event: Event) {
    // A front end that went away must not stop the engine mid-step.
    let _ = events.send(event);
}

pub(crate) fn elapsed_ms(since: std::time::Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Exponential backoff with jitter: base·2^attempt, capped, plus up to half again at random.
pub(crate) fn backoff(settings: &RunSettings, attempt: u32) -> Duration {
    let exp = settings.retry_base_ms.saturating_mul(1u64 << attempt.min(16)).min(settings.retry_cap_ms);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x =
        nanos ^ ((std::process::id() as u64) << 32) ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let jitter = if exp > 1 { x % (exp / 2 + 1) } else { 0 };
    Duration::from_millis(exp + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let settings = RunSettings { retry_base_ms: 100, retry_cap_ms: 1000, ..RunSettings::default() };
        let first = backoff(&settings, 0).as_millis() as u64;
        assert!((100..=150).contains(&first), "{first}");
        let third = backoff(&settings, 2).as_millis() as u64;
        assert!((400..=600).contains(&third), "{third}");
        for attempt in 5..40 {
            let late = backoff(&settings, attempt).as_millis() as u64;
            assert!((1000..=1500).contains(&late), "{late}");
        }
    }
}
