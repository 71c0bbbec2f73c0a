//! Pure tests of `update`: actions and engine events in, model changes and commands out. No
//! terminal, no database, no clock (every `Instant` is a fixed offset from one epoch).

use super::*;
use crate::checks::TableCounts;
use crate::event::{Blocker, CheckPhase, Direction, ProgressUnit};
use crate::plan::{LockMode, Stage};
use crate::tui::view::fixture::{self, at};

fn act(model: &mut Model, action: Action) -> Vec<Command> {
    update(model, Msg::Action(action))
}

fn event(model: &mut Model, event: Event, at_ms: u64) {
    let commands = update(model, Msg::Engine(event, at(at_ms)));
    assert!(commands.is_empty(), "engine events never ask for work");
}

fn index(model: &Model, id: &str) -> usize {
    model.step_index(id).unwrap_or_else(|| panic!("no step {id}"))
}

fn done(model: &mut Model, ids: &[&str]) {
    for id in ids {
        let i = index(model, id);
        model.steps[i].state = UiStepState::Done;
    }
}

/// Cursor on a step (its stage open), on the Plan screen.
fn select(model: &mut Model, id: &str) {
    let i = index(model, id);
    model.screen = Screen::Plan;
    model.expanded.insert(model.steps[i].stage);
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(i)).unwrap();
}

fn ids_in(model: &Model, stage: Stage) -> Vec<String> {
    model.steps.iter().filter(|s| s.stage == stage).map(|s| s.id.clone()).collect()
}

fn guard(step_id: &str, count: i64, forceable: bool) -> GuardCount {
    GuardCount {
        step_id: step_id.into(),
        name: format!("guard of {step_id}"),
        message: "rows would lose their tenant".into(),
        count,
        forceable,
    }
}

fn blocker() -> Blocker {
    Blocker {
        pid: 4242,
        application: "psql".into(),
        state: "idle in transaction".into(),
        query: "UPDATE issues SET title = 'x'".into(),
        transaction_ms: 60_000,
    }
}

