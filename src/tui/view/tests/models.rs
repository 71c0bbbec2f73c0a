//! The models the render tests draw: a session five minutes in, at each point worth seeing.

use super::*;

pub(super) fn index(model: &Model, id: &str) -> usize {
    model.step_index(id).unwrap_or_else(|| panic!("no step {id}"))
}

pub(super) fn mark_done(model: &mut Model, id: &str, duration_ms: u64, rows: u64) {
    let i = index(model, id);
    let step = &mut model.steps[i];
    step.state = UiStepState::Done;
    step.duration_ms = Some(duration_ms);
    step.rows = rows;
    let planned = &model.plan.steps[i];
    step.checks = planned
        .checks
        .iter()
        .map(|c| CheckView { name: c.name.clone(), value: c.expect, expected: c.expect, ok: true })
        .collect();
}

/// Put the cursor on a step (its stage expanded).
pub(super) fn select(model: &mut Model, id: &str) {
    let i = index(model, id);
    model.expanded.insert(model.steps[i].stage);
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(i)).expect("the step is in the tree");
}

pub(super) fn log_some(model: &mut Model) {
    let entries = [
        (1_200, LogKind::Info, "apply: 6 steps to run"),
        (1_250, LogKind::Info, "start 1.tenant-table: Create the tenant table public.tenants"),
        (
            1_260,
            LogKind::Statement,
            "1.tenant-table #1 ACCESS EXCLUSIVE on public.tenants: CREATE TABLE public.tenants (id uuid PRIMARY KEY, name text NOT NULL)",
        ),
        (1_300, LogKind::Done, "1.tenant-table #1 ok in 41 ms, 0 rows"),
        (1_310, LogKind::Info, "1.tenant-table check public.tenants exists: 1 (expected 1)"),
        (1_320, LogKind::Done, "done 1.tenant-table in 70 ms, 0 rows"),
        (1_400, LogKind::Info, "start 2.default-tenant: Insert the default tenant \"Default tenant\""),
        (1_450, LogKind::Done, "done 2.default-tenant in 12 ms, 1 rows"),
        (
            62_000,
            LogKind::Warning,
            "3.add-column:public.issues #1: canceling statement due to lock timeout; retry 3/29 in 800 ms",
        ),
        (
            75_500,
            LogKind::Failure,
            "FAILED 5.not-null:public.issues: check constraint \"issues_tenant_id_not_null\" of relation \"issues\" is violated by some row",
        ),
    ];
    for (at_ms, kind, text) in entries {
        model.log.push(LogLine { at_ms, kind, text: text.to_string() });
    }
}

pub(super) fn counts(model: &Model) -> VerifyReport {
    let default = model.plan.tenant.default_id.clone();
    let table = |name: &str, scoped: bool, rows: i64| TableCounts {
        table: format!("public.{name}"),
        scoped,
        rows,
        tenant_column: scoped,
        rows_per_tenant: if scoped { vec![(default.clone(), rows)] } else { Vec::new() },
        ..TableCounts::default()
    };
    let mut tables = vec![
        table("countries", false, 250),
        table("events", true, 300_000),
        TableCounts { partition_of: Some("public.events".into()), ..table("events_2024", true, 240_000) },
        TableCounts { partition_of: Some("public.events".into()), ..table("events_2025", true, 60_000) },
        TableCounts {
            null_tenant: 588_000,
            rows_per_tenant: vec![("NULL".into(), 588_000), (default.clone(), 412_000)],
            ..table("issues", true, 1_000_000)
        },
        TableCounts {
            cross_tenant: 3,
            rows_per_tenant: vec![
                (default.clone(), 790),
                ("7d3f5a2e-9b1c-4e2f-8a6d-0c1b2a3d4e5f".into(), 7),
                ("c0ffee00-0000-4000-8000-000000000042".into(), 3),
            ],
            problems: vec!["3 rows reference a parent of another tenant".into()],
            ..table("projects", true, 800)
        },
        TableCounts {
            invalid_indexes: vec!["users_tenant_id_id_key".into()],
            unscoped_uniques: vec!["users_email_key".into()],
            rls_enabled: true,
            rls_forced: true,
            has_policy: true,
            ..table("users", true, 5_000)
        },
    ];
    for t in &mut tables {
        t.tenant_not_null = false;
    }
    VerifyReport {
        full: true,
        database: "app".into(),
        plan_hash: model.plan.plan_hash.clone(),
        applied_through: 3,
        tenant_table_exists: true,
        default_tenant_exists: true,
        tables,
        cutover: Default::default(),
        distribution: None,
        problems: vec!["public.projects: 3 rows reference a parent of another tenant".into()],
        ok: false,
    }
}

