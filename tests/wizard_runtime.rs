//! The wizard's runtime without a terminal: messages in, what its tasks send back out, against a
//! real PostgreSQL (the counts loop and the engine connect).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tenantize::engine::RunSettings;
use tenantize::event::{Event, ProgressUnit, RunOutcome};
use tenantize::tui::keys::Action;
use tenantize::tui::runtime::{EngineJob, Runtime};
use tenantize::tui::state::{Job, JobKind, Model, Screen, ServerSummary, UiStepState};
use tenantize::tui::update::{Command, Msg};

/// The sample's plan as `tenantize wizard PLAN` opens it: with the catalog, so tables can be
/// toggled, and the plan file next to which run logs go.
async fn wizard_model(db: &TestDb, dir: &Path) -> Model {
    let path = dir.join("plan.toml");
    db.plan_sample(&path, &[]);
    let plan = tenantize::plan::file::load(&path).expect("the plan just written");
    let client = db.connect().await;
    let catalog = tenantize::catalog::introspect(
        &client,
        &plan.options.schemas,
        std::slice::from_ref(&plan.tenant.table.schema),
    )
    .await
    .expect("introspect the sample");
    let options = plan.options.clone();
    let mut model = Model::new(plan, options, ServerSummary::default(), Instant::now());
    model.plan_path = Some(path);
    model.catalog = Some(catalog);
    model
}

/// Hand what the runtime sends to the model until `stop` holds for a message (checked before it
/// is handled) or `limit` passes. Returns every message handled, the last one `stop`'s, if any.
async fn pump(
    runtime: &mut Runtime,
    model: &mut Model,
    limit: Duration,
    mut stop: impl FnMut(&Msg) -> bool,
) -> (Vec<Msg>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while let Ok(msg) = tokio::time::timeout_at(deadline, runtime.recv()).await {
        let stopped = stop(&msg);
        seen.push(msg.clone());
        runtime.handle(model, msg);
        if stopped {
            return (seen, true);
        }
    }
    (seen, false)
}

fn full_count_of(msg: &Msg, plan_hash: &str) -> bool {
    matches!(msg, Msg::Counts(Ok(report), _) if report.full && report.plan_hash == plan_hash)
}

/// Connections the wizard's counts loops hold on this database.
async fn counts_connections(db: &TestDb) -> i64 {
    db.query_i64(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'tenantize wizard counts'",
    )
    .await
}