fn message(model: &Model) -> String {
    model.message.as_ref().map(|(_, m)| m.clone()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Moving around
// ---------------------------------------------------------------------------------------------

#[test]
fn the_cursor_moves_within_the_tree_and_stages_open_and_close() {
    let mut model = fixture::model();
    model.screen = Screen::Plan;
    assert_eq!(model.rows().len(), 8, "every stage closed");
    for _ in 0..3 {
        act(&mut model, Action::Down);
    }
    assert_eq!(model.cursor, 3);
    act(&mut model, Action::Up);
    assert_eq!(model.cursor, 2);
    assert_eq!(model.selected_row(), Row::Stage(Stage::AddColumn));
    act(&mut model, Action::PageDown);
    assert_eq!(model.cursor, 7, "clamped to the last row");
    act(&mut model, Action::PageUp);
    act(&mut model, Action::Up);
    assert_eq!(model.cursor, 0, "clamped to the first row");

    // Enter opens stage 3 and keeps the cursor on it.
    model.cursor = 2;
    act(&mut model, Action::Open);
    assert!(model.expanded.contains(&Stage::AddColumn));
    assert_eq!(model.rows().len(), 8 + ids_in(&model, Stage::AddColumn).len());
    assert_eq!(model.selected_row(), Row::Stage(Stage::AddColumn));
    // A closed-or-open stage row selects its first step not done.
    let first = index(&model, "3.add-column:public.events");
    assert_eq!(model.selected_step(), Some(first));
    act(&mut model, Action::Down);
    assert_eq!(model.selected_row(), Row::Step(first));
    act(&mut model, Action::Down);
    assert_eq!(model.selected_step(), Some(first + 1));
    // Enter on a step closes its stage, the cursor back on the stage row.
    act(&mut model, Action::Open);
    assert!(!model.expanded.contains(&Stage::AddColumn));
    assert_eq!(model.selected_row(), Row::Stage(Stage::AddColumn));
}

#[test]
fn tab_cycles_the_screens_and_each_screen_moves_its_own_cursor() {
    let mut model = fixture::model();
    assert_eq!(model.screen, Screen::Overview);
    let mut seen = vec![model.screen];
    for _ in 0..4 {
        act(&mut model, Action::NextScreen);
        seen.push(model.screen);
    }
    assert_eq!(seen, [Screen::Overview, Screen::Plan, Screen::Counts, Screen::Log, Screen::Overview]);
    act(&mut model, Action::PrevScreen);
    assert_eq!(model.screen, Screen::Log);

    model.screen = Screen::Overview;
    act(&mut model, Action::Down);
    act(&mut model, Action::Down);
    assert_eq!(model.table_cursor, 2);
    assert_eq!(model.cursor, 0, "the plan cursor did not move");
    act(&mut model, Action::PageDown);
    assert_eq!(model.table_cursor, model.plan.tables.len() - 1);
    act(&mut model, Action::Open);
    assert_eq!(model.screen, Screen::Plan, "Enter on the overview goes to the plan");

    // The log scrolls back in time with Up, down to the newest with Down.
    model.screen = Screen::Log;
    for n in 0..5 {
        model.log(LogKind::Info, format!("line {n}"));
    }
    act(&mut model, Action::Up);
    act(&mut model, Action::Up);
    assert_eq!(model.log_scroll, 2);
    act(&mut model, Action::Down);
    assert_eq!(model.log_scroll, 1);
    act(&mut model, Action::PageUp);
    assert_eq!(model.log_scroll, 4, "at most to the oldest line");
    act(&mut model, Action::PageDown);
    assert_eq!(model.log_scroll, 0);
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

#[test]
fn a_confirms_exactly_the_pending_steps_up_to_the_selection() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table", "2.default-tenant", "3.add-column:public.users"]);
    select(&mut model, "3.add-column:public.projects");
    assert!(act(&mut model, Action::Apply).is_empty(), "nothing runs before the confirmation");
    let Some(Overlay::ConfirmApply { step_ids, scope, stop_after }) = model.overlay.clone() else {
        panic!("expected the apply confirmation, got {:?}", model.overlay)
    };
    assert_eq!(step_ids, ["3.add-column:public.events", "3.add-column:public.projects"]);
    assert_eq!(scope, "through step 3.add-column:public.projects");
    assert_eq!(stop_after, StopAfter::Step("3.add-column:public.projects".into()));

    // Keys of the screen do nothing under the dialog.
    assert!(act(&mut model, Action::Rollback).is_empty());
    assert!(matches!(model.overlay, Some(Overlay::ConfirmApply { .. })));

    let commands = act(&mut model, Action::Confirm);
    assert_eq!(commands, [Command::Apply(StopAfter::Step("3.add-column:public.projects".into()))]);
    assert_eq!(model.overlay, None);
    assert_eq!(model.screen, Screen::Plan);
    let job = model.job.clone().expect("a job runs");
    assert_eq!(job.kind, JobKind::Apply);
    assert!(job.description.contains("3.add-column:public.projects") && job.description.contains("2 steps"));

    // While it runs, nothing else is applied or rolled back.
    assert!(act(&mut model, Action::Apply).is_empty());
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("is running"), "{}", message(&model));
    assert!(act(&mut model, Action::Rollback).is_empty());
    assert_eq!(model.overlay, None);
}

#[test]
fn shift_a_applies_the_rest_of_the_selected_stage() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table"]);
    select(&mut model, "3.add-column:public.users");
    act(&mut model, Action::ApplyStage);
    let Some(Overlay::ConfirmApply { step_ids, stop_after, .. }) = model.overlay.clone() else {
        panic!("expected the apply confirmation")
    };
    let mut expected = vec!["2.default-tenant".to_string()];
    expected.extend(ids_in(&model, Stage::AddColumn));
    assert_eq!(step_ids, expected, "pending steps of earlier stages, then the whole stage");
    assert_eq!(stop_after, StopAfter::Stage(Stage::AddColumn));

    // n dismisses; nothing runs.
    assert!(act(&mut model, Action::Dismiss).is_empty());
    assert_eq!(model.overlay, None);
    assert!(model.job.is_none());

    act(&mut model, Action::ApplyStage);
    assert_eq!(act(&mut model, Action::Confirm), [Command::Apply(StopAfter::Stage(Stage::AddColumn))]);
}

