//! Resuming without the plan file: the journal keeps the plan each run started with, and
//! `status`, `apply`, `rollback` and the wizard take it back from there (issue 12 §4), only
//! after it passes its checksums.

mod common;
use common::*;

use std::time::{Duration, Instant};

use tenantize::engine::RunSettings;
use tenantize::event::Event;
use tenantize::plan::{PlanOptions, Stage};
use tenantize::tui::keys::Action;
use tenantize::tui::runtime::Runtime;
use tenantize::tui::state::{Model, Overlay, Row, Screen, ServerSummary, UiStepState};
use tenantize::tui::update::{Command, Msg};

fn short(hash: &str) -> &str {
    &hash[..12]
}

async fn done_steps(db: &TestDb) -> i64 {
    db.query_i64("SELECT count(*) FROM tenantize.steps WHERE state = 'done'").await
}

#[tokio::test(flavor = "multi_thread")]
async fn status_apply_and_rollback_without_the_plan_file_finish_the_run_in_progress() {
    let db = sample_db("resume_headless", 300).await;
    let dir = scratch_dir();
    let before = db.schema_dump();
    let plan_path = dir.path().join("plan.toml");
    let plan = db.plan_sample(&plan_path, &[]);
    let hash = tenantize::plan::file::load(&plan_path).unwrap().plan_hash;
    db.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    std::fs::remove_file(&plan_path).unwrap();
    let using = format!("using the plan stored in the journal (hash {})", short(&hash));

    // Another plan cannot start on top of it; the refusal names the way out without a file.
    let other = dir.path().join("other.toml");
    let other = other.to_str().unwrap();
    db.tenantize(&["plan", "--out", other, "--tenant-column", "org_id", "--tenant-table", "orgs"])
        .expect_ok();
    db.tenantize(&["apply", other, "--yes"])
        .expect_code(5)
        .expect_output("different plan in progress")
        .expect_output("without a plan file");
    std::fs::remove_file(other).unwrap();
    let copies = db.query_i64("SELECT count(*) FROM tenantize.plan_texts").await;
    assert_eq!(copies, 1, "a refused run keeps no copy of its plan");

    let status = db.tenantize(&["status"]);
    status.expect_ok().expect_output(&using).expect_output("done");
    assert!(status.stdout.contains("3.add-column:public.issues"), "{}", status.text());
    assert!(status.stdout.contains("pending     5.not-null"), "later steps are pending: {}", status.text());

    db.tenantize(&["apply", "--yes"])
        .expect_ok()
        .expect_output(&using)
        .expect_output("cutover pending: run `tenantize cutover PLAN`");
    let total = db.query_i64("SELECT count(*) FROM tenantize.steps").await;
    let cutover = db.query_i64("SELECT count(*) FROM tenantize.steps WHERE stage = 10").await;
    assert_eq!(done_steps(&db).await, total - cutover, "every step but the cutover is applied");
    // The cutover from the journal's copy too.
    db.tenantize(&["cutover", "--yes"]).expect_ok().expect_output(&using);
    assert_eq!(done_steps(&db).await, total, "every step is applied");

    db.tenantize(&["rollback", "--all", "--yes"]).expect_ok().expect_output(&using);
    let after = db.schema_dump();
    if before != after {
        panic!("the schema after rollback differs from before:\n{}", text_diff(&before, &after));
    }

    // Nothing in progress any more: without a plan file there is nothing to resume.
    for args in [&["status"][..], &["apply", "--yes"], &["rollback", "--all", "--yes"]] {
        db.tenantize(args).expect_code(5).expect_output("holds no run in progress");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_plan_file_and_no_journal_every_command_says_so() {
    let db = sample_db("resume_nothing", 100).await;
    for args in [&["status"][..], &["apply", "--yes"], &["rollback", "--to", "3", "--yes"]] {
        db.tenantize(args).expect_code(5).expect_output("no plan file given");
    }
    let journal = db.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await;
    assert_eq!(journal, 0, "nothing was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_journal_copy_is_refused_and_nothing_changes() {
    let db = sample_db("resume_tampered", 300).await;
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = db.plan_sample(&plan_path, &[]);
    db.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    let stored: String =
        db.connect().await.query_one("SELECT plan_text FROM tenantize.plan_texts", &[]).await.unwrap().get(0);
    assert_eq!(stored, std::fs::read_to_string(&plan_path).unwrap(), "the journal keeps the file's text");
    let dump = db.schema_dump();
    let done = done_steps(&db).await;
    let runs = db.query_i64("SELECT count(*) FROM tenantize.runs").await;

    // The text edited, its checksum not.
    db.exec(
        "UPDATE tenantize.plan_texts SET plan_text = replace(plan_text, 'SET NOT NULL', 'DROP NOT NULL')",
    )
    .await;
    for args in [&["status"][..], &["apply", "--yes"], &["rollback", "--all", "--yes"]] {
        db.tenantize(args)
            .expect_code(5)
            .expect_output("is refused: its text does not match the checksum stored with it");
    }
    // The text and its checksum edited together: the plan's own checksums refuse it.
    db.exec(
        "UPDATE tenantize.plan_texts SET text_sha256 = encode(sha256(convert_to(plan_text, 'UTF8')), 'hex')",
    )
    .await;
    db.tenantize(&["apply", "--yes"]).expect_code(5).expect_output("does not match its checksum");
    db.tenantize(&["rollback", "--all", "--yes"]).expect_code(5).expect_output("is refused");

    assert_eq!(db.schema_dump(), dump, "a refused copy changed the schema");
    assert_eq!(done_steps(&db).await, done);
    assert_eq!(db.query_i64("SELECT count(*) FROM tenantize.runs").await, runs, "no run started");

    // The plan file still works, and its run stores a good copy again.
    db.tenantize(&["status", &plan]).expect_ok();
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    db.tenantize(&["status"]).expect_ok().expect_output("using the plan stored in the journal");
}

/// The wizard on `db` as `tenantize wizard` (no plan file) opens it.
async fn open_wizard(
    db: &TestDb,
    dir: &std::path::Path,
) -> (Model, Vec<(tenantize::plan::Severity, String)>) {
    let options = PlanOptions { exclude: vec!["public.issue_statuses".into()], ..PlanOptions::default() };
    let opening = tenantize::app::wizard::prepare(&db.spec, None, options).await.expect("the wizard opens");
    let server =
        ServerSummary { database: opening.catalog.server.database.clone(), ..ServerSummary::default() };
    let mut model = Model::new(opening.plan, opening.options, server, Instant::now());
    model.plan_path = opening.plan_path;
    model.plan_dir = dir.to_path_buf();
    model.catalog = Some(opening.catalog);
    model.apply_journal(&opening.journal);
    (model, opening.plan_check)
}

async fn pump_until(
    runtime: &mut Runtime,
    model: &mut Model,
    limit: Duration,
    stop: impl Fn(&Msg) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(msg) = tokio::time::timeout_at(deadline, runtime.recv()).await {
        let stopped = stop(&msg);
        runtime.handle(model, msg);
        if stopped {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wizard_reopens_on_the_plan_it_started_after_an_interrupted_apply() {
    let db = sample_db("resume_wizard", 300).await;
    let dir = scratch_dir();
    let before = db.schema_dump();
    let (mut model, check) = open_wizard(&db, dir.path()).await;
    assert!(check.iter().any(|(_, text)| text.contains("built from the live catalog")), "{check:?}");
    assert_eq!(model.plan_path, None, "a plan built in the wizard is in no file");
    let hash = model.plan.plan_hash.clone();
    let written = dir.path().join(format!("tenantize-{}-{}.plan.toml", db.name, short(&hash)));

    // Apply through stage 4 with the keys; quit (y) as soon as stage 3 is done.
    let mut runtime = Runtime::new(Some(db.spec.clone()), RunSettings::default());
    runtime.start(&model);
    model.screen = Screen::Plan;
    model.cursor = model.rows().iter().position(|r| *r == Row::Stage(Stage::Backfill)).unwrap();
    runtime.handle(&mut model, Msg::Action(Action::ApplyStage));
    assert!(matches!(model.overlay, Some(Overlay::ConfirmApply { .. })));
    assert_eq!(model.plan_file_for_run(), Some(written.clone()), "the dialog shows where the plan goes");
    runtime.handle(&mut model, Msg::Action(Action::Confirm));
    assert!(runtime.job_running(), "the apply started");
    let through_3 = model.plan.steps.iter().filter(|s| s.stage <= Stage::AddColumn).count() as i64;
    let stage_4_started = |m: &Msg| matches!(m, Msg::Engine(Event::StepStarted { step_id, .. }, _) if step_id.starts_with("4."));
    assert!(
        pump_until(&mut runtime, &mut model, Duration::from_secs(60), stage_4_started).await,
        "stages 1-3 ran"
    );
    runtime.handle(&mut model, Msg::Action(Action::Quit));
    assert_eq!(model.overlay, Some(Overlay::ConfirmQuit), "q asks while a step runs");
    runtime.handle(&mut model, Msg::Action(Action::Confirm));
    assert!(model.quit);
    pump_until(&mut runtime, &mut model, Duration::from_secs(30), |m| matches!(m, Msg::JobDone(_))).await;
    runtime.shutdown().await;

    // The run wrote the plan where the dialog said; the journal kept it too. Lose the file.
    let on_disk = tenantize::plan::file::load(&written).expect("the run wrote the plan");
    assert_eq!(on_disk.plan_hash, hash);
    std::fs::remove_file(&written).unwrap();
    let done = done_steps(&db).await;
    assert!(done >= through_3, "stages 1-3 are done ({done} of {through_3} steps)");

    // Reopened on the same database: the journal's plan, where it stopped — not a new plan.
    let (mut model, check) = open_wizard(&db, dir.path()).await;
    assert_eq!(model.plan.plan_hash, hash, "the wizard resumed the plan it started: {check:?}");
    assert!(
        check.iter().any(|(_, text)| text.contains("resumed the plan stored in the journal")),
        "{check:?}"
    );
    assert!(!check.iter().any(|(_, text)| text.contains("another plan")), "{check:?}");
    let shown_done = model.steps.iter().filter(|s| s.state == UiStepState::Done).count() as i64;
    assert_eq!(shown_done, done, "the screen shows the journal's steps");
    assert!(model.plan_unsaved());
    let commands = tenantize::tui::update::update(&mut model, Msg::Action(Action::Quit));
    assert!(commands.is_empty(), "q asks first: the plan is in no file");
    assert_eq!(model.overlay, Some(Overlay::ConfirmQuit));
    assert_eq!(
        tenantize::tui::update::update(&mut model, Msg::Action(Action::Confirm)),
        [Command::Cancel, Command::Quit]
    );

    // And the headless commands finish it from the journal's copy.
    db.tenantize(&["rollback", "--all", "--yes"])
        .expect_ok()
        .expect_output(&format!("using the plan stored in the journal (hash {})", short(&hash)));
    let after = db.schema_dump();
    if before != after {
        panic!("the schema after rollback differs from before:\n{}", text_diff(&before, &after));
    }
}
