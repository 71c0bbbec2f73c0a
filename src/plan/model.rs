//! The plan: what will run, in what order, under which locks, how to undo it and how to prove
//! it worked. Plain data, saved as TOML for review.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use super::statement::*;
use crate::sql::QualifiedName;

/// The stages, in the order they run. Numbers need not be contiguous (a plan without
/// `--distribute` has no stage 9); never index by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Stage {
    TenantTable = 1,
    DefaultTenant = 2,
    AddColumn = 3,
    Backfill = 4,
    NotNull = 5,
    Indexes = 6,
    Unique = 7,
    Rls = 8,
    /// Distribution by tenant on Citus (`plan --distribute citus`): reference tables, then
    /// every tenant table hash-distributed by the tenant column, colocated.
    Distribute = 9,
    /// Finishing the cutover: the tenant column's default reads the setting and legacy roles
    /// lose their default tenant. `apply` stops before it unless asked (`tenantize cutover`).
    Cutover = 10,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::TenantTable,
        Stage::DefaultTenant,
        Stage::AddColumn,
        Stage::Backfill,
        Stage::NotNull,
        Stage::Indexes,
        Stage::Unique,
        Stage::Rls,
        Stage::Distribute,
        Stage::Cutover,
    ];

    /// The last stage: what `apply --through` names to run everything.
    pub const LAST: Stage = Stage::Cutover;

    pub fn number(self) -> u8 {
        self as u8
    }

    /// The name used on the command line and in step ids.
    pub fn name(self) -> &'static str {
        match self {
            Stage::TenantTable => "tenant-table",
            Stage::DefaultTenant => "default-tenant",
            Stage::AddColumn => "add-column",
            Stage::Backfill => "backfill",
            Stage::NotNull => "not-null",
            Stage::Indexes => "indexes",
            Stage::Unique => "unique",
            Stage::Rls => "rls",
            Stage::Distribute => "distribute",
            Stage::Cutover => "cutover",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Stage::TenantTable => "Tenant table",
            Stage::DefaultTenant => "Default tenant row",
            Stage::AddColumn => "Nullable tenant column",
            Stage::Backfill => "Backfill",
            Stage::NotNull => "NOT NULL",
            Stage::Indexes => "Composite indexes",
            Stage::Unique => "Tenant-scoped uniques and foreign keys",
            Stage::Rls => "Row-level security",
            Stage::Distribute => "Distribution by tenant (Citus)",
            Stage::Cutover => "Cutover: the tenant comes from the application",
        }
    }

    /// Whether a plain `apply` stops before this stage: the cutover runs only when asked for
    /// (`tenantize cutover`, `apply --through cutover`), once the application sets the tenant.
    pub fn needs_asking(self) -> bool {
        self == Stage::Cutover
    }

    /// The stage numbers in words, for messages (`1-8, 10`).
    pub fn numbers() -> String {
        let mut ranges: Vec<(u8, u8)> = Vec::new();
        for n in Stage::ALL.map(Stage::number) {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == n => *end = n,
                _ => ranges.push((n, n)),
            }
        }
        ranges
            .iter()
            .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parse a stage number (see [`Stage::numbers`]) or name.
    pub fn parse(text: &str) -> Option<Stage> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u8>() {
            return Stage::try_from(n).ok();
        }
        Stage::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(text))
    }
}

impl TryFrom<u8> for Stage {
    type Error = String;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Stage::ALL
            .into_iter()
            .find(|s| s.number() == n)
            .ok_or_else(|| format!("stage {n} does not exist (stages are {})", Stage::numbers()))
    }
}

impl From<Stage> for u8 {
    fn from(stage: Stage) -> u8 {
        stage as u8
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number(), self.name())
    }
}

/// A query returning one number, and the number that proves the step worked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub expect: i64,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BackfillKey {
    /// Keyset over the primary key (text forms of the values are the resume key).
    Keyset { columns: Vec<String>, types: Vec<String> },
    /// Block ranges of the heap (`ctid`), for tables without a primary key.
    Ctid,
}

