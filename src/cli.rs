//! Command-line arguments and the headless commands. `anyhow`-free: every failure maps to a
//! documented exit code through [`CliError`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::catalog::introspect;
use crate::checks;
use crate::conn::{ConnSpec, ProcessEnv};
use crate::engine::{self, Control, EngineError, RunSettings, exit};
use crate::event;
use crate::headless::{Printer, print_events};
use crate::plan::{self, BackfillMode, KeyType, Plan, PlanOptions, Stage};
use crate::sql::QualifiedName;

#[derive(Parser, Debug)]
#[command(
    name = "tenantize",
    version,
    about = "Convert a live single-tenant PostgreSQL database into a multi-tenant one, stage by stage.",
    after_help = "Exit codes: 0 success · 1 preflight refused · 2 a step failed · 3 verification failed · \
                  4 rollback failed · 5 usage, connection, plan or lock error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Introspect the database, build the plan, write it and print a summary.
    Plan(PlanArgs),
    /// Run the plan's steps that are not done yet (resumes interrupted ones).
    Apply(ApplyArgs),
    /// Undo applied steps in reverse order.
    Rollback(RollbackArgs),
    /// Show the journal: each step's state, timings and errors.
    Status(StatusArgs),
    /// Run every validation check as counts (exit 3 on any failure).
    Verify(VerifyArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// PostgreSQL URL or libpq key=value string (else DATABASE_URL, else PGHOST, PGPORT,
    /// PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE).
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
}

