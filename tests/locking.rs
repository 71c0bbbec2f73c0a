//! Online safety under real contention: short lock timeouts with retries that name the
//! blocker, clean failure when a lock never comes, safe cancellation, a dropped connection,
//! a killed process, and INVALID leftovers of interrupted index builds.

mod common;
use common::*;

use std::time::{Duration, Instant};

async fn plan_for(db: &TestDb, dir: &tempfile::TempDir, extra: &[&str]) -> String {
    db.plan_sample(&dir.path().join("plan.toml"), extra)
}

/// A connection that holds ACCESS SHARE on `table` in an open transaction.
async fn hold_read_lock(db: &TestDb, table: &str, application: &str) -> (tokio_postgres::Client, i32) {
    let client = db.connect().await;
    client.batch_execute(&format!("SET application_name = '{application}'")).await.unwrap();
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    client.batch_execute(&format!("BEGIN; SELECT count(*) FROM {table};")).await.unwrap();
    (client, pid)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_step_retries_names_its_blocker_and_never_stalls_readers() {
    let db = sample_db("retry", 500).await;
    let dir = scratch_dir();
    let plan = plan_for(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let (blocker, pid) = hold_read_lock(&db, "public.users", "nightly-report").await;
    let child =
        spawn_tenantize(&["apply", &plan, "--through", "3", "--yes", "--lock-timeout-ms", "200"], &db);
    // While tenantize waits for ACCESS EXCLUSIVE, other readers are held up at most one short
    // lock timeout at a time, never for the whole time the blocker runs.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reader = db.connect().await;
    for _ in 0..5 {
        let started = Instant::now();
        reader.query_one("SELECT count(*) FROM public.users", &[]).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1500), "a reader waited {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let run = finish(child, Duration::from_secs(60));
    run.expect_ok()
        .expect_output("canceling statement due to lock timeout: retry")
        .expect_output(&format!("blocked by pid {pid} (\"nightly-report\", idle in transaction"));
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id'").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_that_never_comes_fails_the_step_cleanly_and_a_later_run_resumes() {
    let db = sample_db("never", 500).await;
    let dir = scratch_dir();
    let plan = plan_for(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let (blocker, _) = hold_read_lock(&db, "public.users", "long-job").await;
    db.tenantize(&["apply", &plan, "--yes", "--lock-timeout-ms", "100", "--max-attempts", "3"])
        .expect_code(2)
        .expect_output("step 3.add-column:public.users failed: canceling statement due to lock timeout");
    // The atomic step left nothing behind, and the journal says what happened.
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id'").await, 0);
    let status = db.tenantize(&["status", &plan, "--json"]);
    status.expect_ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let step = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "3.add-column:public.users")
        .unwrap();
    assert_eq!(step["state"], "failed");
    assert!(step["error"].as_str().unwrap().contains("lock timeout"));
    blocker.batch_execute("COMMIT").await.unwrap();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_running_step_safely() {
    let db = sample_db("cancel", 500).await;
    let dir = scratch_dir();
    let plan = plan_for(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let (blocker, _) = hold_read_lock(&db, "public.users", "long-job").await;
    let child = spawn_tenantize(&["apply", &plan, "--yes", "--lock-timeout-ms", "5000"], &db);
    wait_for(&db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply' AND wait_event_type = 'Lock'", Duration::from_secs(20)).await;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = finish(child, Duration::from_secs(30));
    run.expect_code(2).expect_output("cancelled during step 3.add-column:public.users");
    blocker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id'").await, 0);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_connection_fails_the_run_and_the_next_run_resumes() {
    let db = sample_db("terminated", 500).await;
    let dir = scratch_dir();
    let plan = plan_for(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let (blocker, _) = hold_read_lock(&db, "public.users", "long-job").await;
    let child = spawn_tenantize(&["apply", &plan, "--yes", "--lock-timeout-ms", "5000"], &db);
    wait_for(&db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply' AND wait_event_type = 'Lock'", Duration::from_secs(20)).await;
    db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply'").await;
    let run = finish(child, Duration::from_secs(30));
    run.expect_code(2).expect_output("connection to the server was lost");
    blocker.batch_execute("COMMIT").await.unwrap();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_batched_backfill_resumes_from_its_last_batch() {
    let db = sample_db("killed_backfill", 6000).await;
    let dir = scratch_dir();
    let plan = plan_for(&db, &dir, &["--backfill", "batched", "--batch-rows", "500"]).await;
    let rows_before = db.row_checksums(&["public"], "tenant_id").await;
    db.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    // Hold one row in the middle of issue_comments so its batch has to wait.
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; SELECT * FROM public.issue_comments WHERE id = 3200 FOR UPDATE")
        .await
        .unwrap();
    let child = spawn_tenantize(&["apply", &plan, "--yes", "--lock-timeout-ms", "5000"], &db);
    wait_for(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply' AND wait_event_type = 'Lock'",
        Duration::from_secs(60),
    )
    .await;
    let mut child = child;
    child.kill().unwrap();
    let _ = child.wait();
    holder.batch_execute("ROLLBACK").await.unwrap();
    let done_before =
        db.query_i64("SELECT count(*) FROM public.issue_comments WHERE tenant_id IS NOT NULL").await;
    if !(500..6000).contains(&done_before) {
        let client = db.connect().await;
        let rows = client.query("SELECT step_id || ' ' || state || ' ' || coalesce(resume_key, '') FROM tenantize.steps ORDER BY position", &[]).await.unwrap();
        let journal: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        panic!("the kill should land mid-backfill ({done_before} done); journal:\n{}", journal.join("\n"));
    }
    let resume_key = db
        .query_i64("SELECT count(*) FROM tenantize.steps WHERE step_id = '4.backfill:public.issue_comments' AND state = 'running' AND resume_key LIKE '%batch_key%'")
        .await;
    assert_eq!(resume_key, 1, "the journal keeps the last batch done");
    let run = db.tenantize(&["apply", &plan, "--yes"]);
    run.expect_ok().expect_output(
        "4.backfill:public.issue_comments: Backfill public.issue_comments in batches (resuming",
    );
    db.tenantize(&["verify", &plan]).expect_ok();
    let mut rows_after = db.row_checksums(&["public"], "tenant_id").await;
    rows_after.retain(|t, _| rows_before.contains_key(t));
    assert_eq!(rows_before, rows_after);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_index_left_by_an_interrupted_build_is_dropped_and_rebuilt() {
    let db = sample_db("invalid_index", 500).await;
    let dir = scratch_dir();
    let plan_path = plan_for(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan_path, "--through", "5", "--yes"]).expect_ok();
    let plan = tenantize::plan::file::load(std::path::Path::new(&plan_path)).unwrap();
    let statement = plan
        .steps
        .iter()
        .filter(|s| s.stage == tenantize::plan::Stage::Indexes)
        .flat_map(|s| s.forward())
        .find(|s| s.kind == tenantize::plan::StatementKind::ConcurrentIndex)
        .expect("stage 6 builds indexes concurrently");
    let index = statement.index.clone().unwrap();
    // What a build killed between its phases leaves behind: the index, marked INVALID.
    db.exec(&statement.sql.replace(" CONCURRENTLY", "")).await;
    db.exec(&format!("UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index}'::regclass")).await;
    db.tenantize(&["apply", &plan_path, "--yes"]).expect_ok();
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM pg_index WHERE indexrelid = '{index}'::regclass AND indisvalid"
        ))
        .await,
        1
    );
    db.tenantize(&["verify", &plan_path]).expect_ok();
}