/// The parameters of a batched backfill. The SQL the engine runs per batch is built from these
/// by `plan::backfill_sql`, and shown in the step's `forward` statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backfill {
    pub table: QualifiedName,
    pub column: String,
    /// The SQL value written into NULL tenant columns (a typed literal).
    pub value_sql: String,
    pub key: BackfillKey,
    pub batch_rows: u32,
    /// Block ranges per batch for `Ctid` keys.
    pub batch_blocks: u32,
    /// Run each batch with `session_replication_role = replica` so user triggers do not fire.
    pub suppress_triggers: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub stage: Stage,
    pub title: String,
    /// Why the step looks the way it does, for the reviewer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub tables: Vec<QualifiedName>,
    /// Rows the step writes (estimate from `pg_class.reltuples`).
    pub rows_estimate: i64,
    /// Set when undoing the step needs nothing: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_rollback_reason: Option<String>,
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// What the step changes, each a small state machine (see `plan::machine`): `apply`
    /// takes the parts to their done states in order, `rollback` to their undone states in
    /// reverse order, from whatever state the catalog shows.
    pub parts: Vec<Part>,
    /// SHA-256 of the step's content (everything above, SQL normalized).
    #[serde(default)]
    pub hash: String,
}

impl Step {
    /// The statements an untouched step runs, in order (each part's forward path).
    pub fn forward(&self) -> Vec<&Statement> {
        self.parts.iter().flat_map(|p| p.forward_path()).flat_map(|t| t.statements.iter()).collect()
    }

    /// The statements undoing a finished step runs, in order (each part's rollback path, the
    /// parts in reverse).
    pub fn rollback(&self) -> Vec<&Statement> {
        self.parts.iter().rev().flat_map(|p| p.rollback_path()).flat_map(|t| t.statements.iter()).collect()
    }

    /// The transitions an untouched step runs, in order.
    pub fn forward_transitions(&self) -> Vec<&Transition> {
        self.parts.iter().flat_map(|p| p.forward_path()).collect()
    }

    /// The transitions undoing a finished step runs, in order.
    pub fn rollback_transitions(&self) -> Vec<&Transition> {
        self.parts.iter().rev().flat_map(|p| p.rollback_path()).collect()
    }

    /// Whether statement `index` of the forward (or rollback) list shares its transaction
    /// with others (its locks are then held until the last of them commits).
    pub fn shares_transaction(&self, rollback: bool, index: usize) -> bool {
        let transitions = if rollback { self.rollback_transitions() } else { self.forward_transitions() };
        let mut start = 0;
        for t in transitions {
            if index < start + t.statements.len() {
                return t.statements.len() > 1;
            }
            start += t.statements.len();
        }
        false
    }

    /// What a rollback counts first, over every part.
    pub fn guards(&self) -> Vec<&Guard> {
        self.parts.iter().flat_map(|p| p.guards.iter()).collect()
    }

    /// Every statement of every transition, forward, rollback and recovery.
    pub fn all_statements(&self) -> impl Iterator<Item = &Statement> {
        self.parts.iter().flat_map(|p| p.transitions.iter()).flat_map(|t| t.statements.iter())
    }

    pub fn strongest_lock(&self) -> LockMode {
        self.forward().iter().map(|s| s.lock).max().unwrap_or(LockMode::None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Something the planner noticed: errors stop `plan` and `apply`, warnings are shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: String,
    pub object: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Uuid,
    Bigint,
    Text,
}

impl KeyType {
    pub fn sql(self) -> &'static str {
        match self {
            KeyType::Uuid => "uuid",
            KeyType::Bigint => "bigint",
            KeyType::Text => "text",
        }
    }

    pub fn parse(text: &str) -> Option<KeyType> {
        match text.to_ascii_lowercase().as_str() {
            "uuid" => Some(KeyType::Uuid),
            "bigint" | "int8" => Some(KeyType::Bigint),
            "text" => Some(KeyType::Text),
            _ => None,
        }
    }

    pub fn default_tenant_id(self) -> &'static str {
        match self {
            KeyType::Uuid => "00000000-0000-0000-0000-000000000001",
            KeyType::Bigint => "1",
            KeyType::Text => "default",
        }
    }
}