impl ConnArgs {
    pub fn spec(&self) -> Result<ConnSpec, CliError> {
        ConnSpec::resolve(self.database_url.as_deref(), &ProcessEnv)
            .map_err(|e| CliError::usage(e.to_string()))
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum BackfillArg {
    Fast,
    Batched,
}

#[derive(Args, Debug, Clone)]
pub struct PlanOptionArgs {
    /// Schema to convert (repeatable).
    #[arg(long = "schema", value_name = "NAME", default_value = "public")]
    pub schemas: Vec<String>,
    /// Shared table: no tenant column, no policy (repeatable, [SCHEMA.]TABLE).
    #[arg(long, value_name = "[SCHEMA.]TABLE")]
    pub exclude: Vec<String>,
    /// Name of the tenant table ([SCHEMA.]TABLE; the schema defaults to the first --schema).
    #[arg(long, default_value = "tenants")]
    pub tenant_table: String,
    #[arg(long, default_value = "tenant_id")]
    pub tenant_column: String,
    #[arg(long, value_name = "uuid|bigint|text", default_value = "uuid")]
    pub tenant_key_type: String,
    /// Id of the tenant every existing row belongs to (default: ...0001, 1 or "default").
    #[arg(long)]
    pub default_tenant_id: Option<String>,
    #[arg(long, default_value = "Default tenant")]
    pub default_tenant_name: String,
    /// The setting the policies read the current tenant from.
    #[arg(long, default_value = "app.tenant_id")]
    pub tenant_setting: String,
    /// fast: metadata-only column default; batched: keyset batches (default: fast where the
    /// server allows it).
    #[arg(long, value_enum)]
    pub backfill: Option<BackfillArg>,
    /// Rows per batch for --backfill batched.
    #[arg(long, default_value_t = 5000)]
    pub batch_rows: u32,
}

impl PlanOptionArgs {
    pub fn to_options(&self) -> Result<PlanOptions, CliError> {
        let key_type = KeyType::parse(&self.tenant_key_type).ok_or_else(|| {
            CliError::usage(format!(
                "--tenant-key-type must be uuid, bigint or text, not {:?}",
                self.tenant_key_type
            ))
        })?;
        let schemas = if self.schemas.is_empty() { vec!["public".to_string()] } else { self.schemas.clone() };
        Ok(PlanOptions {
            tenant_table: QualifiedName::parse_plain(&self.tenant_table, &schemas[0]),
            exclude: self
                .exclude
                .iter()
                .map(|e| QualifiedName::parse_plain(e, &schemas[0]).display_plain())
                .collect(),
            schemas,
            tenant_column: self.tenant_column.clone(),
            tenant_key_type: key_type,
            default_tenant_id: self
                .default_tenant_id
                .clone()
                .unwrap_or_else(|| key_type.default_tenant_id().to_string()),
            default_tenant_name: self.default_tenant_name.clone(),
            tenant_setting: self.tenant_setting.clone(),
            backfill: self.backfill.map(|b| match b {
                BackfillArg::Fast => BackfillMode::Fast,
                BackfillArg::Batched => BackfillMode::Batched,
            }),
            batch_rows: self.batch_rows,
        })
    }
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub options: PlanOptionArgs,
    /// Where to write the plan (by convention under plans/).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// lock_timeout for short DDL steps; a step that times out is retried with backoff.
    #[arg(long, default_value_t = 1000)]
    pub lock_timeout_ms: u64,
    /// lock_timeout for long steps under weak locks (VALIDATE, CONCURRENTLY).
    #[arg(long, default_value_t = 600_000)]
    pub long_lock_timeout_ms: u64,
    /// How many times a statement is tried when it cannot get its lock.
    #[arg(long, default_value_t = 30)]
    pub max_attempts: u32,
    /// Answer yes to the confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

impl RunArgs {
    pub fn settings(&self, command: &str) -> RunSettings {
        RunSettings {
            lock_timeout_ms: self.lock_timeout_ms,
            long_lock_timeout_ms: self.long_lock_timeout_ms,
            max_attempts: self.max_attempts.max(1),
            application_name: format!("tenantize {command}"),
            ..RunSettings::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The plan file.
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Stop after this stage (1-8 or its name).
    #[arg(long, value_name = "STAGE", value_parser = parse_stage)]
    pub through: Option<Stage>,
    /// Check everything (checksums, drift, privileges, lock) and list what would run.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "all"])))]
pub struct RollbackArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Keep stages up to this one, undo the later ones.
    #[arg(long, value_name = "STAGE", value_parser = parse_stage)]
    pub to: Option<Stage>,
    /// Undo every applied step.
    #[arg(long)]
    pub all: bool,
    /// Undo even where it loses which tenant rows belong to.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[arg(long)]
    pub json: bool,
}

fn parse_stage(text: &str) -> Result<Stage, String> {
    Stage::parse(text).ok_or_else(|| {
        format!(
            "unknown stage {text:?}: use 1-8 or {}",
            Stage::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// A failure with its exit code and the message for stderr.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { code: exit::USAGE, message: message.into() }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError { code: e.exit_code(), message: e.to_string() }
    }
}

impl From<plan::file::PlanFileError> for CliError {
    fn from(e: plan::file::PlanFileError) -> Self {
        CliError::usage(e.to_string())
    }
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Plan(args) => plan_command(args).await,
        Command::Apply(args) => apply_command(args).await,
        Command::Rollback(args) => rollback_command(args).await,
        Command::Status(args) => status_command(args).await,
        Command::Verify(args) => verify_command(args).await,
    }
}

/// Introspect and build a plan (shared by `plan`, the wizard and the demo).
pub async fn build_plan(spec: &ConnSpec, options: &PlanOptions) -> Result<Plan, CliError> {
    let client = spec.connect("tenantize plan").await.map_err(|e| CliError::usage(e.to_string()))?;
    let catalog = introspect(&client, &options.schemas, std::slice::from_ref(&options.tenant_table.schema))
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    plan::build(&catalog, options, &now).map_err(|e| CliError::usage(e.to_string()))
}

pub fn summarize(plan: &Plan) -> String {
    let scoped = plan.tables.iter().filter(|t| t.scoped && t.partition_of.is_none()).count();
    let partitions = plan.tables.iter().filter(|t| t.scoped && t.partition_of.is_some()).count();
    let shared = plan.tables.iter().filter(|t| !t.scoped).count();
    let mut out = format!(
        "Plan for database {} ({}): {} tenant-scoped tables{}, {} shared, {} steps, plan {:.12}\n",
        plan.source.database,
        plan.source.server_version.split(" on ").next().unwrap_or(""),
        scoped,
        if partitions > 0 { format!(" (+{partitions} partitions)") } else { String::new() },
        shared,
        plan.steps.len(),
        plan.plan_hash
    );
    for stage in Stage::ALL {
        let steps: Vec<_> = plan.steps_in(stage).collect();
        let strongest = steps.iter().map(|s| s.strongest_lock()).max();
        out.push_str(&format!(
            "  {} {:<15} {:>4} steps  strongest lock: {}\n",
            stage.number(),
            stage.name(),
            steps.len(),
            strongest.map(|l| l.label()).unwrap_or("-")
        ));
    }
    if !plan.findings.is_empty() {
        out.push_str("Findings:\n");
        for f in &plan.findings {
            out.push_str(&format!("  {:<7} {} {}: {}\n", f.severity.label(), f.code, f.object, f.message));
        }
    }
    out
}

async fn plan_command(args: PlanArgs) -> Result<(), CliError> {
    let spec = args.conn.spec()?;
    let options = args.options.to_options()?;
    let plan = build_plan(&spec, &options).await?;
    print!("{}", summarize(&plan));
    if plan.errors().next().is_some() {
        return Err(CliError {
            code: exit::PREFLIGHT_REFUSED,
            message: "the plan has errors (see Findings); nothing was written".into(),
        });
    }
    plan::file::save(&plan, &args.out)?;
    println!("Wrote {}", args.out.display());
    Ok(())
}

fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!("{question}: refusing without confirmation; pass --yes")));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| CliError::usage(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::usage("not confirmed; nothing was changed"))
    }
}

fn load_plan(path: &Path) -> Result<Plan, CliError> {
    Ok(plan::file::load(path)?)
}

/// Run an engine future while printing its events; Ctrl-C cancels the running step safely.
async fn with_printer<T>(
    work: impl AsyncFnOnce(&event::EventSender, &Control) -> Result<T, EngineError>,
) -> Result<T, CliError> {
    let (tx, rx) = event::channel();
    let (control, _pause) = Control::detached();
    let terminal = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let printer = tokio::spawn(print_events(rx, Printer::new(std::io::stdout(), terminal)));
    let cancel = control.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let result = work(&tx, &control).await;
    drop(tx);
    let _ = printer.await;
    ctrl_c.abort();
    Ok(result?)
}

async fn apply_command(args: ApplyArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.file)?;
    let spec = args.conn.spec()?;
    if !args.dry_run {
        confirm(&format!("Apply {} to {}?", args.file.display(), spec.redacted()), args.run.yes)?;
    }
    let request = engine::ApplyRequest {
        plan,
        spec,
        stop_after: args.through.map(engine::StopAfter::Stage).unwrap_or(engine::StopAfter::All),
        dry_run: args.dry_run,
        settings: args.run.settings("apply"),
    };
    let outcome = with_printer(async |tx, control| engine::apply(&request, tx, control).await).await?;
    if args.dry_run {
        for id in &outcome.steps_to_run {
            let step = request.plan.step(id).expect("pending steps come from the plan");
            println!("would run {id}: {} ({})", step.title, step.strongest_lock().label());
        }
    }
    Ok(())
}

async fn rollback_command(args: RollbackArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.file)?;
    let spec = args.conn.spec()?;
    let target = match (args.to, args.all) {
        (Some(stage), false) => engine::RollbackTarget::ToStage(stage),
        _ => engine::RollbackTarget::All,
    };
    confirm(&format!("Roll back {} on {}?", args.file.display(), spec.redacted()), args.run.yes)?;
    let request = engine::RollbackRequest {
        plan,
        spec,
        target,
        force: args.force,
        settings: args.run.settings("rollback"),
    };
    with_printer(async |tx, control| engine::rollback(&request, tx, control).await).await?;
    Ok(())
}