/// Stages 1-3 applied, two minutes in, counts 1.2 s old.
pub(super) fn applied_through_stage_3() -> Model {
    let mut model = fixture::model();
    model.clock = at(NOW_MS);
    for (id, ms, rows) in [
        ("1.tenant-table", 70, 0),
        ("2.default-tenant", 12, 1),
        ("3.add-column:public.events", 420, 0),
        ("3.add-column:public.users", 35, 0),
        ("3.add-column:public.projects", 31, 0),
        ("3.add-column:public.issues", 2_480, 0),
    ] {
        mark_done(&mut model, id, ms, rows);
    }
    model.counts = Some(counts(&model));
    model.counts_at = Some(at(NOW_MS - 1_200));
    log_some(&mut model);
    model
}

/// Every step applied, the last on Citus: the counts with where the shards live, one worker
/// fuller than the other (the fixture's plan has no stage 9; the report is what counts here).
pub(super) fn distributed() -> Model {
    use crate::checks::distribution::{
        CitusKind, DistributionReport, PlannedAs, TableDistribution, WorkerShards,
    };
    let mut model = applied_through_stage_3();
    model.screen = Screen::Counts;
    let ids: Vec<String> = model.plan.steps.iter().map(|s| s.id.clone()).collect();
    for id in &ids {
        mark_done(&mut model, id, 40, 0);
    }
    let workers = ["10.0.0.11:5432", "10.0.0.12:5432"];
    let report = model.counts.as_mut().unwrap();
    report.applied_through = 9;
    report.problems.clear();
    let mut tables = vec![TableDistribution {
        table: "public.tenants".into(),
        planned_as: PlannedAs::Reference,
        citus: CitusKind::Reference,
        colocation_id: 1,
        shards: 1,
        workers: workers.map(String::from).to_vec(),
        ..TableDistribution::default()
    }];
    for t in &mut report.tables {
        t.problems.clear();
        t.invalid_indexes.clear();
        t.unscoped_uniques.clear();
        t.cross_tenant = 0;
        t.null_tenant = 0;
        t.rows_per_tenant.retain(|(id, _)| id != "NULL");
        (t.rls_enabled, t.rls_forced, t.has_policy) = (t.scoped, t.scoped, t.scoped);
        tables.push(TableDistribution {
            table: t.table.clone(),
            planned_as: if t.scoped { PlannedAs::Distributed } else { PlannedAs::Unchanged },
            citus: if t.scoped { CitusKind::Distributed } else { CitusKind::NotCitus },
            column: t.scoped.then(|| "tenant_id".to_string()),
            colocation_id: if t.scoped { 3 } else { 0 },
            shards: if t.scoped { 32 } else { 0 },
            workers: if t.scoped { workers.map(String::from).to_vec() } else { Vec::new() },
        });
    }
    let worker = |node: &str, size_bytes: i64| WorkerShards {
        node: node.into(),
        should_have_shards: true,
        shards: 96,
        reference_shards: 1,
        size_bytes,
    };
    report.distribution = Some(DistributionReport {
        tenant_column: "tenant_id".into(),
        tables,
        workers: vec![worker(workers[0], 432_013_312), worker(workers[1], 101_711_872)],
        problems: Vec::new(),
    });
    report.ok = true;
    model
}

pub(super) fn overview() -> Model {
    let mut model = fixture::model();
    model.clock = at(NOW_MS);
    model.table_cursor = model.plan.tables.iter().position(|t| t.name.name == "issues").unwrap();
    model.plan.findings.push(Finding {
        severity: Severity::Warning,
        code: "trigger-fires".into(),
        object: "public.issues".into(),
        message: "trigger issues_touch fires on UPDATE; backfill batches run with session_replication_role = replica"
            .into(),
    });
    model.plan.findings.push(Finding {
        severity: Severity::Error,
        code: "view-bypasses-rls".into(),
        object: "public.open_issues".into(),
        message: "the view's owner bypasses row-level security: reading through it shows every tenant".into(),
    });
    model.plan_check = vec![(Severity::Info, "plan checksums match; the database has not drifted".into())];
    model.live = Some(LivePreflight {
        long_transactions: vec![Activity {
            pid: 4242,
            application: "psql".into(),
            state: "idle in transaction".into(),
            query: "UPDATE issues SET title = 'x' WHERE id = 7".into(),
            transaction_ms: 723_000,
        }],
        locks: vec![(
            Activity {
                pid: 4242,
                application: "psql".into(),
                state: "idle in transaction".into(),
                query: "UPDATE issues SET title = 'x' WHERE id = 7".into(),
                transaction_ms: 723_000,
            },
            "RowExclusiveLock".into(),
            "public.issues".into(),
        )],
    });
    model
}

pub(super) fn job(description: &str) -> Job {
    Job { kind: JobKind::Apply, description: description.into(), paused: false, cancelling: false }
}

