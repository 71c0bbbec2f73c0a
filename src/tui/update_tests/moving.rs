//! Moving around: cursors, screens, toggling tables, stepping a replay.

use super::*;

#[test]
fn the_cursor_moves_within_the_tree_and_stages_open_and_close() {
    let mut model = fixture::model();
    model.screen = Screen::Plan;
    assert_eq!(model.rows().len(), 9, "every stage closed");
    for _ in 0..3 {
        act(&mut model, Action::Down);
    }
    assert_eq!(model.cursor, 3);
    act(&mut model, Action::Up);
    assert_eq!(model.cursor, 2);
    assert_eq!(model.selected_row(), Row::Stage(Stage::AddColumn));
    act(&mut model, Action::PageDown);
    assert_eq!(model.cursor, 8, "clamped to the last row");
    act(&mut model, Action::PageUp);
    act(&mut model, Action::Up);
    assert_eq!(model.cursor, 0, "clamped to the first row");

    // Enter opens stage 3 and keeps the cursor on it.
    model.cursor = 2;
    act(&mut model, Action::Open);
    assert!(model.expanded.contains(&Stage::AddColumn));
    assert_eq!(model.rows().len(), 9 + ids_in(&model, Stage::AddColumn).len());
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
