//! The command line: every subcommand, flag and default, parsed by clap. Defaults come from
//! the types they configure (`RunSettings`, `PlanOptions`), written once.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::Failure;
use crate::db::{ConnSpec, ProcessEnv};
use crate::engine::RunSettings;
use crate::plan::{BackfillMode, KeyType, PlanOptions, Stage};
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
    /// Finish the cutover (stage 10), once the application sets the tenant per transaction:
    /// tenant columns default to the session's tenant, legacy roles lose the default tenant.
    Cutover(CutoverArgs),
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
    /// Write the plan as migrations (sql, sqlx, golang-migrate, flyway, dbmate, alembic, sqitch)
    /// or as a pgTAP file asserting the converted schema's tenant invariants.
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
    pub run: RunTuning,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// The migration tool the files are written for: sql (psql -f), sqlx, golang-migrate,
    /// flyway, dbmate, alembic or sqitch; or pgtap (a test file of the tenant invariants).
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// The directory the files are written to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// lock_timeout written into each transactional file (longer than a run's: migration tools
    /// do not retry).
    #[arg(long, default_value_t = crate::export::DEFAULT_LOCK_TIMEOUT_MS)]
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
    pub run: RunTuning,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows in the largest table (issue_comments); the other tables scale from it.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Leave the demo cluster running on quit and print its URL.
    #[arg(long)]
    pub keep: bool,
    /// fast or batched backfills (batched: stage 4 shows a live gauge); without it, fast
    /// where the server allows it.
    #[arg(long, value_enum)]
    pub backfill: Option<BackfillArg>,
    #[command(flatten)]
    pub run: RunTuning,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// PostgreSQL URL, libpq key=value string or database name (else DATABASE_URL); as with
    /// psql, PG* variables, the service file and ~/.pgpass fill in what it leaves out.
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
}

