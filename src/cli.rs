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
    /// The interactive wizard (also what plain `tenantize` opens on a terminal).
    Wizard(WizardArgs),
    /// A throwaway PostgreSQL with a sample single-tenant application, and the wizard over it.
    Demo(DemoArgs),
    /// Restore a copy, apply, verify, roll back, check parity, report; the source is only read.
    Rehearse(RehearseArgs),
    /// Write the plan as up/down migrations for sql (psql), sqlx, golang-migrate or flyway.
    Export(ExportArgs),
    /// Step through a recorded run (a run log) in the wizard, read-only; or print it as Markdown.
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A run log written by apply or rollback (JSON Lines).
    pub runlog: PathBuf,
    /// Write the run as Markdown (for a pull request comment) instead of opening the wizard.
    #[arg(long)]
    pub print: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source_kind").required(true).args(["source", "dump"])))]
pub struct RehearseArgs {
    /// The database to copy (read with pg_dump, never written).
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// A pg_dump custom-format file to restore instead.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// The plan to rehearse (default: plan the copy with the options below).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Where the reports and run logs go.
    #[arg(long, value_name = "DIR", default_value = "rehearsals")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub options: PlanOptionArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[arg(long, value_name = "sql|sqlx|golang-migrate|flyway")]
    pub format: String,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// lock_timeout written into each transactional file.
    #[arg(long, default_value_t = 1000)]
    pub lock_timeout_ms: u64,
}

