//! `rollback`: undo applied steps in reverse order, after counting what the undo would lose.

use std::time::Instant;

use super::apply::run_statement;
use super::exec::{Executor, Watch};
use super::preflight::privilege_problems;
use super::run::{Progress, locked_run, step_failure};
use super::step_checks::observe_checks;
use super::{Control, EngineError, Session, db_error, elapsed_ms, emit};
use crate::catalog::introspect;
use crate::db::ConnSpec;
use crate::db::journal::{self, JournalStep, Resume, StepState};
use crate::event::{CheckPhase, Direction, Event, EventSender};
use crate::plan::{Plan, Stage, Step};

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
}

/// Count what undoing `steps` would lose, on a connection of its own (the wizard shows these
/// in its rollback confirmation).
pub async fn guard_counts(spec: &ConnSpec, steps: &[&Step]) -> Result<Vec<GuardCount>, EngineError> {
    let client = spec
        .connect_for_counts("tenantize guards")
        .await
        .map_err(|e| EngineError::Connection(e.to_string()))?;
    let mut out = Vec::new();
    for step in steps {
        for guard in &step.rollback_guards {
            let count: i64 = client.query_one(guard.sql.as_str(), &[]).await.map_err(db_error)?.get(0);
            out.push(GuardCount {
                step_id: step.id.clone(),
                name: guard.name.clone(),
                message: guard.message.clone(),
                count,
                forceable: guard.forceable,
            });
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
    // Count first, change nothing until every count is acceptable.
    let mut refusals = Vec::new();
    for step in &steps {
        for guard in &step.rollback_guards {
            let count: i64 = match session.checks.query_one(guard.sql.as_str(), &[]).await {
                Ok(row) => row.get(0),
                Err(e) => {
                    refusals.push(format!(
                        "{}: cannot count {} ({}); nothing was changed",
                        step.id,
                        guard.name,
                        crate::db::describe_pg_error(&e)
                    ));
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
            if count > 0 && !(guard.forceable && request.force) {
                let hint = if guard.forceable { " (--force undoes it anyway)" } else { "" };
                refusals.push(format!("{}: {count} {}{hint}", step.id, guard.message));
            }
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
        progress.step_started();
        if let Err(error) = undo_step(&exec, plan, step, entry).await {
            journal::finish_run(client, run_id, "failed", &error.to_string()).await;
            return Err(error);
        }
        outcome.steps_rolled_back += 1;
    }
    journal::finish_run(client, run_id, "success", "").await;
    Ok(outcome)
}

async fn undo_step(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    entry: &JournalStep,
) -> Result<(), EngineError> {
    let client = &exec.session.ddl;
    let resume = entry.resume.for_direction(Direction::Rollback);
    let position = plan.position(&step.id).unwrap_or(0);
    emit(
        exec.events,
        Event::StepStarted {
            step_id: step.id.clone(),
            stage: step.stage,
            title: step.title.clone(),
            direction: Direction::Rollback,
            position,
            resumed: resume.describe(),
        },
    );
    observe_checks(&exec.session.checks, exec.events, step, CheckPhase::Before).await;
    journal::mark_running(client, &plan.plan_hash, &step.id, &resume).await?;
    let started = Instant::now();
    let result = if step.rollback_atomic {
        let profile = step.rollback.first().map(|s| s.profile).unwrap_or_default();
        exec.transaction(&step.id, 0, profile, "", async |attempt, blockers| {
            for (index, statement) in step.rollback.iter().enumerate() {
                client.batch_execute(&exec.set_local(statement.profile)).await?;
                exec.run_sql(&step.id, index, statement, attempt, blockers, Watch::Locks).await?;
            }
            journal::finish(client, &plan.plan_hash, &step.id, StepState::RolledBack, 0, None).await?;
            Ok(())
        })
        .await
    } else {
        async {
            for (index, statement) in step.rollback.iter().enumerate().skip(resume.statement) {
                run_statement(exec, plan, step, index, statement, Direction::Rollback, &Resume::default())
                    .await?;
            }
            journal::finish(client, &plan.plan_hash, &step.id, StepState::RolledBack, 0, None).await?;
            Ok(())
        }
        .await
    };
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