#[test]
fn applying_what_is_done_says_so_and_a_replay_applies_nothing() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table"]);
    select(&mut model, "1.tenant-table");
    act(&mut model, Action::Apply);
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("already done"));

    model.read_only = true;
    select(&mut model, "2.default-tenant");
    act(&mut model, Action::Apply);
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("read-only"));
}

// ---------------------------------------------------------------------------------------------
// Rolling back
// ---------------------------------------------------------------------------------------------

#[test]
fn r_with_nothing_applied_only_says_so() {
    let mut model = fixture::model();
    assert!(act(&mut model, Action::Rollback).is_empty());
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("nothing has been applied"));
}

#[test]
fn r_counts_first_and_a_forceable_loss_needs_force() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table", "2.default-tenant", "3.add-column:public.events"]);
    let id = "3.add-column:public.events";
    assert_eq!(act(&mut model, Action::Rollback), [Command::CountGuards(vec![id.to_string()])]);
    assert_eq!(
        model.overlay,
        Some(Overlay::ConfirmRollback { step_id: id.into(), guards: None, force: false }),
        "the last applied step, its guards still counting"
    );

    // Confirming before the counts arrive does nothing.
    assert!(act(&mut model, Action::Confirm).is_empty());
    assert!(matches!(model.overlay, Some(Overlay::ConfirmRollback { .. })));
    assert!(model.job.is_none());
    assert!(message(&model).contains("counting"));

    // A loss the user may accept: refused until F.
    update(&mut model, Msg::Guards(Ok(vec![guard(id, 0, false), guard(id, 12, true)])));
    assert!(act(&mut model, Action::Confirm).is_empty());
    assert!(model.job.is_none());
    assert!(message(&model).contains("press F"), "{}", message(&model));
    act(&mut model, Action::Force);
    assert!(matches!(model.overlay, Some(Overlay::ConfirmRollback { force: true, .. })));
    act(&mut model, Action::Force);
    assert!(matches!(model.overlay, Some(Overlay::ConfirmRollback { force: false, .. })), "F toggles");
    act(&mut model, Action::Force);
    let commands = act(&mut model, Action::Confirm);
    assert_eq!(commands, [Command::Rollback { target: RollbackTarget::LastStep, force: true }]);
    assert_eq!(model.overlay, None);
    assert_eq!(model.job.as_ref().map(|j| j.kind), Some(JobKind::Rollback));
}

#[test]
fn a_count_that_cannot_be_forced_always_refuses() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table"]);
    act(&mut model, Action::Rollback);
    update(&mut model, Msg::Guards(Ok(vec![guard("1.tenant-table", 3, false)])));
    assert!(act(&mut model, Action::Confirm).is_empty());
    act(&mut model, Action::Force);
    assert!(act(&mut model, Action::Confirm).is_empty(), "force does not override it");
    assert!(model.job.is_none());
    assert_eq!(model.message.as_ref().map(|(s, _)| *s), Some(Severity::Error));

    // Counting failed: refused too.
    update(&mut model, Msg::Guards(Err("permission denied".into())));
    assert!(act(&mut model, Action::Confirm).is_empty());
    assert!(message(&model).contains("permission denied"));

    // All zero: the rollback runs, without force.
    act(&mut model, Action::Force);
    update(&mut model, Msg::Guards(Ok(vec![guard("1.tenant-table", 0, false)])));
    assert_eq!(
        act(&mut model, Action::Confirm),
        [Command::Rollback { target: RollbackTarget::LastStep, force: false }]
    );
}

