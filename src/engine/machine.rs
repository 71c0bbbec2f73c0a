//! Driving a part (see `plan::machine`): ask the catalog which state it is in, follow the
//! plan's transitions from there to where it was asked to go, one statement at a time, and
//! check after each that the catalog agrees it arrived. Nothing here trusts the journal about
//! how far a step got; the journal only records it.

use std::sync::{Arc, Mutex};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::backfill::run_backfill;
use super::exec::{ExecError, Executor, Watch};
use crate::db::journal::{self, Resume};
use crate::event::{Blocker, Direction};
use crate::plan::{Part, Plan, Statement, StatementKind, Step, TimeoutProfile, Transition};

/// The state a part is in: the first whose question holds. `None`: none holds.
pub(super) async fn detect<'p>(client: &Client, part: &'p Part) -> Result<Option<&'p str>, ExecError> {
    for state in &part.states {
        if holds(client, &state.when).await? {
            return Ok(Some(state.name.as_str()));
        }
    }
    Ok(None)
}

/// Whether a state's question holds. One that names a relation, column or schema that does
/// not exist does not hold.
async fn holds(client: &Client, query: &str) -> Result<bool, ExecError> {
    match client.query_one(query, &[]).await {
        Ok(row) => Ok(row.try_get::<_, Option<bool>>(0).map_err(ExecError::Pg)?.unwrap_or(false)),
        Err(e)
            if matches!(
                e.code(),
                Some(c) if *c == SqlState::UNDEFINED_TABLE
                    || *c == SqlState::UNDEFINED_COLUMN
                    || *c == SqlState::INVALID_SCHEMA_NAME
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(ExecError::Pg(e)),
    }
}

/// Where `direction` takes a part.
pub(super) fn targets(part: &Part, direction: Direction) -> &[String] {
    match direction {
        Direction::Forward => &part.done,
        Direction::Rollback => &part.undone,
    }
}

/// Whether the part is where `direction` leaves it (`None` when the catalog matches no state
/// of it).
pub(super) async fn arrived(
    client: &Client,
    part: &Part,
    direction: Direction,
) -> Result<Option<bool>, ExecError> {
    let state = detect(client, part).await?;
    Ok(state.map(|s| targets(part, direction).iter().any(|t| t == s)))
}

/// The first part of `step` found neither untouched nor finished (a backfill is not asked:
/// that would scan its table), in words, for the "resuming" note.
pub(super) async fn found_midway(
    client: &Client,
    step: &Step,
    direction: Direction,
) -> Result<Option<String>, ExecError> {
    for part in &step.parts {
        if is_backfill(part) {
            continue;
        }
        if let Some(state) = detect(client, part).await?
            && !fresh_start(part, state, direction)
        {
            return Ok(Some(format!("{} was {state}", part.name)));
        }
    }
    Ok(None)
}

/// A batched backfill's part (its states are told by scanning the table).
pub(super) fn is_backfill(part: &Part) -> bool {
    part.transitions.iter().any(|t| t.statements.iter().any(|s| s.kind == StatementKind::Batch))
}

/// What happened to a part.
pub(super) struct Driven {
    pub rows: u64,
}

/// Take part `index` of `step` where `direction` goes, from whatever state it is in.
pub(super) async fn drive(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    index: usize,
    direction: Direction,
    resume: &Resume,
) -> Result<Driven, ExecError> {
    let part = &step.parts[index];
    let client = &exec.session.ddl;
    let goal = targets(part, direction);
    let mut driven = Driven { rows: 0 };
    // Lock contention outside a transaction is retried from here, after asking the catalog
    // again: the failed attempt may have left the part in another state (an INVALID index).
    let blockers: Arc<Mutex<Vec<Blocker>>> = Arc::default();
    let mut attempt = 0u32;
    // Each transition leads somewhere new; more steps than transitions means a loop.
    let mut taken = 0;
    while taken <= part.transitions.len() {
        let Some(state) = detect(client, part).await? else {
            return Err(ExecError::Stuck(format!(
                "{} is in none of the states this plan knows for it (someone changed it by hand?); \
                 nothing was done to it",
                part.name
            )));
        };
        if goal.iter().any(|g| g == state) {
            return Ok(driven);
        }
        let Some(path) = part.path(state, goal) else {
            return Err(ExecError::Stuck(format!(
                "{} is {state}, and no step of this plan leads from there to {}; nothing was done to it",
                part.name,
                goal.join(" or ")
            )));
        };
        let transition = path[0];
        match run(
            exec,
            plan,
            step,
            index,
            transition,
            direction,
            Attempt { attempt, blockers: &blockers, resume },
        )
        .await
        {
            Ok(rows) => driven.rows += rows,
            Err(error) if outside_transaction(transition) => {
                let at = display_index(step, index, transition, direction);
                exec.pause_before_retry(&step.id, at, &blockers, attempt, error).await?;
                attempt += 1;
                continue;
            }
            Err(error) => return Err(error),
        }
        taken += 1;
        let now = detect(client, part).await?;
        if now != Some(transition.to.as_str()) {
            return Err(ExecError::CheckFailed(format!(
                "after taking {} from {} to {}, the catalog shows it {}",
                part.name,
                transition.from,
                transition.to,
                now.unwrap_or("in none of its states")
            )));
        }
    }
    Err(ExecError::Stuck(format!("{} went round in circles on its way to {}", part.name, goal.join(" or "))))
}

/// A part found where a run in this direction starts: untouched, or fully done before undoing.
fn fresh_start(part: &Part, state: &str, direction: Direction) -> bool {
    match direction {
        Direction::Forward => part.undone.first().is_some_and(|s| s == state) || part.is_done(state),
        Direction::Rollback => part.is_done(state) || part.is_undone(state),
    }
}

/// Where statement `k` of a transition sits in the step's forward (or rollback) list, for the
/// front ends' "statement 3/5"; a recovery transition shows at its part's first statement.
fn display_index(step: &Step, part: usize, transition: &Transition, direction: Direction) -> usize {
    let transitions = if direction == Direction::Forward {
        step.forward_transitions()
    } else {
        step.rollback_transitions()
    };
    let mut offset = 0;
    let mut part_start = None;
    for t in transitions {
        if std::ptr::eq(t, transition) {
            return offset;
        }
        if part_start.is_none() && step.parts[part].transitions.iter().any(|own| std::ptr::eq(own, t)) {
            part_start = Some(offset);
        }
        offset += t.statements.len();
    }
    part_start.unwrap_or(0)
}

/// A transition that runs its one statement outside a transaction (retried by `drive`).
fn outside_transaction(transition: &Transition) -> bool {
    transition.statements.len() == 1
        && matches!(
            transition.statements[0].kind,
            StatementKind::ConcurrentIndex | StatementKind::NonTransactional
        )
}

/// Which attempt at a transition this is, who was seen holding its lock so far, and where a
/// backfill resumes.
struct Attempt<'a> {
    attempt: u32,
    blockers: &'a Arc<Mutex<Vec<Blocker>>>,
    resume: &'a Resume,
}

