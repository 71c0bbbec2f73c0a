//! What the application pays after the conversion (run `p`): the same workloads on two
//! identical copies, one converted, as a plain role (not owner, no BYPASSRLS) with its tenant
//! set, the two databases alternating round by round (which goes first alternates too) so
//! the machine's noise hits both alike. pgbench's own schema (`--foreign-keys`) with its
//! built-in `select-only` and `tpcb-like` scripts (the tenant set for the role, as a legacy
//! application would run), and the sample application's typical queries (the tenant set with
//! `SET LOCAL` per transaction), each with the simple and the prepared protocol.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use tenantize::db::ConnSpec;
use tenantize::plan::BackfillMode;
use tenantize::sample::queries::{QUERIES, SETUP_SQL, sequential_scans};
use tenantize::sandbox::{Cluster, client_tool};

use crate::args::Args;
use crate::conversions::convert;
use crate::data::copy;
use crate::writer::Phases;

const ROLE: &str = "tenantize_bench_app";
const PROTOCOLS: [&str; 2] = ["simple", "prepared"];

#[derive(Debug, Default, Clone, Serialize)]
pub struct Side {
    pub tps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub protocol: String,
    pub before: Side,
    pub after: Side,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexFootprint {
    pub schema: String,
    pub count_before: i64,
    pub count_after: i64,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct AppCost {
    /// The converted copies' tenant key type (`--app-tenant-key-type`).
    pub tenant_key_type: String,
    pub comparisons: Vec<Comparison>,
    pub indexes: Vec<IndexFootprint>,
    /// Sample queries that scan a table sequentially after the conversion but not before.
    pub new_sequential_scans: Vec<String>,
}

struct Pair {
    what: &'static str,
    before: String,
    after: String,
}

pub async fn app_cost(cluster: &Cluster, args: &Args) -> AppCost {
    let mut out =
        AppCost { tenant_key_type: args.app_tenant_key_type.sql().to_string(), ..AppCost::default() };
    let pgbench = pgbench_pair(cluster, args).await;
    let sample = sample_pair(cluster, args).await;
    let scratch = std::env::temp_dir().join(format!("tenantize-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    for pair in [&pgbench, &sample] {
        out.indexes.push(index_footprint(cluster, pair).await);
    }
    for protocol in PROTOCOLS {
        for workload in ["select-only", "tpcb-like"] {
            eprintln!("application cost: pgbench {workload}, {protocol} protocol…");
            let script = vec!["-b".to_string(), workload.to_string()];
            out.comparisons.push(compare(cluster, args, &pgbench, workload, protocol, &script, &scratch));
        }
        let maxima = sample_maxima(cluster, &sample).await;
        for (i, query) in QUERIES.iter().enumerate() {
            eprintln!("application cost: {}, {protocol} protocol…", query.name);
            let file = scratch.join(format!("query-{i}.sql"));
            let tenant = args.app_tenant_key_type.default_tenant_id();
            std::fs::write(&file, query.pgbench_script("app.tenant_id", tenant, &maxima)).unwrap();
            let script = vec!["-f".to_string(), file.display().to_string()];
            out.comparisons.push(compare(cluster, args, &sample, query.name, protocol, &script, &scratch));
        }
    }
    out.new_sequential_scans = new_sequential_scans(cluster, args, &sample).await;
    let _ = std::fs::remove_dir_all(&scratch);
    out
}

async fn pgbench_pair(cluster: &Cluster, args: &Args) -> Pair {
    let before = cluster.create_database("app_pgbench", None).await.unwrap();
    let init = Command::new(client_tool("pgbench"))
        .args(["-i", "-q", "--foreign-keys", "-s", &args.app_scale.to_string(), &cluster.url(&before)])
        .output()
        .expect("run pgbench -i (postgresql-15 ships it)");
    assert!(init.status.success(), "pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    prepare(cluster, &before).await;
    let after = copy(cluster, &before, "app_pgbench_after").await;
    eprintln!("application cost: converting pgbench's schema at scale {}…", args.app_scale);
    let key_type = args.app_tenant_key_type;
    let (_, note) =
        convert(&after.spec, &[], BackfillMode::Fast, key_type, args.app_cover_indexes, &Phases::default())
            .await;
    assert!(!note.starts_with("FAILED"), "converting pgbench's schema: {note}");
    finish(cluster, args, &before, &after.name).await;
    Pair { what: "pgbench", before, after: after.name }
}

async fn sample_pair(cluster: &Cluster, args: &Args) -> Pair {
    let before = cluster.create_database("app_sample", None).await.unwrap();
    let spec = cluster.conn_spec(&before);
    tenantize::sample::load(&spec.connect("bench load").await.unwrap(), args.app_rows).await.unwrap();
    spec.connect("bench").await.unwrap().batch_execute(SETUP_SQL).await.unwrap();
    prepare(cluster, &before).await;
    let after = copy(cluster, &before, "app_sample_after").await;
    eprintln!("application cost: converting the sample ({} comments)…", args.app_rows);
    let key_type = args.app_tenant_key_type;
    let (_, note) = convert(
        &after.spec,
        &["public.issue_statuses"],
        BackfillMode::Fast,
        key_type,
        args.app_cover_indexes,
        &Phases::default(),
    )
    .await;
    assert!(!note.starts_with("FAILED"), "converting the sample: {note}");
    finish(cluster, args, &before, &after.name).await;
    Pair { what: "sample", before, after: after.name }
}

/// The application role and its grants, in the original (copies inherit them).
async fn prepare(cluster: &Cluster, database: &str) {
    let client = cluster.conn_spec(database).connect("bench").await.unwrap();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN \
             CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$;
             GRANT USAGE ON SCHEMA public TO {ROLE};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ROLE};"
        ))
        .await
        .unwrap();
}

/// The tenant for the role's sessions in both databases (what a legacy application relies
/// on; the sample's scripts also set it per transaction), a VACUUM for the visibility maps, a
/// checkpoint. No ANALYZE: the original has its statistics from loading (`pgbench -i`,
/// `sample::load`), and the converted copy keeps what the conversion left, as a user's would
/// (an ANALYZE here hid that stage 5 gathered no statistics for the tenant column).
async fn finish(cluster: &Cluster, args: &Args, before: &str, after: &str) {
    let tenant = args.app_tenant_key_type.default_tenant_id();
    for database in [before, after] {
        let client = cluster.conn_spec(database).connect("bench").await.unwrap();
        client
            .batch_execute(&format!(
                "ALTER ROLE {ROLE} IN DATABASE \"{database}\" SET app.tenant_id = '{tenant}'"
            ))
            .await
            .unwrap();
        client.batch_execute("VACUUM").await.unwrap();
        client.batch_execute("CHECKPOINT").await.unwrap();
    }
}

fn role_url(cluster: &Cluster, database: &str) -> String {
    cluster.url(database).replacen("postgres@", &format!("{ROLE}@"), 1)
}

fn compare(
    cluster: &Cluster,
    args: &Args,
    pair: &Pair,
    workload: &str,
    protocol: &str,
    script: &[String],
    scratch: &Path,
) -> Comparison {
    let mut latencies = [Vec::new(), Vec::new()];
    let mut tps = [0.0, 0.0];
    let mut failed = [0u64, 0u64];
    for round in 0..args.app_rounds {
        // Alternate which database goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let database = if side == 0 { &pair.before } else { &pair.after };
            let (t, f, mut l) = pgbench(cluster, args, database, protocol, script, scratch);
            tps[side] += t / args.app_rounds as f64;
            failed[side] += f;
            latencies[side].append(&mut l);
        }
    }
    let mut side = |i: usize| summarize(&mut latencies[i], tps[i], failed[i]);
    Comparison {
        workload: format!("{}: {workload}", pair.what),
        protocol: protocol.to_string(),
        before: side(0),
        after: side(1),
    }
}

