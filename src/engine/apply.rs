//! `apply`: run the steps still to do, in order, each journaled; resume interrupted ones.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_postgres::types::ToSql;

use super::exec::{ExecError, Executor, Watch};
use super::journal::{self, JournalStep, Resume, StepState};
use super::preflight::{drift, privilege_problems, tables_of};
use super::{Control, EngineError, RunSettings, Session, db_error, elapsed_ms, emit, lock};
use crate::catalog::introspect;
use crate::conn::ConnSpec;
use crate::event::{Blocker, CheckPhase, Direction, Event, EventSender, ProgressUnit, RunOutcome};
use crate::plan::{BackfillKey, Check, Plan, Severity, Stage, Statement, StatementKind, Step, backfill_sql};

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
    let started = Instant::now();
    let result = async {
        let session = Session::open(&request.spec, &request.settings).await?;
        session.ddl.batch_execute("SET row_security = off").await.map_err(db_error)?;
        lock::acquire(&session.ddl).await?;
        let result = apply_locked(request, &session, events, control).await;
        lock::release(&session.ddl).await;
        result
    }
    .await;
    let (outcome, message) = match &result {
        Ok(o) if request.dry_run => {
            (RunOutcome::Success, format!("dry run: {} steps would run", o.steps_to_run.len()))
        }
        Ok(o) => (RunOutcome::Success, format!("{} steps applied", o.steps_run)),
        Err(EngineError::Cancelled { .. }) => {
            (RunOutcome::Cancelled, result.as_ref().unwrap_err().to_string())
        }
        Err(e @ (EngineError::StepFailed { .. } | EngineError::Database(_))) => {
            (RunOutcome::Failed, e.to_string())
        }
        Err(e) => (RunOutcome::Refused, e.to_string()),
    };
    emit(events, Event::RunFinished { outcome, duration_ms: elapsed_ms(started), message });
    result
}

