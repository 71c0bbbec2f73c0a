//! Fault injection: kill the tool with SIGKILL at points spread over every stage (mid-batch of
//! a batched backfill and mid-index-build among them) and terminate its server connection at
//! others. After each, `apply` again must resume and finish, leave no invalid index, give the
//! same schema as an uninterrupted run, and lose or change no pre-existing row.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

const ROWS: u64 = 3000;

/// The uninterrupted run everything is compared with.
struct Baseline {
    plan: PathBuf,
    /// (unit number, step id) for every unit of work of a full apply.
    units: Vec<(u64, String)>,
    schema_after: String,
    rows_before: BTreeMap<String, (i64, String)>,
}

static BASELINE: OnceCell<Baseline> = OnceCell::const_new();

async fn baseline() -> &'static Baseline {
    BASELINE
        .get_or_init(|| async {
            let db = sample_db("fault_base", ROWS).await;
            let dir = scratch_dir().keep();
            let plan = dir.join("plan.toml");
            db.plan_sample(&plan, &["--backfill", "batched", "--batch-rows", "400"]);
            let rows_before = db.row_checksums(&["public"], "tenant_id").await;
            let trace = dir.join("units.tsv");
            run_tenantize(
                &["apply", plan.to_str().unwrap(), "--yes"],
                &[("DATABASE_URL", db.url.as_str()), ("TENANTIZE_FAILPOINT_TRACE", trace.to_str().unwrap())],
            )
            .expect_ok();
            db.tenantize(&["verify", plan.to_str().unwrap()]).expect_ok();
            let units = std::fs::read_to_string(&trace)
                .unwrap()
                .lines()
                .map(|l| {
                    let (n, step) = l.split_once('\t').unwrap();
                    (n.parse().unwrap(), step.to_string())
                })
                .collect();
            Baseline { plan, units, schema_after: db.schema_dump(), rows_before }
        })
        .await
}

impl Baseline {
    /// The plan, made `db`'s (each test runs on its own copy of the sample).
    fn plan_for(&self, db: &TestDb) -> String {
        retargeted(&self.plan, db)
    }

    /// The `nth` unit (0-based, from the end if negative) of the first step whose id starts
    /// with `prefix`, as a failpoint aims at it: `STEP#K`. By step, not by the run's unit
    /// number: the batched backfill sizes its batches by commit latency, so how many there are
    /// depends on the machine's load.
    fn unit(&self, prefix: &str, nth: isize) -> String {
        let step = self.units.iter().find(|(_, s)| s.starts_with(prefix)).map(|(_, s)| s.clone());
        let step = step.unwrap_or_else(|| panic!("no unit of a step {prefix}* in {:?}", self.units));
        let count = self.units.iter().filter(|(_, s)| *s == step).count();
        let index = if nth >= 0 { nth as usize } else { count - (-nth) as usize };
        format!("{step}#{}", index.min(count - 1) + 1)
    }

    /// The run's last unit, as [`Baseline::unit`] gives it.
    fn last_unit(&self) -> String {
        let step = &self.units.last().unwrap().1;
        format!("{step}#{}", self.units.iter().filter(|(_, s)| s == step).count())
    }
}

/// After an interruption: apply again resumes and finishes, and the result is exactly that of
/// the uninterrupted run.
async fn resumes_to_the_same_result(db: &TestDb, base: &Baseline) {
    let resumed = db.tenantize(&["apply", &base.plan_for(db), "--yes"]);
    resumed.expect_ok();
    db.tenantize(&["verify", &base.plan_for(db)]).expect_ok();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_index WHERE NOT indisvalid").await,
        0,
        "an invalid index was left"
    );
    let schema = db.schema_dump();
    if schema != base.schema_after {
        panic!(
            "the resumed conversion differs from an uninterrupted one:\n{}",
            text_diff(&base.schema_after, &schema)
        );
    }
    let mut rows = db.row_checksums(&["public"], "tenant_id").await;
    rows.retain(|t, _| base.rows_before.contains_key(t));
    assert_eq!(rows, base.rows_before, "a pre-existing row was lost or changed");
}

