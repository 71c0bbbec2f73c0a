//! What every run shares: its connections, the run lock, and the truth about how it ended.

use std::cell::Cell;
use std::time::Instant;

use super::exec::{ExecError, Executor};
use super::{EngineError, RunSettings, Session, elapsed_ms, emit};
use crate::db::journal::StepState;
use crate::db::journal::{self, Status};
use crate::db::{ConnSpec, lock};
use crate::event::{Direction, Event, EventSender, RunOutcome};
use crate::plan::{Plan, Step};

/// Counts the steps a run started, so that a failure after some of them is never reported as
/// a run that changed nothing.
#[derive(Default)]
pub(super) struct Progress {
    steps_started: Cell<usize>,
    last_step: std::cell::RefCell<String>,
}

impl Progress {
    pub fn step_started(&self, step_id: &str) {
        self.steps_started.set(self.steps_started.get() + 1);
        *self.last_step.borrow_mut() = step_id.to_string();
    }

    pub fn any_started(&self) -> bool {
        self.steps_started.get() > 0
    }

    /// Steps finished before the one that was running.
    fn finished(&self) -> usize {
        self.steps_started.get().saturating_sub(1)
    }
}

/// A failure of the connection or the journal after steps ran is a failed run, named after
/// the step it happened in, never a refusal that "changed nothing".
fn truthful(error: EngineError, progress: &Progress, direction: Direction) -> EngineError {
    if !progress.any_started() {
        return error;
    }
    let lost = match error {
        EngineError::Connection(text) | EngineError::Database(text) => text,
        EngineError::RollbackFailed { step_id, error, .. } => {
            return EngineError::RollbackFailed { step_id, error, undone: progress.finished() };
        }
        other => return other,
    };
    let step_id = progress.last_step.borrow().clone();
    match direction {
        Direction::Forward => EngineError::StepFailed {
            step_id,
            error: format!(
                "{lost} ({} finished before it; run apply again to resume)",
                crate::event::describe::count(progress.finished() as u64, "step", "steps")
            ),
        },
        Direction::Rollback => {
            EngineError::RollbackFailed { step_id, error: lost, undone: progress.finished() }
        }
    }
}

/// How a run ended, for the `RunFinished` event: cancelled by the operator, failed (something
/// may have changed), or refused (nothing was started).
fn outcome_of(error: &EngineError, progress: &Progress) -> RunOutcome {
    match error {
        EngineError::Cancelled { .. } => RunOutcome::Cancelled,
        EngineError::StepFailed { .. } | EngineError::RollbackFailed { .. } => RunOutcome::Failed,
        _ if progress.any_started() => RunOutcome::Failed,
        _ => RunOutcome::Refused,
    }
}

/// Open the run's connections, take the run lock, run `body`, release the lock, and report
/// the end of the run as one `RunFinished` event, whatever happened.
pub(super) async fn locked_run<T>(
    spec: &ConnSpec,
    settings: &RunSettings,
    direction: Direction,
    events: &EventSender,
    body: impl AsyncFnOnce(&Session, &Progress) -> Result<T, EngineError>,
    summary: impl FnOnce(&T) -> String,
) -> Result<T, EngineError> {
    let started = Instant::now();
    let progress = Progress::default();
    let result = async {
        let session = Session::open(spec, settings).await?;
        let baseline =
            format!("SET row_security = off; SET lock_timeout = '{}ms';", settings.lock_timeout_ms);
        session.ddl.batch_execute(&baseline).await.map_err(super::db_error)?;
        lock::acquire(&session.ddl).await?;
        let result = body(&session, &progress).await;
        lock::release(&session.ddl).await;
        session.close().await;
        result
    }
    .await
    .map_err(|e| truthful(e, &progress, direction));
    let (outcome, message) = match &result {
        Ok(value) => (RunOutcome::Success, summary(value)),
        Err(e) => (outcome_of(e, &progress), e.to_string()),
    };
    emit(events, Event::RunFinished { outcome, duration_ms: elapsed_ms(started), message });
    result
}

/// The journal's view of `plan` in the database `spec` names (read only: creates nothing).
pub async fn status(spec: &ConnSpec, plan: &Plan) -> Result<Status, EngineError> {
    let client =
        spec.connect("tenantize status").await.map_err(|e| EngineError::Connection(e.to_string()))?;
    Ok(journal::read_status(&client, &plan.plan_hash).await?)
}

/// The journal's record of a plan.
pub(super) fn plan_record(plan: &Plan) -> journal::PlanRecord<'_> {
    journal::PlanRecord {
        plan_hash: &plan.plan_hash,
        catalog_fingerprint: &plan.drift.catalog_fingerprint,
        steps: plan.steps.iter().map(|s| (s.id.as_str(), s.stage.number(), s.hash.as_str())).collect(),
    }
}

/// Record a failed step (when the connection still works) and turn it into an engine error.
pub(super) async fn step_failure(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    direction: Direction,
    error: ExecError,
) -> EngineError {
    let text = match &error {
        ExecError::Cancelled => "cancelled by the operator".to_string(),
        other if other.connection_lost() => format!(
            "{}; the connection to the server was lost, so the journal still says 'running': \
             run the command again to resume",
            other.describe()
        ),
        other => other.describe(),
    };
    if !error.connection_lost() {
        let _ =
            journal::finish(&exec.session.ddl, &plan.plan_hash, &step.id, StepState::Failed, 0, Some(&text))
                .await;
    }
    emit(exec.events, Event::StepFailed { step_id: step.id.clone(), direction, error: text.clone() });
    match (error, direction) {
        (ExecError::Cancelled, direction) => EngineError::Cancelled { step_id: step.id.clone(), direction },
        (_, Direction::Forward) => EngineError::StepFailed { step_id: step.id.clone(), error: text },
        (_, Direction::Rollback) => {
            EngineError::RollbackFailed { step_id: step.id.clone(), error: text, undone: 0 }
        }
    }
}
