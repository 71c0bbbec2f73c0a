//! `apply`: run the steps still to do, in order, each journaled; resume interrupted ones.

use std::collections::BTreeSet;
use std::time::Instant;

use super::exec::Executor;
use super::machine;
use super::preflight::{drift, names_taken_since_planning, privilege_problems, tables_of};
use super::run::{Progress, locked_run, plan_record, step_failure};
use super::step_checks::{observe_checks, run_checks};
use super::{Control, EngineError, RunSettings, Session, elapsed_ms, emit};
use crate::catalog::introspect;
use crate::db::ConnSpec;
use crate::db::journal::{self, JournalStep, Resume, StepState};
use crate::event::{CheckPhase, Direction, Event, EventSender};
use crate::plan::{Plan, Severity, Stage, Step};

/// Where an `apply` stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAfter {
    /// Run every step, the cutover's too.
    All,
    /// Run every stage but those a plain `apply` stops before (the cutover: see
    /// `Stage::needs_asking`).
    Conversion,
    /// Run the steps of this stage and the ones before it.
    Stage(Stage),
    /// Run the steps up to and including this one.
    Step(String),
}

impl StopAfter {
    fn includes(&self, plan: &Plan, step: &Step) -> bool {
        match self {
            StopAfter::All => true,
            StopAfter::Conversion => !step.stage.needs_asking(),
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
        Direction::Forward,
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
    // Once stage 9 has begun, the keys it takes off and puts back belong to it: the earlier
    // steps that made them read as not done from the catalog until it finishes, so a step of
    // an earlier stage that the journal has as done stays done.
    let distributing = plan.steps_in(Stage::Distribute).any(|s| entries.contains_key(&s.id));
    let mut pending = Vec::new();
    for step in plan.steps.iter().filter(|s| request.stop_after.includes(plan, s)) {
        let journaled_done = entries.get(&step.id).is_some_and(|e| e.state == StepState::Done);
        let trusted = journaled_done && distributing && step.stage < Stage::Distribute;
        if !journaled_done || (!trusted && !all_done(&session.ddl, step).await?) {
            pending.push(step);
        }
    }
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
    let never_started: BTreeSet<&str> = pending
        .iter()
        .filter(|s| entries.get(&s.id).is_none_or(|e| e.state == StepState::Pending && e.attempts == 0))
        .map(|s| s.id.as_str())
        .collect();
    let taken = names_taken_since_planning(plan, &catalog, &never_started);
    if !report.is_empty() || !taken.is_empty() {
        let mut lines = report.lines();
        lines.extend(taken);
        if catalog.server.database != plan.source.database {
            lines.insert(
                0,
                format!(
                    "this plan was built for database {:?}; this is {:?}",
                    plan.source.database, catalog.server.database
                ),
            );
        }
        let started = entries.values().any(|e| e.state.has_effects());
        return Err(EngineError::Drift { lines, started });
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
    if pending.iter().any(|s| s.stage == Stage::Cutover) {
        let sessions = super::cutover::legacy_sessions(&session.ddl, plan).await?;
        if !sessions.is_empty() {
            emit(events, Event::Findings { findings: sessions });
        }
    }
    if request.dry_run {
        return Ok(outcome);
    }
    journal::migrate(&session.ddl).await?;
    journal::register_plan(&session.ddl, &plan_record(plan)).await?;
    // The plan itself, so a run can be resumed without its file (`app::resume`): stored here,
    // under the run lock and after every check passed, so a refused run keeps nothing.
    journal::store_plan_text(&session.ddl, &plan.plan_hash, &crate::plan::codec::to_toml(plan)).await?;
    let run_id = journal::start_run(&session.ddl, &plan.plan_hash, "apply").await?;
    let exec = Executor { session, settings: &request.settings, events, control };
    for step in pending {
        let position = plan.position(&step.id).unwrap_or(0);
        let entry = entries.get(&step.id);
        progress.step_started(&step.id);
        if let Err(error) = run_step(&exec, plan, step, position, entry).await {
            journal::finish_run(&session.ddl, run_id, "failed", &error.to_string()).await;
            return Err(error);
        }
        outcome.steps_run += 1;
    }
    journal::finish_run(&session.ddl, run_id, "success", "").await;
    Ok(outcome)
}

/// Every part of `step` (but a backfill's, which the journal's done is trusted for: asking
/// would scan the table) is in a done state.
async fn all_done(client: &tokio_postgres::Client, step: &Step) -> Result<bool, EngineError> {
    for part in &step.parts {
        if machine::is_backfill(part) {
            continue;
        }
        let done = machine::arrived(client, part, Direction::Forward)
            .await
            .map_err(|e| EngineError::Database(e.describe()))?;
        if done != Some(true) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Take every part of the step to its done state, then judge the step's checks.
async fn run_step(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    position: usize,
    entry: Option<&JournalStep>,
) -> Result<(), EngineError> {
    let resume = entry.map(|e| e.resume.clone()).unwrap_or_default();
    let client = &exec.session.ddl;
    observe_checks(&exec.session.checks, exec.events, step, CheckPhase::Before).await;
    let running = Resume { direction: Some(Direction::Forward), ..resume.clone() };
    journal::mark_running(client, &plan.plan_hash, &step.id, &running).await?;
    let started = Instant::now();
    let result = async {
        let found = machine::found_midway(client, step, Direction::Forward).await?;
        announce(exec, step, position, Direction::Forward, found.or_else(|| resume.describe()));
        let mut rows = 0;
        for index in 0..step.parts.len() {
            rows += machine::drive(exec, plan, step, index, Direction::Forward, &resume).await?.rows;
        }
        run_checks(&exec.session.checks, exec.events, step).await?;
        journal::finish(client, &plan.plan_hash, &step.id, StepState::Done, 0, None).await?;
        Ok(rows)
    }
    .await;
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

/// The step's start, for the front ends; `position` counts from 0 here, from 1 in the event.
pub(super) fn announce(
    exec: &Executor<'_>,
    step: &Step,
    position: usize,
    direction: Direction,
    resumed: Option<String>,
) {
    emit(
        exec.events,
        Event::StepStarted {
            step_id: step.id.clone(),
            stage: step.stage,
            title: step.title.clone(),
            direction,
            position: position + 1,
            resumed,
        },
    );
}