/// One pgbench run: tps, failed transactions, every transaction's latency in ms (from its
/// per-transaction log).
fn pgbench(
    cluster: &Cluster,
    args: &Args,
    database: &str,
    protocol: &str,
    script: &[String],
    scratch: &Path,
) -> (f64, u64, Vec<f64>) {
    for entry in std::fs::read_dir(scratch).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("log") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let prefix = scratch.join("log");
    let out = Command::new(client_tool("pgbench"))
        .args(["-n", "-c", &args.app_clients.to_string(), "-j", &args.app_clients.to_string()])
        .args(["-T", &args.app_seconds.to_string(), "-M", protocol, "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .args(script)
        .arg(role_url(cluster, database))
        .output()
        .expect("run pgbench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pgbench failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let number_after = |label: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l[label.len()..].split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
    };
    let tps = number_after("tps = ").unwrap_or(f64::NAN);
    let failed = number_after("number of failed transactions: ").unwrap_or(0.0) as u64;
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(scratch).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        // client_id transaction_no latency_us script_no epoch_s epoch_us
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
                .map(|us| us / 1000.0),
        );
    }
    (tps, failed, latencies)
}

fn summarize(latencies: &mut [f64], tps: f64, failed: u64) -> Side {
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        latencies[((latencies.len() - 1) as f64 * q).round() as usize]
    };
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    Side { tps, p50_ms: at(0.5), p99_ms: at(0.99), mean_ms: mean, failed }
}

