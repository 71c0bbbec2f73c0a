//! The three conversions the benchmark compares, and the single UPDATE it rates them against.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tenantize::db::{ConnSpec, describe_pg_error};
use tenantize::engine::{self, Control, RunSettings, StopAfter};
use tenantize::event::{Event, channel};
use tenantize::plan::{BackfillMode, KeyType, PlanOptions};

use crate::writer::{Phases, phase_finished, phase_started};

const NAIVE_SQL: &str = include_str!("../naive.sql");
const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

pub async fn naive(spec: &ConnSpec, phases: &Phases) -> (Option<f64>, String) {
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

pub async fn tenantize_apply(
    spec: &ConnSpec,
    backfill: BackfillMode,
    phases: &Phases,
) -> (Option<f64>, String) {
    convert(spec, &["public.issue_statuses"], backfill, KeyType::Uuid, false, phases).await
}

/// Plan and apply with these shared tables, this tenant key type and `--cover-indexes` or
/// not; the backfill rate of issue_comments when batched.
pub async fn convert(
    spec: &ConnSpec,
    exclude: &[&str],
    backfill: BackfillMode,
    key_type: KeyType,
    cover_indexes: bool,
    phases: &Phases,
) -> (Option<f64>, String) {
    let options = PlanOptions {
        exclude: exclude.iter().map(|t| t.to_string()).collect(),
        backfill: Some(backfill),
        tenant_key_type: key_type,
        default_tenant_id: key_type.default_tenant_id().to_string(),
        cover_indexes,
        ..PlanOptions::default()
    };
    let plan = tenantize::app::live::build_plan(spec, &options).await.map_err(|e| e.message).expect("plan");
    // What `tenantize apply` runs: every stage but the cutover.
    let (largest, note) = apply(spec, plan, StopAfter::Conversion, phases).await;
    let rate = largest.map(|(rows, ms)| rows as f64 / (ms.max(1) as f64 / 1000.0));
    let rate = rate.filter(|_| backfill == BackfillMode::Batched);
    (rate, note)
}

/// Apply `plan` through the engine up to `stop_after` (steps already done are skipped, as a
/// resumed `tenantize apply` skips them), each step recorded in `phases`; the rows and
/// milliseconds of the largest table's backfill statement, and a note: steps run, lock retries.
pub async fn apply(
    spec: &ConnSpec,
    plan: tenantize::plan::Plan,
    stop_after: StopAfter,
    phases: &Phases,
) -> (Option<(u64, u64)>, String) {
    let (tx, mut rx) = channel();
    let (control, _pause) = Control::detached();
    let request = engine::ApplyRequest {
        plan,
        spec: spec.clone(),
        stop_after,
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
    let largest = *largest.lock().unwrap();
    (largest, note)
}

/// One UPDATE of the whole largest table, triggers kept from firing as the batched backfill
/// does (so both do the same work per row).
pub async fn single_update(spec: &ConnSpec) -> (f64, u64) {
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