async fn status_command(args: StatusArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.file)?;
    let spec = args.conn.spec()?;
    let status = engine::read_status(&spec, &plan).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status).expect("status serializes"));
        return Ok(());
    }
    println!("plan {:.12} on database {}", status.plan_hash, status.database);
    if !status.journal_present {
        println!("no journal in this database: nothing has been applied");
        return Ok(());
    }
    for (hash, done) in &status.other_active_plans {
        println!("another plan {hash:.12} has {done} applied steps in this database");
    }
    let by_id: std::collections::BTreeMap<&str, &engine::JournalStep> =
        status.steps.iter().map(|s| (s.step_id.as_str(), s)).collect();
    for step in &plan.steps {
        match by_id.get(step.id.as_str()) {
            Some(j) => {
                let duration = j.duration_ms.map(|d| format!("{d} ms")).unwrap_or_else(|| "-".into());
                let error = j.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
                println!(
                    "  {:<11} {:<52} {:>9} {:>9} rows{}",
                    j.state.as_str(),
                    step.id,
                    duration,
                    j.rows_affected,
                    error
                );
            }
            None => println!("  {:<11} {}", "pending", step.id),
        }
    }
    Ok(())
}

async fn verify_command(args: VerifyArgs) -> Result<(), CliError> {
    let plan = load_plan(&args.file)?;
    let spec = args.conn.spec()?;
    let report = checks::verify(&spec, &plan).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        println!(
            "verify {} (applied through stage {}): {}",
            report.database,
            report.applied_through,
            if report.ok { "ok" } else { "FAILED" }
        );
        println!("  {:<40} {:>10} {:>8} {:>8} {:>8}  rls", "table", "rows", "no tenant", "unknown", "cross");
        for t in &report.tables {
            let rls = match (t.rls_enabled, t.rls_forced, t.has_policy) {
                (true, true, true) => "on, forced",
                (false, _, _) => "off",
                _ => "partial",
            };
            println!(
                "  {:<40} {:>10} {:>8} {:>8} {:>8}  {}{}",
                format!("{}{}", t.table, if t.scoped { "" } else { " (shared)" }),
                t.rows,
                t.null_tenant,
                t.unknown_tenant,
                t.cross_tenant,
                if t.scoped { rls } else { "-" },
                if t.unscoped_uniques.is_empty() || !t.scoped {
                    String::new()
                } else {
                    format!("  global uniques: {}", t.unscoped_uniques.join(", "))
                }
            );
        }
        for p in &report.problems {
            println!("  problem: {p}");
        }
    }
    if !report.ok {
        return Err(CliError {
            code: exit::VERIFY_FAILED,
            message: format!("{} problems found", report.problems.len()),
        });
    }
    Ok(())
}