/// 4.backfill:public.issues running: 412,000 of 1,000,000 rows at ~9,850 rows/s.
pub(super) fn running_backfill() -> Model {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Plan;
    for id in ["4.backfill:public.events_2024", "4.backfill:public.events_2025", "4.backfill:public.users"] {
        mark_done(&mut model, id, 1_900, 60_000);
    }
    mark_done(&mut model, "4.backfill:public.projects", 80, 800);
    let i = index(&model, "4.backfill:public.issues");
    let step = &mut model.steps[i];
    step.state = UiStepState::Running;
    step.started = Some(at(NOW_MS - 41_800));
    step.statement = Some(0);
    step.progress = Some(ProgressView {
        done: 412_000,
        total: Some(1_000_000),
        unit: ProgressUnit::Rows,
        phase: Some("backfill".into()),
        rate_per_s: 9_850.0,
        eta_s: Some(60),
        rate_samples: VecDeque::from(vec![
            8_100, 9_400, 9_900, 10_200, 9_700, 9_950, 10_100, 9_600, 9_800, 10_050, 9_850, 9_900,
        ]),
        last_sample: Some((at(NOW_MS - 500), 407_000)),
    });
    model.job = Some(job("apply through stage 4 backfill (5 steps)"));
    select(&mut model, "4.backfill:public.issues");
    model
}

/// 3.add-column:public.issues waiting behind pid 4242 for its ACCESS EXCLUSIVE lock.
pub(super) fn lock_wait() -> Model {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Plan;
    let i = index(&model, "3.add-column:public.issues");
    let step = &mut model.steps[i];
    step.state = UiStepState::Running;
    step.duration_ms = None;
    step.checks.clear();
    step.started = Some(at(NOW_MS - 14_300));
    step.statement = Some(0);
    step.lock_wait = Some(LockWaitView {
        blockers: vec![Blocker {
            pid: 4242,
            application: "psql".into(),
            state: "idle in transaction".into(),
            query: "UPDATE issues\n   SET title = 'Fix the login page' WHERE id = 7".into(),
            transaction_ms: 723_000,
        }],
        waited_ms: 1_800,
        retries: 3,
        max_attempts: 30,
    });
    model.job = Some(job("apply through step 3.add-column:public.issues (1 steps)"));
    select(&mut model, "3.add-column:public.issues");
    model
}

/// 5.not-null:public.issues failed on its validation.
pub(super) fn failed_step() -> Model {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Plan;
    for id in [
        "4.backfill:public.events_2024",
        "4.backfill:public.events_2025",
        "4.backfill:public.users",
        "4.backfill:public.projects",
        "4.backfill:public.issues",
        "5.not-null:public.events",
        "5.not-null:public.users",
        "5.not-null:public.projects",
    ] {
        mark_done(&mut model, id, 650, 0);
    }
    let i = index(&model, "5.not-null:public.issues");
    let step = &mut model.steps[i];
    step.state = UiStepState::Failed;
    step.duration_ms = Some(3_120);
    step.error = Some(
        "check constraint \"issues_tenant_id_not_null\" of relation \"issues\" is violated by some row"
            .into(),
    );
    step.checks = vec![CheckView {
        name: model.plan.steps[i].checks[0].name.clone(),
        value: 12,
        expected: 0,
        ok: false,
    }];
    model.message =
        Some((Severity::Error, "step 5.not-null:public.issues failed: see the Plan screen".into()));
    select(&mut model, "5.not-null:public.issues");
    model
}

pub(super) fn plan_selected() -> Model {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Plan;
    select(&mut model, "3.add-column:public.users");
    model
}

pub(super) fn with_overlay(mut model: Model, overlay: Overlay) -> Model {
    model.overlay = Some(overlay);
    model
}

pub(super) fn confirm_rollback() -> Model {
    let mut model = plan_selected();
    let id = "3.add-column:public.issues".to_string();
    let guard = &model.plan.step(&id).unwrap().guards()[0];
    let guards = vec![GuardCount {
        step_id: id.clone(),
        name: guard.name.clone(),
        message: guard.message.clone(),
        count: 1_250,
        forceable: true,
        deferred: false,
    }];
    select(&mut model, &id);
    let overlay = Overlay::ConfirmRollback {
        target: crate::engine::RollbackTarget::LastStep,
        scope: id.clone(),
        step_ids: vec![id],
        guards: Some(Ok(guards)),
        force: false,
    };
    with_overlay(model, overlay)
}

pub(super) fn confirm_apply() -> Model {
    let mut model = plan_selected();
    select(&mut model, "5.not-null:public.projects");
    let last = index(&model, "5.not-null:public.projects");
    let step_ids: Vec<String> =
        model.steps[..=last].iter().filter(|s| s.state != UiStepState::Done).map(|s| s.id.clone()).collect();
    with_overlay(
        model,
        Overlay::ConfirmApply {
            step_ids,
            scope: "through step 5.not-null:public.projects".into(),
            stop_after: StopAfter::Step("5.not-null:public.projects".into()),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Every screen
// ---------------------------------------------------------------------------------------------
