//! Rehearse a conversion on a throwaway copy: restore the source (read with `pg_dump`, never
//! written), apply the whole plan with a run log, verify, roll everything back, check that
//! schema and data are as before, remove the copy, and write a report (Markdown and a
//! self-contained HTML timeline).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::checks;
use crate::conn::{ConnSpec, TlsMode};
use crate::engine::{self, Control, RunSettings, StopAfter};
use crate::event;
use crate::plan::{Plan, PlanOptions};
use crate::report::{Timeline, html_timeline, markdown_run};
use crate::runlog::{self, RunLogWriter};
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

fn tool(name: &str, args: &[String], env: &[(&str, String)]) -> Result<(), RehearseError> {
    let mut command = Command::new(client_tool(name));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().map_err(|e| RehearseError(format!("cannot run {name}: {e}")))?;
    if !out.status.success() {
        return Err(RehearseError(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// `pg_dump --schema-only` without the journal, with a fixed restrict key so two dumps of the
/// same schema are byte-identical.
pub fn schema_dump(url: &str) -> Result<String, RehearseError> {
    let out = Command::new(client_tool("pg_dump"))
        .args(["--schema-only", "--exclude-schema=tenantize", "--restrict-key=tenantize", "-d", url])
        .output()
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

pub async fn rehearse(
    request: &RehearseRequest,
    say: &(dyn Fn(String) + Sync),
) -> Result<RehearsalOutcome, RehearseError> {
    std::fs::create_dir_all(&request.out_dir)
        .map_err(|e| RehearseError(format!("cannot create {}: {e}", request.out_dir.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    say("starting a throwaway PostgreSQL cluster for the copy".into());
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start(&ClusterOptions { durable: true, ..Default::default() })
    })
    .await
    .map_err(|e| RehearseError(e.to_string()))?
    .map_err(|e| RehearseError(format!("cannot start the rehearsal cluster: {e}")))?;
    let scratch = tempfile::tempdir().map_err(|e| RehearseError(e.to_string()))?;
    let (dump, source_label) = match &request.source {
        Source::Database(spec) => {
            say(format!("reading {} with pg_dump (the source is only read)", spec.redacted()));
            let path = scratch.path().join("source.dump");
            let mut args = spec.libpq_args();
            args.extend(["--format=custom".into(), "--file".into(), path.display().to_string()]);
            let mut env = vec![("PGAPPNAME", "tenantize rehearse (read only)".to_string())];
            if let Some(password) = spec.password() {
                env.push(("PGPASSWORD", password));
            }
            let mode = match spec.tls_mode() {
                TlsMode::Disable => "disable",
                TlsMode::Prefer => "prefer",
                TlsMode::Require => "require",
                TlsMode::VerifyCa => "verify-ca",
                TlsMode::VerifyFull => "verify-full",
            };
            env.push(("PGSSLMODE", mode.to_string()));
            tool("pg_dump", &args, &env)?;
            (path, spec.redacted())
        }
        Source::Dump(path) => (path.clone(), format!("dump file {}", path.display())),
    };
    let database =
        cluster.create_database("rehearsal", None).await.map_err(|e| RehearseError(e.to_string()))?;
    let url = cluster.url(&database);
    say(format!("restoring into the copy ({database})"));
    let restore_started = Instant::now();
    tool(
        "pg_restore",
        &[
            "--no-owner".into(),
            "--no-privileges".into(),
            "--exit-on-error".into(),
            "-d".into(),
            url.clone(),
            dump.display().to_string(),
        ],
        &[],
    )?;
    let restore_ms = restore_started.elapsed().as_millis();
    let spec = cluster.conn_spec(&database);
    let client =
        checks::connect(&spec, "tenantize rehearse").await.map_err(|e| RehearseError(e.to_string()))?;
    client.batch_execute("ANALYZE").await.map_err(|e| RehearseError(e.to_string()))?;

    let plan: Plan = match &request.plan_file {
        Some(path) => crate::plan::file::load(path).map_err(|e| RehearseError(e.to_string()))?,
        None => {
            crate::cli::build_plan(&spec, &request.options).await.map_err(|e| RehearseError(e.message))?
        }
    };
    let schema_before = schema_dump(&url)?;
    let rows_before = checks::row_checksums(&client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;

    let mut problems = Vec::new();
    let mut exit_code = 0;
    let mut run_logs = Vec::new();
    let settings = RunSettings { application_name: "tenantize rehearse".into(), ..request.settings.clone() };

    say(format!("applying {} steps to the copy", plan.steps.len()));
    let apply_log = request.out_dir.join(format!("rehearsal.{stamp}.apply.jsonl"));
    let apply_started = Instant::now();
    let applied =
        run_logged(&apply_log, "apply", &plan, request.plan_file.as_deref(), say, async |events, control| {
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
    run_logs.push(apply_log.clone());
    if let Err(e) = &applied {
        problems.push(format!("apply failed: {e}"));
        exit_code = e.exit_code();
    }

    say("verifying".into());
    let verify = checks::verify(&spec, &plan).await.map_err(|e| RehearseError(e.to_string()))?;
    if !verify.ok {
        problems.extend(verify.problems.iter().map(|p| format!("verify: {p}")));
        if exit_code == 0 {
            exit_code = engine::exit::VERIFY_FAILED;
        }
    }
    let rows_applied = checks::row_checksums(&client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    let changed_during: Vec<&String> =
        rows_before.iter().filter(|(t, v)| rows_applied.get(*t) != Some(v)).map(|(t, _)| t).collect();
    if !changed_during.is_empty() {
        problems.push(format!("rows changed by the conversion in: {changed_during:?}"));
        exit_code = engine::exit::VERIFY_FAILED;
    }

    say("rolling everything back".into());
    let rollback_log = request.out_dir.join(format!("rehearsal.{stamp}.rollback.jsonl"));
    let rollback_started = Instant::now();
    let rolled_back = run_logged(
        &rollback_log,
        "rollback",
        &plan,
        request.plan_file.as_deref(),
        say,
        async |events, control| {
            let req = engine::RollbackRequest {
                plan: plan.clone(),
                spec: spec.clone(),
                target: engine::RollbackTarget::All,
                force: false,
                settings: settings.clone(),
            };
            engine::rollback(&req, events, control).await.map(|_| ())
        },
    )
    .await;
    let rollback_ms = rollback_started.elapsed().as_millis();
    run_logs.push(rollback_log.clone());
    if let Err(e) = &rolled_back {
        problems.push(format!("rollback failed: {e}"));
        if exit_code == 0 {
            exit_code = engine::exit::ROLLBACK_FAILED;
        }
    }

    say("checking parity with the copy as restored".into());
    let schema_after = schema_dump(&url)?;
    let rows_after = checks::row_checksums(&client, &plan.options.schemas, &plan.tenant.column)
        .await
        .map_err(|e| RehearseError(e.to_string()))?;
    let schema_same = schema_before == schema_after;
    let rows_same = rows_before == rows_after;
    if !schema_same {
        problems.push("the schema after rollback differs from the schema as restored".into());
    }
    if !rows_same {
        problems.push("the data after rollback differs from the data as restored".into());
    }
    if (!schema_same || !rows_same) && exit_code == 0 {
        exit_code = engine::exit::VERIFY_FAILED;
    }
    drop(client);

    let apply_run = runlog::read(&apply_log).map_err(|e| RehearseError(e.to_string()))?;
    let rollback_run = runlog::read(&rollback_log).map_err(|e| RehearseError(e.to_string()))?;
    let apply_timeline = Timeline::from_events(&plan, &apply_run.events);
    let rows_total: i64 = rows_before.values().map(|(n, _)| *n).sum();
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
    let window_ms = apply_timeline.total_ms as u128;
    let summary: Vec<(String, String)> = vec![
        ("source".into(), format!("{source_label} (read only)")),
        (
            "copy".into(),
            format!(
                "{server_version}, restored in {}, {} tables, {rows_total} rows",
                ms(restore_ms),
                rows_before.len()
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
        (
            "apply".into(),
            format!("{} end to end{}", ms(apply_ms), if applied.is_ok() { "" } else { ", FAILED" }),
        ),
        (
            "writes blocked".into(),
            format!(
                "{} in total, at most {} at a time",
                ms(apply_timeline.write_blocked_ms() as u128),
                ms(apply_timeline.longest_write_block_ms() as u128)
            ),
        ),
        (
            "verify".into(),
            if verify.ok { "ok".into() } else { format!("{} problems", verify.problems.len()) },
        ),
        (
            "rollback".into(),
            format!("{}{}", ms(rollback_ms), if rolled_back.is_ok() { "" } else { ", FAILED" }),
        ),
        (
            "parity after rollback".into(),
            format!(
                "schema {}, data {} ({} tables checksummed)",
                if schema_same { "identical" } else { "DIFFERENT" },
                if rows_same { "identical" } else { "DIFFERENT" },
                rows_before.len()
            ),
        ),
        (
            "predicted maintenance window".into(),
            format!(
                "{} for the conversion on data of this size (×1.5 margin: {}); the application keeps running, writes wait at most {} at a time",
                ms(window_ms),
                ms(window_ms * 3 / 2),
                ms(apply_timeline.longest_write_block_ms() as u128)
            ),
        ),
    ];
    let title = format!("tenantize rehearsal of plan {:.12}", plan.plan_hash);
    let mut markdown = format!("# {title}\n\n");
    for (k, v) in &summary {
        markdown.push_str(&format!("- **{k}**: {v}\n"));
    }
    if !problems.is_empty() {
        markdown.push_str("\n## Problems\n\n");
        for p in &problems {
            markdown.push_str(&format!("- {p}\n"));
        }
    }
    markdown.push_str(
        "\n## Slowest steps\n\n| step | took | blocked writes |\n|------|------|----------------|\n",
    );
    for step in apply_timeline.slowest(5) {
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
    std::fs::write(&html_path, html_timeline(&title, &summary, &apply_timeline))
        .map_err(|e| RehearseError(e.to_string()))?;
    say("removing the copy".into());
    drop(cluster);
    Ok(RehearsalOutcome { markdown: md_path, html: html_path, run_logs, problems, exit_code })
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
