//! The benchmark: `cargo run --release --bin tenantize-bench -- [--rows N]`.
//!
//! Builds the sample application (N rows in issue_comments, default 2,000,000) in a throwaway
//! cluster with fsync on, then, on identical copies in the same run, converts it three ways
//! while a concurrent writer performs single-row inserts and updates at a steady rate and
//! records the latency of every write:
//!   (a) the naive path of seed 004 (benches/naive.sql),
//!   (b) tenantize apply with defaults,
//!   (c) tenantize apply --backfill batched.
//! It also times one single-statement UPDATE of the largest table, and introspects and plans a
//! generated schema of 2,000 tables. It prints a table and writes JSON. A benchmark, not a test:
//! it asserts nothing; it reports ratios measured in the same run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tenantize::conn::{ConnSpec, describe_pg_error};
use tenantize::engine::{self, Control, RunSettings, StopAfter};
use tenantize::event::{Event, channel};
use tenantize::plan::{BackfillMode, PlanOptions};
use tenantize::sandbox::{Cluster, ClusterOptions};
use tokio_util::sync::CancellationToken;

const NAIVE_SQL: &str = include_str!("../../benches/naive.sql");
const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

struct Args {
    rows: u64,
    writes_per_second: u64,
    planning_tables: usize,
    json: String,
    /// Which conversions to run (a, b, c); the ratios need all three.
    runs: String,
    skip_planning: bool,
}

