//! `rollback`: undo applied steps in reverse order, after counting what the undo would lose.

use std::time::Instant;

use tokio_postgres::error::SqlState;

use super::apply::announce;
use super::exec::Executor;
use super::machine;
use super::preflight::privilege_problems;
use super::run::{Progress, locked_run, step_failure};
use super::step_checks::observe_checks;
use super::{Control, EngineError, Session, elapsed_ms, emit};
use crate::catalog::introspect;
use crate::db::ConnSpec;
use crate::db::journal::{self, JournalStep, Resume, StepState};
use crate::event::{CheckPhase, Direction, Event, EventSender};
use crate::plan::{Finding, Guard, Plan, Severity, Stage, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackTarget {
    /// Undo everything.
    All,
    /// Keep stages up to and including this one; undo the later ones.
    ToStage(Stage),
    /// Undo only the last step that changed the database.
    LastStep,
}

/// One rollback guard's count, taken before anything is undone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuardCount {
    pub step_id: String,
    pub name: String,
    pub message: String,
    pub count: i64,
    pub forceable: bool,
    /// Not countable yet: row-level security hides the rows from this role until the stage-8
    /// steps of the same rollback are undone; the rollback counts it then, before the step,
    /// and stops there if it is not 0 (`count` is 0 meanwhile).
    pub deferred: bool,
}

/// Count what undoing `steps` (in the order they would be undone) would lose, on a
/// connection of its own (the wizard shows these in its rollback confirmation). Only parts
/// that undoing would change are counted; a guard that row-level security hides from this
/// role is `deferred` when the same rollback undoes stage 8 first, as `rollback` does.
pub async fn guard_counts(spec: &ConnSpec, steps: &[&Step]) -> Result<Vec<GuardCount>, EngineError> {
    let client = spec
        .connect_for_counts("tenantize guards")
        .await
        .map_err(|e| EngineError::Connection(e.to_string()))?;
    let undoes_rls = steps.iter().any(|s| s.stage == Stage::Rls);
    let mut out = Vec::new();
    for step in steps {
        for (guard, count) in count_guards(&client, &client, step).await? {
            let (count, deferred) = match count {
                Ok(count) => (count, false),
                Err(e)
                    if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
                        && undoes_rls
                        && step.stage != Stage::Rls =>
                {
                    (0, true)
                }
                Err(e) => return Err(EngineError::Database(crate::db::describe_pg_error(&e))),
            };
            out.push(GuardCount {
                step_id: step.id.clone(),
                name: guard.name.clone(),
                message: guard.message.clone(),
                count,
                forceable: guard.forceable,
                deferred,
            });
        }
    }
    Ok(out)
}

/// The guards of the parts of `step` that are not undone yet, each with its count (or why it
/// could not be counted). States are asked on `catalog`, counts taken on `counts`.
async fn count_guards<'s>(
    catalog: &tokio_postgres::Client,
    counts: &tokio_postgres::Client,
    step: &'s Step,
) -> Result<Vec<(&'s Guard, Result<i64, tokio_postgres::Error>)>, EngineError> {
    let mut out = Vec::new();
    for part in step.parts.iter().filter(|p| !p.guards.is_empty()) {
        let arrived = machine::arrived(catalog, part, Direction::Rollback)
            .await
            .map_err(|e| EngineError::Database(e.describe()))?;
        if arrived == Some(true) {
            continue;
        }
        for guard in &part.guards {
            let count = counts.query_one(guard.sql.as_str(), &[]).await.map(|row| row.get::<_, i64>(0));
            out.push((guard, count));
        }
    }
    Ok(out)
}

pub struct RollbackRequest {
    pub plan: Plan,
    pub spec: ConnSpec,
    pub target: RollbackTarget,
    pub force: bool,
    pub settings: super::RunSettings,
}

#[derive(Debug, Clone, Default)]
pub struct RollbackOutcome {
    pub steps_rolled_back: usize,
}

pub async fn rollback(
    request: &RollbackRequest,
    events: &EventSender,
    control: &Control,
) -> Result<RollbackOutcome, EngineError> {
    locked_run(
        &request.spec,
        &request.settings,
        Direction::Rollback,
        events,
        async |session, progress| rollback_locked(request, session, events, control, progress).await,
        |outcome| format!("{} steps rolled back", outcome.steps_rolled_back),
    )
    .await
}