#[test]
fn counts_for_another_step_do_not_land_in_the_dialog() {
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table", "2.default-tenant"]);
    act(&mut model, Action::Rollback);
    update(&mut model, Msg::Guards(Ok(vec![guard("1.tenant-table", 9, false)])));
    assert!(
        matches!(model.overlay, Some(Overlay::ConfirmRollback { guards: None, .. })),
        "stale counts ignored: {:?}",
        model.overlay
    );
    update(&mut model, Msg::Guards(Ok(Vec::new())));
    assert!(matches!(model.overlay, Some(Overlay::ConfirmRollback { guards: Some(Ok(_)), .. })));
}

// ---------------------------------------------------------------------------------------------
// Engine events
// ---------------------------------------------------------------------------------------------

#[test]
fn engine_events_drive_the_step_views() {
    let mut model = fixture::model();
    model.screen = Screen::Plan;
    let id = "3.add-column:public.issues".to_string();
    let i = index(&model, &id);
    event(
        &mut model,
        Event::StepStarted {
            step_id: id.clone(),
            stage: Stage::AddColumn,
            title: "Add tenant_id to public.issues".into(),
            direction: Direction::Forward,
            position: i,
            resumed: None,
        },
        1_000,
    );
    assert_eq!(model.steps[i].state, UiStepState::Running);
    assert_eq!(model.steps[i].started, Some(at(1_000)));
    assert_eq!(model.selected_row(), Row::Step(i), "the tree follows the running step");
    assert_eq!(model.running_step().map(|s| s.id.as_str()), Some(id.as_str()));

    let started = |attempt| Event::StatementStarted {
        step_id: id.clone(),
        index: 0,
        lock: LockMode::AccessExclusive,
        on: vec!["public.issues".into()],
        sql: "ALTER TABLE public.issues ADD COLUMN tenant_id uuid;".into(),
        attempt,
    };
    event(&mut model, started(0), 1_010);
    assert_eq!(model.steps[i].statement, Some(0));
    assert_eq!(model.log.last().map(|l| l.kind), Some(LogKind::Statement));

    event(
        &mut model,
        Event::LockWait { step_id: id.clone(), index: 0, waited_ms: 900, blockers: vec![blocker()] },
        1_900,
    );
    let wait = model.steps[i].lock_wait.clone().expect("waiting");
    assert_eq!((wait.waited_ms, wait.retries, wait.blockers[0].pid), (900, 0, 4242));

    event(
        &mut model,
        Event::Retry {
            step_id: id.clone(),
            index: 0,
            attempt: 3,
            max_attempts: 30,
            backoff_ms: 800,
            reason: "lock timeout".into(),
            blockers: Vec::new(),
        },
        2_000,
    );
    let wait = model.steps[i].lock_wait.clone().expect("still waiting");
    assert_eq!((wait.retries, wait.max_attempts), (3, 30));
    assert_eq!(wait.blockers, [blocker()], "the blockers seen before are kept");
    assert!(model.log.last().unwrap().text.contains("retry 3/29"));

    event(&mut model, started(3), 2_800);
    event(
        &mut model,
        Event::LockWait { step_id: id.clone(), index: 0, waited_ms: 200, blockers: vec![blocker()] },
        3_000,
    );
    let wait = model.steps[i].lock_wait.clone().expect("waiting again");
    assert_eq!(
        (wait.waited_ms, wait.retries, wait.max_attempts),
        (200, 3, 30),
        "a new wait keeps the retry count"
    );

    event(
        &mut model,
        Event::StatementFinished { step_id: id.clone(), index: 0, duration_ms: 40, rows: 0, skipped: false },
        3_100,
    );
    assert_eq!(model.steps[i].lock_wait, None);

    event(
        &mut model,
        Event::CheckResult {
            step_id: id.clone(),
            name: "public.issues has tenant_id".into(),
            value: 1,
            expected: 1,
            ok: true,
            phase: CheckPhase::After,
        },
        3_200,
    );
    assert_eq!(
        model.steps[i].checks,
        [CheckView { name: "public.issues has tenant_id".into(), value: 1, expected: 1, ok: true }]
    );

    event(
        &mut model,
        Event::StepFinished {
            step_id: id.clone(),
            direction: Direction::Forward,
            duration_ms: 2_300,
            rows: 0,
        },
        3_300,
    );
    assert_eq!(model.steps[i].state, UiStepState::Done);
    assert_eq!(model.steps[i].duration_ms, Some(2_300));
    assert_eq!(model.steps[i].statement, None);
    assert!(model.running_step().is_none());
    assert_eq!(model.last_applied(), Some(i));
}

