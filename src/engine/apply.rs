//! `apply`: run the steps still to do, in order, each journaled; resume interrupted ones.

use std::time::Instant;

use super::backfill::run_backfill;
use super::exec::{ExecError, Executor, Watch};
use super::preflight::{drift, privilege_problems, tables_of};
use super::run::{Progress, locked_run, plan_record, step_failure};
use super::step_checks::{observe_checks, run_checks};
use super::{Control, EngineError, RunSettings, Session, elapsed_ms, emit};
use crate::catalog::introspect;
use crate::db::ConnSpec;
use crate::db::journal::{self, JournalStep, Resume, StepState};
use crate::event::{CheckPhase, Direction, Event, EventSender};
use crate::plan::{Plan, Severity, Stage, Statement, StatementKind, Step};

/// Where an `apply` stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAfter {
    /// Run every step.
    All,
    /// Run the steps of this stage and the ones before it.
    Stage(Stage),
    /// Run the steps up to and including this one.
    Step(String),
}

impl StopAfter {
    fn includes(&self, plan: &Plan, step: &Step) -> bool {
        match self {
            StopAfter::All => true,
            StopAfter::Stage(stage) => step.stage <= *stage,
            StopAfter::Step(id) => match (plan.position(id), plan.position(&step.id)) {
                (Some(last), Some(here)) => here <= last,
                _ => false,
            },
        }
    }
}

pub struct ApplyRequest {
    pub plan: Plan,
    pub spec: ConnSpec,
    pub stop_after: StopAfter,
    pub dry_run: bool,
    pub settings: RunSettings,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyOutcome {
    /// Steps that were (or, in a dry run, would be) run.
    pub steps_to_run: Vec<String>,
    pub steps_run: usize,
}

pub async fn apply(
    request: &ApplyRequest,
    events: &EventSender,
    control: &Control,
) -> Result<ApplyOutcome, EngineError> {
    locked_run(
        &request.spec,
        &request.settings,
        events,
        async |session, progress| apply_locked(request, session, events, control, progress).await,
        |outcome| {
            if request.dry_run {
                format!("dry run: {} steps would run", outcome.steps_to_run.len())
            } else {
                format!("{} steps applied", outcome.steps_run)
            }
        },
    )
    .await
}

async fn apply_locked(
    request: &ApplyRequest,
    session: &Session,
    events: &EventSender,
    control: &Control,
    progress: &Progress,
) -> Result<ApplyOutcome, EngineError> {
    let plan = &request.plan;
    let catalog =
        introspect(&session.ddl, &plan.options.schemas, std::slice::from_ref(&plan.tenant.table.schema))
            .await
            .map_err(|e| EngineError::Database(e.to_string()))?;
    let journal_present = journal::journal_exists(&session.ddl).await?;
    let entries = if journal_present {
        let others = journal::other_active_plans(&session.ddl, &plan.plan_hash).await?;
        if let Some((other_hash, done)) = others.into_iter().next() {
            return Err(EngineError::OtherPlanActive { other_hash, done });
        }
        journal::load(&session.ddl, &plan.plan_hash).await?
    } else {
        Default::default()
    };
    let state_of = |step: &Step| entries.get(&step.id).map(|e| e.state).unwrap_or(StepState::Pending);
    let pending: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| request.stop_after.includes(plan, s))
        .filter(|s| state_of(s) != StepState::Done)
        .collect();
    emit(
        events,
        Event::RunStarted {
            direction: Direction::Forward,
            plan_hash: plan.plan_hash.clone(),
            database: catalog.server.database.clone(),
            server_version: catalog.server.version.clone(),
            steps_total: plan.steps.len(),
            steps_to_run: pending.len(),
        },
    );
    let mut outcome =
        ApplyOutcome { steps_to_run: pending.iter().map(|s| s.id.clone()).collect(), steps_run: 0 };
    if pending.is_empty() {
        return Ok(outcome);
    }
    let report = drift(plan, &catalog, Some(&tables_of(&pending)));
    if !report.is_empty() {
        let mut lines = report.lines();
        if catalog.server.database != plan.source.database {
            lines.insert(
                0,
                format!(
                    "this plan was built for database {:?}; this is {:?}",
                    plan.source.database, catalog.server.database
                ),
            );
        }
        return Err(EngineError::Drift(lines));
    }
    let problems = privilege_problems(plan, &catalog, &pending);
    if !problems.is_empty() {
        return Err(EngineError::Preflight(problems));
    }
    let warnings: Vec<_> =
        plan.findings.iter().filter(|f| f.severity >= Severity::Warning).cloned().collect();
    if !warnings.is_empty() {
        emit(events, Event::Findings { findings: warnings });
    }
    if request.dry_run {
        return Ok(outcome);
    }
    journal::migrate(&session.ddl).await?;
    journal::register_plan(&session.ddl, &plan_record(plan)).await?;
    let run_id = journal::start_run(&session.ddl, &plan.plan_hash, "apply").await?;
    let exec = Executor { session, settings: &request.settings, events, control };
    for step in pending {
        let position = plan.position(&step.id).unwrap_or(0);
        let entry = entries.get(&step.id);
        progress.step_started();
        if let Err(error) = run_step(&exec, plan, step, position, entry).await {
            journal::finish_run(&session.ddl, run_id, "failed", &error.to_string()).await;
            return Err(error);
        }
        outcome.steps_run += 1;
    }
    journal::finish_run(&session.ddl, run_id, "success", "").await;
    Ok(outcome)
}

