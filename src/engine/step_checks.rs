//! A step's checks: counted before it runs and after an undo (for the record), judged after
//! it runs (a check that does not hold fails the step).

use super::emit;
use super::exec::ExecError;
use crate::event::{CheckPhase, Event, EventSender};
use crate::plan::{Check, Step};

/// Count a step's checks without judging them (before a step runs, after a rollback), for the
/// run log's before/after story. A check that cannot run yet is left out.
pub(super) async fn observe_checks(
    client: &tokio_postgres::Client,
    events: &EventSender,
    step: &Step,
    phase: CheckPhase,
) {
    for check in &step.checks {
        if let Ok(row) = client.query_one(check.sql.as_str(), &[]).await {
            emit(events, check_result(step, check, row.get(0), phase));
        }
    }
}

fn check_result(step: &Step, check: &Check, value: i64, phase: CheckPhase) -> Event {
    Event::CheckResult {
        step_id: step.id.clone(),
        name: check.name.clone(),
        value,
        expected: check.expect,
        ok: value == check.expect,
        phase,
    }
}

pub(super) async fn run_checks(
    client: &tokio_postgres::Client,
    events: &EventSender,
    step: &Step,
) -> Result<(), ExecError> {
    for check in &step.checks {
        let value: i64 = client.query_one(check.sql.as_str(), &[]).await?.get(0);
        emit(events, check_result(step, check, value, CheckPhase::After));
        if value != check.expect {
            return Err(ExecError::CheckFailed(format!(
                "check {:?} returned {value}, expected {}",
                check.name, check.expect
            )));
        }
    }
    Ok(())
}
