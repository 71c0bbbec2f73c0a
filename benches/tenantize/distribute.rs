//! Run `d`: stage 9 (distribution on Citus) of the sample while the writer runs. A coordinator
//! and two workers (fsync on, 127.0.0.1, free ports, each removed when dropped), one database
//! made Citus ready on all three, the sample loaded into it at `--dist-rows`. Stages 1–8 are
//! applied first without the writer (runs b and c measure those), then stage 9 alone with the
//! writer going: the same engine call a resumed `tenantize apply` makes, which skips the steps
//! the journal has as done. The rows are checked through the coordinator.

use std::time::{Duration, Instant};

use tenantize::db::describe_pg_error;
use tenantize::engine::StopAfter;
use tenantize::plan::{Distribution, PlanOptions, PrimaryKeyScope, Stage};
use tenantize::sandbox::{Cluster, ClusterOptions};

use crate::RunResult;
use crate::args::Args;
use crate::conversions::apply;
use crate::data::{changed, checksums};
use crate::writer::{Phases, with_writer};

const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

/// The sample's keys with ON DELETE SET NULL, which Citus refuses on a tenant-scoped key: the
/// operator accepts NO ACTION for them on the distributed tables (as `tests/distribute.rs`).
const ACKNOWLEDGE: [&str; 4] = [
    "citus-foreign-key-action:public.attachments.attachments_comment_id_fkey",
    "citus-foreign-key-action:public.issues.issues_assignee_id_fkey",
    "citus-foreign-key-action:public.issues.issues_epic_id_fkey",
    "citus-foreign-key-action:public.issues.issues_sprint_id_fkey",
];

fn start_node(settings: &[String]) -> Cluster {
    let options =
        ClusterOptions { tcp: true, durable: true, extra_settings: settings.to_vec(), ..Default::default() };
    Cluster::start(&options).unwrap_or_else(|e| {
        panic!("a Citus node: {e} (is Citus installed into this PostgreSQL? shared/vendor/citus/build.sh)")
    })
}

async fn exec(node: &Cluster, database: &str, sql: &str) {
    let client = node.conn_spec(database).connect("bench citus").await.expect("connect to a Citus node");
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", describe_pg_error(&e)));
}

/// A database of the same name on every node, the extension in each, the coordinator
/// registered and both workers added.
async fn citus_database(coordinator: &Cluster, workers: &[Cluster]) -> String {
    let name = coordinator.create_database("bench_dist", None).await.expect("create the database");
    for worker in workers {
        exec(worker, "postgres", &format!("CREATE DATABASE {name}")).await;
        exec(worker, &name, "CREATE EXTENSION citus").await;
    }
    exec(coordinator, &name, "CREATE EXTENSION citus").await;
    let port = coordinator.port();
    exec(coordinator, &name, &format!("SELECT citus_set_coordinator_host('127.0.0.1', {port})")).await;
    for worker in workers {
        exec(coordinator, &name, &format!("SELECT citus_add_node('127.0.0.1', {})", worker.port())).await;
    }
    name
}

/// What stage 9 left: hash-distributed and reference tables, shard placements per worker.
async fn distribution_facts(spec: &tenantize::db::ConnSpec) -> String {
    let client = spec.connect("bench facts").await.unwrap();
    let count = async |sql: &str| -> i64 { client.query_one(sql, &[]).await.unwrap().get(0) };
    let hashed = count("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'").await;
    let reference = count("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'n'").await;
    let placements: Vec<String> = client
        .query(
            "SELECT n.nodeport, count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
              WHERE n.groupid <> 0 GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}", r.get::<_, i64>(1)))
        .collect();
    format!(
        "{hashed} tables hash-distributed, {reference} reference tables, shard placements per worker: {}",
        placements.join(" + ")
    )
}