impl ConnArgs {
    pub fn spec(&self) -> Result<ConnSpec, Failure> {
        Ok(ConnSpec::resolve(self.database_url.as_deref(), &ProcessEnv)?)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackfillArg {
    Fast,
    Batched,
}

impl From<BackfillArg> for BackfillMode {
    fn from(arg: BackfillArg) -> Self {
        match arg {
            BackfillArg::Fast => BackfillMode::Fast,
            BackfillArg::Batched => BackfillMode::Batched,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    Uuid,
    #[value(alias = "int8")]
    Bigint,
    Text,
}

impl From<KeyTypeArg> for KeyType {
    fn from(arg: KeyTypeArg) -> Self {
        match arg {
            KeyTypeArg::Uuid => KeyType::Uuid,
            KeyTypeArg::Bigint => KeyType::Bigint,
            KeyTypeArg::Text => KeyType::Text,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Sql,
    Sqlx,
    GolangMigrate,
    Flyway,
    Dbmate,
    Alembic,
    Sqitch,
    Pgtap,
}

impl From<FormatArg> for crate::export::Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Sql => crate::export::Format::Sql,
            FormatArg::Sqlx => crate::export::Format::Sqlx,
            FormatArg::GolangMigrate => crate::export::Format::GolangMigrate,
            FormatArg::Flyway => crate::export::Format::Flyway,
            FormatArg::Dbmate => crate::export::Format::Dbmate,
            FormatArg::Alembic => crate::export::Format::Alembic,
            FormatArg::Sqitch => crate::export::Format::Sqitch,
            FormatArg::Pgtap => crate::export::Format::Pgtap,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct PlanOptionArgs {
    /// Schema to convert (repeatable).
    #[arg(long = "schema", value_name = "NAME", default_value = "public")]
    pub schemas: Vec<String>,
    /// Shared table: no tenant column, no policy (repeatable, [SCHEMA.]TABLE).
    #[arg(long, value_name = "[SCHEMA.]TABLE")]
    pub exclude: Vec<String>,
    /// Name of the tenant table ([SCHEMA.]TABLE; without a schema: public when public is
    /// converted, else the first --schema).
    #[arg(long, default_value = "tenants")]
    pub tenant_table: String,
    /// Name of the column added to every tenant-scoped table.
    #[arg(long, default_value = "tenant_id")]
    pub tenant_column: String,
    /// Type of the tenant key.
    #[arg(long, value_enum, ignore_case = true, default_value = "uuid")]
    pub tenant_key_type: KeyTypeArg,
    /// Id of the tenant every existing row belongs to (default: ...0001, 1 or "default").
    #[arg(long)]
    pub default_tenant_id: Option<String>,
    /// Name of the tenant every existing row belongs to.
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
    #[arg(long, default_value_t = PlanOptions::default().batch_rows)]
    pub batch_rows: u32,
    /// Accept a finding that blocks the plan, after reading it (repeatable, CODE:OBJECT as
    /// the finding prints them, e.g. materialized-view:public.user_stats).
    #[arg(long, value_name = "CODE:OBJECT")]
    pub acknowledge: Vec<String>,
    /// Which primary keys become (tenant column, key): natural ones (no sequence, identity or
    /// computed default), all, or none.
    /// [default: natural; all with --distribute]
    #[arg(long, value_enum)]
    pub scope_primary_keys: Option<PrimaryKeyScopeArg>,
    /// Stage 6 also indexes the columns of a tenant-scoped foreign key where the application
    /// has no index on them (by default it builds none there: a parent's key change scans the
    /// child as it did before, and every index costs each write and each plan of its table).
    #[arg(long)]
    pub index_foreign_keys: bool,
    /// Stage 6 also rebuilds each of the application's plain btree indexes on an ordinary
    /// tenant-scoped table as the same index INCLUDE (tenant column), concurrently and under
    /// its own name, so an index-only scan of it stays one under the policy (the
    /// index-only-scan findings name them; by default none is rebuilt: each rebuild reads the
    /// table and writes a new index).
    #[arg(long)]
    pub cover_indexes: bool,
    /// A role the application connects as today without setting the tenant (repeatable):
    /// stage 8 gives it the default tenant in this database, the cutover (stage 10) takes it
    /// away.
    #[arg(long = "legacy-role", value_name = "ROLE")]
    pub legacy_roles: Vec<String>,
    /// Add stage 9: distribute every tenant table by the tenant column on this Citus
    /// coordinator's workers (colocated; the tenant table and the shared tables they
    /// reference become reference tables).
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub distribute: Option<DistributeArg>,
    /// Shards per distributed table (default: the server's citus.shard_count).
    #[arg(long, requires = "distribute")]
    pub shard_count: Option<u32>,
    /// Let stage 9 distribute a table that cannot be distributed online (one without a
    /// replica identity) with the blocking create_distributed_table, which blocks its writes
    /// while it copies; the plan shows the lock.
    #[arg(long, requires = "distribute")]
    pub allow_blocking_distribution: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DistributeArg {
    Citus,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrimaryKeyScopeArg {
    Natural,
    All,
    None,
}

impl From<PrimaryKeyScopeArg> for crate::plan::PrimaryKeyScope {
    fn from(arg: PrimaryKeyScopeArg) -> Self {
        match arg {
            PrimaryKeyScopeArg::Natural => crate::plan::PrimaryKeyScope::Natural,
            PrimaryKeyScopeArg::All => crate::plan::PrimaryKeyScope::All,
            PrimaryKeyScopeArg::None => crate::plan::PrimaryKeyScope::None,
        }
    }
}

/// Where a tenant table named without a schema goes: `public` when it is converted (where an
/// application looks first), else the first `--schema`.
fn tenant_table_schema(schemas: &[String]) -> &str {
    if schemas.iter().any(|s| s == "public") { "public" } else { &schemas[0] }
}

impl PlanOptionArgs {
    pub fn to_options(&self) -> PlanOptions {
        let key_type = KeyType::from(self.tenant_key_type);
        let schemas = if self.schemas.is_empty() { vec!["public".to_string()] } else { self.schemas.clone() };
        PlanOptions {
            tenant_table: QualifiedName::parse_plain(&self.tenant_table, tenant_table_schema(&schemas)),
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
            backfill: self.backfill.map(BackfillMode::from),
            batch_rows: self.batch_rows,
            acknowledge: self.acknowledge.clone(),
            scope_primary_keys: match (self.scope_primary_keys, self.distribute) {
                (Some(scope), _) => scope.into(),
                (None, Some(_)) => crate::plan::PrimaryKeyScope::All,
                (None, None) => crate::plan::PrimaryKeyScope::Natural,
            },
            index_foreign_keys: self.index_foreign_keys,
            cover_indexes: self.cover_indexes,
            legacy_roles: self.legacy_roles.clone(),
            distribute: self.distribute.map(|DistributeArg::Citus| crate::plan::Distribution {
                shard_count: self.shard_count,
                allow_blocking: self.allow_blocking_distribution,
            }),
        }
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
    /// Overwrite a sealed plan at --out (one edited by hand and sealed after review).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Tell whether the live database would still produce the plan in FILE, and what changed
    /// (exit 0 when the same, 3 when drifted). The plan's own options are used: option flags
    /// given with it are refused.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "PlanOptionArgs"])]
    pub check: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlanAction {
    /// After a reviewed hand edit: recompute the checksums and record that the plan was edited.
    Seal {
        /// The edited plan file.
        file: PathBuf,
    },
    /// Make the plan this database's: for the database it was built on, moved (restored
    /// elsewhere, upgraded), which apply and the others refuse as another database.
    Retarget {
        /// The plan file (rewritten in place; its checksums do not cover the database).
        file: PathBuf,
    },
}

/// How a run goes (apply, rollback, and the runs the wizard, demo and rehearse start).
#[derive(Args, Debug, Clone)]
pub struct RunTuning {
    /// lock_timeout for short DDL steps; a step that times out is retried with backoff.
    /// Writes queue behind a statement waiting for its lock, so this bounds the stall it causes.
    #[arg(long, default_value_t = RunSettings::default().lock_timeout_ms)]
    pub lock_timeout_ms: u64,
    /// lock_timeout for long steps under weak locks (VALIDATE, CONCURRENTLY).
    #[arg(long, default_value_t = RunSettings::default().long_lock_timeout_ms)]
    pub long_lock_timeout_ms: u64,
    /// How many times a statement is tried when it cannot get its lock.
    #[arg(long, default_value_t = RunSettings::default().max_attempts)]
    pub max_attempts: u32,
    /// Wait for a routine autovacuum that blocks a step instead of cancelling it.
    #[arg(long)]
    pub no_cancel_autovacuum: bool,
}

/// The headless runs' options: the tuning, the confirmation and the run log. The wizard, the
/// demo and rehearse confirm on screen and name their run logs themselves, so they take only
/// the tuning (and refuse `--yes` and `--log` rather than ignore them).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub tuning: RunTuning,
    /// Answer yes to the confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Where the run log (JSON Lines) goes; default: next to the plan.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

impl RunArgs {
    pub fn settings(&self, command: &str) -> RunSettings {
        self.tuning.settings(command)
    }
}

impl RunTuning {
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
    /// The plan file; without it, the plan of the run in progress, as the journal keeps it.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Stop after this stage (its number or name). Without it, apply stops before the
    /// cutover (stage 10: `tenantize cutover`, or `--through cutover`).
    #[arg(long, value_name = "STAGE", value_parser = parse_stage)]
    pub through: Option<Stage>,
    /// Check everything (checksums, drift, privileges, lock) and list what would run.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct CutoverArgs {
    /// The plan file; without it, the plan of the run in progress, as the journal keeps it.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Check everything, name the legacy roles' sessions, and list what would run.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

impl CutoverArgs {
    /// The same as `apply --through cutover`.
    pub fn into_apply(self) -> ApplyArgs {
        ApplyArgs {
            file: self.file,
            conn: self.conn,
            through: Some(Stage::Cutover),
            dry_run: self.dry_run,
            run: self.run,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "all"])))]
pub struct RollbackArgs {
    /// The plan file; without it, the plan of the run in progress, as the journal keeps it.
    pub file: Option<PathBuf>,
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
    /// The plan file; without it, the plan of the run in progress, as the journal keeps it.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the journal as JSON.
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
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Prove isolation with three temporary tenants as a role that is neither owner, superuser
    /// nor BYPASSRLS, inside a transaction that is rolled back. Needs a superuser connection
    /// (else exit 1); exit 3 on a leak, or when no leak is found but isolation is not proven.
    #[arg(long)]
    pub isolation: bool,
    #[command(flatten, next_help_heading = "Where to look with --isolation and no plan")]
    pub options: PlanOptionArgs,
}

impl WizardArgs {
    /// The wizard's arguments when none were given (plain `tenantize`).
    pub fn defaults() -> WizardArgs {
        use clap::FromArgMatches;
        let matches = <Cli as clap::CommandFactory>::command().get_matches_from(["tenantize", "wizard"]);
        let (_, sub) = matches.subcommand().expect("the wizard subcommand");
        WizardArgs::from_arg_matches(sub).expect("defaults parse")
    }
}

/// The kinds of step (the part of a step id before `:`) that are not stage names, and their
/// stage: stage 7's steps interleave (each unique is built, then the foreign keys that need it
/// are rebuilt, then it is swapped in), so a run stops only after the whole stage.
/// Step kinds not named like their stage (`6.cover-indexes:…`); legacy roles: 8 (and 10).
const STEP_KINDS: [(&str, Stage); 8] = [
    ("cover-indexes", Stage::Indexes),
    ("unique-build", Stage::Unique),
    ("foreign-keys", Stage::Unique),
    ("unique-swap", Stage::Unique),
    ("legacy-role", Stage::Rls),
    ("propagate-set", Stage::Distribute),
    ("foreign-keys-off", Stage::Distribute),
    ("foreign-keys-on", Stage::Distribute),
];

pub fn parse_stage(text: &str) -> Result<Stage, String> {
    if let Some(stage) = Stage::parse(text) {
        return Ok(stage);
    }
    let stages =
        Stage::ALL.iter().map(|s| format!("{} {}", s.number(), s.name())).collect::<Vec<_>>().join(", ");
    match STEP_KINDS.iter().find(|(kind, _)| kind.eq_ignore_ascii_case(text.trim())) {
        Some((kind, stage)) => Err(format!(
            "{kind:?} names a kind of step in stage {} ({}), not a stage: that stage's steps \
             interleave, so a run stops only after a whole stage; use {} (or {}) to include it, {} \
             to stop before it. Stages: {stages}",
            stage.number(),
            stage.name(),
            stage.number(),
            stage.name(),
            stage.number() - 1
        )),
        None => Err(format!("unknown stage {text:?}: use a number or a name: {stages}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_step_given_as_a_stage_names_its_stage() {
        for (kind, number) in
            [("cover-indexes", 6), ("unique-swap", 7), ("legacy-role", 8), ("foreign-keys-off", 9)]
        {
            let error = parse_stage(kind).unwrap_err();
            assert!(error.contains(&format!("names a kind of step in stage {number} (")), "{error}");
        }
        assert!(parse_stage("indexes").is_ok() && parse_stage("x").unwrap_err().starts_with("unknown stage"));
    }

    #[test]
    fn a_tenant_table_without_a_schema_goes_to_public_when_converted_else_the_first_schema() {
        let schemas = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(tenant_table_schema(&schemas(&["sales", "public"])), "public");
        assert_eq!(tenant_table_schema(&schemas(&["sales", "hr"])), "sales");
        assert_eq!(
            QualifiedName::parse_plain("core.tenants", "public"),
            QualifiedName::new("core", "tenants")
        );
    }
}
