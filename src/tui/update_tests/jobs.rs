//! Asking for work: apply and rollback confirmations, pausing, cancelling, quitting, writing.

use super::*;

/// The wizard opened on a plan file (a run does not write the plan first).
fn in_a_file(mut model: Model) -> Model {
    model.plan_path = Some("plans/app.plan.toml".into());
    model
}

#[test]
fn a_confirms_exactly_the_pending_steps_up_to_the_selection() {
    let mut model = in_a_file(fixture::model());
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
    let mut model = in_a_file(fixture::model());
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

#[test]
fn r_with_nothing_applied_only_says_so() {
    let mut model = fixture::model();
    assert!(act(&mut model, Action::Rollback).is_empty());
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("nothing has been applied"));
}

#[test]
fn r_counts_first_and_a_forceable_loss_needs_force() {
    let mut model = in_a_file(fixture::model());
    done(&mut model, &["1.tenant-table", "2.default-tenant", "3.add-column:public.events"]);
    let id = "3.add-column:public.events";
    assert_eq!(act(&mut model, Action::Rollback), [Command::CountGuards(vec![id.to_string()])]);
    assert_eq!(
        model.overlay,
        Some(Overlay::ConfirmRollback {
            target: RollbackTarget::LastStep,
            scope: id.into(),
            step_ids: vec![id.into()],
            guards: None,
            force: false
        }),
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
    let mut model = in_a_file(fixture::model());
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
    let mut model = in_a_file(fixture::model());
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

#[test]
fn a_run_of_a_plan_in_no_file_writes_it_first_to_the_path_the_dialog_shows() {
    let mut model = fixture::model();
    model.plan_dir = "/srv/plans".into();
    let default = std::path::PathBuf::from(format!(
        "/srv/plans/tenantize-app-{}.plan.toml",
        &model.plan.plan_hash[..12]
    ));
    assert_eq!(model.plan_file_for_run(), Some(default.clone()));
    select(&mut model, "2.default-tenant");
    act(&mut model, Action::Apply);
    assert_eq!(
        act(&mut model, Action::Confirm),
        [Command::WritePlan(default.clone()), Command::Apply(StopAfter::Step("2.default-tenant".into()))]
    );
    update(&mut model, Msg::JobDone(Ok("2 steps applied".into())));
    done(&mut model, &["1.tenant-table", "2.default-tenant"]);

    // The write failed: the next run (a rollback) tries again; once written, it is not again.
    update(&mut model, Msg::Wrote(Err("cannot write the plan: read-only file system".into())));
    act(&mut model, Action::Rollback);
    update(&mut model, Msg::Guards(Ok(Vec::new())));
    assert_eq!(
        act(&mut model, Action::Confirm),
        [
            Command::WritePlan(default.clone()),
            Command::Rollback { target: RollbackTarget::LastStep, force: false }
        ]
    );
    update(&mut model, Msg::JobDone(Ok("1 step rolled back".into())));
    update(&mut model, Msg::Wrote(Ok(default.clone())));
    assert_eq!(model.plan_path, Some(default.clone()));
    assert!(model.log.iter().any(|l| l.text == format!("wrote the plan to {}", default.display())));
    assert_eq!(model.plan_file_for_run(), None);
    act(&mut model, Action::Rollback);
    update(&mut model, Msg::Guards(Ok(Vec::new())));
    assert_eq!(
        act(&mut model, Action::Confirm),
        [Command::Rollback { target: RollbackTarget::LastStep, force: false }]
    );

    // A replay writes nothing.
    let mut replay = fixture::model();
    replay.read_only = true;
    assert_eq!(replay.plan_file_for_run(), None);
}

#[test]
fn q_asks_when_the_applied_plan_is_in_no_file() {
    // Nothing applied: nothing to lose, q quits.
    let mut model = fixture::model();
    assert_eq!(act(&mut model, Action::Quit), [Command::Quit]);

    // Applied, in no file (resumed from the journal's copy, or its write failed): q asks.
    let mut model = fixture::model();
    done(&mut model, &["1.tenant-table", "2.default-tenant"]);
    assert!(model.plan_unsaved());
    assert!(act(&mut model, Action::Quit).is_empty());
    assert_eq!(model.overlay, Some(Overlay::ConfirmQuit));
    assert!(!model.quit);
    act(&mut model, Action::Dismiss);
    assert!(!model.quit, "n stays");
    act(&mut model, Action::Quit);
    assert_eq!(act(&mut model, Action::Confirm), [Command::Cancel, Command::Quit]);
    assert!(model.quit, "y quits anyway: the journal keeps the plan");

    // Written to a file: q quits.
    let mut model = in_a_file(fixture::model());
    done(&mut model, &["1.tenant-table"]);
    assert_eq!(act(&mut model, Action::Quit), [Command::Quit]);
}

/// The overlay's target and steps, for the scoped rollbacks below.
fn rollback_dialog(model: &Model) -> (RollbackTarget, String, Vec<String>) {
    match &model.overlay {
        Some(Overlay::ConfirmRollback { target, scope, step_ids, .. }) => {
            (*target, scope.clone(), step_ids.clone())
        }
        other => panic!("no rollback dialog: {other:?}"),
    }
}

#[test]
fn shift_r_undoes_the_selected_stage_and_later_ones_and_u_everything_with_the_same_guards() {
    let mut model = in_a_file(fixture::model());
    let applied: Vec<String> = [Stage::TenantTable, Stage::DefaultTenant, Stage::AddColumn]
        .iter()
        .flat_map(|stage| ids_in(&model, *stage))
        .collect();
    done(&mut model, &applied.iter().map(String::as_str).collect::<Vec<_>>());
    let last_first = |ids: &[String]| ids.iter().rev().cloned().collect::<Vec<String>>();

    // Stage 3 selected: its steps, last first; stages 1 and 2 stay.
    let row = model.rows().iter().position(|r| *r == Row::Stage(Stage::AddColumn)).unwrap();
    model.cursor = row;
    let stage_3 = last_first(&ids_in(&model, Stage::AddColumn));
    assert_eq!(act(&mut model, Action::RollbackStage), [Command::CountGuards(stage_3.clone())]);
    assert_eq!(
        rollback_dialog(&model),
        (RollbackTarget::ToStage(Stage::DefaultTenant), "stage 3 add-column".into(), stage_3)
    );
    act(&mut model, Action::Dismiss);

    // Stage 2 selected: stage 3 goes too, first.
    model.cursor = model.rows().iter().position(|r| *r == Row::Stage(Stage::DefaultTenant)).unwrap();
    act(&mut model, Action::RollbackStage);
    let (target, scope, ids) = rollback_dialog(&model);
    assert_eq!(
        (target, scope.as_str()),
        (RollbackTarget::ToStage(Stage::TenantTable), "stage 2 default-tenant and later")
    );
    assert_eq!(ids, last_first(&applied[1..]));
    act(&mut model, Action::Dismiss);

    // Nothing of a later stage applied: nothing to ask.
    model.cursor = model.rows().iter().position(|r| *r == Row::Stage(Stage::Rls)).unwrap();
    assert!(act(&mut model, Action::RollbackStage).is_empty());
    assert_eq!(model.overlay, None);
    assert!(message(&model).contains("nothing of stage 8"), "{}", message(&model));

    // U: everything, with the same guards: a blocking count refuses, a deferred one (hidden by
    // RLS until stage 8 is undone, which the engine counts then) does not.
    act(&mut model, Action::RollbackAll);
    let (target, scope, ids) = rollback_dialog(&model);
    assert_eq!(
        (target, scope.as_str(), ids.clone()),
        (RollbackTarget::All, "everything", last_first(&applied))
    );
    let last = ids[0].clone();
    update(&mut model, Msg::Guards(Ok(vec![guard(&last, 4, false)])));
    assert!(act(&mut model, Action::Confirm).is_empty());
    assert!(message(&model).contains(&last), "the refusal names the step: {}", message(&model));
    let mut hidden = guard(&last, 0, false);
    hidden.deferred = true;
    update(&mut model, Msg::Guards(Ok(vec![hidden])));
    assert_eq!(
        act(&mut model, Action::Confirm),
        [Command::Rollback { target: RollbackTarget::All, force: false }]
    );
    assert_eq!(
        model.job.as_ref().map(|j| j.description.as_str()),
        Some(format!("roll back everything ({} steps)", applied.len()).as_str())
    );
}