/// Stage 9 ran out of time: stop the engine's statements (dropping its connection does not
/// stop a running one) and say which step it was in and what the workers logged.
async fn unfinished(
    client: &tokio_postgres::Client,
    phases: &Phases,
    workers: &[Cluster],
    seconds: u64,
) -> String {
    client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'tenantize bench' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let step = phases.lock().unwrap().last().map(|(_, _, label)| label.clone()).unwrap_or_default();
    let mut errors: Vec<String> = Vec::new();
    for worker in workers {
        let log = std::fs::read_to_string(worker.socket_dir().join("server.log")).unwrap_or_default();
        let mut lines = log.lines().filter(|l| l.contains("ERROR:"));
        let count = lines.clone().count();
        if let Some(first) = lines.next() {
            let text = first.split("ERROR:").nth(1).unwrap_or(first).trim();
            errors.push(format!("worker {}: {count} × \"{text}\"", worker.port()));
        }
    }
    format!(
        "UNFINISHED: stopped after {seconds} s in {step}; worker logs: {}",
        if errors.is_empty() { "no errors".to_string() } else { errors.join("; ") }
    )
}

pub async fn distribution(args: &Args) -> RunResult {
    let name = "(d) stage 9: distribute on Citus";
    eprintln!("{name}: starting a coordinator and two workers (fsync on)…");
    let settings = tenantize::sandbox::citus_node_settings().expect("PostgreSQL server binaries");
    let coordinator = start_node(&settings);
    let workers: Vec<Cluster> = (0..2).map(|_| start_node(&settings)).collect();
    let database = citus_database(&coordinator, &workers).await;
    let spec = coordinator.conn_spec(&database);
    eprintln!("{name}: loading the sample with {} rows in issue_comments…", args.dist_rows);
    let client = spec.connect("bench load").await.unwrap();
    tenantize::sample::load(&client, args.dist_rows).await.unwrap();
    let max_issue: i64 = client.query_one("SELECT max(id) FROM public.issues", &[]).await.unwrap().get(0);
    let max_comment: i64 =
        client.query_one("SELECT max(id) FROM public.issue_comments", &[]).await.unwrap().get(0);
    let original = checksums(&spec, max_issue, max_comment).await;

    let options = PlanOptions {
        exclude: vec!["public.issue_statuses".into()],
        acknowledge: ACKNOWLEDGE.iter().map(|a| a.to_string()).collect(),
        distribute: Some(Distribution { shard_count: Some(args.dist_shard_count), allow_blocking: true }),
        // What the CLI implies with --distribute: the tenant column in every primary key.
        scope_primary_keys: PrimaryKeyScope::All,
        ..PlanOptions::default()
    };
    let plan = tenantize::app::live::build_plan(&spec, &options).await.map_err(|e| e.message).expect("plan");
    eprintln!("{name}: stages 1–8 without the writer…");
    let started = Instant::now();
    let (_, before_note) = apply(&spec, plan.clone(), StopAfter::Stage(Stage::Rls), &Phases::default()).await;
    let stages_1_8_s = started.elapsed().as_secs_f64();
    // As each copy of the other runs: this run pays only for its own writes.
    client.batch_execute("CHECKPOINT").await.unwrap();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };

    eprintln!("{name}: stage 9 with the writer going…");
    let phases = Phases::default();
    let limit = Duration::from_secs(args.dist_timeout);
    let (finished, writes, total, slowest) =
        with_writer(&spec, args, max_issue, Some(DEFAULT_TENANT), &phases, async {
            tokio::time::timeout(limit, apply(&spec, plan, StopAfter::Conversion, &phases)).await
        })
        .await;
    let note = match finished {
        Ok((_, note)) => note,
        Err(_) => unfinished(&client, &phases, &workers, args.dist_timeout).await,
    };
    let after = checksums(&spec, max_issue, max_comment).await;
    let (changed_rows, tables) = changed(&original, &after);
    let facts = distribution_facts(&spec).await;
    let mut note = format!(
        "{} rows in issue_comments, {} shards per table; stages 1–8 before it without the writer in \
         {stages_1_8_s:.1} s ({before_note}); stage 9: {note}; {facts}",
        args.dist_rows, args.dist_shard_count
    );
    if !tables.is_empty() {
        note.push_str(&format!("; changed: {}", tables.join(", ")));
    }
    eprintln!("{name}: {total:.1} s, longest write {:.0} ms", writes.longest_ms);
    drop(client);
    RunResult {
        name: name.to_string(),
        total_s: total,
        writes,
        backfill_rows_per_s: None,
        rows_changed_or_lost: changed_rows,
        note,
        slowest_writes: slowest,
    }
}