#[test]
fn progress_events_give_a_rate_and_an_eta() {
    let mut model = fixture::model();
    let id = "4.backfill:public.issues".to_string();
    let i = index(&model, &id);
    model.steps[i].state = UiStepState::Running;
    let progress = |done| Event::Progress {
        step_id: id.clone(),
        done,
        total: Some(1_000),
        unit: ProgressUnit::Rows,
        phase: Some("backfill".into()),
    };
    event(&mut model, progress(0), 10_000);
    let view = model.steps[i].progress.clone().expect("progress");
    assert_eq!((view.done, view.rate_per_s, view.eta_s), (0, 0.0, None), "no rate from one sample");

    event(&mut model, progress(400), 12_000);
    let view = model.steps[i].progress.clone().unwrap();
    assert_eq!(view.done, 400);
    assert_eq!(view.rate_per_s, 200.0, "400 rows in 2 s");
    assert_eq!(view.eta_s, Some(3), "600 rows left at 200 rows/s");
    assert_eq!(view.rate_samples, [200]);

    // A sample too close to the last one moves the count, not the rate.
    event(&mut model, progress(450), 12_100);
    let view = model.steps[i].progress.clone().unwrap();
    assert_eq!((view.done, view.rate_per_s, view.rate_samples.len()), (450, 200.0, 1));

    // A new phase (an index build moving on) starts its rate again.
    event(
        &mut model,
        Event::Progress {
            step_id: id.clone(),
            done: 10,
            total: Some(100),
            unit: ProgressUnit::Blocks,
            phase: Some("building index: scanning table".into()),
        },
        13_000,
    );
    let view = model.steps[i].progress.clone().unwrap();
    assert_eq!((view.unit, view.rate_per_s, view.eta_s), (ProgressUnit::Blocks, 0.0, None));
    assert!(view.rate_samples.is_empty());
}

#[test]
fn a_failed_step_keeps_its_error() {
    let mut model = fixture::model();
    let id = "5.not-null:public.issues".to_string();
    let i = index(&model, &id);
    model.steps[i].state = UiStepState::Running;
    event(
        &mut model,
        Event::StepFailed {
            step_id: id.clone(),
            direction: Direction::Forward,
            error: "violated by some row".into(),
        },
        5_000,
    );
    assert_eq!(model.steps[i].state, UiStepState::Failed);
    assert_eq!(model.steps[i].error.as_deref(), Some("violated by some row"));
    assert_eq!(model.log.last().map(|l| l.kind), Some(LogKind::Failure));
    assert_eq!(model.last_applied(), Some(i), "a failed step may have changed the database");
    assert_eq!(model.stage_state(Stage::NotNull), UiStepState::Failed);
}

#[test]
fn job_done_clears_the_job_and_asks_for_full_counts() {
    let mut model = fixture::model();
    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    let i = index(&model, "4.backfill:public.users");
    model.steps[i].state = UiStepState::Running;
    let commands = update(&mut model, Msg::JobDone(Err("connection lost".into())));
    assert_eq!(commands, [Command::RefreshCounts { full: true }]);
    assert!(model.job.is_none());
    assert_eq!(model.steps[i].state, UiStepState::Failed, "nothing runs any more");
    assert!(model.steps[i].error.as_deref().unwrap().contains("resumes"));
    assert_eq!(model.message, Some((Severity::Error, "connection lost".into())));

    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    assert_eq!(
        update(&mut model, Msg::JobDone(Ok("3 steps applied".into()))),
        [Command::RefreshCounts { full: true }]
    );
    assert_eq!(model.message, Some((Severity::Info, "3 steps applied".into())));
}