async fn apply_locked(
    request: &ApplyRequest,
    session: &Session,
    events: &EventSender,
    control: &Control,
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
    journal::register_plan(&session.ddl, plan).await?;
    let run_id = journal::start_run(&session.ddl, &plan.plan_hash, "apply").await?;
    let exec = Executor { session, settings: &request.settings, events, control };
    for step in pending {
        let position = plan.position(&step.id).unwrap_or(0);
        let entry = entries.get(&step.id);
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
        (ExecError::Cancelled, _) => EngineError::Cancelled { step_id: step.id.clone() },
        (_, Direction::Forward) => EngineError::StepFailed { step_id: step.id.clone(), error: text },
        (_, Direction::Rollback) => EngineError::RollbackFailed { step_id: step.id.clone(), error: text },
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

/// Fill the tenant column in short batches, each committed with its resume key.
async fn run_backfill(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    index: usize,
    statement: &Statement,
    resume: &Resume,
) -> Result<u64, ExecError> {
    let backfill = step.backfill.as_ref().expect("batch statements come with backfill parameters");
    let sql = backfill_sql(backfill);
    let client = &exec.session.ddl;
    let extra = if backfill.suppress_triggers { "SET LOCAL session_replication_role = replica;" } else { "" };
    // Have the server push the backfill's writes to disk as they happen (sync_file_range every
    // 256 kB). Left to the kernel they stay dirty for ~30 s (vm.dirty_expire_centisecs) and are
    // then written back in one burst, during which every other session's commit waits on its
    // WAL fsync: the benchmark measured the longest application write at 335 ms without this
    // and 145 ms with it, and the backfill itself got faster. Session-level on the tool's own
    // connection; a platform without the setting just goes without.
    let _ = client.batch_execute("SET backend_flush_after = '256kB'").await;
    emit(
        exec.events,
        Event::StatementStarted {
            step_id: step.id.clone(),
            index,
            lock: statement.lock,
            on: statement.on.clone(),
            sql: statement.sql.clone(),
            attempt: 0,
        },
    );
    let started = Instant::now();
    let remaining_at_start: i64 = exec.session.checks.query_one(sql.remaining.as_str(), &[]).await?.get(0);
    let mut done: u64 = 0;
    let progress = |done: u64, unit: ProgressUnit, total: Option<u64>| Event::Progress {
        step_id: step.id.clone(),
        done,
        total,
        unit,
        phase: Some("backfill".into()),
    };
    emit(exec.events, progress(0, ProgressUnit::Rows, Some(remaining_at_start.max(0) as u64)));
    let blockers: Arc<Mutex<Vec<Blocker>>> = Arc::default();
    match &backfill.key {
        BackfillKey::Keyset { .. } => {
            let mut lower = resume.batch_key.clone();
            loop {
                wait_while_paused(exec, step).await?;
                let upper_sql = if lower.is_some() { &sql.upper_next } else { &sql.upper_first };
                let lower_params: Vec<String> = lower.clone().unwrap_or_default();
                let params: Vec<&(dyn ToSql + Sync)> =
                    lower_params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let upper_row = client.query_opt(upper_sql.as_str(), &params).await?;
                let Some(upper_row) = upper_row else { break };
                let upper: Vec<String> =
                    (0..upper_row.len()).map(|i| upper_row.get::<_, String>(i)).collect();
                let update_sql = if lower.is_some() { &sql.update_next } else { &sql.update_first };
                let mut all: Vec<String> = lower_params.clone();
                all.extend(upper.iter().cloned());
                let next = Resume {
                    direction: Some(Direction::Forward),
                    statement: index,
                    batch_key: Some(upper.clone()),
                    ..Resume::default()
                };
                let rows = exec
                    .transaction(&step.id, index, statement.profile, extra, async |_, blockers| {
                        let params: Vec<&(dyn ToSql + Sync)> =
                            all.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                        let n = exec
                            .monitored(
                                &step.id,
                                index,
                                blockers,
                                Watch::Locks,
                                client.execute(update_sql.as_str(), &params),
                            )
                            .await?;
                        journal::save_resume(client, &plan.plan_hash, &step.id, &next, n as i64).await?;
                        Ok(n)
                    })
                    .await?;
                done += rows;
                emit(exec.events, progress(done, ProgressUnit::Rows, Some(remaining_at_start.max(0) as u64)));
                lower = Some(upper);
            }
        }
        BackfillKey::Ctid => {
            let batch_blocks = backfill.batch_blocks.max(1) as i64;
            let mut sweep = resume.sweep;
            let mut start = resume.block.unwrap_or(0);
            loop {
                let blocks: i64 = client.query_one(sql.block_count.as_str(), &[]).await?.get(0);
                while start < blocks {
                    wait_while_paused(exec, step).await?;
                    let end = start + batch_blocks;
                    let params = [start.to_string(), end.to_string()];
                    let next = Resume {
                        direction: Some(Direction::Forward),
                        statement: index,
                        block: Some(end),
                        sweep,
                        ..Resume::default()
                    };
                    let rows = exec
                        .transaction(&step.id, index, statement.profile, extra, async |_, blockers| {
                            let p: Vec<&(dyn ToSql + Sync)> =
                                params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                            let n = exec
                                .monitored(
                                    &step.id,
                                    index,
                                    blockers,
                                    Watch::Locks,
                                    client.execute(sql.update_next.as_str(), &p),
                                )
                                .await?;
                            journal::save_resume(client, &plan.plan_hash, &step.id, &next, n as i64).await?;
                            Ok(n)
                        })
                        .await?;
                    done += rows;
                    emit(
                        exec.events,
                        progress(end.min(blocks) as u64, ProgressUnit::Blocks, Some(blocks as u64)),
                    );
                    start = end;
                }
                // Rows updated by the application during the sweep may have moved to blocks
                // behind us with the tenant still empty: sweep again until none is left.
                let remaining: i64 = client.query_one(sql.remaining.as_str(), &[]).await?.get(0);
                if remaining == 0 {
                    break;
                }
                sweep += 1;
                if sweep > 20 {
                    return Err(ExecError::CheckFailed(format!(
                        "{remaining} rows still have no tenant after {sweep} sweeps; is something writing NULL tenants?"
                    )));
                }
                start = 0;
            }
        }
    }
    let _ = &blockers;
    let _ = client.batch_execute("RESET backend_flush_after").await;
    journal::save_resume(
        client,
        &plan.plan_hash,
        &step.id,
        &Resume { direction: Some(Direction::Forward), statement: index + 1, ..Resume::default() },
        0,
    )
    .await?;
    emit(
        exec.events,
        Event::StatementFinished {
            step_id: step.id.clone(),
            index,
            duration_ms: elapsed_ms(started),
            rows: done,
            skipped: false,
        },
    );
    Ok(done)
}

async fn wait_while_paused(exec: &Executor<'_>, step: &Step) -> Result<(), ExecError> {
    let mut pause = exec.control.pause.clone();
    if !*pause.borrow() {
        return if exec.control.cancel.is_cancelled() { Err(ExecError::Cancelled) } else { Ok(()) };
    }
    emit(exec.events, Event::Paused { step_id: step.id.clone(), paused: true });
    loop {
        tokio::select! {
            changed = pause.changed() => {
                if changed.is_err() || !*pause.borrow() {
                    break;
                }
            }
            _ = exec.control.cancel.cancelled() => return Err(ExecError::Cancelled),
        }
    }
    emit(exec.events, Event::Paused { step_id: step.id.clone(), paused: false });
    Ok(())
}
