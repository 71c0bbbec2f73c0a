//! Rehearse a conversion on a throwaway copy: restore the source (read with `pg_dump`, never
//! written), apply the whole plan with a run log, verify, roll everything back, check that
//! schema and data are as before, remove the copy, and write a report (Markdown and a
//! self-contained HTML timeline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::process::Command;

use super::exit;
use crate::checks::{self, VerifyReport};
use crate::db::ConnSpec;
use crate::engine::{self, Control, RunSettings, StopAfter};
use crate::event;
use crate::plan::{Plan, PlanOptions};
use crate::report::{Timeline, html_timeline, markdown_run};
use crate::runlog::{self, RunLog, RunLogWriter};
use crate::sandbox::{Cluster, ClusterOptions, client_tool};

pub enum Source {
    /// A live database, read with `pg_dump`.
    Database(Box<ConnSpec>),
    /// A `pg_dump` custom-format file.
    Dump(PathBuf),
}

pub struct RehearseRequest {
    pub source: Source,
    /// A saved plan to rehearse; without one, a plan is built from the copy with `options`.
    pub plan_file: Option<PathBuf>,
    pub options: PlanOptions,
    pub out_dir: PathBuf,
    pub settings: RunSettings,
}

#[derive(Debug, Clone)]
pub struct RehearsalOutcome {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub run_logs: Vec<PathBuf>,
    pub problems: Vec<String>,
    /// The documented exit code: 0, 2 (a step failed), 3 (verify or parity failed), 4 (rollback).
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RehearseError(pub String);

/// Run a client tool (pg_dump, pg_restore) without blocking the runtime.
async fn tool(name: &str, args: &[String], env: &[(&str, String)]) -> Result<(), RehearseError> {
    let mut command = Command::new(client_tool(name));
    command.args(args).kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.map_err(|e| RehearseError(format!("cannot run {name}: {e}")))?;
    if !out.status.success() {
        return Err(RehearseError(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// `pg_dump --schema-only` without the journal, with a fixed restrict key so two dumps of the
/// same schema are byte-identical.
pub async fn schema_dump(url: &str) -> Result<String, RehearseError> {
    let out = Command::new(client_tool("pg_dump"))
        .args(["--schema-only", "--exclude-schema=tenantize", "--restrict-key=tenantize", "-d", url])
        .output()
        .await
        .map_err(|e| RehearseError(format!("cannot run pg_dump: {e}")))?;
    if !out.status.success() {
        return Err(RehearseError(format!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ms(value: u128) -> String {
    format!("{:.1} s", value as f64 / 1000.0)
}

/// The copy the rehearsal runs on.
struct RehearsalCopy {
    /// Held so the copy lives until the rehearsal drops it.
    _cluster: Cluster,
    url: String,
    spec: ConnSpec,
    source_label: String,
    restore_ms: u128,
}

/// Start a throwaway cluster and restore the source into it (the source is only read).
/// `database`: the copy's name (a saved plan's statements name its database, `ALTER ROLE … IN
/// DATABASE` for legacy roles); `roles`: roles the plan names that `pg_dump` does not carry,
/// created NOLOGIN in the throwaway cluster.
async fn make_copy(
    source: &Source,
    scratch: &Path,
    database: Option<&str>,
    roles: &[String],
    say: &(dyn Fn(String) + Sync),
) -> Result<RehearsalCopy, RehearseError> {
    say("starting a throwaway PostgreSQL cluster for the copy".into());
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start(&ClusterOptions { durable: true, ..Default::default() })
    })
    .await
    .map_err(|e| RehearseError(e.to_string()))?
    .map_err(|e| RehearseError(format!("cannot start the rehearsal cluster: {e}")))?;
    let (dump, source_label) = match source {
        Source::Database(spec) => {
            say(format!("reading {} with pg_dump (the source is only read)", spec.redacted()));
            let path = scratch.join("source.dump");
            let mut args = spec.libpq_args();
            args.extend(["--format=custom".into(), "--file".into(), path.display().to_string()]);
            let mut env = vec![("PGAPPNAME", "tenantize rehearse (read only)".to_string())];
            if let Some(password) = spec.password() {
                env.push(("PGPASSWORD", password));
            }
            env.extend(spec.libpq_env());
            tool("pg_dump", &args, &env).await?;
            (path, spec.redacted())
        }
        Source::Dump(path) => (path.clone(), format!("dump file {}", path.display())),
    };
    let database = copy_database(&cluster, database, roles).await?;
    let url = cluster.url(&database);
    say(format!("restoring into the copy ({database})"));
    let restore_started = Instant::now();
    let args = ["--no-owner", "--no-privileges", "--exit-on-error", "-d", url.as_str()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(dump.display().to_string());
    tool("pg_restore", &args, &[]).await?;
    let restore_ms = restore_started.elapsed().as_millis();
    let spec = cluster.conn_spec(&database);
    Ok(RehearsalCopy { _cluster: cluster, url, spec, source_label, restore_ms })
}

/// The copy's database (named `name` when given) with `roles` created in its cluster.
async fn copy_database(
    cluster: &Cluster,
    name: Option<&str>,
    roles: &[String],
) -> Result<String, RehearseError> {
    let fail = |e: tokio_postgres::Error| RehearseError(crate::db::describe_pg_error(&e));
    let admin = cluster
        .conn_spec("postgres")
        .connect("tenantize rehearse")
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    for role in roles {
        let sql = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1";
        if admin.query_opt(sql, &[role]).await.map_err(fail)?.is_none() {
            let sql = format!("CREATE ROLE {} NOLOGIN", crate::sql::quote_ident(role));
            admin.batch_execute(&sql).await.map_err(fail)?;
        }
    }
    let Some(name) = name else {
        return cluster.create_database("rehearsal", None).await.map_err(|e| RehearseError(e.to_string()));
    };
    let sql = "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1";
    if admin.query_opt(sql, &[&name]).await.map_err(fail)?.is_none() {
        admin
            .batch_execute(&format!("CREATE DATABASE {}", crate::sql::quote_ident(name)))
            .await
            .map_err(fail)?;
    }
    Ok(name.to_string())
}

/// What the apply → verify → rollback round trip found.
struct RoundTrip {
    applied: Result<(), engine::EngineError>,
    apply_ms: u128,
    verify: VerifyReport,
    rolled_back: Result<(), engine::EngineError>,
    rollback_ms: u128,
    apply_log: PathBuf,
    rollback_log: PathBuf,
    problems: Vec<String>,
    exit_code: i32,
}

impl RoundTrip {
    fn problem(&mut self, text: String, code: i32) {
        self.problems.push(text);
        if self.exit_code == 0 {
            self.exit_code = code;
        }
    }
}

async fn round_trip(
    request: &RehearseRequest,
    plan: &Plan,
    spec: &ConnSpec,
    rows_before: &BTreeMap<String, (i64, String)>,
    client: &tokio_postgres::Client,
    stamp: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<RoundTrip, RehearseError> {
    let settings = RunSettings { application_name: "tenantize rehearse".into(), ..request.settings.clone() };
    say(format!("applying {} steps to the copy", plan.steps.len()));
    let apply_log = request.out_dir.join(format!("rehearsal.{stamp}.apply.jsonl"));
    let apply_started = Instant::now();
    let plan_file = request.plan_file.as_deref();
    let applied = run_logged(&apply_log, "apply", plan, plan_file, say, async |events, control| {
        let req = engine::ApplyRequest {
            plan: plan.clone(),
            spec: spec.clone(),
            stop_after: StopAfter::All,
            dry_run: false,
            settings: settings.clone(),
        };
        engine::apply(&req, events, control).await.map(|_| ())
    })
    .await;
    let apply_ms = apply_started.elapsed().as_millis();
    say("verifying".into());
    let verify = checks::verify(spec, plan).await.map_err(|e| RehearseError(e.to_string()))?;
    let rows_applied = checks::row_checksums(client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    say("rolling everything back".into());
    let rollback_log = request.out_dir.join(format!("rehearsal.{stamp}.rollback.jsonl"));
    let rollback_started = Instant::now();
    let rolled_back = run_logged(&rollback_log, "rollback", plan, plan_file, say, async |events, control| {
        let req = engine::RollbackRequest {
            plan: plan.clone(),
            spec: spec.clone(),
            target: engine::RollbackTarget::All,
            force: false,
            settings: settings.clone(),
        };
        engine::rollback(&req, events, control).await.map(|_| ())
    })
    .await;
    let rollback_ms = rollback_started.elapsed().as_millis();
    let mut trip = RoundTrip {
        applied,
        apply_ms,
        verify,
        rolled_back,
        rollback_ms,
        apply_log,
        rollback_log,
        problems: Vec::new(),
        exit_code: 0,
    };
    if let Err(e) = &trip.applied {
        let text = format!("apply failed: {e}");
        trip.problem(text, exit::engine_code(e));
    }
    for p in trip.verify.problems.clone() {
        trip.problem(format!("verify: {p}"), exit::VERIFY_FAILED);
    }
    let changed_during: Vec<&String> =
        rows_before.iter().filter(|(t, v)| rows_applied.get(*t) != Some(v)).map(|(t, _)| t).collect();
    if !changed_during.is_empty() {
        // A changed row outranks a failed step: it is what the rehearsal exists to catch.
        trip.problems.push(format!("rows changed by the conversion in: {changed_during:?}"));
        trip.exit_code = exit::VERIFY_FAILED;
    }
    if let Err(e) = &trip.rolled_back {
        trip.problem(format!("rollback failed: {e}"), exit::ROLLBACK_FAILED);
    }
    Ok(trip)
}

pub async fn rehearse(
    request: &RehearseRequest,
    say: &(dyn Fn(String) + Sync),
) -> Result<RehearsalOutcome, RehearseError> {
    std::fs::create_dir_all(&request.out_dir)
        .map_err(|e| RehearseError(format!("cannot create {}: {e}", request.out_dir.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let scratch = tempfile::tempdir().map_err(|e| RehearseError(e.to_string()))?;
    let saved = match &request.plan_file {
        Some(path) => Some(crate::plan::file::load(path).map_err(|e| RehearseError(e.to_string()))?),
        None => None,
    };
    // A saved plan's copy takes the source database's name: its legacy-role steps name it.
    let legacy_roles = saved.as_ref().map_or(&request.options.legacy_roles, |p| &p.options.legacy_roles);
    let database = saved.as_ref().map(|p| p.source.database.as_str());
    let copy = make_copy(&request.source, scratch.path(), database, legacy_roles, say).await?;
    let client =
        checks::connect(&copy.spec, "tenantize rehearse").await.map_err(|e| RehearseError(e.to_string()))?;
    client.batch_execute("ANALYZE").await.map_err(|e| RehearseError(e.to_string()))?;
    let plan: Plan = match saved {
        Some(mut plan) => {
            // The copy is another database (its own OID, maybe its own cluster): the plan is
            // re-targeted to it, explicitly, for this rehearsal only; the file is not changed.
            let copy = super::identity::read(&client).await.map_err(|e| RehearseError(e.message))?;
            say(format!(
                "re-targeting the plan from database {:?} to the copy {:?} for the rehearsal \
                 (the plan file is unchanged)",
                plan.source.database, copy.database
            ));
            super::identity::stamp(&mut plan, &copy);
            plan
        }
        None => super::live::build_plan(&copy.spec, &request.options)
            .await
            .map_err(|e| RehearseError(e.message))?,
    };
    let schema_before = schema_dump(&copy.url).await?;
    let rows_before = checks::row_checksums(&client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    let mut trip = round_trip(request, &plan, &copy.spec, &rows_before, &client, &stamp, say).await?;
    say("checking parity with the copy as restored".into());
    let schema_after = schema_dump(&copy.url).await?;
    let rows_after = checks::row_checksums(&client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    let parity = Parity {
        schema_same: schema_before == schema_after,
        rows_same: rows_before == rows_after,
        tables: rows_before.len(),
        rows_total: rows_before.values().map(|(n, _)| *n).sum(),
    };
    if !parity.schema_same {
        trip.problem(
            "the schema after rollback differs from the schema as restored".into(),
            exit::VERIFY_FAILED,
        );
    }
    if !parity.rows_same {
        trip.problem("the data after rollback differs from the data as restored".into(), exit::VERIFY_FAILED);
    }
    drop(client);
    let (md_path, html_path) = write_report(request, &plan, &copy, &trip, &parity, &stamp)?;
    say("removing the copy".into());
    drop(copy);
    Ok(RehearsalOutcome {
        markdown: md_path,
        html: html_path,
        run_logs: vec![trip.apply_log, trip.rollback_log],
        problems: trip.problems,
        exit_code: trip.exit_code,
    })
}

/// Schema and data after the rollback, compared with the copy as restored.
struct Parity {
    schema_same: bool,
    rows_same: bool,
    tables: usize,
    rows_total: i64,
}

fn summary_rows(
    request: &RehearseRequest,
    plan: &Plan,
    copy: &RehearsalCopy,
    trip: &RoundTrip,
    parity: &Parity,
    apply_run: &RunLog,
    timeline: &Timeline,
) -> Vec<(String, String)> {
    let server_version = apply_run
        .events
        .iter()
        .find_map(|(_, e)| match e {
            event::Event::RunStarted { server_version, .. } => {
                Some(server_version.split(" on ").next().unwrap_or(server_version).to_string())
            }
            _ => None,
        })
        .unwrap_or_default();
    let window_ms = timeline.total_ms as u128;
    let same = |yes: bool| if yes { "identical" } else { "DIFFERENT" };
    let failed = |r: &Result<(), engine::EngineError>| if r.is_ok() { "" } else { ", FAILED" };
    vec![
        ("source".into(), format!("{} (read only)", copy.source_label)),
        (
            "copy".into(),
            format!(
                "{server_version}, restored in {}, {} tables, {} rows",
                ms(copy.restore_ms),
                parity.tables,
                parity.rows_total
            ),
        ),
        (
            "plan".into(),
            format!(
                "{:.12} ({} steps){}",
                plan.plan_hash,
                plan.steps.len(),
                request.plan_file.as_ref().map(|p| format!(", {}", p.display())).unwrap_or_default()
            ),
        ),
        ("apply".into(), format!("{} end to end{}", ms(trip.apply_ms), failed(&trip.applied))),
        (
            "writes blocked".into(),
            format!(
                "{} in total, at most {} at a time",
                ms(timeline.write_blocked_ms() as u128),
                ms(timeline.longest_write_block_ms() as u128)
            ),
        ),
        (
            "verify".into(),
            if trip.verify.ok {
                "ok".into()
            } else {
                crate::event::describe::count(trip.verify.problems.len() as u64, "problem", "problems")
            },
        ),
        ("rollback".into(), format!("{}{}", ms(trip.rollback_ms), failed(&trip.rolled_back))),
        (
            "parity after rollback".into(),
            format!(
                "schema {}, data {} ({} tables checksummed)",
                same(parity.schema_same),
                same(parity.rows_same),
                parity.tables
            ),
        ),
        (
            "predicted maintenance window".into(),
            format!(
                "{} for the conversion on data of this size (×1.5 margin: {}); the application keeps running, writes wait at most {} at a time",
                ms(window_ms),
                ms(window_ms * 3 / 2),
                ms(timeline.longest_write_block_ms() as u128)
            ),
        ),
    ]
}

/// Write the Markdown report and the HTML timeline; returns their paths.
fn write_report(
    request: &RehearseRequest,
    plan: &Plan,
    copy: &RehearsalCopy,
    trip: &RoundTrip,
    parity: &Parity,
    stamp: &str,
) -> Result<(PathBuf, PathBuf), RehearseError> {
    let apply_run = runlog::read(&trip.apply_log).map_err(|e| RehearseError(e.to_string()))?;
    let rollback_run = runlog::read(&trip.rollback_log).map_err(|e| RehearseError(e.to_string()))?;
    let timeline = Timeline::from_events(plan, &apply_run.events);
    let summary = summary_rows(request, plan, copy, trip, parity, &apply_run, &timeline);
    let title = format!("tenantize rehearsal of plan {:.12}", plan.plan_hash);
    let mut markdown = format!("# {title}\n\n");
    for (k, v) in &summary {
        markdown.push_str(&format!("- **{k}**: {v}\n"));
    }
    if !trip.problems.is_empty() {
        markdown.push_str("\n## Problems\n\n");
        for p in &trip.problems {
            markdown.push_str(&format!("- {p}\n"));
        }
    }
    markdown.push_str(
        "\n## Slowest steps\n\n| step | took | blocked writes |\n|------|------|----------------|\n",
    );
    for step in timeline.slowest(5) {
        markdown.push_str(&format!(
            "| `{}` | {} | {} ms |\n",
            step.step_id,
            ms(step.duration_ms() as u128),
            step.write_blocked_ms()
        ));
    }
    markdown.push('\n');
    markdown.push_str(&markdown_run(&apply_run).replacen("## ", "## Apply: ", 1));
    markdown.push('\n');
    markdown.push_str(&markdown_run(&rollback_run).replacen("## ", "## Rollback: ", 1));
    let md_path = request.out_dir.join(format!("rehearsal.{stamp}.md"));
    let html_path = request.out_dir.join(format!("rehearsal.{stamp}.html"));
    std::fs::write(&md_path, markdown).map_err(|e| RehearseError(e.to_string()))?;
    std::fs::write(&html_path, html_timeline(&title, &summary, &timeline))
        .map_err(|e| RehearseError(e.to_string()))?;
    Ok((md_path, html_path))
}

/// Run an engine job with its events written to a run log and summarized through `say`.
async fn run_logged(
    log_path: &Path,
    command: &str,
    plan: &Plan,
    plan_file: Option<&Path>,
    say: &(dyn Fn(String) + Sync),
    work: impl AsyncFnOnce(&event::EventSender, &Control) -> Result<(), engine::EngineError>,
) -> Result<(), engine::EngineError> {
    let writer = RunLogWriter::create(log_path, command, plan, plan_file).map_err(|e| {
        engine::EngineError::Usage(format!("cannot write the run log {}: {e}", log_path.display()))
    })?;
    let (tx, rx) = event::channel();
    let mut front = runlog::tee(rx, writer);
    let (control, _pause) = Control::detached();
    let result = work(&tx, &control).await;
    drop(tx);
    while let Some(event) = front.recv().await {
        if let event::Event::StepFailed { step_id, error, .. } = &event {
            say(format!("{step_id} failed: {error}"));
        }
    }
    result
}