#[test]
fn a_quick_count_keeps_what_only_a_full_count_takes() {
    let mut model = fixture::model();
    let table = |full: bool, rows: i64| TableCounts {
        table: "public.users".into(),
        scoped: true,
        rows,
        rows_per_tenant: if full { vec![("t1".into(), rows)] } else { Vec::new() },
        cross_tenant: if full { 2 } else { 0 },
        ..TableCounts::default()
    };
    let report = |full: bool, rows: i64| VerifyReport {
        full,
        tables: vec![table(full, rows)],
        ..VerifyReport::default()
    };
    update(&mut model, Msg::Counts(Ok(report(true, 10)), at(1_000)));
    assert_eq!(model.counts_at, Some(at(1_000)));

    update(&mut model, Msg::Counts(Ok(report(false, 12)), at(2_000)));
    let counts = model.counts.clone().unwrap();
    assert_eq!(counts.tables[0].rows, 12, "the quick count's own numbers");
    assert_eq!(
        counts.tables[0].rows_per_tenant,
        [("t1".to_string(), 10)],
        "the full count's rows per tenant"
    );
    assert_eq!(counts.tables[0].cross_tenant, 2);
    assert_eq!(model.counts_at, Some(at(2_000)));

    // A second quick count still keeps them.
    update(&mut model, Msg::Counts(Ok(report(false, 13)), at(3_000)));
    assert_eq!(model.counts.as_ref().unwrap().tables[0].cross_tenant, 2);

    // A failed count keeps the last numbers and says why.
    update(&mut model, Msg::Counts(Err("timeout".into()), at(4_000)));
    assert_eq!(model.counts.as_ref().unwrap().tables[0].rows, 13);
    assert_eq!(model.counts_error.as_deref(), Some("timeout"));
    update(&mut model, Msg::Tick(at(5_500)));
    assert_eq!(
        model.counts_age(),
        Some(std::time::Duration::from_millis(2_500)),
        "age from the model's clock"
    );
    update(&mut model, Msg::Counts(Ok(report(true, 14)), at(6_000)));
    assert_eq!(model.counts_error, None);
}

// ---------------------------------------------------------------------------------------------
// Quitting, pausing, cancelling, writing
// ---------------------------------------------------------------------------------------------

#[test]
fn q_asks_while_a_step_runs_and_confirming_cancels_then_quits() {
    let mut model = fixture::model();
    assert_eq!(act(&mut model, Action::Quit), [Command::Quit]);
    assert!(model.quit);

    let mut model = fixture::model();
    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    assert!(act(&mut model, Action::Quit).is_empty());
    assert_eq!(model.overlay, Some(Overlay::ConfirmQuit));
    assert!(!model.quit);
    act(&mut model, Action::Dismiss);
    assert_eq!(model.overlay, None);
    assert!(!model.quit, "n stays");

    act(&mut model, Action::Quit);
    assert_eq!(act(&mut model, Action::Confirm), [Command::Cancel, Command::Quit]);
    assert!(model.quit);
    assert!(model.job.as_ref().unwrap().cancelling);
}

#[test]
fn ctrl_c_in_a_dialog_is_not_swallowed() {
    // Ctrl-C resolves to Quit in every context; a second one confirms quitting.
    let mut model = fixture::model();
    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    act(&mut model, Action::Quit);
    assert_eq!(act(&mut model, Action::Quit), [Command::Cancel, Command::Quit]);

    // In another dialog it closes the dialog and quits as it would without one.
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table"]);
    act(&mut model, Action::Rollback);
    assert_eq!(act(&mut model, Action::Quit), [Command::Quit]);
    assert!(model.quit);
}