async fn rollback_locked(
    request: &RollbackRequest,
    session: &Session,
    events: &EventSender,
    control: &Control,
    progress: &Progress,
) -> Result<RollbackOutcome, EngineError> {
    let plan = &request.plan;
    let client = &session.ddl;
    let entries = if journal::journal_exists(client).await? {
        let others = journal::other_active_plans(client, &plan.plan_hash).await?;
        let entries = journal::load(client, &plan.plan_hash).await?;
        if entries.values().all(|e| !e.state.has_effects())
            && let Some((other_hash, done)) = others.into_iter().next()
        {
            return Err(EngineError::OtherPlanActive { other_hash, done });
        }
        entries
    } else {
        Default::default()
    };
    let in_scope = |step: &Step| match request.target {
        RollbackTarget::All | RollbackTarget::LastStep => true,
        RollbackTarget::ToStage(stage) => step.stage > stage,
    };
    let mut to_undo: Vec<(&Step, &JournalStep)> = plan
        .steps
        .iter()
        .rev()
        .filter(|s| in_scope(s))
        .filter_map(|s| entries.get(&s.id).filter(|e| e.state.has_effects()).map(|e| (s, e)))
        .collect();
    if request.target == RollbackTarget::LastStep {
        to_undo.truncate(1);
    }
    let catalog = introspect(client, &plan.options.schemas, std::slice::from_ref(&plan.tenant.table.schema))
        .await
        .map_err(|e| EngineError::Database(e.to_string()))?;
    emit(
        events,
        Event::RunStarted {
            direction: Direction::Rollback,
            plan_hash: plan.plan_hash.clone(),
            database: catalog.server.database.clone(),
            server_version: catalog.server.version.clone(),
            steps_total: plan.steps.len(),
            steps_to_run: to_undo.len(),
        },
    );
    if to_undo.is_empty() {
        return Ok(RollbackOutcome::default());
    }
    let steps: Vec<&Step> = to_undo.iter().map(|(s, _)| *s).collect();
    // Only ownership matters here: the plan's own findings were checked when it was applied.
    let problems: Vec<String> = privilege_problems(plan, &catalog, &steps)
        .into_iter()
        .filter(|p| p.contains("does not own") || p.contains("superuser"))
        .collect();
    if !problems.is_empty() {
        return Err(EngineError::Preflight(problems));
    }
    report_drift(plan, &catalog, &steps, events);
    // Count first, change nothing until every count is acceptable. A role that cannot
    // bypass row-level security cannot count under FORCE RLS: those guards are counted in
    // stage order instead, right before their own step, once the RLS steps are undone.
    let undoes_rls = steps.iter().any(|s| s.stage == Stage::Rls);
    let mut refusals = Vec::new();
    let mut deferred: Vec<&str> = Vec::new();
    for step in &steps {
        let judged = judge_guards(client, &session.checks, step, request.force, events).await?;
        match judged {
            Guards::Refused(mut reasons) => refusals.append(&mut reasons),
            Guards::HiddenByRls if undoes_rls && step.stage != Stage::Rls => deferred.push(&step.id),
            Guards::HiddenByRls => refusals.push(format!(
                "{}: cannot count its guards: this role cannot bypass row-level security and the \
                 rollback does not undo stage 8 first (roll back stage 8 too, or run as a role with \
                 BYPASSRLS); nothing was changed",
                step.id
            )),
            Guards::Passed => {}
        }
    }
    if !refusals.is_empty() {
        return Err(EngineError::Preflight(refusals));
    }
    journal::migrate(client).await?;
    let run_id = journal::start_run(client, &plan.plan_hash, "rollback").await?;
    let exec = Executor { session, settings: &request.settings, events, control };
    let mut outcome = RollbackOutcome::default();
    for (step, entry) in to_undo {
        let refused = match deferred.contains(&step.id.as_str()) {
            false => None,
            true => match judge_guards(client, &session.checks, step, request.force, events).await? {
                Guards::Passed => None,
                Guards::Refused(reasons) => Some(reasons),
                Guards::HiddenByRls => Some(vec!["its guards are still hidden by row-level security".into()]),
            },
        };
        if let Some(reasons) = refused {
            let error = EngineError::RollbackFailed {
                step_id: step.id.clone(),
                error: format!("stopped before undoing it: {}", reasons.join("; ")),
                undone: outcome.steps_rolled_back,
            };
            journal::finish_run(client, run_id, "failed", &error.to_string()).await;
            return Err(error);
        }
        progress.step_started(&step.id);
        if let Err(error) = undo_step(&exec, plan, step, entry).await {
            journal::finish_run(client, run_id, "failed", &error.to_string()).await;
            return Err(error);
        }
        outcome.steps_rolled_back += 1;
    }
    journal::finish_run(client, run_id, "success", "").await;
    Ok(outcome)
}

