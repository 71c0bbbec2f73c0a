//! What the live database looks like: plain data read from `pg_catalog`, no behaviour.
//!
//! [`introspect`] reads it in a fixed number of set-based queries; [`fingerprint`] reduces it to
//! checksums that survive the conversion itself (so drift is told apart from our own changes).

mod fingerprint;
mod introspect;

pub use fingerprint::{
    FingerprintIgnore, TableShape, catalog_fingerprint, shape_diff, shape_fingerprint, table_fingerprint,
    table_shape, view_fingerprint,
};
pub use introspect::{
    INTROSPECTION_QUERY_COUNT, IntrospectError, introspect, read_citus, read_column, read_legacy_roles,
};

use crate::sql::QualifiedName;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Catalog {
    pub server: ServerInfo,
    pub role: RoleInfo,
    /// The schemas that were introspected, in the order asked for.
    pub schemas: Vec<String>,
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    pub security_definer_functions: Vec<FunctionRef>,
    /// Every relation name (tables, indexes, sequences, views...) per introspected schema:
    /// generated names must not collide with any of them.
    pub relation_names: Vec<QualifiedName>,
    /// Schemas in which the role may create objects.
    pub creatable_schemas: Vec<String>,
    /// Whether the journal schema already exists (then no CREATE on the database is needed).
    pub journal_exists: bool,
    /// Foreign keys from tables outside the introspected schemas into them.
    pub external_foreign_keys: Vec<ExternalForeignKey>,
    /// The roles asked about with `--legacy-role` that exist ([`read_legacy_roles`]; empty
    /// unless asked).
    #[serde(default)]
    pub legacy_roles: Vec<LegacyRole>,
    /// What the server says about Citus ([`read_citus`]; read only for `--distribute citus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citus: Option<CitusInfo>,
}

/// The Citus facts stage 9 depends on, read on the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CitusInfo {
    /// `shared_preload_libraries` names citus.
    pub preloaded: bool,
    pub wal_level: String,
    /// `output_plugin_libraries` (PostgreSQL 15.19+; `None` on servers without the setting).
    pub output_plugin_libraries: Option<String>,
    /// The extension can be created here (`pg_available_extensions`).
    pub available: bool,
    /// `CREATE EXTENSION citus` was run in this database: its version.
    pub extension_version: Option<String>,
    /// `citus_set_coordinator_host` was run (the coordinator is in `pg_dist_node`).
    pub coordinator_known: bool,
    pub workers: Vec<CitusWorker>,
    /// `citus.shard_replication_factor`: online distribution needs 1.
    pub shard_replication_factor: i32,
    /// This database's own `citus.propagate_set_commands` (`ALTER DATABASE … SET`), if any.
    pub database_propagate_set_commands: Option<String>,
    /// Tables already known to Citus, with `pg_dist_partition.partmethod`.
    pub citus_tables: Vec<(QualifiedName, String)>,
    /// Sequences a column default draws from whose type is not the column's: Citus changes
    /// the sequence to the column's type when it takes the table over.
    #[serde(default)]
    pub sequence_types: Vec<SequenceType>,
    /// Functions whose signature uses a table's row type: `undistribute_table` drops and
    /// re-creates the table with CASCADE, which drops them.
    #[serde(default)]
    pub rowtype_functions: Vec<RowtypeFunction>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SequenceType {
    pub table: QualifiedName,
    pub sequence: QualifiedName,
    /// `format_type()` of the sequence's own type (`bigint`).
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowtypeFunction {
    pub table: QualifiedName,
    /// `regprocedure` text, schema-qualified.
    pub signature: String,
    /// `pg_get_functiondef()`: a `CREATE OR REPLACE FUNCTION`.
    pub definition: String,
    pub owner: String,
    pub comment: Option<String>,
    /// Granted privileges beyond the defaults (`proacl` is set).
    pub has_grants: bool,
}

/// An active primary worker, and whether this database has the extension there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CitusWorker {
    pub name: String,
    pub port: i32,
    /// `None`: the worker answered; otherwise why the extension could not be found there.
    pub problem: Option<String>,
}

