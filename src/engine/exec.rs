//! Running SQL safely: every transaction sets its own `lock_timeout`, a statement that times out
//! on its lock is retried with backoff and jitter, and while it waits the monitor connection
//! reports who blocks it. Cancelling asks the server to cancel the statement and rolls back.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

use super::{Control, RunSettings, Session, backoff, elapsed_ms, emit};
use crate::db::describe_pg_error;
use crate::event::{Blocker, Event, EventSender, ProgressUnit};
use crate::plan::{Statement, TimeoutProfile};

#[derive(Debug)]
pub(crate) enum ExecError {
    Pg(tokio_postgres::Error),
    CheckFailed(String),
    /// A part is in a state from which there is no way to where it was asked to go, or in
    /// none of its states: nothing was done to it.
    Stuck(String),
    /// Every attempt timed out on its lock; the last blockers seen.
    LockGaveUp {
        attempts: u32,
        error: tokio_postgres::Error,
        blockers: Vec<Blocker>,
    },
    Cancelled,
}

impl ExecError {
    pub fn describe(&self) -> String {
        match self {
            ExecError::Pg(e) => {
                let text = describe_pg_error(e);
                if e.code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) {
                    // Something tenantize did not create depends on what it would drop.
                    format!(
                        "{text}; tenantize never drops what it did not create (no CASCADE): \
                         drop or change that object, then run the command again"
                    )
                } else {
                    text
                }
            }
            ExecError::CheckFailed(m) | ExecError::Stuck(m) => m.clone(),
            ExecError::LockGaveUp { attempts, error, blockers } => {
                let who = if blockers.is_empty() {
                    "no blocker was seen (it ended between polls)".to_string()
                } else {
                    format!("the lock is held by {}", crate::event::describe::blockers(blockers))
                };
                format!("{} (gave up after {attempts} attempts); {who}", describe_pg_error(error))
            }
            ExecError::Cancelled => "cancelled".to_string(),
        }
    }

    /// The connection itself is gone (terminated backend, network): the step's outcome is
    /// unknown to this process and the journal cannot be written on it.
    pub fn connection_lost(&self) -> bool {
        match self {
            ExecError::Pg(e) => {
                e.is_closed()
                    || e.code() == Some(&SqlState::ADMIN_SHUTDOWN)
                    || e.code() == Some(&SqlState::CRASH_SHUTDOWN)
                    || e.as_db_error().is_none() && e.to_string().contains("connection")
            }
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for ExecError {
    fn from(e: tokio_postgres::Error) -> Self {
        ExecError::Pg(e)
    }
}

fn pg_lock_contention(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn is_lock_contention(error: &ExecError) -> bool {
    matches!(error, ExecError::Pg(e) if pg_lock_contention(e))
}

pub(crate) struct Executor<'a> {
    pub session: &'a Session,
    pub settings: &'a RunSettings,
    pub events: &'a EventSender,
    pub control: &'a Control,
}

/// What the monitor polls for besides blockers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    Locks,
    IndexBuild,
}

impl<'a> Executor<'a> {
    pub fn lock_timeout_ms(&self, profile: TimeoutProfile) -> u64 {
        match profile {
            TimeoutProfile::Ddl => self.settings.lock_timeout_ms,
            TimeoutProfile::Long => self.settings.long_lock_timeout_ms,
        }
    }

    fn statement_timeout_ms(&self, profile: TimeoutProfile) -> u64 {
        match profile {
            TimeoutProfile::Ddl => self.settings.ddl_statement_timeout_ms,
            TimeoutProfile::Long => 0,
        }
    }

    /// The settings the DDL session keeps between statements: the short lock timeout, no
    /// statement timeout.
    pub fn session_baseline(&self) -> String {
        format!("SET lock_timeout = '{}ms'; SET statement_timeout = 0;", self.settings.lock_timeout_ms)
    }

    /// `SET LOCAL` lines for a statement of this profile (inside a transaction).
    pub fn set_local(&self, profile: TimeoutProfile) -> String {
        format!(
            "SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms';",
            self.lock_timeout_ms(profile),
            self.statement_timeout_ms(profile)
        )
    }

    /// Retry `attempt_fn` while it fails on lock contention, with backoff and jitter.
    pub async fn with_retries<T>(
        &self,
        step_id: &str,
        index: usize,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
        mut attempt_fn: impl AsyncFnMut(u32) -> Result<T, ExecError>,
    ) -> Result<T, ExecError> {
        let mut attempt = 0u32;
        loop {
            match attempt_fn(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) => self.pause_before_retry(step_id, index, blockers, attempt, error).await?,
            }
            attempt += 1;
        }
    }

    /// After attempt `attempt` failed with `error`: on lock contention with attempts left,
    /// say so and wait (`Ok`: try again); otherwise the error to give up with, naming the
    /// sessions that held the lock.
    pub async fn pause_before_retry(
        &self,
        step_id: &str,
        index: usize,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
        attempt: u32,
        error: ExecError,
    ) -> Result<(), ExecError> {
        match error {
            error if is_lock_contention(&error) && attempt + 1 < self.settings.max_attempts => {
                let wait = backoff(self.settings, attempt);
                let seen = blockers.lock().map(|b| b.clone()).unwrap_or_default();
                emit(
                    self.events,
                    Event::Retry {
                        step_id: step_id.to_string(),
                        index,
                        attempt: attempt + 1,
                        max_attempts: self.settings.max_attempts,
                        backoff_ms: wait.as_millis() as u64,
                        reason: error.describe(),
                        blockers: seen,
                    },
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => Ok(()),
                    _ = self.control.cancel.cancelled() => Err(ExecError::Cancelled),
                }
            }
            ExecError::Pg(error) if pg_lock_contention(&error) => {
                let blockers = blockers.lock().map(|b| b.clone()).unwrap_or_default();
                Err(ExecError::LockGaveUp { attempts: attempt + 1, error, blockers })
            }
            error => Err(error),
        }
    }

    /// Run `body` in `BEGIN … COMMIT` with the profile's timeouts (and `extra` settings),
    /// retried as a whole on lock contention. `body` may run several statements and journal
    /// writes: they commit together or not at all.
    pub async fn transaction<T>(
        &self,
        step_id: &str,
        index: usize,
        profile: TimeoutProfile,
        extra: &str,
        mut body: impl AsyncFnMut(u32, &Arc<Mutex<Vec<Blocker>>>) -> Result<T, ExecError>,
    ) -> Result<T, ExecError> {
        let blockers: Arc<Mutex<Vec<Blocker>>> = Arc::default();
        let client = &self.session.ddl;
        let setup = format!("BEGIN; {} {extra}", self.set_local(profile));
        self.with_retries(step_id, index, &blockers, async |attempt| {
            if self.control.cancel.is_cancelled() {
                return Err(ExecError::Cancelled);
            }
            client.batch_execute(&setup).await?;
            let result = match body(attempt, &blockers).await {
                Ok(value) => {
                    let unit = super::failpoint::before_commit(step_id);
                    let committed =
                        client.batch_execute("COMMIT").await.map(|_| value).map_err(ExecError::from);
                    if committed.is_ok() {
                        super::failpoint::after_commit(unit);
                    }
                    committed
                }
                Err(e) => Err(e),
            };
            if result.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            result
        })
        .await
    }

    /// Run one statement's SQL (possibly several commands) on the DDL connection, watched by
    /// the monitor. Returns the rows the commands reported.
    pub async fn run_sql(
        &self,
        step_id: &str,
        index: usize,
        statement: &Statement,
        attempt: u32,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
        watch: Watch,
    ) -> Result<u64, ExecError> {
        emit(
            self.events,
            Event::StatementStarted {
                step_id: step_id.to_string(),
                index,
                lock: statement.lock,
                on: statement.on.clone(),
                sql: statement.sql.clone(),
                attempt,
            },
        );
        let started = Instant::now();
        let messages = self
            .monitored(step_id, index, blockers, watch, self.session.ddl.simple_query(&statement.sql))
            .await?;
        let rows = messages
            .iter()
            .map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum();
        emit(
            self.events,
            Event::StatementFinished {
                step_id: step_id.to_string(),
                index,
                duration_ms: elapsed_ms(started),
                rows,
                skipped: false,
            },
        );
        Ok(rows)
    }

    /// Await `work` (running on the DDL connection) while the monitor connection reports lock
    /// waits and index-build progress; a cancel request cancels the statement on the server.
    pub async fn monitored<T>(
        &self,
        step_id: &str,
        index: usize,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
        watch: Watch,
        work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ExecError> {
        let mut work = std::pin::pin!(work);
        let started = Instant::now();
        // Poll well within the lock timeout, or a short wait ends before anyone sees who blocked it.
        let poll_ms = self.settings.monitor_interval_ms.min(self.settings.lock_timeout_ms / 4).max(20);
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(poll_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut cancel_sent = false;
        let mut autovacuums_cancelled: Vec<i32> = Vec::new();
        loop {
            tokio::select! {
                biased;
                result = &mut work => {
                    return match result {
                        Err(e) if cancel_sent && e.code() == Some(&SqlState::QUERY_CANCELED) => Err(ExecError::Cancelled),
                        other => other.map_err(ExecError::from),
                    };
                }
                _ = self.control.cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let _ = self.session.monitor
                        .query_one("SELECT pg_cancel_backend($1)", &[&self.session.ddl_pid])
                        .await;
                }
                _ = ticker.tick() => {
                    self.poll(step_id, index, started, blockers, watch, &mut autovacuums_cancelled).await;
                }
            }
        }
    }

    /// A routine autovacuum that holds the table makes the statement wait, and every write
    /// queues behind the waiting statement. PostgreSQL cancels such an autovacuum itself, but
    /// only after `deadlock_timeout` (1 s), longer than the short lock timeout: cancel it now.
    /// It runs again later; one that prevents wraparound is never cancelled.
    async fn cancel_autovacuum(&self, step_id: &str, index: usize, row: &tokio_postgres::Row) {
        let pid: i32 = row.get(0);
        let outcome =
            self.session.monitor.query_one("SELECT pg_catalog.pg_cancel_backend($1)", &[&pid]).await;
        let (cancelled, note) = match outcome {
            Ok(r) if r.get::<_, bool>(0) => (true, "cancelled; it runs again later".to_string()),
            Ok(_) => (false, "already gone".to_string()),
            Err(e) => {
                (false, format!("could not cancel it ({}); waiting and retrying", describe_pg_error(&e)))
            }
        };
        emit(
            self.events,
            Event::AutovacuumCancelled {
                step_id: step_id.to_string(),
                index,
                pid,
                query: row.get(3),
                cancelled,
                note,
            },
        );
    }

    async fn poll(
        &self,
        step_id: &str,
        index: usize,
        started: Instant,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
        watch: Watch,
        autovacuums_cancelled: &mut Vec<i32>,
    ) {
        let rows = self
            .session
            .monitor
            .query(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
                        left(coalesce(a.query, ''), 300),
                        coalesce((extract(epoch FROM now() - a.xact_start) * 1000)::int8, 0),
                        a.backend_type = 'autovacuum worker'
                          AND a.query NOT LIKE '%to prevent wraparound%'
                   FROM pg_catalog.pg_stat_activity a
                  WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1))
                  ORDER BY a.pid",
                &[&self.session.ddl_pid],
            )
            .await;
        if let Ok(rows) = rows {
            if self.settings.cancel_autovacuum {
                let routine_autovacuums = rows.iter().filter(|r| r.get::<_, Option<bool>>(5) == Some(true));
                for row in routine_autovacuums {
                    let pid: i32 = row.get(0);
                    if !autovacuums_cancelled.contains(&pid) {
                        autovacuums_cancelled.push(pid);
                        self.cancel_autovacuum(step_id, index, row).await;
                    }
                }
            }
            let found: Vec<Blocker> = rows
                .iter()
                .map(|r| Blocker {
                    pid: r.get(0),
                    application: r.get(1),
                    state: r.get(2),
                    query: r.get(3),
                    transaction_ms: r.get::<_, i64>(4).max(0) as u64,
                })
                .collect();
            if !found.is_empty() {
                if let Ok(mut shared) = blockers.lock() {
                    *shared = found.clone();
                }
                emit(
                    self.events,
                    Event::LockWait {
                        step_id: step_id.to_string(),
                        index,
                        waited_ms: elapsed_ms(started),
                        blockers: found,
                    },
                );
            }
        }
        if watch == Watch::IndexBuild {
            let progress = self
                .session
                .monitor
                .query_opt(
                    "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
                       FROM pg_catalog.pg_stat_progress_create_index WHERE pid = $1",
                    &[&self.session.ddl_pid],
                )
                .await;
            if let Ok(Some(row)) = progress {
                let phase: String = row.get(0);
                let (blocks_done, blocks_total): (i64, i64) = (row.get(1), row.get(2));
                let (tuples_done, tuples_total): (i64, i64) = (row.get(3), row.get(4));
                let (done, total, unit) = if blocks_total > 0 {
                    (blocks_done, blocks_total, ProgressUnit::Blocks)
                } else {
                    (tuples_done, tuples_total, ProgressUnit::Rows)
                };
                emit(
                    self.events,
                    Event::Progress {
                        step_id: step_id.to_string(),
                        done: done.max(0) as u64,
                        total: (total > 0).then_some(total as u64),
                        unit,
                        phase: Some(phase),
                    },
                );
            }
        }
    }

    /// Run, once, a command that cannot run inside a transaction block, under session-level
    /// timeouts (put back to the session's own afterwards). Not retried here: a failed
    /// concurrent build leaves an INVALID index behind, so the caller asks the catalog where
    /// the part stands before it tries again (see `machine::drive`).
    pub async fn outside_transaction(
        &self,
        step_id: &str,
        index: usize,
        statement: &Statement,
        watch: Watch,
        attempt: u32,
        blockers: &Arc<Mutex<Vec<Blocker>>>,
    ) -> Result<u64, ExecError> {
        let client = &self.session.ddl;
        let set = format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms';",
            self.lock_timeout_ms(statement.profile),
            self.statement_timeout_ms(statement.profile)
        );
        if self.control.cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        client.batch_execute(&set).await?;
        if !statement.settings.is_empty() {
            client.batch_execute(&statement.settings_sql(false)).await?;
        }
        let unit = super::failpoint::before_commit(step_id);
        // Outside a transaction is where a concurrent index build runs, and it writes the
        // whole index (and its WAL) at once.
        super::wal::write_heavy_begin(client).await;
        let result = self.run_sql(step_id, index, statement, attempt, blockers, watch).await;
        super::wal::write_heavy_end(client).await;
        // Back to the session's own settings (a RESET would restore the role's defaults,
        // which may be anything; for the statement's own settings it is what we want).
        let _ = client.batch_execute(&self.session_baseline()).await;
        if !statement.settings.is_empty() {
            let _ = client.batch_execute(&statement.reset_settings_sql()).await;
        }
        if result.is_ok() {
            // The statement is done but its journal entry is not: a kill here must resume.
            super::failpoint::after_commit(unit);
        }
        result
    }
}
