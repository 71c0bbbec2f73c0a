//! The benchmark: `cargo bench --bench tenantize -- [--rows N]` (a release build; it is not
//! installed with the tool).
//!
//! Builds the sample application (N rows in issue_comments, default 2,000,000) in a throwaway
//! cluster with fsync on, then, on identical copies in the same run, converts it three ways
//! while a concurrent writer performs single-row inserts and updates at a steady rate and
//! records the latency of every write:
//!   (a) the naive path of seed 004 (benches/naive.sql),
//!   (b) tenantize apply with defaults,
//!   (c) tenantize apply --backfill batched.
//! It also times one single-statement UPDATE of the largest table, and introspects and plans a
//! generated schema of 2,000 tables. Run `p` measures what the application pays afterwards
//! (app_cost.rs): pgbench's workloads and the sample's queries on a copy before and after. Run
//! `d` (distribute.rs, not in the default) distributes the converted sample on a Citus
//! coordinator and two workers (stage 9) with the writer going. It prints a table and writes JSON. A benchmark, not a test:
//! it asserts nothing; it reports ratios measured in the same run.

mod app_cost;
mod args;
mod conversions;
mod data;
mod distribute;
mod planning;
mod writer;

use std::time::Instant;

use serde::Serialize;
use tenantize::plan::BackfillMode;
use tenantize::sandbox::{Cluster, ClusterOptions};

use args::args;
use conversions::{naive, single_update, tenantize_apply};
use data::{changed, checksums, copy};
use planning::planning_scale;
use writer::{Phases, WriteStats, with_writer};

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
    eprintln!("starting a throwaway cluster (fsync on{})…", settings_note(&args.server_settings));
    let options = ClusterOptions {
        durable: true,
        extra_settings: args.server_settings.clone(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&options).expect("cluster");
    // Run d alone needs neither the sample at --rows nor the single UPDATE: it has its own nodes.
    let single_node = args.runs.contains(['a', 'b', 'c', 'p']);
    let rows = if single_node { args.rows } else { 1000 };
    let template = cluster.create_database("bench_template", None).await.unwrap();
    let spec = cluster.conn_spec(&template);
    eprintln!("loading the sample with {rows} rows in issue_comments…");
    let load_started = Instant::now();
    tenantize::sample::load(&spec.connect("bench load").await.unwrap(), rows).await.unwrap();
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
    if args.runs.contains(['a', 'b', 'c']) {
        eprintln!("(0) the writer alone for {} s: copying…", args.idle_seconds);
        let target = copy(&cluster, &template, "bench_idle").await;
        let (writes, total_s, slowest_writes) = writer::writer_alone(&target.spec, &args, max_issue).await;
        eprintln!("(0) the writer alone: longest write {:.0} ms", writes.longest_ms);
        results.push(RunResult {
            name: "(0) the writer alone (baseline)".into(),
            total_s,
            writes,
            slowest_writes,
            ..RunResult::default()
        });
    }
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
        let ((rate, note), writes, total, slowest) =
            with_writer(&spec, &args, max_issue, None, &phases, async {
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
    if args.runs.contains('d') {
        results.push(distribute::distribution(&args).await);
    }
    let app_cost =
        if args.runs.contains('p') { Some(app_cost::app_cost(&cluster, &args).await) } else { None };
    let (single_s, single_rows) = if single_node {
        eprintln!("single-statement UPDATE of issue_comments…");
        let single = copy(&cluster, &template, "bench_single").await;
        single_update(&single.spec).await
    } else {
        (f64::NAN, 0)
    };
    let single_rate = single_rows as f64 / single_s;
    let (introspect_s, plan_s, transactions, transactions_small) = if args.skip_planning {
        (f64::NAN, f64::NAN, 0, 0)
    } else {
        eprintln!("planning scale: {} tables…", args.planning_tables);
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
    // Ratios of runs not asked for would print as NaN.
    if ["(a)", "(b)", "(c)"].iter().any(|p| run(p).is_some()) {
        println!(
            "ratios: (b)/(a) total {b_over_a:.2} · (c)/(a) total {c_over_a:.2} · (c) backfill / single UPDATE {}",
            c_rate_over_single.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
        );
    }
    if let Some(idle) = run("(0)") {
        let over = |prefix: &str| {
            run(prefix).map(|r| {
                format!(
                    "{prefix} longest {:.1}x, p99 {:.1}x",
                    ratio(r.writes.longest_ms, idle.writes.longest_ms),
                    ratio(r.writes.p99_ms, idle.writes.p99_ms)
                )
            })
        };
        let parts: Vec<String> = ["(a)", "(b)", "(c)"].into_iter().filter_map(over).collect();
        println!("writes against the writer alone: {}", parts.join(" · "));
    }
    if !args.skip_planning {
        println!(
            "planning: {} tables introspected in {introspect_s:.2} s ({} catalog queries; the server counted {transactions} transactions, and {transactions_small} for 10 tables) and planned in {plan_s:.2} s",
            args.planning_tables,
            tenantize::catalog::INTROSPECTION_QUERY_COUNT
        );
    }
    if let Some(cost) = &app_cost {
        app_cost::print(cost);
    }
    let json = serde_json::json!({
        "application_cost": app_cost,
        "rows": args.rows,
        "dist_rows": args.runs.contains('d').then_some(args.dist_rows),
        "dist_shard_count": args.runs.contains('d').then_some(args.dist_shard_count),
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

/// `, with a = b; c = d` for the settings given on the command line.
fn settings_note(settings: &[String]) -> String {
    if settings.is_empty() { String::new() } else { format!(", with {}", settings.join("; ")) }
}