/// Run one transition: one transaction (its statements and the journal's note of where the
/// part now is commit together), or the one statement that cannot run in a transaction.
async fn run(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    part: usize,
    transition: &Transition,
    direction: Direction,
    attempt: Attempt<'_>,
) -> Result<u64, ExecError> {
    let client = &exec.session.ddl;
    let first = display_index(step, part, transition, direction);
    let at = Resume {
        direction: Some(direction),
        statement: part,
        state: Some(transition.to.clone()),
        ..Resume::default()
    };
    let only: Option<&Statement> = (transition.statements.len() == 1).then(|| &transition.statements[0]);
    match only.map(|s| s.kind) {
        Some(StatementKind::Batch) => {
            let statement = only.expect("one statement");
            let rows =
                run_backfill(exec, plan, step, first, statement, &attempt.resume.for_part(part)).await?;
            journal::save_resume(client, &plan.plan_hash, &step.id, &at, 0).await?;
            Ok(rows)
        }
        Some(kind @ (StatementKind::ConcurrentIndex | StatementKind::NonTransactional)) => {
            let statement = only.expect("one statement");
            let watch = if kind == StatementKind::ConcurrentIndex { Watch::IndexBuild } else { Watch::Locks };
            let rows = exec
                .outside_transaction(&step.id, first, statement, watch, attempt.attempt, attempt.blockers)
                .await?;
            journal::save_resume(client, &plan.plan_hash, &step.id, &at, 0).await?;
            Ok(rows)
        }
        _ => {
            let long = transition.statements.iter().any(|s| s.profile == TimeoutProfile::Long);
            let profile = if long { TimeoutProfile::Long } else { TimeoutProfile::Ddl };
            exec.transaction(&step.id, first, profile, "", async |attempt, blockers| {
                let mut rows = 0;
                for (k, statement) in transition.statements.iter().enumerate() {
                    client.batch_execute(&exec.set_local(statement.profile)).await?;
                    if !statement.settings.is_empty() {
                        client.batch_execute(&statement.settings_sql(true)).await?;
                    }
                    rows +=
                        exec.run_sql(&step.id, first + k, statement, attempt, blockers, Watch::Locks).await?;
                }
                journal::save_resume(client, &plan.plan_hash, &step.id, &at, rows as i64).await?;
                Ok(rows)
            })
            .await
        }
    }
}
