//! What comes back: engine events, the end of a job, counts.

use super::*;

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
    let failures = |model: &Model| model.log.iter().filter(|l| l.kind == LogKind::Failure).count();
    assert_eq!(failures(&model), 1, "the failure is in the Log");
    assert!(matches!(&model.message, Some((Severity::Error, m)) if m.contains("counting failed: timeout")));
    update(&mut model, Msg::Counts(Err("timeout".into()), at(4_500)));
    assert_eq!(failures(&model), 1, "the same failure again is not logged twice");
    update(&mut model, Msg::Tick(at(5_500)));
    assert_eq!(
        model.counts_age(),
        Some(std::time::Duration::from_millis(2_500)),
        "age from the model's clock"
    );
    update(&mut model, Msg::Counts(Ok(report(true, 14)), at(6_000)));
    assert_eq!(model.counts_error, None);
}
