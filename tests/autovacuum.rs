//! A routine autovacuum holding a table makes a DDL statement wait, and every write queues
//! behind the waiting statement. PostgreSQL would cancel the autovacuum only after
//! `deadlock_timeout`, longer than tenantize's lock timeout, so tenantize cancels it itself
//! (unless told not to) and says so.
//!
//! This binary's cluster runs autovacuum every second; the table under test is made to
//! vacuum slowly (cost delay) so an autovacuum is reliably running when the step starts.

mod common;
use common::*;

use std::time::{Duration, Instant};

async fn autovacuum_running_on_users(db: &TestDb) {
    // Dead tuples, and a vacuum that sleeps 100 ms after every page.
    db.exec(
        "ALTER TABLE public.users SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0,
                                       autovacuum_analyze_threshold = 0, autovacuum_analyze_scale_factor = 0,
                                       autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1);
         UPDATE public.users SET display_name = display_name;",
    )
    .await;
    let started = Instant::now();
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'
            AND query LIKE '%public.users%' AND datname = '{}'",
        db.name
    );
    while db.query_i64(&running).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "autovacuum never started on public.users");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocking_autovacuum_is_cancelled_or_waited_for() {
    cluster_with_settings(&["autovacuum_naptime = 1"]);
    let db = sample_db("autovacuum", 20_000).await;
    assert_eq!(
        db.query_i64("SELECT extract(epoch FROM current_setting('autovacuum_naptime')::interval)::int8")
            .await,
        1
    );
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    let plan = plan.as_str();
    let log = dir.path().join("run.jsonl");
    db.tenantize(&["apply", plan, "--through", "2", "--yes"]).expect_ok();

    // Told not to cancel: the step waits with short lock timeouts, naming the autovacuum,
    // and goes on once it is done.
    autovacuum_running_on_users(&db).await;
    db.tenantize(&[
        "apply",
        plan,
        "--through",
        "3",
        "--yes",
        "--no-cancel-autovacuum",
        "--max-attempts",
        "60",
    ])
    .expect_ok()
    .expect_output("canceling statement due to lock timeout: retry")
    .expect_output("autovacuum: VACUUM");
    db.tenantize(&["rollback", plan, "--to", "2", "--yes"]).expect_ok();

    // By default: cancelled at once, reported, and in the run log.
    autovacuum_running_on_users(&db).await;
    let run = db.tenantize(&["apply", plan, "--through", "3", "--yes", "--log", log.to_str().unwrap()]);
    run.expect_ok()
        .expect_output("blocked by autovacuum: VACUUM")
        .expect_output("cancelled; it runs again later");
    let text = std::fs::read_to_string(&log).unwrap();
    let event = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"]["event"] == "autovacuum_cancelled")
        .unwrap_or_else(|| panic!("no autovacuum_cancelled event in the run log:\n{text}"));
    assert_eq!(event["event"]["cancelled"], true, "{event}");
    assert!(event["event"]["query"].as_str().unwrap().contains("public.users"), "{event}");
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id'").await, 1);
}
