//! Switching direction, and what happens when the database changes under a run: every
//! sequence of apply and rollback ends where the last command asked, the application's own
//! changes are left as it made them, and the tool tells the truth about what it changed.

mod common;
use common::*;

use std::time::{Duration, Instant};

const ROWS: u64 = 600;

/// Every statement the server ran is logged: the session-settings test reads them back.
fn logged_cluster() {
    cluster_with_settings(&["log_statement = 'all'", "log_line_prefix = '[%a] '"]);
}

fn plan(db: &TestDb, dir: &tempfile::TempDir) -> String {
    db.plan_sample(&dir.path().join("plan.toml"), &[])
}

async fn hold(db: &TestDb, lock_sql: &str, application: &str) -> tokio_postgres::Client {
    let client = db.connect().await;
    client
        .batch_execute(&format!("SET application_name = '{application}'; BEGIN; {lock_sql}"))
        .await
        .unwrap();
    client
}

/// The original state every round trip must come back to.
struct Original {
    schema: String,
    rows: std::collections::BTreeMap<String, (i64, String)>,
}

async fn original(db: &TestDb) -> Original {
    Original { schema: db.schema_dump(), rows: db.row_checksums(&["public"], "tenant_id").await }
}

async fn assert_back_to(db: &TestDb, original: &Original) {
    let schema = db.schema_dump();
    if schema != original.schema {
        panic!("the schema is not as before:\n{}", text_diff(&original.schema, &schema));
    }
    assert_eq!(db.row_checksums(&["public"], "tenant_id").await, original.rows, "rows changed");
}

/// The sequence that used to leave the database stuck with no fault at all: apply, undo
/// stage 8, a rollback --all that gives up on a lock half-way through stage 7, then apply.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_gives_up_on_a_lock_then_apply_finishes_and_rolls_back_clean() {
    logged_cluster();
    let db = sample_db("gives_up", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    let before = original(&db).await;
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["rollback", &plan, "--to", "7", "--yes"]).expect_ok();
    let blocker = hold(&db, "LOCK TABLE public.issue_comments IN ACCESS SHARE MODE;", "report-job").await;
    let blocker_pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // The concurrent rebuilds wait for the blocker's transaction too; a short long-lock timeout
    // makes them give up like the DDL does.
    let refused = db.tenantize(&[
        "rollback",
        &plan,
        "--all",
        "--yes",
        "--max-attempts",
        "3",
        "--long-lock-timeout-ms",
        "1000",
    ]);
    refused
        .expect_code(4)
        .expect_output("gave up after 3 attempts")
        .expect_output(&format!("the lock is held by pid {blocker_pid} (\"report-job\""))
        .expect_output("run rollback again to resume");
    // The journal says the same.
    let status = db.tenantize(&["status", &plan, "--json"]);
    assert!(status.stdout.contains(&format!("the lock is held by pid {blocker_pid}")), "{}", status.text());
    blocker.batch_execute("ROLLBACK").await.unwrap();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok().expect_output("(applied through stage 8): ok");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_indexes WHERE tablename = 'issues' AND indexdef LIKE '%UNIQUE%(project_id, number)%'").await,
        0,
        "no second global unique on issues"
    );
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    assert_back_to(&db, &before).await;
}

/// The application adds a key of its own onto a unique the plan swaps, mid-conversion (in a
/// schema the plan does not convert, so no drift check sees it): the swap stops, saying why,
/// and the rollback finishes, leaving the application's key as it made it.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_key_added_onto_a_unique_being_swapped_stops_apply_and_rollback_still_finishes() {
    logged_cluster();
    let db = sample_db("app_fk", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--through", "6", "--yes"]).expect_ok();
    db.exec(
        "CREATE SCHEMA partner; CREATE TABLE partner.links (project_key text REFERENCES public.projects (key));
         INSERT INTO partner.links SELECT key FROM public.projects LIMIT 3;",
    )
    .await;
    // What the original looks like with the application's change.
    let failed = db.tenantize(&["apply", &plan, "--yes"]);
    failed
        .expect_code(2)
        .expect_output("projects_key_key")
        .expect_output("links_project_key_fkey")
        .expect_output("tenantize never drops what it did not create");
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'links_project_key_fkey' AND convalidated"
        )
        .await,
        1,
        "the application's key is still there"
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM partner.links").await, 3);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id' AND attrelid = 'public.projects'::regclass").await,
        0
    );
    db.tenantize(&["verify", &plan]).expect_ok();
}

