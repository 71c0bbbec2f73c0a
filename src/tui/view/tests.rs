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

// The models drawn, and the checks that take no snapshot.
mod layout;
mod models;
use models::*;

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
        for stage in Stage::ALL.into_iter().filter(|s| *s != Stage::Distribute) {
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

    // A count that failed after a good one: the numbers stay, marked stale, and never "no problems".
    let mut failed = model.clone();
    failed.counts.as_mut().unwrap().problems.clear();
    failed.counts_error = Some("permission denied for table users".into());
    for size in [SMALL, LARGE] {
        let text = screen(&failed, size);
        assert!(text.contains("STALE"), "{text}");
        assert!(text.contains("the last count failed: permission denied for table"), "{text}");
        assert!(!text.contains("no problems"), "{text}");
        assert!(text.contains("problems unknown"), "{text}");
    }

    model.counts = None;
    model.counts_at = None;
    assert!(screen(&model, SMALL).contains("counting…"));
    model.counts_error = Some("connection refused".into());
    assert!(screen(&model, SMALL).contains("connection refused"));
}

#[test]
fn counts_screen_with_the_shards_per_worker() {
    let (small, large) = snapshot_both("counts_distributed", &distributed());
    for text in [&small, &large] {
        assert!(text.contains("Shards"), "{text}");
        assert!(text.contains("distributed by tenant_id"), "{text}");
        let line = text.lines().find(|l| l.contains("10.0.0.11:5432")).expect("a line per worker");
        assert!(
            line.contains("96 shards") && line.contains("1 reference") && line.contains("412 MiB"),
            "{line}"
        );
        assert!(text.contains("no problems for what is applied (through stage 9)"), "{text}");
    }
    assert!(
        large.contains(
            "6 tables distributed by tenant_id in 1 colocation group, 1 reference table on 2 workers"
        )
    );
    // Each bar is the worker's size against the largest's.
    let bar = |node: &str| large.lines().find(|l| l.contains(node)).unwrap().matches('█').count();
    assert!(bar("10.0.0.11") > 3 * bar("10.0.0.12"), "{large}");
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
fn confirm_apply_overlay() {
    let model = confirm_apply();
    let (small, large) = snapshot_both("confirm_apply", &model);
    for text in [&small, &large] {
        assert!(text.contains("Apply 8 steps"), "{text}");
        assert!(text.contains("4.backfill:public.events_2024"));
        assert!(text.contains("Strongest lock: ACCESS EXCLUSIVE"), "{text}");
        assert!(text.contains("y to apply, n to cancel"));
        assert!(text.contains("./tenantize-app-"), "a plan in no file is written first: {text}");
    }
    // A plan in a file is not written again.
    let mut saved = model.clone();
    saved.plan_path = Some("plans/app.plan.toml".into());
    assert!(!screen(&saved, LARGE).contains("in no file"));
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
fn rolling_back_everything_lists_the_steps_in_order_and_each_guard_with_its_step() {
    let mut model = confirm_rollback();
    let applied: Vec<String> =
        model.steps.iter().filter(|s| s.state.has_effects()).rev().map(|s| s.id.clone()).collect();
    assert!(applied.len() > 2, "{applied:?}");
    let Some(Overlay::ConfirmRollback { guards: Some(Ok(list)), .. }) = model.overlay.clone() else {
        panic!()
    };
    let mut hidden = list[0].clone();
    hidden.deferred = true;
    hidden.count = 0;
    model.overlay = Some(Overlay::ConfirmRollback {
        target: crate::engine::RollbackTarget::All,
        scope: "everything".into(),
        step_ids: applied.clone(),
        guards: Some(Ok(vec![hidden])),
        force: false,
    });
    for size in [SMALL, LARGE] {
        let text = screen(&model, size);
        assert!(text.contains("Roll back everything"), "{text}");
        assert!(text.contains(&format!("Undoes {} steps in this order", applied.len())), "{text}");
        let first = text.find(applied[0].as_str()).expect("the last applied step is listed");
        let last = text.find("1.tenant-table").expect("the first step is listed");
        assert!(first < last, "last applied first: {text}");
        assert!(text.contains("counted once stage 8 is undone"), "{text}");
        assert!(text.contains("(3.add-column:public.issues)"), "the guard names its step: {text}");
        assert!(text.contains("y to roll back"), "a deferred count does not block: {text}");
    }
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
            deferred: false,
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
    let mut model = with_overlay(running_backfill(), Overlay::ConfirmQuit);
    // The run wrote the plan to a file when it started.
    model.plan_path = Some("plans/app.plan.toml".into());
    let (small, large) = snapshot_both("confirm_quit", &model);
    for text in [&small, &large] {
        assert!(text.contains("cancels it safely"), "{text}");
        assert!(text.contains("journaled and resumable"));
        assert!(!text.contains("never written"), "{text}");
    }
}

#[test]
fn confirm_quit_overlay_when_the_applied_plan_is_in_no_file() {
    // Resumed from the journal's copy, stages 1-3 applied, nothing running.
    let model = with_overlay(applied_through_stage_3(), Overlay::ConfirmQuit);
    let (small, large) = snapshot_both("confirm_quit_unsaved", &model);
    for text in [&small, &large] {
        assert!(text.contains("The plan was never written to a file"), "{text}");
        assert!(text.contains("kept in the journal"), "{text}");
        assert!(text.contains("y to quit, n to stay"), "{text}");
        assert!(!text.contains("cancels it safely"), "nothing runs: {text}");
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