async fn run_step(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    position: usize,
    entry: Option<&JournalStep>,
) -> Result<(), EngineError> {
    let resume = match entry {
        Some(e) if matches!(e.state, StepState::Running | StepState::Failed) => {
            e.resume.for_direction(Direction::Forward)
        }
        _ => Resume { direction: Some(Direction::Forward), ..Resume::default() },
    };
    let client = &exec.session.ddl;
    emit(
        exec.events,
        Event::StepStarted {
            step_id: step.id.clone(),
            stage: step.stage,
            title: step.title.clone(),
            direction: Direction::Forward,
            position,
            resumed: resume.describe(),
        },
    );
    observe_checks(&exec.session.checks, exec.events, step, CheckPhase::Before).await;
    journal::mark_running(client, &plan.plan_hash, &step.id, &resume).await?;
    let started = Instant::now();
    let result = if step.atomic {
        run_atomic(exec, plan, step).await
    } else {
        run_in_parts(exec, plan, step, resume).await
    };
    match result {
        Ok(rows) => {
            emit(
                exec.events,
                Event::StepFinished {
                    step_id: step.id.clone(),
                    direction: Direction::Forward,
                    duration_ms: elapsed_ms(started),
                    rows,
                },
            );
            Ok(())
        }
        Err(error) => Err(step_failure(exec, plan, step, Direction::Forward, error).await),
    }
}

/// All statements, the checks and the journal row in one transaction.
async fn run_atomic(exec: &Executor<'_>, plan: &Plan, step: &Step) -> Result<u64, ExecError> {
    let client = &exec.session.ddl;
    exec.transaction(
        &step.id,
        0,
        step.forward.first().map(|s| s.profile).unwrap_or_default(),
        "",
        async |attempt, blockers| {
            let mut rows = 0;
            for (index, statement) in step.forward.iter().enumerate() {
                client.batch_execute(&exec.set_local(statement.profile)).await?;
                rows += exec.run_sql(&step.id, index, statement, attempt, blockers, Watch::Locks).await?;
            }
            run_checks(client, exec.events, step).await?;
            journal::finish(client, &plan.plan_hash, &step.id, StepState::Done, rows as i64, None).await?;
            Ok(rows)
        },
    )
    .await
}

/// Each statement in its own transaction (or none, for CONCURRENTLY), the journal's resume key
/// committed with each; checks afterwards on the checks connection.
async fn run_in_parts(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    resume: Resume,
) -> Result<u64, ExecError> {
    let mut rows_total = 0;
    for (index, statement) in step.forward.iter().enumerate().skip(resume.statement) {
        rows_total += run_statement(exec, plan, step, index, statement, Direction::Forward, &resume).await?;
    }
    run_checks(&exec.session.checks, exec.events, step).await?;
    journal::finish(&exec.session.ddl, &plan.plan_hash, &step.id, StepState::Done, 0, None).await?;
    Ok(rows_total)
}

/// Run one statement of a step that is not atomic, and record that it is done.
pub(super) async fn run_statement(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    index: usize,
    statement: &Statement,
    direction: Direction,
    resume: &Resume,
) -> Result<u64, ExecError> {
    let client = &exec.session.ddl;
    let next = Resume { direction: Some(direction), statement: index + 1, ..Resume::default() };
    match &statement.kind {
        StatementKind::Transaction => {
            exec.transaction(&step.id, index, statement.profile, "", async |attempt, blockers| {
                let rows = exec.run_sql(&step.id, index, statement, attempt, blockers, Watch::Locks).await?;
                journal::save_resume(client, &plan.plan_hash, &step.id, &next, rows as i64).await?;
                Ok(rows)
            })
            .await
        }
        StatementKind::ConcurrentIndex => {
            let qualified = statement.index.as_ref().map(|n| n.to_string()).unwrap_or_default();
            if index_state(client, &qualified).await? == Some(true) {
                emit(
                    exec.events,
                    Event::StatementFinished {
                        step_id: step.id.clone(),
                        index,
                        duration_ms: 0,
                        rows: 0,
                        skipped: true,
                    },
                );
            } else {
                let drop_leftover = format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}");
                exec.outside_transaction(&step.id, index, statement, Watch::IndexBuild, async || {
                    // An earlier attempt (or a killed run) may have left the index INVALID:
                    // IF NOT EXISTS would keep it, so drop it and build again.
                    if index_state(client, &qualified).await? == Some(false) {
                        client.batch_execute(&drop_leftover).await?;
                    }
                    Ok(())
                })
                .await?;
            }
            journal::save_resume(client, &plan.plan_hash, &step.id, &next, 0).await?;
            Ok(0)
        }
        StatementKind::NonTransactional => {
            let rows =
                exec.outside_transaction(&step.id, index, statement, Watch::Locks, async || Ok(())).await?;
            journal::save_resume(client, &plan.plan_hash, &step.id, &next, 0).await?;
            Ok(rows)
        }
        StatementKind::Batch => run_backfill(exec, plan, step, index, statement, resume).await,
    }
}

/// `Some(valid)` when an index of that (quoted, qualified) name exists.
async fn index_state(client: &tokio_postgres::Client, qualified: &str) -> Result<Option<bool>, ExecError> {
    let row = client
        .query_opt(
            "SELECT i.indisvalid AND i.indisready FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass($1)",
            &[&qualified],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