async fn index_footprint(cluster: &Cluster, pair: &Pair) -> IndexFootprint {
    let sql = "SELECT count(*), coalesce(sum(pg_relation_size(i.indexrelid)), 0)::int8 FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = 'public' AND c.relname NOT LIKE 'tenants%'";
    let read = |database: String| async move {
        let client = cluster.conn_spec(&database).connect("bench").await.unwrap();
        let row = client.query_one(sql, &[]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    };
    let (count_before, bytes_before) = read(pair.before.clone()).await;
    let (count_after, bytes_after) = read(pair.after.clone()).await;
    IndexFootprint { schema: pair.what.to_string(), count_before, count_after, bytes_before, bytes_after }
}

async fn sample_maxima(cluster: &Cluster, pair: &Pair) -> Vec<(&'static str, i64)> {
    let client = cluster.conn_spec(&pair.before).connect("bench").await.unwrap();
    let max = |table: &'static str| {
        let client = &client;
        async move {
            let sql = format!("SELECT max(id)::int8 FROM public.{table}");
            client.query_one(sql.as_str(), &[]).await.unwrap().get::<_, i64>(0)
        }
    };
    vec![("issue", max("issues").await), ("project", max("projects").await), ("user", max("users").await)]
}

async fn new_sequential_scans(cluster: &Cluster, args: &Args, pair: &Pair) -> Vec<String> {
    let tenant = args.app_tenant_key_type.default_tenant_id();
    let explain = |database: String| async move {
        let spec =
            ConnSpec::resolve(Some(&role_url(cluster, &database)), &tenantize::db::ProcessEnv).unwrap();
        let client = spec.connect("bench explain").await.unwrap();
        let mut scans = Vec::new();
        for query in &QUERIES {
            client.batch_execute(&format!("BEGIN; SET LOCAL app.tenant_id = '{tenant}'")).await.unwrap();
            let sql = format!(
                "EXPLAIN (FORMAT JSON) {}",
                query.bind(&[("issue", 77), ("project", 3), ("user", 5)])
            );
            let plan: serde_json::Value = client.query_one(sql.as_str(), &[]).await.unwrap().get(0);
            client.batch_execute("ROLLBACK").await.unwrap();
            scans.push(sequential_scans(&plan));
        }
        scans
    };
    let before = explain(pair.before.clone()).await;
    let after = explain(pair.after.clone()).await;
    let mut found = Vec::new();
    for ((query, was), now) in QUERIES.iter().zip(&before).zip(&after) {
        for relation in now.iter().filter(|r| !was.contains(r)) {
            found.push(format!("{}: {relation}", query.name));
        }
    }
    found
}

/// The report's lines: ratios after/before per workload and protocol, then the indexes.
pub fn print(cost: &AppCost) {
    println!();
    println!(
        "application cost after the conversion, tenant key {} (after/before: tps <1 and latencies >1 are slower):",
        cost.tenant_key_type
    );
    println!(
        "{:<48} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "workload", "protocol", "tps b", "tps a", "tps", "mean", "p50", "p99"
    );
    for c in &cost.comparisons {
        println!(
            "{:<48} {:>9} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7.2}",
            c.workload,
            c.protocol,
            c.before.tps,
            c.after.tps,
            c.after.tps / c.before.tps,
            c.after.mean_ms / c.before.mean_ms,
            c.after.p50_ms / c.before.p50_ms,
            c.after.p99_ms / c.before.p99_ms
        );
        if c.before.failed + c.after.failed > 0 {
            println!("  failed transactions: {} before, {} after", c.before.failed, c.after.failed);
        }
    }
    for i in &cost.indexes {
        println!(
            "indexes ({}): {} → {}, {:.1} MB → {:.1} MB",
            i.schema,
            i.count_before,
            i.count_after,
            i.bytes_before as f64 / 1e6,
            i.bytes_after as f64 / 1e6
        );
    }
    if cost.new_sequential_scans.is_empty() {
        println!("sample queries: no sequential scan after the conversion that was not there before");
    } else {
        println!("sample queries with a new sequential scan: {}", cost.new_sequential_scans.join("; "));
    }
}