/// Which primary keys stage 7 makes tenant-scoped (`PRIMARY KEY (tenant_id, …)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryKeyScope {
    /// Natural keys only: no column of the key has an identity, a generated value or a
    /// default that computes one (a sequence, a random UUID). Surrogate keys stay global,
    /// where a value can never repeat anyway.
    #[default]
    Natural,
    /// Every primary key (distribution by tenant needs the tenant column in each).
    All,
    /// None.
    None,
}

impl PrimaryKeyScope {
    pub fn is_default(&self) -> bool {
        *self == PrimaryKeyScope::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillMode {
    /// The column is added with the default tenant as its default: metadata only, no row written.
    Fast,
    /// The column is added empty and filled in keyset batches, one short transaction each.
    Batched,
}

/// What `tenantize plan` was asked for. Stored in the plan so it can be rebuilt and compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanOptions {
    pub schemas: Vec<String>,
    /// Shared tables, as `schema.table`.
    pub exclude: Vec<String>,
    pub tenant_table: QualifiedName,
    pub tenant_column: String,
    pub tenant_key_type: KeyType,
    pub default_tenant_id: String,
    pub default_tenant_name: String,
    pub tenant_setting: String,
    /// `None` means fast where the server allows it (PostgreSQL 11+), else batched.
    pub backfill: Option<BackfillMode>,
    pub batch_rows: u32,
    /// Blocking findings the operator accepts, as `CODE:OBJECT` (`--acknowledge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledge: Vec<String>,
    #[serde(default, skip_serializing_if = "PrimaryKeyScope::is_default")]
    pub scope_primary_keys: PrimaryKeyScope,
    /// Stage 6 indexes foreign keys the application left unindexed (`--index-foreign-keys`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub index_foreign_keys: bool,
    /// Stage 6 rebuilds the application's plain btree indexes with `INCLUDE (tenant column)`,
    /// so index-only scans stay index-only under the policy (`--cover-indexes`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cover_indexes: bool,
    /// Roles the application connects as today, without setting the tenant: stage 8 gives
    /// each the default tenant for this database, the cutover (stage 10) takes it away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_roles: Vec<String>,
    /// Stage 9: distribute the converted tables on Citus (`--distribute citus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribute: Option<Distribution>,
}

/// How stage 9 distributes (`--distribute citus [--shard-count N] [--allow-blocking-distribution]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Distribution {
    /// Shards per distributed table; `None` keeps the server's `citus.shard_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<u32>,
    /// Tables that cannot be distributed without blocking writes (no replica identity, user
    /// triggers Citus must re-create) may use the blocking `create_distributed_table`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_blocking: bool,
}

impl PlanOptions {
    /// The operator acknowledged the finding `code` on `object`.
    pub fn acknowledges(&self, code: &str, object: &str) -> bool {
        self.acknowledge.iter().any(|a| a.split_once(':') == Some((code, object)))
    }
}

/// Everything the planner decided about the tenant itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TenantSpec {
    pub table: QualifiedName,
    pub key_column: String,
    pub key_type: KeyType,
    pub column: String,
    pub default_id: String,
    pub default_name: String,
    pub setting: String,
    pub backfill: BackfillMode,
}

/// A table the plan knows about, converted or shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanTable {
    pub name: QualifiedName,
    /// Gets the tenant column and a policy (false: shared, left alone).
    pub scoped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<QualifiedName>,
    pub row_estimate: i64,
    pub total_bytes: i64,
    /// SHA-256 of `shape` (see `catalog::table_fingerprint`).
    pub fingerprint: String,
    /// The table as it was when planned, normalized (see `catalog::table_shape`): drift
    /// reports diff against it.
    pub shape: crate::catalog::TableShape,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanView {
    pub name: QualifiedName,
    pub materialized: bool,
    pub fingerprint: String,
}

/// Where the plan was built; shown to users, not covered by the plan hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub role: String,
    pub generated_at: String,
    pub tool_version: String,
    /// The cluster's system identifier (absent where the role may not read it) and the
    /// database's OID: a plan is for that database only, even where another has the same schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_oid: Option<u32>,
}