/// Pump messages until exactly `want` counts connections are open, or `limit` passes; the
/// last number seen.
async fn settle_connections(
    db: &TestDb,
    runtime: &mut Runtime,
    model: &mut Model,
    want: i64,
    limit: Duration,
) -> i64 {
    let started = Instant::now();
    loop {
        let open = counts_connections(db).await;
        if open == want || started.elapsed() > limit {
            return open;
        }
        pump(runtime, model, Duration::from_millis(200), |_| false).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn toggling_tables_keeps_one_counts_loop_on_the_current_plan_and_pokes_reach_it() {
    let db = sample_db("wizard_rt_counts", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(Some(db.spec.clone()), RunSettings::default());
    runtime.start(&model);
    let first = model.plan.plan_hash.clone();
    let (_, counted) =
        pump(&mut runtime, &mut model, Duration::from_secs(20), |m| full_count_of(m, &first)).await;
    assert!(counted, "no full count of the plan the wizard opened with");

    // Two toggles on the Overview: two rebuilt plans, two replacements of the counts loop.
    assert_eq!(model.screen, Screen::Overview);
    runtime.handle(&mut model, Msg::Action(Action::ToggleShared));
    let second = model.plan.plan_hash.clone();
    assert_ne!(second, first, "the toggle rebuilt the plan");
    runtime.handle(&mut model, Msg::Action(Action::Down));
    runtime.handle(&mut model, Msg::Action(Action::ToggleShared));
    let current = model.plan.plan_hash.clone();
    assert!(current != second && current != first, "the second toggle rebuilt the plan again");
    let mut problems = Vec::new();

    // Pokes: unpoked, the loop counts in full only every 15 s; poked, on its next round (≤ 1 s).
    // First the new loop's own first full count and a quick one after it.
    let (_, counted) =
        pump(&mut runtime, &mut model, Duration::from_secs(10), |m| full_count_of(m, &current)).await;
    let (_, quick) = pump(
        &mut runtime,
        &mut model,
        Duration::from_secs(5),
        |m| matches!(m, Msg::Counts(Ok(report), _) if !report.full && report.plan_hash == current),
    )
    .await;
    assert!(counted && quick, "no counts of the current plan at all");
    runtime.handle(&mut model, Msg::Action(Action::Validate));
    let (_, poked) =
        pump(&mut runtime, &mut model, Duration::from_millis(2500), |m| full_count_of(m, &current)).await;
    if !poked {
        problems.push("v did not bring a full count within 2.5 s".into());
    }
    // The refresh after a job goes the same way.
    runtime.handle(&mut model, Msg::JobDone(Ok("nothing ran".into())));
    let (_, refreshed) =
        pump(&mut runtime, &mut model, Duration::from_millis(2500), |m| full_count_of(m, &current)).await;
    if !refreshed {
        problems.push("the end of a job did not bring a full count within 2.5 s".into());
    }

    let open = settle_connections(&db, &mut runtime, &mut model, 1, Duration::from_secs(5)).await;
    if open != 1 {
        problems.push(format!("{open} counts connections open after two toggles, not 1"));
    }
    // The counts that arrive are of the current plan only.
    let (seen, _) = pump(&mut runtime, &mut model, Duration::from_secs(3), |_| false).await;
    let hashes: Vec<&str> = seen
        .iter()
        .filter_map(|m| match m {
            Msg::Counts(Ok(report), _) => Some(report.plan_hash.as_str()),
            _ => None,
        })
        .collect();
    if let Some(stale) = hashes.iter().find(|h| **h != current) {
        problems.push(format!("counts of a stale plan {stale:.12} arrive (current {current:.12})"));
    }
    if model.counts.as_ref().map(|r| r.plan_hash.as_str()) != Some(current.as_str()) {
        problems.push("the model does not show the current plan's counts".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    runtime.shutdown().await;
    // The server notices a closed connection within moments.
    let started = Instant::now();
    while counts_connections(&db).await != 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "a counts connection outlived the shutdown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn running(model: &mut Model) {
    model.job = Some(Job {
        kind: JobKind::Apply,
        description: "apply (a test's engine)".into(),
        paused: false,
        cancelling: false,
    });
}

fn run_started(model: &Model) -> Event {
    Event::RunStarted {
        direction: tenantize::event::Direction::Forward,
        plan_hash: model.plan.plan_hash.clone(),
        database: "test".into(),
        server_version: "test".into(),
        steps_total: model.plan.steps.len(),
        steps_to_run: 1,
    }
}

fn fall_over() -> Result<String, String> {
    panic!("the test's engine fell over")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_that_panics_ends_the_job_with_the_panic_message() {
    let db = sample_db("wizard_rt_panic", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(Some(db.spec.clone()), RunSettings::default());
    runtime.start(&model);
    running(&mut model);
    let started = run_started(&model);
    runtime.start_job(
        &model,
        "apply",
        EngineJob::Custom(Box::new(move |events, _control| {
            Box::pin(async move {
                let _ = events.send(started);
                tokio::task::yield_now().await;
                fall_over()
            })
        })),
    );
    let (seen, ended) =
        pump(&mut runtime, &mut model, Duration::from_secs(10), |m| matches!(m, Msg::JobDone(_))).await;
    assert!(ended, "no JobDone within 10 s: the wizard shows the job running forever");
    let Some(Msg::JobDone(Err(error))) = seen.last() else {
        panic!("the job did not fail: {:?}", seen.last())
    };
    assert!(
        error.contains("the engine stopped unexpectedly") && error.contains("the test's engine fell over"),
        "{error}"
    );
    assert!(model.job.is_none(), "the job ended in the model");
    assert!(!runtime.job_running(), "the runtime let go of the job");
    assert!(
        seen.iter().any(|m| matches!(m, Msg::Engine(Event::RunStarted { .. }, _))),
        "what the engine sent before it fell over is delivered"
    );
    runtime.shutdown().await;
}

/// The run log's path from the runtime's notice.
fn run_log_path(seen: &[Msg]) -> PathBuf {
    seen.iter()
        .find_map(|m| match m {
            Msg::Notice(text) => text.strip_prefix("run log: ").map(PathBuf::from),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no run log notice in {} messages", seen.len()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_engine_events_arrive_before_the_job_ends_and_the_run_log_has_them_first() {
    const PROGRESS_EVENTS: u64 = 100_000;
    let db = sample_db("wizard_rt_order", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(None, RunSettings::default());
    running(&mut model);
    let started = run_started(&model);
    let step_id = model.plan.steps[0].id.clone();
    // A burst the forwarder cannot have delivered a moment after the engine returns.
    runtime.start_job(
        &model,
        "apply",
        EngineJob::Custom(Box::new(move |events, _control| {
            Box::pin(async move {
                let _ = events.send(started);
                for done in 1..=PROGRESS_EVENTS {
                    let _ = events.send(Event::Progress {
                        step_id: step_id.clone(),
                        done,
                        total: Some(PROGRESS_EVENTS),
                        unit: ProgressUnit::Rows,
                        phase: Some("backfill".into()),
                    });
                }
                let _ = events.send(Event::RunFinished {
                    outcome: RunOutcome::Success,
                    duration_ms: 1,
                    message: "the test's run finished".into(),
                });
                Ok("done".into())
            })
        })),
    );
    let mut log_at_run_finished = None;
    let mut seen_so_far = Vec::new();
    let (seen, ended) = pump(&mut runtime, &mut model, Duration::from_secs(60), |m| {
        if let Msg::Engine(Event::RunFinished { .. }, _) = m {
            // What the run log holds the moment the screen hears of the run's end.
            let path = run_log_path(&seen_so_far);
            log_at_run_finished = Some(tenantize::runlog::read(&path).expect("read the run log"));
        }
        seen_so_far.push(m.clone());
        matches!(m, Msg::JobDone(_))
    })
    .await;
    assert!(ended, "no JobDone within 60 s");
    let run_finished = seen.iter().position(|m| matches!(m, Msg::Engine(Event::RunFinished { .. }, _)));
    let job_done = seen.iter().position(|m| matches!(m, Msg::JobDone(_)));
    let engine_events = seen.iter().filter(|m| matches!(m, Msg::Engine(..))).count() as u64;
    assert!(
        matches!((run_finished, job_done), (Some(r), Some(j)) if r < j),
        "RunFinished (at {run_finished:?}) comes before JobDone (at {job_done:?}); \
         {engine_events} of {} engine events came first",
        PROGRESS_EVENTS + 2
    );
    assert_eq!(engine_events, PROGRESS_EVENTS + 2, "every engine event is delivered");
    let log = log_at_run_finished.expect("the screen heard of RunFinished");
    assert!(
        matches!(log.events.last(), Some((_, Event::RunFinished { .. }))),
        "the run log has RunFinished before the screen hears of it"
    );
    assert_eq!(log.events.len() as u64, PROGRESS_EVENTS + 2);
    assert!(model.job.is_none() && !runtime.job_running());
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_to_y_applies_a_stage_with_the_engine_and_the_journal_agrees() {
    let db = sample_db("wizard_rt_apply", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(Some(db.spec.clone()), RunSettings::default());
    runtime.start(&model);
    // Stage 2 (the default tenant), through the keys.
    model.screen = Screen::Plan;
    model.cursor = 1;
    runtime.handle(&mut model, Msg::Action(Action::ApplyStage));
    runtime.handle(&mut model, Msg::Action(Action::Confirm));
    assert!(model.job.is_some() && runtime.job_running(), "the apply started");
    let (seen, ended) =
        pump(&mut runtime, &mut model, Duration::from_secs(60), |m| matches!(m, Msg::JobDone(_))).await;
    assert!(ended, "the apply did not end within 60 s");
    assert!(matches!(seen.last(), Some(Msg::JobDone(Ok(_)))), "{:?}", seen.last());
    let run_finished = seen.iter().position(|m| matches!(m, Msg::Engine(Event::RunFinished { .. }, _)));
    assert!(run_finished.is_some_and(|r| r < seen.len() - 1), "RunFinished comes before JobDone");
    let done = model.steps.iter().filter(|s| s.state == UiStepState::Done).count() as i64;
    assert!(done >= 2, "stages 1 and 2 are done on the screen");
    assert_eq!(db.query_i64("SELECT count(*) FROM tenantize.steps WHERE state = 'done'").await, done);
    let log = tenantize::runlog::read(&run_log_path(&seen)).expect("the run log");
    let engine_events = seen.iter().filter(|m| matches!(m, Msg::Engine(..))).count();
    assert_eq!(log.events.len(), engine_events, "the run log has every event the screen had");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_cancels_the_job_and_waits_for_the_engine_to_stop() {
    let db = sample_db("wizard_rt_shutdown", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(Some(db.spec.clone()), RunSettings::default());
    runtime.start(&model);
    running(&mut model);
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel();
    // Like the engine: runs until cancelled, then takes a moment to stop at a safe point.
    runtime.start_job(
        &model,
        "apply",
        EngineJob::Custom(Box::new(move |_events, control| {
            Box::pin(async move {
                control.cancel.cancelled().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = stopped_tx.send(());
                Err("cancelled".into())
            })
        })),
    );
    let (_, counted) =
        pump(&mut runtime, &mut model, Duration::from_secs(10), |m| matches!(m, Msg::Counts(Ok(_), _))).await;
    assert!(counted && runtime.job_running());
    runtime.shutdown().await;
    assert!(stopped_rx.try_recv().is_ok(), "shutdown returned before the engine stopped");
    let started = Instant::now();
    while counts_connections(&db).await != 0 {
        assert!(started.elapsed() < Duration::from_secs(2), "the counts connection outlived the shutdown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Single-threaded, as a blocking call would stall everything on it.
#[tokio::test]
async fn writing_the_plan_does_not_block_the_event_loop() {
    let db = sample_db("wizard_rt_write", 200).await;
    let dir = scratch_dir();
    let mut model = wizard_model(&db, dir.path()).await;
    let mut runtime = Runtime::new(None, RunSettings::default());
    // Opening a FIFO for writing blocks until a reader opens it; the reader comes 1.5 s later.
    let fifo = dir.path().join("plan.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::read_to_string(&fifo).expect("read the FIFO")
        })
    };
    let started = Instant::now();
    runtime.execute(&model, Command::WritePlan(fifo.clone()));
    let blocked = started.elapsed();
    assert!(blocked < Duration::from_millis(300), "writing the plan held the event loop for {blocked:?}");
    let (seen, wrote) =
        pump(&mut runtime, &mut model, Duration::from_secs(10), |m| matches!(m, Msg::Wrote(_))).await;
    assert!(wrote, "no Wrote within 10 s");
    assert!(matches!(seen.last(), Some(Msg::Wrote(Ok(path))) if *path == fifo), "{:?}", seen.last());
    let text = reader.join().unwrap();
    let written = tenantize::plan::file::parse(&text, "fifo").expect("the plan came through the FIFO");
    assert_eq!(written.plan_hash, model.plan.plan_hash);
    assert_eq!(model.plan_path.as_deref(), Some(fifo.as_path()));
    runtime.shutdown().await;
}