/// A role the application connects as without setting the tenant, and what this database's
/// `pg_db_role_setting` says about its tenant setting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LegacyRole {
    pub name: String,
    /// The value of the tenant setting for this role in this database, when it has one.
    pub setting: Option<String>,
    pub superuser: bool,
    pub bypass_rls: bool,
    pub can_login: bool,
    /// The tool's role may `ALTER ROLE … IN DATABASE … SET` it: a superuser, the role itself,
    /// or CREATEROLE for a role that is not a superuser (on PostgreSQL 16+ with ADMIN OPTION).
    #[serde(default = "yes")]
    pub may_alter: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExternalForeignKey {
    pub table: QualifiedName,
    pub foreign_key: ForeignKey,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150018.
    pub version_num: i32,
    /// `version()`.
    pub version: String,
    pub database: String,
    /// `wal_init_zero`: new WAL segments are zero-filled (16 MB written and fsynced) by the
    /// session that first writes into one, while every commit waits.
    #[serde(default)]
    pub wal_init_zero: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleInfo {
    pub name: String,
    pub superuser: bool,
    pub bypass_rls: bool,
    /// May create schemas in the database (needed for the journal schema).
    pub can_create_in_database: bool,
    /// May set `session_replication_role` (a superuser, or on PostgreSQL 15+ a role granted
    /// `SET ON PARAMETER session_replication_role`): what keeps triggers from firing.
    #[serde(default)]
    pub can_set_replication_role: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Ordinary,
    Partitioned,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    pub name: QualifiedName,
    pub kind: TableKind,
    /// The direct parent when this table is a partition.
    pub partition_of: Option<QualifiedName>,
    pub partition_bound: Option<String>,
    pub partition_key: Option<String>,
    /// Parent through old-style inheritance (not partitioning): not supported by the planner.
    pub inherits_from: Vec<QualifiedName>,
    pub owner: String,
    /// The connected role owns the table (or is a member of the owning role).
    pub owned_by_current_role: bool,
    pub unlogged: bool,
    pub columns: Vec<Column>,
    pub primary_key: Option<KeyConstraint>,
    /// Unique constraints and unique indexes other than the primary key.
    pub uniques: Vec<UniqueIndex>,
    /// Indexes that are not unique (and not the primary key's).
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
    pub check_constraints: Vec<NamedDefinition>,
    pub exclusion_constraints: Vec<NamedDefinition>,
    pub triggers: Vec<Trigger>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Vec<NamedDefinition>,
    /// `pg_class.reltuples` (-1 when never analysed).
    pub row_estimate: i64,
    pub total_bytes: i64,
    /// The extension the table belongs to (`pg_depend.deptype = 'e'`): its rows are the
    /// extension's, so it is shared, never converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// `pg_class.relreplident`: d (the primary key), n (nothing), f (full), i (an index).
    #[serde(default = "default_replica_identity")]
    pub replica_identity: String,
}

fn default_replica_identity() -> String {
    "d".into()
}

impl Trigger {
    /// Fires on an UPDATE of the table, row by row or once per statement (with or without
    /// transition tables): what a batched backfill's UPDATEs would set off.
    pub fn fires_on_backfill(&self) -> bool {
        self.fires_on_update && self.enabled != "D"
    }
}

impl Table {
    /// An ordinary table with no columns, keys or indexes, owned by `owner` (the connected
    /// role): where the hand-built catalogs of unit tests start.
    #[cfg(test)]
    pub fn bare(name: QualifiedName, owner: &str) -> Table {
        Table {
            name,
            kind: TableKind::Ordinary,
            partition_of: None,
            partition_bound: None,
            partition_key: None,
            inherits_from: Vec::new(),
            owner: owner.into(),
            owned_by_current_role: true,
            unlogged: false,
            columns: Vec::new(),
            primary_key: None,
            uniques: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            check_constraints: Vec::new(),
            exclusion_constraints: Vec::new(),
            triggers: Vec::new(),
            rls_enabled: false,
            rls_forced: false,
            policies: Vec::new(),
            row_estimate: 0,
            total_bytes: 0,
            extension: None,
            replica_identity: default_replica_identity(),
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn is_partition(&self) -> bool {
        self.partition_of.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    /// `format_type()` with every name qualified.
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (always) or `d` (by default) for identity columns.
    pub identity: Option<String>,
    /// A stored generated column's expression (`lower(slug)`).
    pub generated: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyConstraint {
    pub name: String,
    pub columns: Vec<String>,
    pub definition: String,
    /// Its index is the table's CLUSTER index (`pg_index.indisclustered`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clustered: bool,
    /// `pg_get_indexdef()` of its index: the storage parameters (`WITH (…)`) that
    /// `pg_get_constraintdef()` leaves out. `None` in catalogs read before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_definition: Option<String>,
    /// Its index's tablespace when it has one of its own (neither definition prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamedDefinition {
    pub name: String,
    pub definition: String,
}

/// A unique constraint or a unique index (not the primary key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UniqueIndex {
    /// The index name (equal to the constraint name for constraints).
    pub index_name: String,
    /// Set when the index backs a `UNIQUE` constraint.
    pub constraint: Option<UniqueConstraintInfo>,
    /// `pg_get_indexdef()` of the index, fully qualified.
    pub index_definition: String,
    /// One entry per key column: the column or expression text as `pg_get_indexdef(oid, n)`
    /// prints it.
    pub key_columns: Vec<String>,
    /// Plain column names when every key column is a plain column; `None` with expressions.
    pub key_column_names: Option<Vec<String>>,
    pub predicate: Option<String>,
    pub access_method: String,
    pub nulls_not_distinct: bool,
    pub valid: bool,
    /// The index is a partition of a partitioned index (managed through its parent).
    pub is_partition_child: bool,
    /// A tablespace of its own (`pg_get_indexdef()` does not print it); `None`: the database's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UniqueConstraintInfo {
    pub definition: String,
    pub deferrable: bool,
    pub initially_deferred: bool,
    /// Inherited from a partitioned parent's constraint.
    pub inherited: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Index {
    pub name: String,
    pub definition: String,
    pub key_columns: Vec<String>,
    /// Plain column names when every key column is a plain column; `None` with expressions.
    pub key_column_names: Option<Vec<String>>,
    pub valid: bool,
    pub is_partition_child: bool,
    /// A tablespace of its own (`pg_get_indexdef()` does not print it); `None`: the database's.
    #[serde(default)]
    pub tablespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: QualifiedName,
    pub referenced_columns: Vec<String>,
    /// `pg_get_constraintdef()`, e.g. `FOREIGN KEY (a) REFERENCES public.t(id) ON DELETE CASCADE`.
    pub definition: String,
    /// `confupdtype`/`confdeltype`: a (no action), r (restrict), c (cascade), n (set null),
    /// d (set default).
    pub on_update: String,
    pub on_delete: String,
    /// PG 15+: the columns `ON DELETE SET NULL (...)` / `SET DEFAULT (...)` is limited to.
    pub on_delete_columns: Vec<String>,
    /// `confmatchtype`: s (simple), f (full), p (partial).
    pub match_type: String,
    pub deferrable: bool,
    pub initially_deferred: bool,
    pub validated: bool,
    /// Cloned from a partitioned parent's constraint (managed through the parent).
    pub inherited: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub definition: String,
    /// `tgenabled`: O (origin), D (disabled), R (replica), A (always).
    pub enabled: String,
    pub fires_on_update: bool,
    pub fires_on_insert: bool,
    pub row_level: bool,
    /// Cloned from a partitioned parent's trigger.
    pub inherited: bool,
    /// Tables of the introspected schemas its function writes (INSERT INTO, UPDATE or
    /// DELETE FROM naming them in the body: function bodies have no dependency records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes_tables: Vec<QualifiedName>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct View {
    pub name: QualifiedName,
    pub materialized: bool,
    pub owner: String,
    /// The owner is a superuser or has BYPASSRLS: reading through the view ignores RLS.
    pub owner_bypasses_rls: bool,
    /// `security_invoker` from the view's options (PG 15+), `None` when not set.
    pub security_invoker: Option<bool>,
    /// Tables (and partitions) the view reads directly.
    pub reads_tables: Vec<QualifiedName>,
    /// Tables it reads through other views (and theirs, recursively), not directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads_via_views: Vec<QualifiedName>,
}

impl View {
    /// Every table the view reads, directly or through other views.
    pub fn reads(&self) -> impl Iterator<Item = &QualifiedName> {
        self.reads_tables.iter().chain(self.reads_via_views.iter())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionRef {
    pub name: QualifiedName,
    pub arguments: String,
    pub owner: String,
    /// Tables of the introspected schemas its body names (a word match: function bodies
    /// have no dependency records to read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names_tables: Vec<QualifiedName>,
}

impl Catalog {
    pub fn table(&self, name: &QualifiedName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }

    /// The topmost partitioned ancestor of `name` (itself when it is not a partition).
    pub fn partition_root<'a>(&'a self, name: &'a QualifiedName) -> &'a QualifiedName {
        let mut current = name;
        while let Some(parent) = self.table(current).and_then(|t| t.partition_of.as_ref()) {
            current = parent;
        }
        current
    }

    /// Direct partitions of a partitioned table.
    pub fn partitions_of(&self, parent: &QualifiedName) -> Vec<&Table> {
        self.tables.iter().filter(|t| t.partition_of.as_ref() == Some(parent)).collect()
    }

    /// All partitions below `parent`, leaves and intermediate ones, parents before children.
    pub fn partition_descendants(&self, parent: &QualifiedName) -> Vec<&Table> {
        let mut out = Vec::new();
        let mut frontier = vec![parent.clone()];
        while let Some(current) = frontier.pop() {
            let mut children: Vec<&Table> = self.partitions_of(&current);
            children.sort_by(|a, b| a.name.cmp(&b.name));
            for child in children.into_iter().rev() {
                frontier.push(child.name.clone());
                out.push(child);
            }
        }
        out.sort_by(|a, b| {
            (self.partition_depth(&a.name), &a.name).cmp(&(self.partition_depth(&b.name), &b.name))
        });
        out
    }

    fn partition_depth(&self, name: &QualifiedName) -> usize {
        let mut depth = 0;
        let mut current = name;
        while let Some(parent) = self.table(current).and_then(|t| t.partition_of.as_ref()) {
            depth += 1;
            current = parent;
        }
        depth
    }

    pub fn relation_exists(&self, name: &QualifiedName) -> bool {
        self.relation_names.binary_search(name).is_ok()
    }

    /// Every relation, and every constraint of a table (constraint names share a namespace
    /// with the indexes behind them): the names a new index or constraint may not take.
    pub fn relation_and_constraint_names(&self) -> std::collections::BTreeSet<QualifiedName> {
        let mut taken: std::collections::BTreeSet<QualifiedName> =
            self.relation_names.iter().cloned().collect();
        for table in &self.tables {
            let constraints = table
                .primary_key
                .iter()
                .map(|p| &p.name)
                .chain(table.foreign_keys.iter().map(|f| &f.name))
                .chain(table.check_constraints.iter().map(|c| &c.name))
                .chain(table.exclusion_constraints.iter().map(|c| &c.name))
                .chain(table.uniques.iter().map(|u| &u.index_name));
            taken.extend(constraints.map(|n| table.name.sibling(n.clone())));
        }
        taken
    }
}