#[test]
fn p_pauses_a_running_backfill_and_c_cancels() {
    let mut model = fixture::model();
    act(&mut model, Action::Pause);
    assert!(message(&model).contains("none is running"));
    act(&mut model, Action::Cancel);
    assert!(message(&model).contains("nothing is running"));

    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    let i = index(&model, "4.backfill:public.users");
    model.steps[i].state = UiStepState::Running;
    let step_id = model.steps[i].id.clone();
    event(
        &mut model,
        Event::Progress {
            step_id,
            done: 10,
            total: Some(100),
            unit: ProgressUnit::Rows,
            phase: Some("backfill".into()),
        },
        1_000,
    );
    assert_eq!(act(&mut model, Action::Pause), [Command::SetPaused(true)]);
    assert!(model.job.as_ref().unwrap().paused);
    assert_eq!(act(&mut model, Action::Pause), [Command::SetPaused(false)]);

    assert_eq!(act(&mut model, Action::Cancel), [Command::Cancel]);
    assert!(model.job.as_ref().unwrap().cancelling);
    assert!(act(&mut model, Action::Cancel).is_empty(), "once is enough");
}

#[test]
fn w_prompts_for_a_path_and_writes_there() {
    let mut model = fixture::model();
    act(&mut model, Action::WritePlan);
    assert_eq!(model.overlay, Some(Overlay::WritePlan { path: "plans/app.plan.toml".into() }));
    for _ in 0.."plan.toml".len() {
        act(&mut model, Action::Backspace);
    }
    for c in "x.toml".chars() {
        act(&mut model, Action::Input(c));
    }
    // Letters that are keys elsewhere are text in a prompt.
    assert_eq!(model.overlay, Some(Overlay::WritePlan { path: "plans/app.x.toml".into() }));
    assert_eq!(act(&mut model, Action::Confirm), [Command::WritePlan("plans/app.x.toml".into())]);
    assert_eq!(model.overlay, None);
    update(&mut model, Msg::Wrote(Ok("plans/app.x.toml".into())));
    assert_eq!(model.plan_path, Some("plans/app.x.toml".into()));
    assert!(message(&model).contains("wrote"));

    // The next prompt starts from the file written; an empty path writes nothing.
    act(&mut model, Action::WritePlan);
    assert_eq!(model.overlay, Some(Overlay::WritePlan { path: "plans/app.x.toml".into() }));
    if let Some(Overlay::WritePlan { path }) = &mut model.overlay {
        path.clear();
    }
    assert!(act(&mut model, Action::Confirm).is_empty());
    assert!(message(&model).contains("nothing written"));
}

// ---------------------------------------------------------------------------------------------
// Toggling tables
// ---------------------------------------------------------------------------------------------

fn steps_of(model: &Model, table: &str) -> usize {
    model.plan.steps.iter().filter(|s| s.id.ends_with(&format!(":{table}"))).count()
}

#[test]
fn e_makes_a_table_shared_and_back_rebuilding_the_plan() {
    let mut model = fixture::model();
    model.screen = Screen::Overview;
    model.table_cursor = model.plan.tables.iter().position(|t| t.name.name == "projects").unwrap();
    let before = model.plan.steps.len();
    assert!(steps_of(&model, "public.projects") > 0);

    assert!(act(&mut model, Action::ToggleShared).is_empty());
    assert_eq!(steps_of(&model, "public.projects"), 0, "its steps are gone");
    assert!(model.plan.steps.len() < before);
    assert_eq!(model.steps.len(), model.plan.steps.len(), "the step views follow the plan");
    assert!(!model.plan.tables[model.table_cursor].scoped);
    assert!(model.options.exclude.contains(&"public.projects".to_string()));
    assert!(model.catalog.is_some(), "the catalog is kept for the next toggle");
    assert_eq!(model.screen, Screen::Overview);
    assert!(message(&model).contains("public.projects is now shared"), "{}", message(&model));

    act(&mut model, Action::ToggleShared);
    assert_eq!(model.plan.steps.len(), before, "scoped again");
    assert!(steps_of(&model, "public.projects") > 0);
    assert!(!model.options.exclude.contains(&"public.projects".to_string()));
}