/// What a step's guards say: all within bounds, refusals, or not countable by this role
/// because row-level security hides the rows.
enum Guards {
    Passed,
    Refused(Vec<String>),
    HiddenByRls,
}

/// Count the guards of `step` and judge them (`force` lets the forceable ones pass).
async fn judge_guards(
    catalog: &tokio_postgres::Client,
    counts: &tokio_postgres::Client,
    step: &Step,
    force: bool,
    events: &EventSender,
) -> Result<Guards, EngineError> {
    let mut refusals = Vec::new();
    for (guard, count) in count_guards(catalog, counts, step).await? {
        let count = match count {
            Ok(count) => count,
            // FORCE RLS with row_security = off, for a role that cannot bypass it (whose
            // only other 42501 here would be a missing grant on its own tables).
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => return Ok(Guards::HiddenByRls),
            Err(e) => {
                let e = crate::db::describe_pg_error(&e);
                refusals.push(format!("{}: cannot count {} ({e}); nothing was changed", step.id, guard.name));
                continue;
            }
        };
        emit(
            events,
            Event::GuardResult {
                step_id: step.id.clone(),
                name: guard.name.clone(),
                count,
                forceable: guard.forceable,
            },
        );
        if count > 0 && !(guard.forceable && force) {
            let hint = if guard.forceable { " (--force undoes it anyway)" } else { "" };
            refusals.push(format!("{}: {count} {}{hint}", step.id, guard.message));
        }
    }
    Ok(if refusals.is_empty() { Guards::Passed } else { Guards::Refused(refusals) })
}

/// What changed under the plan in the tables the rollback touches, said before anything is
/// undone: the rollback takes back only what tenantize made (each part asks the catalog), and
/// leaves what others changed as they changed it.
fn report_drift(plan: &Plan, catalog: &crate::catalog::Catalog, steps: &[&Step], events: &EventSender) {
    let report = super::drift(plan, catalog, Some(&super::preflight::tables_of(steps)));
    if report.is_empty() {
        return;
    }
    let findings = report
        .lines()
        .into_iter()
        .map(|line| Finding {
            severity: Severity::Warning,
            code: "drift".into(),
            object: "rollback".into(),
            message: format!("{line}; the rollback undoes only what tenantize made and leaves this as it is"),
        })
        .collect();
    emit(events, Event::Findings { findings });
}

async fn undo_step(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    entry: &JournalStep,
) -> Result<(), EngineError> {
    let client = &exec.session.ddl;
    let position = plan.position(&step.id).unwrap_or(0);
    observe_checks(&exec.session.checks, exec.events, step, CheckPhase::Before).await;
    let running = Resume { direction: Some(Direction::Rollback), ..entry.resume.clone() };
    journal::mark_running(client, &plan.plan_hash, &step.id, &running).await?;
    let started = Instant::now();
    let result = async {
        let found = machine::found_midway(client, step, Direction::Rollback).await?;
        announce(exec, step, position, Direction::Rollback, found);
        for index in (0..step.parts.len()).rev() {
            if step.parts[index].needs_no_rollback() {
                continue;
            }
            machine::drive(exec, plan, step, index, Direction::Rollback, &entry.resume).await?;
        }
        journal::finish(client, &plan.plan_hash, &step.id, StepState::RolledBack, 0, None).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            observe_checks(&exec.session.checks, exec.events, step, CheckPhase::AfterUndo).await;
            emit(
                exec.events,
                Event::StepFinished {
                    step_id: step.id.clone(),
                    direction: Direction::Rollback,
                    duration_ms: elapsed_ms(started),
                    rows: 0,
                },
            );
            Ok(())
        }
        Err(error) => Err(step_failure(exec, plan, step, Direction::Rollback, error).await),
    }
}
