//! The application's stand-in: single-row writes at a steady rate, each timed, and what its
//! backend waited on; the slowest writes explained by what ran at the time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tenantize::db::{ConnSpec, describe_pg_error};
use tokio_util::sync::CancellationToken;

use crate::args::Args;

#[derive(Debug, Default, Clone, Serialize)]
pub struct WriteStats {
    pub writes: u64,
    pub failed: u64,
    pub longest_ms: f64,
    pub p99_ms: f64,
    pub first_error: Option<String>,
}

/// Single-row writes at a steady rate until `stop`: inserts into issue_comments and updates of
/// the writer's own issue, alternating. Latency counts from the scheduled start, so a stall
/// also counts the writes queued behind it. With `tenant` (the tables have the tenant column
/// already), each write names the tenant as an application on Citus does, so the coordinator
/// routes it to one shard once the table is distributed; without it the update of one issue
/// by its id would go to every shard.
async fn writer(
    spec: ConnSpec,
    per_second: u64,
    stop: CancellationToken,
    max_issue: i64,
    tenant: Option<&'static str>,
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
    let (insert, update) = match tenant {
        None => (
            "INSERT INTO public.issue_comments (issue_id, author_id, body) VALUES ($1, 1, 'bench')"
                .to_string(),
            "UPDATE public.issues SET title = 'bench ' || $1::text WHERE id = $2".to_string(),
        ),
        Some(t) => (
            format!(
                "INSERT INTO public.issue_comments (tenant_id, issue_id, author_id, body) VALUES ('{t}', $1, 1, 'bench')"
            ),
            format!(
                "UPDATE public.issues SET title = 'bench ' || $1::text WHERE id = $2 AND tenant_id = '{t}'"
            ),
        ),
    };
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
            client.execute(insert.as_str(), &[&(1 + (n * 7919) % max_issue)]).await
        } else {
            client.execute(update.as_str(), &[&n.to_string(), &own]).await
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
pub type Phases = Arc<Mutex<Vec<(Instant, Option<Instant>, String)>>>;

pub fn phase_started(phases: &Phases, label: String) {
    phases.lock().unwrap().push((Instant::now(), None, label));
}

pub fn phase_finished(phases: &Phases) {
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

/// The longest write that started while each kind of step ran (`4.backfill`, `7.foreign-keys`,
/// …, the step id before its `:`), longest first: where a run's stalls come from besides the
/// five slowest, which one burst can fill.
fn longest_by_kind(writes: &[(Instant, f64)], phases: &Phases) -> String {
    let phases = phases.lock().unwrap();
    let mut by_kind: BTreeMap<&str, f64> = BTreeMap::new();
    for (start, end, label) in phases.iter() {
        let kind = label.split(':').next().unwrap_or(label);
        let longest = writes
            .iter()
            .filter(|(at, _)| at >= start && end.is_none_or(|e| *at <= e))
            .map(|(_, ms)| *ms)
            .fold(0.0, f64::max);
        let entry = by_kind.entry(kind).or_default();
        *entry = entry.max(longest);
    }
    let mut kinds: Vec<(&str, f64)> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let parts: Vec<String> = kinds.iter().map(|(k, ms)| format!("{k} {ms:.0} ms")).collect();
    format!("longest write by step kind: {}", parts.join(" · "))
}

/// Run `work` with the writer going (naming `tenant` in its writes, see `writer`); returns its
/// result, the writer's stats and the wall time.
pub async fn with_writer<T>(
    spec: &ConnSpec,
    args: &Args,
    max_issue: i64,
    tenant: Option<&'static str>,
    phases: &Phases,
    work: impl std::future::Future<Output = T>,
) -> (T, WriteStats, f64, Vec<String>) {
    let stop = CancellationToken::new();
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let handle =
        tokio::spawn(writer(spec.clone(), args.writes_per_second, stop.clone(), max_issue, tenant, pid_tx));
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
    let mut slowest = slowest_writes(&writes, phases, &waits, started);
    slowest.push(longest_by_kind(&writes, phases));
    (result, stats, total, slowest)
}

/// The writer alone for `--idle-seconds` on `spec`, nothing else running: the machine's own
/// longest and p99 write, measured in the same run as the conversions, so their stalls can be
/// read against what this disk does anyway (its fsync latency under no load but the writer's).
pub async fn writer_alone(spec: &ConnSpec, args: &Args, max_issue: i64) -> (WriteStats, f64, Vec<String>) {
    let seconds = args.idle_seconds;
    let phases = Phases::default();
    phase_started(&phases, "the writer alone".into());
    let ((), stats, total, slowest) = with_writer(spec, args, max_issue, None, &phases, async {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    })
    .await;
    phase_finished(&phases);
    (stats, total, slowest)
}