#[test]
fn e_refuses_once_anything_is_applied_or_without_a_catalog() {
    let mut model = fixture::model();
    model.table_cursor = model.plan.tables.iter().position(|t| t.name.name == "users").unwrap();
    let plan = model.plan.clone();

    model.screen = Screen::Plan;
    act(&mut model, Action::ToggleShared);
    assert_eq!(model.plan, plan, "only on the overview");

    model.screen = Screen::Overview;
    done(&mut model, &["1.tenant-table"]);
    act(&mut model, Action::ToggleShared);
    assert_eq!(model.plan, plan);
    assert_eq!(model.message.as_ref().map(|(s, _)| *s), Some(Severity::Warning));
    assert!(message(&model).contains("nothing is applied"));

    let mut model = fixture::model();
    model.catalog = None;
    act(&mut model, Action::ToggleShared);
    assert_eq!(model.plan, plan);
    assert!(message(&model).contains("loaded from a file"));

    let mut model = fixture::model();
    model.job =
        Some(Job { kind: JobKind::Apply, description: "apply".into(), paused: false, cancelling: false });
    act(&mut model, Action::ToggleShared);
    assert_eq!(model.plan, plan, "not while a job runs");
}

#[test]
fn arrows_step_a_replay_through_its_recording_folded_again_from_the_start() {
    let plan = fixture::plan();
    let (first, second) = (plan.steps[0].id.clone(), plan.steps[1].id.clone());
    let started = |id: &str, position| Event::StepStarted {
        step_id: id.into(),
        stage: Stage::TenantTable,
        title: format!("step {id}"),
        direction: Direction::Forward,
        position,
        resumed: None,
    };
    let log = crate::runlog::RunLog {
        tool_version: "test".into(),
        command: "apply".into(),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        plan_file: None,
        plan,
        events: vec![
            (100, started(&first, 0)),
            (
                400,
                Event::StepFinished {
                    step_id: first.clone(),
                    direction: Direction::Forward,
                    duration_ms: 300,
                    rows: 0,
                },
            ),
            (500, started(&second, 1)),
            (
                900,
                Event::StepFailed {
                    step_id: second.clone(),
                    direction: Direction::Forward,
                    error: "boom".into(),
                },
            ),
        ],
    };
    let mut model = crate::tui::replay::model(&log, at(0));
    let state = |model: &Model, id: &str| model.steps[index(model, id)].state;
    assert!(model.read_only);
    assert_eq!((state(&model, &first), state(&model, &second)), (UiStepState::Done, UiStepState::Failed));
    assert_eq!(model.replay.as_ref().map(|r| r.position), Some(2), "a replay opens at its end");
    assert_eq!(model.clock, at(900));

    assert!(act(&mut model, Action::StepBack).is_empty());
    assert_eq!((state(&model, &first), state(&model, &second)), (UiStepState::Done, UiStepState::Pending));
    assert!(message(&model).contains("step 1 of 2 at +0.4 s"), "{}", message(&model));
    act(&mut model, Action::StepBack);
    act(&mut model, Action::StepBack);
    assert_eq!(model.replay.as_ref().map(|r| r.position), Some(0));
    assert!(model.steps.iter().all(|s| s.state == UiStepState::Pending));
    assert!(model.log.is_empty(), "nothing recorded before the first step is shown");
    for _ in 0..5 {
        act(&mut model, Action::StepForward);
    }
    assert_eq!(model.replay.as_ref().map(|r| r.position), Some(2), "stepping stops at the end");
    assert_eq!(model.steps[index(&model, &second)].error.as_deref(), Some("boom"));
    assert_eq!(act(&mut model, Action::Apply), Vec::new(), "a replay applies nothing");
}
