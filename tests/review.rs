//! Reviewers and rehearsals: plan --check, seal, run logs, replay --print, export, rehearse.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use tenantize::sandbox::client_tool;

async fn planned(db: &TestDb, dir: &tempfile::TempDir, extra: &[&str]) -> String {
    db.plan_sample(&dir.path().join("plans").join("sample.plan.toml"), extra)
}

fn run_logs_in(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    logs.sort();
    logs
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_check_reports_what_drifted() {
    let db = sample_db("check", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.tenantize(&["plan", "--check", &plan]).expect_ok().expect_output("would still produce this plan");
    db.exec("ALTER TABLE public.users ADD COLUMN nickname text; CREATE TABLE public.labels (id int PRIMARY KEY, name text)")
        .await;
    db.tenantize(&["plan", "--check", &plan])
        .expect_code(3)
        .expect_output("table public.users changed: column added: nickname text")
        .expect_output("table public.labels was added after planning");
    // Mid-conversion, --check still compares what the plan does not own.
    db.exec("ALTER TABLE public.users DROP COLUMN nickname; DROP TABLE public.labels").await;
    db.tenantize(&["apply", &plan, "--through", "6", "--yes"]).expect_ok();
    db.tenantize(&["plan", "--check", &plan]).expect_ok();
    db.exec("ALTER TABLE public.projects ADD CONSTRAINT projects_name_key UNIQUE (name)").await;
    db.tenantize(&["plan", "--check", &plan])
        .expect_code(3)
        .expect_output("table public.projects changed: unique added: projects_name_key (name) constraint");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_plan_is_refused_until_sealed() {
    let db = sample_db("seal", 500).await;
    let dir = scratch_dir();
    let plan_path = planned(&db, &dir, &[]).await;
    let text = std::fs::read_to_string(&plan_path).unwrap();
    // A reviewer renames an index.
    let edited = text.replace("issues_tenant_id_id_key", "issues_by_tenant_and_id");
    assert_ne!(text, edited);
    std::fs::write(&plan_path, &edited).unwrap();
    db.tenantize(&["apply", &plan_path, "--yes"]).expect_code(5).expect_output("plan seal");
    db.tenantize(&["plan", "seal", &plan_path])
        .expect_ok()
        .expect_output("edited steps 6.indexes:public.issues");
    let sealed = tenantize::plan::file::load(Path::new(&plan_path)).expect("a sealed plan verifies");
    assert!(sealed.edited, "the plan records that it was edited");
    db.tenantize(&["plan", "seal", &plan_path]).expect_ok().expect_output("nothing to seal");
    db.tenantize(&["apply", &plan_path, "--yes"]).expect_ok();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname = 'issues_by_tenant_and_id'").await,
        1
    );
    db.tenantize(&["verify", &plan_path]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn run_logs_tell_every_step_and_keep_no_secrets() {
    let db = sample_db("runlog", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let with_password = db.url.replacen("postgres@", "postgres:s3cret-pw@", 1);
    let plans_dir = dir.path().join("plans");
    run_tenantize(&["apply", &plan, "--yes"], &[("DATABASE_URL", with_password.as_str())]).expect_ok();
    let logs = run_logs_in(&plans_dir);
    assert_eq!(logs.len(), 1, "one run log next to the plan: {logs:?}");
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(!text.contains("s3cret-pw"), "the password leaked into the run log");
    assert!(!text.contains("user1@example.com"), "row data leaked into the run log");
    let log = tenantize::runlog::read(&logs[0]).unwrap();
    assert_eq!(log.command, "apply");
    assert_eq!(log.tool_version, env!("CARGO_PKG_VERSION"));
    let finished: Vec<&str> = log
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            tenantize::event::Event::StepFinished { step_id, .. } => Some(step_id.as_str()),
            _ => None,
        })
        .collect();
    let applied = log.plan.steps.iter().filter(|s| s.stage != tenantize::plan::Stage::Cutover).count();
    assert_eq!(finished.len(), applied, "every step apply runs (all but the cutover) is in the log");
    let has = |pred: &dyn Fn(&tenantize::event::Event) -> bool| log.events.iter().any(|(_, e)| pred(e));
    assert!(has(
        &|e| matches!(e, tenantize::event::Event::RunStarted { server_version, .. } if server_version.contains("PostgreSQL"))
    ));
    assert!(has(
        &|e| matches!(e, tenantize::event::Event::StatementFinished { duration_ms, .. } if *duration_ms < 60_000)
    ));
    assert!(has(
        &|e| matches!(e, tenantize::event::Event::CheckResult { phase: tenantize::event::CheckPhase::Before, name, value, .. } if name.contains("without a tenant") || *value == 0)
    ));
    assert!(has(&|e| matches!(
        e,
        tenantize::event::Event::CheckResult { phase: tenantize::event::CheckPhase::After, ok: true, .. }
    )));
    // The events have times, in order.
    assert!(log.events.windows(2).all(|w| w[0].0 <= w[1].0));

    // replay --print tells the same story as Markdown.
    let md = run_tenantize(&["replay", logs[0].to_str().unwrap(), "--print"], &[]);
    md.expect_ok()
        .expect_output("## tenantize apply:")
        .expect_output("| 1 | `1.tenant-table` |")
        .expect_output("`8.rls:public.users`")
        .expect_output("rows of public.issue_comments without a tenant: ");
    assert!(!md.stdout.contains("s3cret"));

    db.tenantize(&[
        "rollback",
        &plan,
        "--to",
        "5",
        "--yes",
        "--log",
        dir.path().join("undo.jsonl").to_str().unwrap(),
    ])
    .expect_ok();
    let undo = tenantize::runlog::read(&dir.path().join("undo.jsonl")).unwrap();
    assert_eq!(undo.command, "rollback");
    assert!(undo.events.iter().any(|(_, e)| matches!(
        e,
        tenantize::event::Event::StepFinished { direction: tenantize::event::Direction::Rollback, .. }
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_migrations_match_tenantize_apply_and_undo_it() {
    let reference = sample_db("export_ref", 500).await;
    let dir = scratch_dir();
    let plan = planned(&reference, &dir, &[]).await;
    let original = reference.schema_dump();
    reference.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    let applied = reference.schema_dump();
    for format in ["sql", "sqlx", "golang-migrate", "flyway"] {
        let out = dir.path().join(format);
        run_tenantize(&["export", &plan, "--format", format, "--out", out.to_str().unwrap()], &[])
            .expect_ok();
        let copy = sample_db(&format!("export_{}", format.replace('-', "_")), 500).await;
        run_files(&copy.url, &out, format, "up");
        let up = copy.schema_dump();
        if up != applied {
            panic!("{format}: the up files differ from tenantize apply:\n{}", text_diff(&applied, &up));
        }
        run_files(&copy.url, &out, format, "down");
        let down = copy.schema_dump();
        if down != original {
            panic!("{format}: the down files do not restore the schema:\n{}", text_diff(&original, &down));
        }
    }
    // A batched plan exports its backfill as a block that commits per batch.
    let batched = dir.path().join("batched.toml");
    reference.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    reference
        .tenantize(&[
            "plan",
            "--out",
            batched.to_str().unwrap(),
            "--exclude",
            "issue_statuses",
            "--backfill",
            "batched",
        ])
        .expect_ok();
    let out = dir.path().join("batched-sql");
    run_tenantize(
        &["export", batched.to_str().unwrap(), "--format", "sql", "--out", out.to_str().unwrap()],
        &[],
    )
    .expect_ok();
    let copy = sample_db("export_batched", 500).await;
    let rows_before = copy.row_checksums(&["public"], "tenant_id").await;
    run_files(&copy.url, &out, "sql", "up");
    assert_eq!(copy.query_i64("SELECT count(*) FROM public.issue_comments WHERE tenant_id IS NULL").await, 0);
    let mut rows_after = copy.row_checksums(&["public"], "tenant_id").await;
    rows_after.retain(|t, _| rows_before.contains_key(t));
    assert_eq!(rows_before, rows_after, "the exported backfill must not fire the touch triggers");
}

#[tokio::test(flavor = "multi_thread")]
async fn rehearsal_of_the_sample_leaves_the_source_unchanged_and_reports() {
    let db = sample_db("rehearse_src", 2000).await;
    let dir = scratch_dir();
    let before = db.schema_dump();
    let rows = db.row_checksums(&["public"], "tenant_id").await;
    let out = dir.path().join("reports");
    let run = run_tenantize(
        &["rehearse", "--source", &db.url, "--out-dir", out.to_str().unwrap(), "--exclude", "issue_statuses"],
        &[],
    );
    run.expect_ok().expect_output("rehearsal ok");
    assert_eq!(before, db.schema_dump(), "the source was changed");
    assert_eq!(rows, db.row_checksums(&["public"], "tenant_id").await, "the source's data was changed");
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
    let md = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "md"))
        .unwrap();
    let report = std::fs::read_to_string(&md).unwrap();
    for needle in [
        "predicted maintenance window",
        "parity after rollback**: schema identical, data identical",
        "## Slowest steps",
        "writes blocked",
    ] {
        assert!(report.contains(needle), "report lacks {needle:?}:\n{report}");
    }
    let html = std::fs::read_to_string(md.with_extension("html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("3.add-column:public.users"),
        "the timeline has a bar per step"
    );
    assert!(
        !html.contains("http://") || html.contains("http://www.w3.org/2000/svg"),
        "the page is self-contained"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rehearsal_of_pagila_from_a_dump_file() {
    let db = pagila_db("rehearse_pagila").await;
    let dir = scratch_dir();
    let dump = dir.path().join("pagila.dump");
    let status = Command::new(client_tool("pg_dump"))
        .args(["--format=custom", "-f", dump.to_str().unwrap(), "-d", &db.url])
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("reports");
    let mut args = vec!["rehearse", "--dump", dump.to_str().unwrap(), "--out-dir", out.to_str().unwrap()];
    args.extend(PAGILA_ACKNOWLEDGE);
    run_tenantize(&args, &[]).expect_ok().expect_output("rehearsal ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn rehearsing_a_saved_plan_retargets_it_to_the_copy_and_leaves_the_file_alone() {
    let db = sample_db("rehearse_plan", 300).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let saved = std::fs::read_to_string(&plan).unwrap();
    let out = dir.path().join("rehearsals");
    run_tenantize(
        &["rehearse", "--source", &db.url, "--plan", &plan, "--out-dir", out.to_str().unwrap()],
        &[],
    )
    .expect_ok()
    .expect_output(&format!("re-targeting the plan from database \"{}\" to the copy", db.name))
    .expect_output("rehearsal ok");
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), saved, "the plan file changed");
    // The copy was another database; the plan is still the source's own.
    db.tenantize(&["status", &plan]).expect_ok();
}

/// A plan with a legacy role rehearses too: the throwaway cluster gets the role (pg_dump does
/// not carry roles) and the copy the source database's name (the step names it), and the
/// source's own role keeps its settings.
#[tokio::test(flavor = "multi_thread")]
async fn rehearsing_a_plan_with_a_legacy_role_creates_the_role_in_the_copy_only() {
    let db = sample_db("rehearse_legacy", 300).await;
    db.exec(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rehearsed_app') THEN \
         CREATE ROLE rehearsed_app LOGIN; END IF; END $$",
    )
    .await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &["--legacy-role", "rehearsed_app"]).await;
    let out = dir.path().join("rehearsals");
    for args in [
        vec!["rehearse", "--source", &db.url, "--plan", &plan, "--out-dir", out.to_str().unwrap()],
        vec![
            "rehearse",
            "--source",
            &db.url,
            "--out-dir",
            out.to_str().unwrap(),
            "--exclude",
            "issue_statuses",
            "--legacy-role",
            "rehearsed_app",
        ],
    ] {
        run_tenantize(&args, &[]).expect_ok().expect_output("rehearsal ok");
    }
    let settings = "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                     WHERE r.rolname = 'rehearsed_app'";
    assert_eq!(db.query_i64(settings).await, 0, "the source's role was not touched");
}