async fn kill_at(point: &str, name: &str) {
    let base = baseline().await;
    let db = sample_db(name, ROWS).await;
    let run = run_tenantize(
        &["apply", &base.plan_for(&db), "--yes"],
        &[("DATABASE_URL", db.url.as_str()), ("TENANTIZE_FAILPOINT", point)],
    );
    assert_eq!(run.signal, Some(9), "the failpoint {point} did not kill the run:\n{}", run.text());
    resumes_to_the_same_result(&db, base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_inside_the_tenant_table_transaction() {
    let base = baseline().await;
    kill_at(&format!("before-commit:{}", base.unit("1.", 0)), "kill_stage1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_the_default_tenant_commits() {
    let base = baseline().await;
    kill_at(&format!("after-commit:{}", base.unit("2.", 0)), "kill_stage2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_inside_an_add_column_transaction() {
    let base = baseline().await;
    kill_at(&format!("before-commit:{}", base.unit("3.add-column:public.issues", 0)), "kill_stage3").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_batch_of_a_batched_backfill() {
    let base = baseline().await;
    kill_at(&format!("before-commit:{}", base.unit("4.backfill:public.issue_comments", 3)), "kill_mid_batch")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_two_backfill_batches() {
    let base = baseline().await;
    kill_at(
        &format!("after-commit:{}", base.unit("4.backfill:public.issue_comments", 5)),
        "kill_between_batches",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_validate_before_set_not_null() {
    let base = baseline().await;
    kill_at(&format!("after-commit:{}", base.unit("5.not-null:public.issues", 1)), "kill_stage5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_an_index_build_before_it_was_journaled() {
    let base = baseline().await;
    kill_at(&format!("after-commit:{}", base.unit("6.indexes:public.issues", 0)), "kill_stage6_after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_just_before_an_index_build() {
    let base = baseline().await;
    kill_at(
        &format!("before-commit:{}", base.unit("6.indexes:public.issue_comments", -1)),
        "kill_stage6_before",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_a_not_valid_tenant_foreign_key() {
    let base = baseline().await;
    kill_at(&format!("after-commit:{}", base.unit("7.foreign-keys:public.issues", 0)), "kill_stage7_fk")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_inside_a_unique_swap() {
    let base = baseline().await;
    kill_at(&format!("before-commit:{}", base.unit("7.unique-swap:public.projects", 0)), "kill_stage7_swap")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_inside_the_rls_transaction() {
    let base = baseline().await;
    kill_at(&format!("before-commit:{}", base.unit("8.rls:public.issues", 0)), "kill_stage8").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_very_last_commit() {
    let base = baseline().await;
    kill_at(&format!("after-commit:{}", base.last_unit()), "kill_last").await;
}

fn spawn_apply(db: &TestDb, plan: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tenantize"))
        .args(["apply", plan, "--yes"])
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

const WAITING: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'tenantize apply' AND wait_event_type = 'Lock'";

#[tokio::test(flavor = "multi_thread")]
async fn killed_in_the_middle_of_a_concurrent_index_build() {
    let base = baseline().await;
    let db = sample_db("kill_mid_index", ROWS).await;
    db.tenantize(&["apply", &base.plan_for(&db), "--through", "5", "--yes"]).expect_ok();
    // An open write keeps CREATE INDEX CONCURRENTLY waiting after it created its catalog entry.
    let writer = db.connect().await;
    writer
        .batch_execute("BEGIN; UPDATE public.attachments SET filename = filename WHERE false")
        .await
        .unwrap();
    writer.batch_execute("LOCK TABLE public.attachments IN ROW EXCLUSIVE MODE").await.unwrap();
    let mut child = spawn_apply(&db, &base.plan_for(&db));
    wait_for(
        &db,
        "SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'tenantize apply' AND p.relid = 'public.attachments'::regclass",
        Duration::from_secs(60),
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    // A killed client does not stop its server backend: the build would go on, orphaned, and
    // hold the run's advisory lock until it ends. A crash that takes the connections down too
    // (the machine, the network) leaves an INVALID index: that is the case to resume from.
    db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tenantize apply%'")
        .await;
    // pg_terminate_backend only signals: wait until the backend is gone before the writer lets
    // the build go on.
    wait_for(&db, "SELECT (count(*) = 0)::int::int8 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tenantize apply%'", Duration::from_secs(60)).await;
    writer.batch_execute("ROLLBACK").await.unwrap();
    if db.query_i64("SELECT count(*) FROM pg_index WHERE NOT indisvalid").await == 0 {
        let client = db.connect().await;
        let rows = client
            .query("SELECT indexrelid::regclass::text, indisvalid, indisready FROM pg_index WHERE indrelid = 'public.attachments'::regclass", &[])
            .await
            .unwrap();
        let list: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} valid={} ready={}",
                    r.get::<_, String>(0),
                    r.get::<_, bool>(1),
                    r.get::<_, bool>(2)
                )
            })
            .collect();
        let activity = client
            .query("SELECT coalesce(application_name,'') || ' ' || coalesce(state,'') || ' ' || coalesce(query,'') FROM pg_stat_activity WHERE datname = current_database()", &[])
            .await
            .unwrap();
        let act: Vec<String> = activity.iter().map(|r| r.get(0)).collect();
        panic!("the interrupted build should leave an INVALID index behind: {list:?}\n{act:?}");
    }
    resumes_to_the_same_result(&db, base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_whose_backend_still_works_holds_the_lock_and_is_named() {
    let base = baseline().await;
    let db = sample_db("orphan_backend", ROWS).await;
    db.tenantize(&["apply", &base.plan_for(&db), "--through", "5", "--yes"]).expect_ok();
    let writer = db.connect().await;
    writer.batch_execute("BEGIN; LOCK TABLE public.attachments IN ROW EXCLUSIVE MODE").await.unwrap();
    let mut child = spawn_apply(&db, &base.plan_for(&db));
    wait_for(
        &db,
        "SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'tenantize apply' AND p.relid = 'public.attachments'::regclass",
        Duration::from_secs(60),
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    // The orphaned backend still builds the index and still holds the run's lock.
    db.tenantize(&["apply", &base.plan_for(&db), "--yes"])
        .expect_code(5)
        .expect_output("another tenantize run holds the lock")
        .expect_output("tenantize apply");
    writer.batch_execute("ROLLBACK").await.unwrap();
    // Once the orphan finishes (and notices its client is gone), a new run resumes.
    let started = Instant::now();
    loop {
        let run = db.tenantize(&["apply", &base.plan_for(&db), "--yes"]);
        if run.code == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the orphaned backend never let go:\n{}",
            run.text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    resumes_to_the_same_result(&db, base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_terminated_while_waiting_to_swap_in_a_foreign_key() {
    let base = baseline().await;
    let db = sample_db("terminate_stage7", ROWS).await;
    db.tenantize(&["apply", &base.plan_for(&db), "--through", "6", "--yes"]).expect_ok();
    let blocker = db.connect().await;
    blocker.batch_execute("BEGIN; LOCK TABLE public.projects IN ACCESS SHARE MODE").await.unwrap();
    let mut child = spawn_apply(&db, &base.plan_for(&db));
    wait_for(&db, WAITING, Duration::from_secs(60)).await;
    db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply'")
        .await;
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "a lost connection fails the step (exit 2)");
    blocker.batch_execute("COMMIT").await.unwrap();
    resumes_to_the_same_result(&db, base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_terminated_mid_backfill() {
    let base = baseline().await;
    let db = sample_db("terminate_backfill", ROWS).await;
    db.tenantize(&["apply", &base.plan_for(&db), "--through", "3", "--yes"]).expect_ok();
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; SELECT * FROM public.issue_comments WHERE id = 1500 FOR UPDATE")
        .await
        .unwrap();
    let mut child = spawn_apply(&db, &base.plan_for(&db));
    wait_for(&db, WAITING, Duration::from_secs(60)).await;
    db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantize apply'")
        .await;
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert!(db.query_i64("SELECT count(*) FROM public.issue_comments WHERE tenant_id IS NOT NULL").await > 0);
    resumes_to_the_same_result(&db, base).await;
}