#[derive(Args, Debug)]
pub struct WizardArgs {
    /// A saved plan to open (checked against the database first); without it the wizard
    /// introspects and builds one with the options below.
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub options: PlanOptionArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows in the largest table (issue_comments); the other tables scale from it.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Leave the demo cluster running on quit and print its URL.
    #[arg(long)]
    pub keep: bool,
    /// Plan the demo with batched backfills (stage 4 then shows a live gauge).
    #[arg(long, value_enum)]
    pub backfill: Option<BackfillArg>,
    #[command(flatten)]
    pub run: RunArgs,
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
#[command(args_conflicts_with_subcommands = true)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub action: Option<PlanAction>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub options: PlanOptionArgs,
    /// Where to write the plan (by convention under plans/).
    #[arg(long, value_name = "FILE", required_unless_present = "check")]
    pub out: Option<PathBuf>,
    /// Tell whether the live database would still produce the plan in FILE, and what changed
    /// (exit 0 when the same, 3 when drifted).
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    pub check: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlanAction {
    /// After a reviewed hand edit: recompute the checksums and record that the plan was edited.
    Seal {
        /// The edited plan file.
        file: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// lock_timeout for short DDL steps; a step that times out is retried with backoff.
    /// Writes queue behind a statement waiting for its lock, so this bounds the stall it causes.
    #[arg(long, default_value_t = 100)]
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
    /// Where the run log (JSON Lines) goes; default: next to the plan.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Wait for a routine autovacuum that blocks a step instead of cancelling it.
    #[arg(long)]
    pub no_cancel_autovacuum: bool,
}

impl RunArgs {
    pub fn settings(&self, command: &str) -> RunSettings {
        RunSettings {
            lock_timeout_ms: self.lock_timeout_ms,
            long_lock_timeout_ms: self.long_lock_timeout_ms,
            max_attempts: self.max_attempts.max(1),
            application_name: format!("tenantize {command}"),
            cancel_autovacuum: !self.no_cancel_autovacuum,
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
    /// The plan file (optional with --isolation: the tenancy is then read from the database).
    #[arg(required_unless_present = "isolation")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[arg(long)]
    pub json: bool,
    /// Prove isolation with two temporary tenants as a role that is neither owner, superuser
    /// nor BYPASSRLS, inside a transaction that is rolled back (exit 3 on any leak).
    #[arg(long)]
    pub isolation: bool,
    #[command(flatten, next_help_heading = "Where to look with --isolation and no plan")]
    pub options: PlanOptionArgs,
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
        Command::Wizard(args) => wizard_command(args).await,
        Command::Demo(args) => demo_command(args).await,
        Command::Rehearse(args) => rehearse_command(args).await,
        Command::Export(args) => export_command(args),
        Command::Replay(args) => replay_command(args).await,
    }
}

async fn replay_command(args: ReplayArgs) -> Result<(), CliError> {
    let log = crate::runlog::read(&args.runlog).map_err(|e| CliError::usage(e.to_string()))?;
    if args.print {
        print!("{}", crate::report::markdown_run(&log));
        return Ok(());
    }
    let model = crate::tui::replay::model(&log, std::time::Instant::now());
    crate::tui::runtime::run(None, model, RunSettings::default()).await.map_err(CliError::usage)
}

async fn rehearse_command(args: RehearseArgs) -> Result<(), CliError> {
    use crate::rehearse::{RehearseRequest, Source, rehearse};
    let source = match (&args.source, &args.dump) {
        (Some(url), _) => Source::Database(Box::new(
            ConnSpec::resolve(Some(url), &ProcessEnv).map_err(|e| CliError::usage(e.to_string()))?,
        )),
        (None, Some(path)) => Source::Dump(path.clone()),
        (None, None) => return Err(CliError::usage("give --source URL or --dump FILE")),
    };
    let request = RehearseRequest {
        source,
        plan_file: args.plan.clone(),
        options: args.options.to_options()?,
        out_dir: args.out_dir.clone(),
        settings: args.run.settings("rehearse"),
    };
    let say = |line: String| eprintln!("rehearse: {line}");
    let outcome = rehearse(&request, &say).await.map_err(|e| CliError::usage(e.to_string()))?;
    println!("report: {}", outcome.markdown.display());
    println!("timeline: {}", outcome.html.display());
    for log in &outcome.run_logs {
        println!("run log: {}", log.display());
    }
    if outcome.problems.is_empty() {
        println!("rehearsal ok: applied, verified, rolled back, schema and data as before");
        Ok(())
    } else {
        for p in &outcome.problems {
            println!("problem: {p}");
        }
        Err(CliError {
            code: outcome.exit_code,
            message: format!("{} problems in the rehearsal", outcome.problems.len()),
        })
    }
}

fn export_command(args: ExportArgs) -> Result<(), CliError> {
    let format = crate::export::Format::parse(&args.format).ok_or_else(|| {
        CliError::usage(format!(
            "--format must be sql, sqlx, golang-migrate or flyway, not {:?}",
            args.format
        ))
    })?;
    let plan = load_plan(&args.plan)?;
    let files = crate::export::export(&plan, format, args.lock_timeout_ms);
    crate::export::write(&args.out, &files)
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", args.out.display())))?;
    println!("wrote {} files to {}", files.len(), args.out.display());
    Ok(())
}

/// Plain `tenantize`: the wizard on a terminal, a usage error elsewhere.
pub async fn run_default() -> Result<(), CliError> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(CliError::usage("no command given and not on a terminal; see `tenantize --help`"));
    }
    let args = WizardArgs::from_arg_matches_default();
    wizard_command(args).await
}

impl WizardArgs {
    fn from_arg_matches_default() -> WizardArgs {
        use clap::FromArgMatches;
        let matches = <Cli as clap::CommandFactory>::command().get_matches_from(["tenantize", "wizard"]);
        let (_, sub) = matches.subcommand().expect("the wizard subcommand");
        WizardArgs::from_arg_matches(sub).expect("defaults parse")
    }
}

async fn wizard_command(args: WizardArgs) -> Result<(), CliError> {
    let spec = args.conn.spec()?;
    let options = args.options.to_options()?;
    open_wizard(spec, args.plan.as_deref(), options, args.run.settings("wizard")).await
}

/// Check or build the plan, read the journal, then hand the terminal to the wizard.
pub async fn open_wizard(
    spec: ConnSpec,
    plan_file: Option<&Path>,
    options: PlanOptions,
    settings: RunSettings,
) -> Result<(), CliError> {
    use crate::plan::Severity;
    use crate::tui::state::{Model, ServerSummary};
    let client = spec.connect("tenantize wizard").await.map_err(|e| CliError::usage(e.to_string()))?;
    let mut plan_check = Vec::new();
    let mut read_only_reason = None;
    let (plan, options) = match plan_file {
        Some(path) => {
            let plan = plan::file::read_unverified(path)?;
            match plan::file::verify_checksums(&plan, &path.display().to_string()) {
                Ok(()) => plan_check.push((Severity::Info, format!("{}: checksums match", path.display()))),
                Err(e) => {
                    plan_check.push((Severity::Error, e.to_string()));
                    read_only_reason = Some(e.to_string());
                }
            }
            let options = plan.options.clone();
            (plan, options)
        }
        None => {
            let plan = build_plan(&spec, &options).await?;
            plan_check.push((Severity::Info, "plan built from the live catalog just now".to_string()));
            (plan, options)
        }
    };
    let catalog = introspect(&client, &plan.options.schemas, std::slice::from_ref(&plan.tenant.table.schema))
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    let status = engine::read_status(&spec, &plan).await?;
    let done: std::collections::BTreeSet<&str> = status
        .steps
        .iter()
        .filter(|s| s.state == engine::StepState::Done)
        .map(|s| s.step_id.as_str())
        .collect();
    let pending: Vec<&plan::Step> = plan.steps.iter().filter(|s| !done.contains(s.id.as_str())).collect();
    let tables: std::collections::BTreeSet<QualifiedName> =
        pending.iter().flat_map(|s| s.tables.iter().cloned()).collect();
    let drift = engine::drift(&plan, &catalog, Some(&tables));
    if pending.is_empty() {
        plan_check.push((Severity::Info, "every step is applied".to_string()));
    } else if drift.is_empty() {
        plan_check.push((Severity::Info, "no drift: the database still matches the plan".to_string()));
    } else {
        for line in drift.lines() {
            plan_check.push((Severity::Error, format!("drift: {line}; apply will refuse")));
        }
    }
    for (hash, count) in &status.other_active_plans {
        plan_check.push((Severity::Error, format!("another plan {hash:.12} has {count} applied steps here")));
    }
    if !done.is_empty() {
        plan_check.push((
            Severity::Info,
            format!("resuming: the journal shows {} of {} steps done", done.len(), plan.steps.len()),
        ));
    }
    let scoped: Vec<&QualifiedName> = plan.tables.iter().filter(|t| t.scoped).map(|t| &t.name).collect();
    let server = ServerSummary {
        connection: spec.redacted(),
        database: catalog.server.database.clone(),
        version: catalog.server.version.clone(),
        role: catalog.role.name.clone(),
        superuser: catalog.role.superuser,
        bypass_rls: catalog.role.bypass_rls,
        can_create_schema: catalog.journal_exists || catalog.role.can_create_in_database,
        owns_all_tables: scoped
            .iter()
            .all(|name| catalog.table(name).is_none_or(|t| t.owned_by_current_role)),
    };
    let mut model = Model::new(plan, options, server, std::time::Instant::now());
    model.plan_path = plan_file.map(Path::to_path_buf);
    model.catalog = Some(catalog);
    model.plan_check = plan_check;
    model.apply_journal(&status.steps);
    if let Some(reason) = read_only_reason {
        model.read_only = true;
        model.message = Some((Severity::Error, format!("read-only: {reason}")));
    }
    drop(client);
    crate::tui::runtime::run(Some(spec), model, settings).await.map_err(CliError::usage)
}

async fn demo_command(args: DemoArgs) -> Result<(), CliError> {
    use crate::sandbox::{Cluster, ClusterOptions};
    let started = std::time::Instant::now();
    eprintln!("tenantize demo: starting a throwaway PostgreSQL cluster…");
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await
        .map_err(|e| CliError::usage(e.to_string()))?
        .map_err(|e| CliError::usage(format!("cannot start the demo database: {e}")))?;
    let database =
        cluster.create_database("tenantize_demo", None).await.map_err(|e| CliError::usage(e.to_string()))?;
    let spec = cluster.conn_spec(&database);
    eprintln!("tenantize demo: loading the sample issue tracker ({} rows in issue_comments)…", args.rows);
    let client = spec.connect("tenantize demo").await.map_err(|e| CliError::usage(e.to_string()))?;
    crate::sample::load(&client, args.rows).await.map_err(|e| {
        CliError::usage(format!("loading the sample failed: {}", crate::conn::describe_pg_error(&e)))
    })?;
    drop(client);
    eprintln!("tenantize demo: ready in {:.1} s; opening the wizard", started.elapsed().as_secs_f64());
    let options = PlanOptions {
        exclude: vec!["public.issue_statuses".to_string()],
        backfill: args.backfill.map(|b| match b {
            BackfillArg::Fast => BackfillMode::Fast,
            BackfillArg::Batched => BackfillMode::Batched,
        }),
        ..PlanOptions::default()
    };
    let result = open_wizard(spec, None, options, args.run.settings("demo")).await;
    if args.keep {
        cluster.keep_running();
        println!("The demo database is still running: {}", cluster.url(&database));
        println!(
            "Stop and remove it with: runuser -u postgres -- {}/pg_ctl -D {} stop && rm -rf {}",
            cluster.bin_dir().display(),
            cluster.data_dir().display(),
            cluster.socket_dir().display()
        );
    } else {
        eprintln!("tenantize demo: removing the demo cluster");
    }
    drop(cluster);
    result
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
    if let Some(PlanAction::Seal { file }) = &args.action {
        return seal_command(file);
    }
    if let Some(file) = &args.check {
        return check_command(file, &args.conn).await;
    }
    let out = args.out.clone().expect("clap requires --out without --check");
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
    plan::file::save(&plan, &out)?;
    println!("Wrote {}", out.display());
    Ok(())
}

fn seal_command(file: &Path) -> Result<(), CliError> {
    let mut plan = plan::file::read_unverified(file)?;
    let edited: Vec<String> =
        plan.steps.iter().filter(|s| plan::file::step_hash(s) != s.hash).map(|s| s.id.clone()).collect();
    let whole_plan_changed = plan::file::plan_hash(&plan) != plan.plan_hash;
    if edited.is_empty() && !whole_plan_changed {
        println!("{}: checksums already match; nothing to seal", file.display());
        return Ok(());
    }
    plan::file::seal(&mut plan);
    plan::file::save(&plan, file)?;
    if edited.is_empty() {
        println!(
            "sealed {}: the plan was edited outside its steps (options, tables or order)",
            file.display()
        );
    } else {
        println!("sealed {}: edited steps {}", file.display(), edited.join(", "));
    }
    println!("the plan now records edited = true; new plan hash {:.12}", plan.plan_hash);
    Ok(())
}

/// `plan --check`: the drift of every table (what changed), and — while nothing is applied —
/// whether planning again would give the same steps.
async fn check_command(file: &Path, conn: &ConnArgs) -> Result<(), CliError> {
    let saved = load_plan(file)?;
    let spec = conn.spec()?;
    let client = spec.connect("tenantize plan --check").await.map_err(|e| CliError::usage(e.to_string()))?;
    let catalog =
        introspect(&client, &saved.options.schemas, std::slice::from_ref(&saved.tenant.table.schema))
            .await
            .map_err(|e| CliError::usage(e.to_string()))?;
    let report = engine::drift(&saved, &catalog, None);
    let mut lines = report.lines();
    let status = engine::read_status(&spec, &saved).await?;
    let nothing_applied = status.steps.iter().all(|s| !s.state.has_effects());
    if nothing_applied && lines.is_empty() {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let fresh =
            plan::build(&catalog, &saved.options, &now).map_err(|e| CliError::usage(e.to_string()))?;
        if plan::file::canonical_text(&fresh) != plan::file::canonical_text(&saved) {
            let ids = |p: &Plan| p.steps.iter().map(|s| (s.id.clone(), s.hash.clone())).collect::<Vec<_>>();
            let (old, new) = (ids(&saved), ids(&fresh));
            let added: Vec<&String> =
                new.iter().filter(|(id, _)| !old.iter().any(|(o, _)| o == id)).map(|(id, _)| id).collect();
            let removed: Vec<&String> =
                old.iter().filter(|(id, _)| !new.iter().any(|(n, _)| n == id)).map(|(id, _)| id).collect();
            let changed: Vec<&String> = new
                .iter()
                .filter(|(id, hash)| old.iter().any(|(o, h)| o == id && h != hash))
                .map(|(id, _)| id)
                .collect();
            lines.push(format!(
                "planning again gives other steps: {} added {:?}, {} removed {:?}, {} changed {:?}",
                added.len(),
                added,
                removed.len(),
                removed,
                changed.len(),
                changed
            ));
            if saved.edited {
                lines.push(
                    "(the saved plan was edited by hand and sealed; its steps differ by design)".into(),
                );
            }
        }
    }
    if lines.is_empty() {
        println!(
            "{}: the database {} would still produce this plan",
            file.display(),
            catalog.server.database
        );
        return Ok(());
    }
    println!("{}: the database {} has drifted from this plan:", file.display(), catalog.server.database);
    for line in &lines {
        println!("  {line}");
    }
    Err(CliError { code: exit::VERIFY_FAILED, message: format!("{} differences", lines.len()) })
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

fn run_log(
    run: &RunArgs,
    plan_file: &Path,
    command: &str,
    plan: &Plan,
) -> Result<crate::runlog::RunLogWriter, CliError> {
    let path = run.log.clone().unwrap_or_else(|| crate::runlog::default_path(Some(plan_file), command));
    let writer = crate::runlog::RunLogWriter::create(&path, command, plan, Some(plan_file))
        .map_err(|e| CliError::usage(format!("cannot write the run log {}: {e}", path.display())))?;
    eprintln!("run log: {}", path.display());
    Ok(writer)
}

fn load_plan(path: &Path) -> Result<Plan, CliError> {
    Ok(plan::file::load(path)?)
}

/// Run an engine future while printing its events (and writing them to `log`); Ctrl-C
/// cancels the running step safely.
async fn with_printer<T>(
    log: Option<crate::runlog::RunLogWriter>,
    work: impl AsyncFnOnce(&event::EventSender, &Control) -> Result<T, EngineError>,
) -> Result<T, CliError> {
    let (tx, rx) = event::channel();
    let rx = match log {
        Some(writer) => crate::runlog::tee(rx, writer),
        None => rx,
    };
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
    let log = if args.dry_run { None } else { Some(run_log(&args.run, &args.file, "apply", &request.plan)?) };
    let outcome = with_printer(log, async |tx, control| engine::apply(&request, tx, control).await).await?;
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
    let log = run_log(&args.run, &args.file, "rollback", &request.plan)?;
    with_printer(Some(log), async |tx, control| engine::rollback(&request, tx, control).await).await?;
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

async fn isolation_command(args: &VerifyArgs) -> Result<(), CliError> {
    use crate::checks::isolation::{Tenancy, probe};
    let spec = args.conn.spec()?;
    let plan = args.file.as_deref().map(load_plan).transpose()?;
    let options = match &plan {
        Some(plan) => plan.options.clone(),
        None => args.options.to_options()?,
    };
    let client =
        spec.connect("tenantize isolation probe").await.map_err(|e| CliError::usage(e.to_string()))?;
    let catalog = introspect(&client, &options.schemas, std::slice::from_ref(&options.tenant_table.schema))
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    let tenancy = match &plan {
        Some(plan) => Tenancy::from_plan(plan),
        None => Tenancy::discover(
            &catalog,
            options.tenant_table.clone(),
            &options.tenant_column,
            &options.tenant_setting,
        ),
    };
    let report = probe(&client, &catalog, &tenancy).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        println!(
            "isolation probe on {} ({} tables, {} views): {}",
            catalog.server.database,
            report.tables.len(),
            report.views.len(),
            if report.ok { "no leak" } else { "LEAKS FOUND" }
        );
        for object in report.tables.iter().chain(report.views.iter()) {
            let failed: Vec<&crate::checks::isolation::Probe> =
                object.probes.iter().filter(|p| !p.passed).collect();
            let mark = if failed.is_empty() { "ok  " } else { "LEAK" };
            println!("  {mark} {} ({} probes)", object.object, object.probes.len());
            for probe in failed {
                println!("       ✗ {}: {}", probe.name, probe.detail);
            }
        }
        for note in &report.notes {
            println!("  note: {note}");
        }
        println!("(everything ran in one transaction that was rolled back: nothing was left behind)");
    }
    if report.ok {
        Ok(())
    } else {
        Err(CliError { code: exit::VERIFY_FAILED, message: format!("{} leaks", report.leaks.len()) })
    }
}

async fn verify_command(args: VerifyArgs) -> Result<(), CliError> {
    if args.isolation {
        return isolation_command(&args).await;
    }
    let file = args.file.clone().expect("clap requires a plan file without --isolation");
    let plan = load_plan(&file)?;
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