/// The application drops a unique the plan would rebuild: apply refuses (drift), saying what
/// to do now that steps have run; the rollback reports it and never brings the unique back.
#[tokio::test(flavor = "multi_thread")]
async fn a_unique_dropped_by_the_application_is_never_rebuilt() {
    logged_cluster();
    let db = sample_db("app_drop", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--through", "6", "--yes"]).expect_ok();
    db.exec("DROP INDEX public.attachments_issue_id_sha256_key").await;
    db.tenantize(&["apply", &plan, "--yes"])
        .expect_code(5)
        .expect_output("table public.attachments changed")
        .expect_output("cannot take over from here");
    let undone = db.tenantize(&["rollback", &plan, "--all", "--yes"]);
    undone.expect_ok().expect_output("undoes only what tenantize made and leaves this as it is");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname LIKE 'attachments_issue_id_sha256_key%'")
            .await,
        0
    );
    // Everything else is undone.
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id'").await, 0);

    // The same after the swap: the application drops the scoped unique; the rollback leaves
    // it dropped (it would otherwise rebuild the global one).
    let db = sample_db("app_drop_scoped", ROWS).await;
    let plan = db.plan_sample(&dir.path().join("plan2.toml"), &[]);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.exec("DROP INDEX public.attachments_issue_id_sha256_key").await;
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname LIKE 'attachments_issue_id_sha256_key%'")
            .await,
        0
    );
}

/// A column the application adds after the conversion stays through the rollback, and the
/// rollback says so before it starts.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_reports_drift_and_leaves_the_applications_change() {
    logged_cluster();
    let db = sample_db("rollback_drift", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.exec("ALTER TABLE users ADD COLUMN nickname text").await;
    db.tenantize(&["rollback", &plan, "--all", "--yes"])
        .expect_ok()
        .expect_output("table public.users changed: column")
        .expect_output("nickname");
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'nickname' AND attrelid = 'public.users'::regclass").await, 1);
}

/// A connection lost after some steps were undone is a failed rollback that says how far it
/// got, never "nothing was changed".
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_lost_mid_rollback_is_reported_as_a_failed_rollback_with_its_progress() {
    logged_cluster();
    let db = sample_db("lost_mid_rollback", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    // Stage 8 is undone, then the rollback waits for this lock in stage 7.
    let blocker = hold(&db, "LOCK TABLE public.issue_comments IN ACCESS SHARE MODE;", "slow-report").await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantize"))
        .args(["rollback", &plan, "--all", "--yes", "--lock-timeout-ms", "200", "--max-attempts", "100"])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND application_name = 'tenantize rollback' AND wait_event_type = 'Lock'";
    let started = Instant::now();
    while db.query_i64(waiting).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the rollback never waited on the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize rollback'").await;
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("had been rolled back") && !text.contains("nothing was changed"), "{text}");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
}

/// `verify` does not say ok while the journal holds a failed step.
#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_while_a_step_is_failed_in_the_journal() {
    logged_cluster();
    let db = sample_db("verify_failed_step", ROWS).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let blocker = hold(&db, "LOCK TABLE public.users IN ACCESS SHARE MODE;", "long-job").await;
    db.tenantize(&["apply", &plan, "--yes", "--max-attempts", "1"]).expect_code(2);
    blocker.batch_execute("ROLLBACK").await.unwrap();
    db.tenantize(&["verify", &plan]).expect_code(3).expect_output("3.add-column:public.users failed");
}

/// After a statement that cannot run in a transaction, the tool's session goes back to its own
/// settings, never to the role's defaults (a RESET would pick up a role's 1 ms lock_timeout).
#[tokio::test(flavor = "multi_thread")]
async fn after_a_concurrent_statement_the_session_keeps_the_tools_own_settings() {
    logged_cluster();
    let db = sample_db("session_baseline", ROWS).await;
    db.exec(&format!("ALTER ROLE postgres IN DATABASE {} SET lock_timeout = '1ms'", db.name)).await;
    let dir = scratch_dir();
    let plan = plan(&db, &dir);
    db.tenantize(&["apply", &plan, "--through", "6", "--yes", "--lock-timeout-ms", "150"]).expect_ok();
    let log = std::fs::read_to_string(cluster().socket_dir().join("server.log")).expect("the server log");
    // A logged statement spans several lines; only its first carries the prefix.
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        match entries.last_mut() {
            Some(entry) if !line.starts_with('[') => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => entries.push(line.to_string()),
        }
    }
    let ours: Vec<&String> = entries.iter().filter(|l| l.starts_with("[tenantize apply]")).collect();
    let concurrent =
        ours.iter().position(|l| l.contains("INDEX CONCURRENTLY")).expect("a concurrent build was logged");
    assert!(
        !ours.iter().any(|l| l.contains("RESET lock_timeout")),
        "the session was RESET to the role's defaults"
    );
    assert!(
        ours[concurrent..]
            .iter()
            .any(|l| l.contains("SET lock_timeout = '150ms'; SET statement_timeout = 0;")),
        "the session's own lock_timeout was not put back after the concurrent build"
    );
}