fn args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        writes_per_second: 200,
        planning_tables: 2000,
        json: "target/bench.json".into(),
        runs: "abc".into(),
        skip_planning: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--writes-per-second" => args.writes_per_second = value().parse().expect("--writes-per-second N"),
            "--planning-tables" => args.planning_tables = value().parse().expect("--planning-tables N"),
            "--json" => args.json = value(),
            "--runs" => args.runs = value(),
            "--skip-planning" => args.skip_planning = true,
            "--help" | "-h" => {
                println!(
                    "tenantize-bench [--rows N (2000000)] [--writes-per-second N (200)] \
                     [--planning-tables N (2000)] [--json FILE (target/bench.json)] \
                     [--runs abc] [--skip-planning]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[derive(Debug, Default, Clone, Serialize)]
struct WriteStats {
    writes: u64,
    failed: u64,
    longest_ms: f64,
    p99_ms: f64,
    first_error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct RunResult {
    name: String,
    total_s: f64,
    writes: WriteStats,
    /// Rows filled per second by the backfill (None: nothing was backfilled).
    backfill_rows_per_s: Option<f64>,
    rows_changed_or_lost: u64,
    note: String,
    /// The five slowest writes: when, during which step, what the writer waited on.
    slowest_writes: Vec<String>,
}

/// Single-row writes at a steady rate until `stop`: inserts into issue_comments and updates of
/// the writer's own issue, alternating. Latency counts from the scheduled start, so a stall
/// also counts the writes queued behind it.
async fn writer(
    spec: ConnSpec,
    per_second: u64,
    stop: CancellationToken,
    max_issue: i64,
    pid: tokio::sync::oneshot::Sender<i32>,
) -> (WriteStats, Vec<(Instant, f64)>) {
    let client = spec.connect("bench writer").await.expect("writer connects");
    let _ = pid.send(client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0));
    let own: i64 = client
        .query_one(
            "INSERT INTO public.issues (project_id, number, status_id, reporter_id, title)
             VALUES (1, 900000000 + (random() * 90000000)::int, 1, 1, 'bench writer') RETURNING id",
            &[],
        )
        .await
        .expect("writer inserts its issue")
        .get(0);
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let mut next = Instant::now();
    let mut latencies = Vec::new();
    let mut each = Vec::new();
    let mut stats = WriteStats::default();
    let mut n: i64 = 0;
    while !stop.is_cancelled() {
        tokio::time::sleep_until(next.into()).await;
        let scheduled = next;
        next += interval;
        n += 1;
        let result = if n % 2 == 0 {
            client
                .execute(
                    "INSERT INTO public.issue_comments (issue_id, author_id, body) VALUES ($1, 1, 'bench')",
                    &[&(1 + (n * 7919) % max_issue)],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE public.issues SET title = 'bench ' || $1::text WHERE id = $2",
                    &[&n.to_string(), &own],
                )
                .await
        };
        let latency_ms = scheduled.elapsed().as_secs_f64() * 1000.0;
        latencies.push(latency_ms);
        each.push((scheduled, latency_ms));
        stats.writes += 1;
        if let Err(e) = result {
            stats.failed += 1;
            stats.first_error.get_or_insert_with(|| describe_pg_error(&e));
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    stats.longest_ms = latencies.last().copied().unwrap_or(0.0);
    stats.p99_ms = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or(0.0);
    (stats, each)
}

/// What ran when: (start, end, label) of each naive statement or tenantize step.
type Phases = Arc<Mutex<Vec<(Instant, Option<Instant>, String)>>>;

fn phase_started(phases: &Phases, label: String) {
    phases.lock().unwrap().push((Instant::now(), None, label));
}

fn phase_finished(phases: &Phases) {
    if let Some(last) = phases.lock().unwrap().last_mut() {
        last.1 = Some(Instant::now());
    }
}

/// Sample what the writer's backend waits on, every 10 ms, until `stop`.
async fn sample_waits(spec: ConnSpec, pid: i32, stop: CancellationToken) -> Vec<(Instant, String)> {
    let client = spec.connect("bench sampler").await.unwrap();
    let mut seen = Vec::new();
    while !stop.is_cancelled() {
        if let Ok(Some(row)) = client
            .query_opt(
                "SELECT wait_event_type || ':' || wait_event FROM pg_catalog.pg_stat_activity
                  WHERE pid = $1 AND state = 'active' AND wait_event IS NOT NULL",
                &[&pid],
            )
            .await
        {
            seen.push((Instant::now(), row.get::<_, String>(0)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

/// The slowest writes, with what was running then and what the writer was seen waiting on.
fn slowest_writes(
    writes: &[(Instant, f64)],
    phases: &Phases,
    waits: &[(Instant, String)],
    origin: Instant,
) -> Vec<String> {
    let mut sorted: Vec<&(Instant, f64)> = writes.iter().collect();
    sorted.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let phases = phases.lock().unwrap();
    sorted
        .iter()
        .take(5)
        .map(|(at, ms)| {
            let end = *at + Duration::from_secs_f64(ms / 1000.0);
            let during: Vec<&str> = phases
                .iter()
                .filter(|(s, e, _)| *s <= end && e.is_none_or(|e| e >= *at))
                .map(|(_, _, label)| label.as_str())
                .collect();
            let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
            for (_, kind) in waits.iter().filter(|(t, _)| *t >= *at && *t <= end) {
                *kinds.entry(kind.as_str()).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}×{n}")).collect();
            format!(
                "{ms:.0} ms at {:.1} s, during {}; writer seen waiting on: {}",
                at.saturating_duration_since(origin).as_secs_f64(),
                if during.is_empty() { "nothing (between steps)".to_string() } else { during.join(" / ") },
                if kinds.is_empty() { "nothing sampled (CPU?)".to_string() } else { kinds.join(", ") }
            )
        })
        .collect()
}

/// Row checksums of what existed before the run (the writer's own rows excluded).
async fn checksums(spec: &ConnSpec, max_issue: i64, max_comment: i64) -> BTreeMap<String, (i64, String)> {
    let client = spec.connect("bench checksums").await.unwrap();
    client.batch_execute("SET row_security = off").await.unwrap();
    let tables: Vec<(String, String)> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> 'tenants' AND a.attname <> 'tenant_id'
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = BTreeMap::new();
    for (table, columns) in tables {
        let filter = match table.as_str() {
            "public.issues" => format!("WHERE id <= {max_issue}"),
            "public.issue_comments" => format!("WHERE id <= {max_comment}"),
            _ => String::new(),
        };
        let sql = format!(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') FROM (SELECT md5(ROW({columns})::text) AS h FROM {table} {filter}) t"
        );
        let row = client.query_one(sql.as_str(), &[]).await.unwrap();
        out.insert(table, (row.get(0), row.get(1)));
    }
    out
}

fn changed(
    before: &BTreeMap<String, (i64, String)>,
    after: &BTreeMap<String, (i64, String)>,
) -> (u64, Vec<String>) {
    let mut count = 0;
    let mut tables = Vec::new();
    for (table, (rows, sum)) in before {
        match after.get(table) {
            Some((r, s)) if r == rows && s == sum => {}
            Some((r, _)) => {
                // A checksum says "something changed", not how much: count the table's rows.
                count += (*rows).max(*r) as u64;
                tables.push(table.clone());
            }
            None => {
                count += *rows as u64;
                tables.push(table.clone());
            }
        }
    }
    (count, tables)
}

struct Copy {
    spec: ConnSpec,
}

async fn copy(cluster: &Cluster, template: &str, name: &str) -> Copy {
    let database = cluster.create_database(name, Some(template)).await.expect("copy the template");
    let spec = cluster.conn_spec(&database);
    // The copy leaves the database's files dirty in the OS page cache; the kernel would write
    // them back about 30 s later (vm.dirty_expire_centisecs), in the middle of the measured
    // run, and stall every fsync then. Write them out first, as pgbench's users checkpoint
    // before a run, so each run pays only for its own writes.
    let client = spec.connect("bench checkpoint").await.expect("connect to the copy");
    client.batch_execute("CHECKPOINT").await.expect("CHECKPOINT");
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Copy { spec }
}

/// Run `work` with the writer going; returns its result, the writer's stats and the wall time.
async fn with_writer<T>(
    spec: &ConnSpec,
    args: &Args,
    max_issue: i64,
    phases: &Phases,
    work: impl std::future::Future<Output = T>,
) -> (T, WriteStats, f64, Vec<String>) {
    let stop = CancellationToken::new();
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(writer(spec.clone(), args.writes_per_second, stop.clone(), max_issue, pid_tx));
    let sampler = tokio::spawn(sample_waits(spec.clone(), pid_rx.await.unwrap(), stop.clone()));
    // Let the writer settle before the conversion starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let result = work.await;
    let total = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let (stats, writes) = handle.await.unwrap();
    let waits = sampler.await.unwrap();
    let slowest = slowest_writes(&writes, phases, &waits, started);
    (result, stats, total, slowest)
}

async fn naive(spec: &ConnSpec, phases: &Phases) -> (Option<f64>, String) {
    let client = spec.connect("bench naive").await.unwrap();
    let mut update_rows = 0u64;
    let mut update_seconds = 0.0;
    let mut failures = Vec::new();
    for statement in NAIVE_SQL.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let statement: String =
            statement.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        if statement.trim().is_empty() {
            continue;
        }
        let started = Instant::now();
        phase_started(phases, statement.chars().take(70).collect());
        let result = client.execute(statement.as_str(), &[]).await;
        phase_finished(phases);
        match result {
            Ok(rows) => {
                if statement.starts_with("UPDATE") {
                    update_rows += rows;
                    update_seconds += started.elapsed().as_secs_f64();
                }
            }
            Err(e) => failures.push(describe_pg_error(&e)),
        }
    }
    let note = if failures.is_empty() {
        String::new()
    } else {
        format!("{} statements failed: {}", failures.len(), failures[0])
    };
    ((update_seconds > 0.0).then(|| update_rows as f64 / update_seconds), note)
}

async fn tenantize_apply(spec: &ConnSpec, backfill: BackfillMode, phases: &Phases) -> (Option<f64>, String) {
    let options = PlanOptions {
        exclude: vec!["public.issue_statuses".into()],
        backfill: Some(backfill),
        ..PlanOptions::default()
    };
    let plan = tenantize::cli::build_plan(spec, &options).await.map_err(|e| e.message).expect("plan");
    let (tx, mut rx) = channel();
    let (control, _pause) = Control::detached();
    let request = engine::ApplyRequest {
        plan,
        spec: spec.clone(),
        stop_after: StopAfter::All,
        dry_run: false,
        settings: RunSettings { application_name: "tenantize bench".into(), ..RunSettings::default() },
    };
    // The batched statement of the largest table's backfill step: its rows and duration.
    let largest: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    let retries: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = {
        let largest = largest.clone();
        let phases = phases.clone();
        let retries = retries.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match &event {
                    Event::Retry { step_id, attempt, reason, blockers, .. } => {
                        let who: Vec<String> = blockers
                            .iter()
                            .map(|b| {
                                format!(
                                    "pid {} {:?} {:?}",
                                    b.pid,
                                    b.application,
                                    b.query.chars().take(60).collect::<String>()
                                )
                            })
                            .collect();
                        retries.lock().unwrap().push(format!(
                            "{step_id} attempt {attempt}: {reason}; blocked by {}",
                            who.join(", ")
                        ));
                    }
                    Event::StepStarted { step_id, .. } => phase_started(&phases, step_id.clone()),
                    Event::StepFinished { .. } | Event::StepFailed { .. } => phase_finished(&phases),
                    _ => {}
                }
                if let Event::StatementFinished { step_id, duration_ms, rows, .. } = event
                    && step_id == "4.backfill:public.issue_comments"
                    && rows > 0
                {
                    *largest.lock().unwrap() = Some((rows, duration_ms));
                }
            }
        })
    };
    let result = engine::apply(&request, &tx, &control).await;
    drop(tx);
    recorder.await.unwrap();
    let note = match result {
        Ok(o) => format!("{} steps", o.steps_run),
        Err(e) => format!("FAILED: {e}"),
    };
    let retries = retries.lock().unwrap();
    let note = if retries.is_empty() {
        format!("{note}, no lock retries")
    } else {
        format!("{note}, {} lock retries:\n    {}", retries.len(), retries.join("\n    "))
    };
    let rate = largest.lock().unwrap().map(|(rows, ms)| rows as f64 / (ms.max(1) as f64 / 1000.0));
    let rate = rate.filter(|_| backfill == BackfillMode::Batched);
    (rate, note)
}

/// One UPDATE of the whole largest table, triggers kept from firing as the batched backfill
/// does (so both do the same work per row).
async fn single_update(spec: &ConnSpec) -> (f64, u64) {
    let client = spec.connect("bench single update").await.unwrap();
    client.batch_execute("ALTER TABLE public.issue_comments ADD COLUMN tenant_id uuid").await.unwrap();
    client.batch_execute("SET session_replication_role = replica").await.unwrap();
    let started = Instant::now();
    let rows = client
        .execute(&format!("UPDATE public.issue_comments SET tenant_id = '{DEFAULT_TENANT}'"), &[])
        .await
        .unwrap();
    (started.elapsed().as_secs_f64(), rows)
}

async fn planning_scale(cluster: &Cluster, tables: usize) -> (f64, f64, i64) {
    let database = cluster.create_database(&format!("bench_planning_{tables}"), None).await.unwrap();
    let spec = cluster.conn_spec(&database);
    let client = spec.connect("bench planning").await.unwrap();
    let mut sql = String::from("SET search_path = public;\n");
    for i in 0..tables {
        let fk = if i > 0 { format!(", parent_id bigint REFERENCES t{} (id)", i - 1) } else { String::new() };
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now(){fk});\n"
        ));
    }
    client.batch_execute(&sql).await.unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
    drop(client);
    // Transactions the server counted while a connection did `work`, minus those of an idle
    // connection: what the introspection itself cost in round trips that commit. Autovacuum
    // workers visiting the database add to the count now and then, never subtract: the
    // smallest of three readings is the introspection's own.
    let mut baseline = i64::MAX;
    let mut with_introspection = i64::MAX;
    let mut introspect_s = f64::MAX;
    let mut catalog = None;
    for _ in 0..3 {
        baseline = baseline.min(commits_during(&spec, |_| async {}).await);
        let mut elapsed_s = 0.0;
        let counted = commits_during(&spec, |probe| {
            let catalog = &mut catalog;
            let elapsed_s = &mut elapsed_s;
            async move {
                let started = Instant::now();
                *catalog =
                    Some(tenantize::catalog::introspect(&probe, &["public".to_string()], &[]).await.unwrap());
                *elapsed_s = started.elapsed().as_secs_f64();
            }
        })
        .await;
        with_introspection = with_introspection.min(counted);
        // The first (coldest) timing is the one reported.
        if introspect_s == f64::MAX {
            introspect_s = elapsed_s;
        }
    }
    let catalog = catalog.unwrap();
    let plan_started = Instant::now();
    let plan = tenantize::plan::build(&catalog, &PlanOptions::default(), "bench").unwrap();
    let plan_s = plan_started.elapsed().as_secs_f64();
    assert!(plan.steps.len() > tables, "the plan covers the tables");
    (introspect_s, plan_s, with_introspection - baseline)
}

/// xact_commit of the database before and after a fresh connection runs `work` and closes.
/// Statistics are flushed when a backend exits; each reading connection is fresh, so its own
/// transaction is counted once, in both the baseline and the measurement.
async fn commits_during<F, Fut>(spec: &ConnSpec, work: F) -> i64
where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    async fn read(spec: &ConnSpec) -> i64 {
        let reader = spec.connect("bench stats").await.unwrap();
        reader
            .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", &[])
            .await
            .unwrap()
            .get(0)
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = read(spec).await;
    let probe = spec.connect("bench planning").await.unwrap();
    work(probe).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    read(spec).await - before
}

#[tokio::main]
async fn main() {
    let args = args();
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("machine: {cores} cores, {machine}");
    eprintln!("starting a throwaway cluster (fsync on)…");
    let cluster =
        Cluster::start(&ClusterOptions { durable: true, ..ClusterOptions::default() }).expect("cluster");
    let template = cluster.create_database("bench_template", None).await.unwrap();
    let spec = cluster.conn_spec(&template);
    eprintln!("loading the sample with {} rows in issue_comments…", args.rows);
    let load_started = Instant::now();
    tenantize::sample::load(&spec.connect("bench load").await.unwrap(), args.rows).await.unwrap();
    eprintln!("loaded in {:.1} s", load_started.elapsed().as_secs_f64());
    let client = spec.connect("bench").await.unwrap();
    let max_issue: i64 = client.query_one("SELECT max(id) FROM public.issues", &[]).await.unwrap().get(0);
    let max_comment: i64 =
        client.query_one("SELECT max(id) FROM public.issue_comments", &[]).await.unwrap().get(0);
    client.batch_execute("CHECKPOINT").await.unwrap();
    drop(client);
    eprintln!("checksumming the original rows…");
    let original = checksums(&spec, max_issue, max_comment).await;

    let mut results = Vec::new();
    for (name, how) in [
        ("(a) naive (seed 004)", 0),
        ("(b) tenantize apply", 1),
        ("(c) tenantize apply --backfill batched", 2),
    ] {
        if !args.runs.contains(['a', 'b', 'c'][how]) {
            continue;
        }
        eprintln!("{name}: copying…");
        let target = copy(&cluster, &template, &format!("bench_{how}")).await;
        let spec = target.spec.clone();
        eprintln!("{name}: converting with the writer going…");
        let phases = Phases::default();
        let ((rate, note), writes, total, slowest) = with_writer(&spec, &args, max_issue, &phases, async {
            match how {
                0 => naive(&spec, &phases).await,
                1 => tenantize_apply(&spec, BackfillMode::Fast, &phases).await,
                _ => tenantize_apply(&spec, BackfillMode::Batched, &phases).await,
            }
        })
        .await;
        let after = checksums(&spec, max_issue, max_comment).await;
        let (changed_rows, tables) = changed(&original, &after);
        let note = if tables.is_empty() { note } else { format!("{note}; changed: {}", tables.join(", ")) };
        eprintln!("{name}: {total:.1} s, longest write {:.0} ms", writes.longest_ms);
        results.push(RunResult {
            name: name.to_string(),
            total_s: total,
            writes,
            backfill_rows_per_s: rate,
            rows_changed_or_lost: changed_rows,
            note,
            slowest_writes: slowest,
        });
    }
    eprintln!("single-statement UPDATE of issue_comments…");
    let single = copy(&cluster, &template, "bench_single").await;
    let (single_s, single_rows) = single_update(&single.spec).await;
    let single_rate = single_rows as f64 / single_s;
    eprintln!("planning scale: {} tables…", args.planning_tables);
    let (introspect_s, plan_s, transactions, transactions_small) = if args.skip_planning {
        (f64::NAN, f64::NAN, 0, 0)
    } else {
        let (introspect_s, plan_s, transactions) = planning_scale(&cluster, args.planning_tables).await;
        // The same count for 10 tables shows it does not grow with the tables.
        let (_, _, transactions_small) = planning_scale(&cluster, 10).await;
        (introspect_s, plan_s, transactions, transactions_small)
    };

    println!();
    println!(
        "tenantize benchmark: {} rows in issue_comments, writer at {} writes/s, {cores} cores ({machine})",
        args.rows, args.writes_per_second
    );
    println!(
        "{:<40} {:>9} {:>12} {:>9} {:>8} {:>14} {:>12}",
        "run", "total s", "longest ms", "p99 ms", "failed", "backfill r/s", "rows changed"
    );
    for r in &results {
        println!(
            "{:<40} {:>9.1} {:>12.0} {:>9.1} {:>8} {:>14} {:>12}",
            r.name,
            r.total_s,
            r.writes.longest_ms,
            r.writes.p99_ms,
            r.writes.failed,
            r.backfill_rows_per_s.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
            r.rows_changed_or_lost
        );
    }
    for r in &results {
        if !r.note.is_empty() {
            println!("  {}: {}", r.name, r.note);
        }
        if let Some(e) = &r.writes.first_error {
            println!("  {}: first failed write: {e}", r.name);
        }
        println!("  {}: slowest writes:", r.name);
        for line in &r.slowest_writes {
            println!("    {line}");
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let run = |prefix: &str| results.iter().find(|r| r.name.starts_with(prefix));
    let total = |prefix: &str| run(prefix).map(|r| r.total_s).unwrap_or(f64::NAN);
    let b_over_a = ratio(total("(b)"), total("(a)"));
    let c_over_a = ratio(total("(c)"), total("(a)"));
    let c_rate_over_single = run("(c)").and_then(|r| r.backfill_rows_per_s).map(|r| ratio(r, single_rate));
    println!(
        "single-statement UPDATE of issue_comments: {single_rows} rows in {single_s:.1} s = {single_rate:.0} rows/s"
    );
    println!(
        "ratios: (b)/(a) total {b_over_a:.2} · (c)/(a) total {c_over_a:.2} · (c) backfill / single UPDATE {}",
        c_rate_over_single.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
    );
    println!(
        "planning: {} tables introspected in {introspect_s:.2} s ({} catalog queries; the server counted {transactions} transactions, and {transactions_small} for 10 tables) and planned in {plan_s:.2} s",
        args.planning_tables,
        tenantize::catalog::INTROSPECTION_QUERY_COUNT
    );
    let json = serde_json::json!({
        "rows": args.rows,
        "writes_per_second": args.writes_per_second,
        "machine": { "cores": cores, "cpu": machine },
        "runs": results,
        "single_update": { "rows": single_rows, "seconds": single_s, "rows_per_s": single_rate },
        "ratios": { "b_over_a_total": b_over_a, "c_over_a_total": c_over_a, "c_backfill_over_single_update": c_rate_over_single },
        "planning": { "tables": args.planning_tables, "introspect_s": introspect_s, "plan_s": plan_s,
                      "catalog_queries": tenantize::catalog::INTROSPECTION_QUERY_COUNT, "server_transactions": transactions, "server_transactions_10_tables": transactions_small },
    });
    if let Some(dir) = std::path::Path::new(&args.json).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).expect("create the JSON directory");
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&json).unwrap()).expect("write the JSON");
    println!("wrote {}", args.json);
}