/// 2: steps are parts with states and transitions (1 had forward and rollback lists).
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// What drift detection compares against (kept at the end of the file: bookkeeping, not
/// something a reviewer needs to read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftBasis {
    /// See `catalog::catalog_fingerprint`.
    pub catalog_fingerprint: String,
    /// Names of the indexes, constraints and policies the plan creates (left out of drift
    /// fingerprints, since they appear as the plan runs).
    pub owned_names: Vec<String>,
}

/// Field order is file order: what a reviewer reads first comes first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// SHA-256 over the options, tenant, tables, views, fingerprint and every step hash.
    pub plan_hash: String,
    /// Set by `tenantize plan seal` after a reviewer edited the SQL by hand.
    #[serde(default)]
    pub edited: bool,
    pub source: PlanSource,
    pub options: PlanOptions,
    pub tenant: TenantSpec,
    #[serde(default)]
    pub findings: Vec<Finding>,
    pub steps: Vec<Step>,
    pub tables: Vec<PlanTable>,
    #[serde(default)]
    pub views: Vec<PlanView>,
    pub drift: DriftBasis,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    pub fn steps_in(&self, stage: Stage) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| s.stage == stage)
    }

    pub fn scoped_tables(&self) -> impl Iterator<Item = &PlanTable> {
        self.tables.iter().filter(|t| t.scoped)
    }

    pub fn owned_name_set(&self) -> std::collections::BTreeSet<String> {
        self.drift.owned_names.iter().cloned().collect()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }

    /// Where the cutover (stage 10) stands, given which steps are done.
    pub fn cutover_state(&self, done: impl Fn(&str) -> bool) -> CutoverState {
        let steps: Vec<&Step> = self.steps_in(Stage::Cutover).collect();
        let finished = steps.iter().filter(|s| done(&s.id)).count();
        match (steps.len(), finished) {
            (0, _) => CutoverState::NotPlanned,
            (n, f) if f == n => CutoverState::Done,
            (_, 0) => CutoverState::Pending,
            _ => CutoverState::Partial,
        }
    }
}

/// Where the cutover stands: pending is not a failure (the application may not set the
/// tenant yet), only a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutoverState {
    /// The plan has no cutover steps (nothing is scoped).
    #[default]
    NotPlanned,
    Pending,
    /// Some of its steps are done (interrupted, or rolled back in part).
    Partial,
    Done,
}

impl CutoverState {
    pub fn describe(self) -> &'static str {
        match self {
            CutoverState::NotPlanned => "not planned",
            CutoverState::Pending => {
                "pending: the tenant column defaults to the default tenant and legacy roles keep it"
            }
            CutoverState::Partial => {
                "partly done: run `tenantize cutover` to finish it or `rollback --to 8` to undo it"
            }
            CutoverState::Done => "done: a session that sets no tenant reads no row and cannot insert",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_by_number_and_name() {
        assert_eq!(Stage::parse("3"), Some(Stage::AddColumn));
        assert_eq!(Stage::parse("not-null"), Some(Stage::NotNull));
        assert_eq!(Stage::parse("RLS"), Some(Stage::Rls));
        assert_eq!(Stage::parse("9"), Some(Stage::Distribute));
        assert_eq!(Stage::parse("distribute"), Some(Stage::Distribute));
        assert_eq!(Stage::parse("10"), Some(Stage::Cutover));
        assert_eq!(Stage::parse("cutover"), Some(Stage::Cutover));
        assert_eq!(Stage::numbers(), "1-10");
        assert!(Stage::try_from(11).unwrap_err().contains("1-10"));
        assert_eq!(Stage::parse("0"), None);
        assert_eq!(Stage::parse("nope"), None);
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.name()), Some(stage));
            assert_eq!(Stage::try_from(stage.number()), Ok(stage));
        }
    }

    #[test]
    fn lock_modes_know_what_they_block() {
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
        assert!(LockMode::Share.blocks_writes());
        assert!(LockMode::ShareRowExclusive.blocks_writes());
        assert!(!LockMode::ShareRowExclusive.blocks_reads());
        assert!(LockMode::AccessExclusive.blocks_reads());
    }
}
