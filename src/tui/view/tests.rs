//! Render tests: fixed models drawn on a `TestBackend` at 80x24 and 120x40, snapshotted as
//! text (src/tui/view/snapshots), plus direct checks of what must be on screen.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::fixture::{self, at};
use super::text::width;
use crate::checks::{Activity, LivePreflight, TableCounts, VerifyReport};
use crate::engine::{GuardCount, StopAfter};
use crate::event::{Blocker, ProgressUnit};
use crate::plan::{Finding, Severity, Stage};
use crate::tui::state::*;

const SMALL: (u16, u16) = (80, 24);
const LARGE: (u16, u16) = (120, 40);

/// Five minutes into the session.
const NOW_MS: u64 = 300_000;

fn render(model: &Model, (w, h): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    terminal.draw(|frame| super::draw(frame, model)).expect("drawing never fails");
    terminal
}

/// The screen as text, one line per row (trailing spaces dropped).
fn screen(model: &Model, size: (u16, u16)) -> String {
    let terminal = render(model, size);
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..buffer.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            line.push_str(symbol);
            skip = width(symbol).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Snapshot the model at both sizes; returns both texts for direct checks.
fn snapshot_both(name: &str, model: &Model) -> (String, String) {
    let small = screen(model, SMALL);
    let large = screen(model, LARGE);
    insta::assert_snapshot!(format!("{name}_80x24"), small);
    insta::assert_snapshot!(format!("{name}_120x40"), large);
    (small, large)
}

fn index(model: &Model, id: &str) -> usize {
    model.step_index(id).unwrap_or_else(|| panic!("no step {id}"))
}

fn mark_done(model: &mut Model, id: &str, duration_ms: u64, rows: u64) {
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
fn select(model: &mut Model, id: &str) {
    let i = index(model, id);
    model.expanded.insert(model.steps[i].stage);
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(i)).expect("the step is in the tree");
}

fn log_some(model: &mut Model) {
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

fn counts(model: &Model) -> VerifyReport {
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
        problems: vec!["public.projects: 3 rows reference a parent of another tenant".into()],
        ok: false,
    }
}

/// Stages 1-3 applied, two minutes in, counts 1.2 s old.
fn applied_through_stage_3() -> Model {
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

fn overview() -> Model {
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

fn job(description: &str) -> Job {
    Job { kind: JobKind::Apply, description: description.into(), paused: false, cancelling: false }
}

/// 4.backfill:public.issues running: 412,000 of 1,000,000 rows at ~9,850 rows/s.
fn running_backfill() -> Model {
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
fn lock_wait() -> Model {
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
fn failed_step() -> Model {
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

fn plan_selected() -> Model {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Plan;
    select(&mut model, "3.add-column:public.users");
    model
}

fn with_overlay(mut model: Model, overlay: Overlay) -> Model {
    model.overlay = Some(overlay);
    model
}

fn confirm_rollback() -> Model {
    let mut model = plan_selected();
    let id = "3.add-column:public.issues".to_string();
    let guard = &model.plan.step(&id).unwrap().rollback_guards[0];
    let guards = vec![GuardCount {
        step_id: id.clone(),
        name: guard.name.clone(),
        message: guard.message.clone(),
        count: 1_250,
        forceable: true,
    }];
    select(&mut model, &id);
    with_overlay(model, Overlay::ConfirmRollback { step_id: id, guards: Some(Ok(guards)), force: false })
}

fn confirm_apply() -> Model {
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

#[test]
fn overview_screen() {
    let (small, large) = snapshot_both("overview", &overview());
    for text in [&small, &large] {
        assert!(text.contains("PostgreSQL 15.18"), "{text}");
        assert!(text.contains("app_owner"));
        assert!(text.contains("public.countries") && text.contains("shared"));
        assert!(text.contains("pid 4242"), "live findings show the session: {text}");
        assert!(text.contains("1 error"));
    }
    // Partitions are indented under their parent, named without the schema they share.
    let parent = small.lines().find(|l| l.contains("public.events ")).unwrap();
    let child = small.lines().find(|l| l.contains("events_2024")).unwrap();
    assert!(!child.contains("public.events_2024"), "{small}");
    assert!(child.find("events_2024").unwrap() > parent.find("public.").unwrap(), "{small}");
    // The selected table is marked.
    assert!(small.lines().any(|l| l.contains("› public.issues")), "{small}");
}

#[test]
fn plan_screen_with_a_stage_open_and_a_step_selected() {
    let (small, large) = snapshot_both("plan", &plan_selected());
    for text in [&small, &large] {
        assert!(text.contains("3.add-column:public.users"), "{text}");
        assert!(text.contains("ACCESS EXCLUSIVE"));
        assert!(text.contains("Rollback"));
        assert!(text.contains("✓ public.users has tenant_id"), "{text}");
        for stage in Stage::ALL {
            assert!(
                text.contains(&format!(" {} {}", stage.number(), stage.name())),
                "{stage} missing: {text}"
            );
        }
    }
    assert!(large.contains("DROP COLUMN IF EXISTS tenant_id"), "{large}");
}

#[test]
fn counts_screen() {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Counts;
    let (small, large) = snapshot_both("counts", &model);
    for text in [&small, &large] {
        assert!(text.contains("1.2 s ago"), "{text}");
        assert!(text.contains("588,000"), "NULL tenants of issues: {text}");
        assert!(text.contains("3 rows reference a parent of another tenant"));
    }
    assert!(large.contains("users_tenant_id_id_key") || large.contains("bad idx"));

    model.counts = None;
    model.counts_at = None;
    assert!(screen(&model, SMALL).contains("counting…"));
    model.counts_error = Some("connection refused".into());
    assert!(screen(&model, SMALL).contains("connection refused"));
}

#[test]
fn log_screen() {
    let mut model = applied_through_stage_3();
    model.screen = Screen::Log;
    let (small, _) = snapshot_both("log", &model);
    let starts: Vec<&str> = small.lines().filter(|l| l.starts_with('+')).collect();
    let last = starts.last().unwrap();
    assert!(last.contains("+01:15.5") && last.contains("FAILED"), "newest at the bottom: {small}");
    assert!(small.contains("+00:01.2"));

    model.log_scroll = 2;
    let scrolled = screen(&model, SMALL);
    assert!(!scrolled.contains("FAILED 5.not-null"), "{scrolled}");
    assert!(scrolled.contains("scrolled up 2"));
}

#[test]
fn help_overlay_lists_the_keymap() {
    let model = with_overlay(plan_selected(), Overlay::Help);
    let (small, large) = snapshot_both("help", &model);
    for text in [&small, &large] {
        assert!(text.contains("roll back the last applied step"), "{text}");
        assert!(text.contains("In a confirmation"));
        assert!(!text.contains("more lines"), "every key fits: {text}");
        assert!(!text.contains("replay: step back"), "replay keys only in a replay: {text}");
    }
    assert!(large.contains("Esc/? close"), "the bar shows the help's own keys: {large}");
    assert!(small.contains("Esc or ? closes"), "a full-screen help says how to close it: {small}");
    let mut replay = model.clone();
    replay.read_only = true;
    assert!(screen(&replay, LARGE).contains("replay: step back"));
}

#[test]
fn the_strongest_lock_named_is_on_an_application_table_not_the_new_tenant_table() {
    let model = plan_selected();
    let step_ids: Vec<String> = model.steps.iter().map(|s| s.id.clone()).collect();
    let text = screen(
        &with_overlay(
            model,
            Overlay::ConfirmApply { step_ids, scope: "everything".into(), stop_after: StopAfter::All },
        ),
        LARGE,
    );
    let line = text.lines().find(|l| l.contains("Strongest lock:")).expect("the lock line");
    assert!(line.contains("ACCESS EXCLUSIVE on public."), "{line}");
    assert!(!line.contains("tenants"), "the new tenant table blocks no one: {line}");
}

#[test]
fn confirm_apply_overlay() {
    let model = confirm_apply();
    let (small, large) = snapshot_both("confirm_apply", &model);
    for text in [&small, &large] {
        assert!(text.contains("Apply 8 steps"), "{text}");
        assert!(text.contains("4.backfill:public.events_2024"));
        assert!(text.contains("Strongest lock: ACCESS EXCLUSIVE"), "{text}");
        assert!(text.contains("y to apply, n to cancel"));
    }
    // A long list is cut, saying how many are left.
    let mut model = model;
    if let Some(Overlay::ConfirmApply { step_ids, .. }) = &mut model.overlay {
        let all: Vec<String> = model.steps.iter().map(|s| s.id.clone()).collect();
        *step_ids = all;
    }
    let small = screen(&model, SMALL);
    assert!(small.contains("more") && small.contains("… and"), "{small}");
}

#[test]
fn confirm_rollback_overlay_with_a_forceable_loss() {
    let model = confirm_rollback();
    let (small, large) = snapshot_both("confirm_rollback", &model);
    for text in [&small, &large] {
        assert!(text.contains("Roll back 3.add-column:public.issues"), "{text}");
        assert!(text.contains("DROP COLUMN IF EXISTS tenant_id"), "{text}");
        assert!(text.contains("1,250"), "the guard's count: {text}");
        assert!(text.contains("(a loss:"), "the count is a loss force may accept: {text}");
        assert!(text.contains("F toggles --force"));
        assert!(text.contains("F force"), "the bar offers force: {text}");
    }

    // Force on, and a guard that cannot be forced.
    let mut model = model;
    if let Some(Overlay::ConfirmRollback { guards: Some(Ok(list)), force, .. }) = &mut model.overlay {
        *force = true;
        list.push(GuardCount {
            step_id: "3.add-column:public.issues".into(),
            name: "values repeating across tenants".into(),
            message: "values of users_email_key now repeat across tenants".into(),
            count: 2,
            forceable: false,
        });
    }
    let small = screen(&model, SMALL);
    insta::assert_snapshot!("confirm_rollback_blocked_80x24", small);
    assert!(small.contains("cannot be forced"), "{small}");
    assert!(small.contains("Refused"), "{small}");
    assert!(small.contains("Force: on"));

    // Still counting, and counting failed.
    if let Some(Overlay::ConfirmRollback { guards, .. }) = &mut model.overlay {
        *guards = None;
    }
    assert!(screen(&model, SMALL).contains("counting what the rollback would lose…"));
    if let Some(Overlay::ConfirmRollback { guards, .. }) = &mut model.overlay {
        *guards = Some(Err("permission denied for table issues".into()));
    }
    assert!(screen(&model, SMALL).contains("permission denied for table issues"));
}

#[test]
fn confirm_quit_overlay() {
    let model = with_overlay(running_backfill(), Overlay::ConfirmQuit);
    let (small, large) = snapshot_both("confirm_quit", &model);
    for text in [&small, &large] {
        assert!(text.contains("cancels it safely"), "{text}");
        assert!(text.contains("journaled and resumable"));
    }
}

#[test]
fn write_plan_prompt() {
    let model = with_overlay(plan_selected(), Overlay::WritePlan { path: "plans/app.plan.toml".into() });
    let (small, _) = snapshot_both("write_plan", &model);
    assert!(small.contains("> plans/app.plan.toml█"), "{small}");
    assert!(small.contains("Enter write"), "the bar shows the prompt's keys: {small}");
    let mut terminal = render(&model, SMALL);
    let cursor = terminal.get_cursor_position().unwrap();
    let row = small.lines().nth(cursor.y as usize).unwrap();
    assert!(row.contains("plans/app.plan.toml"), "the terminal cursor is on the input line: {row}");

    // A long path keeps its end in view.
    let long = format!("/var/lib/{}/app.plan.toml", "very-long-directory-name/".repeat(6));
    let model = with_overlay(plan_selected(), Overlay::WritePlan { path: long });
    let small = screen(&model, SMALL);
    assert!(small.contains("app.plan.toml█"), "{small}");
}

// ---------------------------------------------------------------------------------------------
// Specific states
// ---------------------------------------------------------------------------------------------

#[test]
fn a_failed_step_shows_its_error() {
    let model = failed_step();
    let (small, large) = snapshot_both("failed_step", &model);
    for text in [&small, &large] {
        assert!(text.contains("✗ failed"), "{text}");
        assert!(text.contains("issues_tenant_id_not_null"), "the error is shown: {text}");
        assert!(text.contains("expected 0"), "the failed check with its value: {text}");
    }
    // The failure is red.
    let terminal = render(&model, SMALL);
    let buffer = terminal.backend().buffer();
    let red = buffer.content().iter().any(|c| c.symbol() == "✗" && c.fg == Color::Red);
    assert!(red, "a failed step is drawn in red");
}

#[test]
fn a_lock_wait_shows_who_blocks_and_the_retries() {
    let model = lock_wait();
    let (small, large) = snapshot_both("lock_wait", &model);
    for text in [&small, &large] {
        assert!(text.contains("pid 4242"), "the blocker's pid: {text}");
        assert!(text.contains("psql"), "its application: {text}");
        assert!(text.contains("idle in transaction"));
        assert!(text.contains("UPDATE issues SET title"), "its query, on one line: {text}");
        assert!(text.contains("transaction open 12m03s"), "for how long: {text}");
        assert!(text.contains("retry 3/29"), "retries so far of the retries allowed: {text}");
        assert!(text.contains("ACCESS EXCLUSIVE on public.issues"), "what it waits for: {text}");
    }
}

#[test]
fn a_running_backfill_shows_its_gauge_rate_and_eta() {
    let model = running_backfill();
    let (small, large) = snapshot_both("running_backfill", &model);
    for text in [&small, &large] {
        assert!(text.contains("412,000/1,000,000 rows · 41%"), "{text}");
        assert!(text.contains("9,850 rows/s"), "{text}");
        assert!(text.contains("ETA 1m00s"));
        assert!(text.contains("41.8 s"), "elapsed from the model's clock: {text}");
        assert!(text.contains("▶ apply through stage 4 backfill"), "the header says what runs: {text}");
    }
    assert!(small.contains('█'), "a gauge: {small}");
    assert!(large.contains("counts 1.2 s ago"), "live counts with their age: {large}");

    let mut paused = model.clone();
    paused.job.as_mut().unwrap().paused = true;
    let text = screen(&paused, SMALL);
    assert!(text.contains("paused"), "{text}");
}

#[test]
fn no_color_uses_no_colors_at_all() {
    for mut model in [running_backfill(), failed_step(), overview(), lock_wait(), confirm_rollback()] {
        model.theme = Theme { color: false };
        for screen_kind in Screen::ALL {
            model.screen = screen_kind;
            for size in [SMALL, LARGE] {
                let terminal = render(&model, size);
                for cell in terminal.backend().buffer().content() {
                    assert_eq!(
                        (cell.fg, cell.bg),
                        (Color::Reset, Color::Reset),
                        "a coloured cell {:?} on {screen_kind:?}",
                        cell.symbol()
                    );
                }
            }
        }
    }
    let mut model = running_backfill();
    model.theme = Theme { color: false };
    insta::assert_snapshot!("no_color_80x24", screen(&model, SMALL));
}

#[test]
fn any_size_draws_without_panicking() {
    let mut models = vec![
        overview(),
        plan_selected(),
        running_backfill(),
        lock_wait(),
        failed_step(),
        confirm_apply(),
        confirm_rollback(),
        with_overlay(running_backfill(), Overlay::ConfirmQuit),
        with_overlay(plan_selected(), Overlay::Help),
        with_overlay(plan_selected(), Overlay::WritePlan { path: "x".repeat(300) }),
        fixture::model(),
    ];
    let mut empty = fixture::model();
    empty.plan.steps.clear();
    empty.steps.clear();
    empty.plan.tables.clear();
    models.push(empty);
    for model in &mut models {
        for screen_kind in Screen::ALL {
            model.screen = screen_kind;
            for size in [(1, 1), (2, 2), (20, 5), (30, 8), (45, 12), (60, 15), (80, 24), (100, 30), (200, 60)]
            {
                let text = screen(model, size);
                assert_eq!(text.lines().count(), size.1 as usize);
            }
        }
    }
    // 20x5 still says where we are.
    let text = screen(&plan_selected(), (20, 5));
    assert!(text.contains("tenantize") || text.contains("app"), "{text}");
}

#[test]
fn drawing_is_deterministic_and_reads_the_clock_from_the_model() {
    let model = running_backfill();
    assert_eq!(screen(&model, LARGE), screen(&model, LARGE));
    let mut later = model.clone();
    later.clock += Duration::from_secs(10);
    let text = screen(&later, LARGE);
    assert!(text.contains("51.8 s"), "{text}");
    assert!(text.contains("counts 11.2 s ago"), "{text}");
}

#[test]
fn the_tree_keeps_the_cursor_visible_in_a_long_list() {
    let mut model = plan_selected();
    for stage in Stage::ALL {
        model.expanded.insert(stage);
    }
    let last = model.steps.len() - 1;
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(last)).unwrap();
    let text = screen(&model, SMALL);
    assert!(text.contains("▸") || text.contains("▾"));
    assert!(text.contains("issues"), "{text}");
    assert!(text.contains(&model.steps[last].id), "the selected (last) step is shown: {text}");
    assert!(text.contains('↑'), "a marker says rows are hidden above: {text}");
}

#[test]
fn the_header_says_who_and_what() {
    let mut model = running_backfill();
    model.server.superuser = true;
    model.server.bypass_rls = true;
    model.job.as_mut().unwrap().cancelling = true;
    let text = screen(&model, LARGE);
    let header = text.lines().next().unwrap();
    assert!(header.contains("app · PostgreSQL 15.18 · app_owner (superuser, BYPASSRLS)"), "{header}");
    assert!(header.contains("cancelling…"), "{header}");
    let small = screen(&model, SMALL);
    assert!(small.lines().next().unwrap().contains("cancelling…"), "what runs wins the space: {small}");
}
