//! Stage 9's decisions (`--distribute citus`): which tables become reference tables, which are
//! hash-distributed by the tenant column and how (online or blocking), and which foreign keys
//! are taken off around it. What Citus does not support is an error finding, before anything
//! changes (see `shared/notes/citus-facts.md`; each trap below was measured).

use std::collections::{BTreeMap, BTreeSet};

use super::foreign_keys::ForeignKeyGroup;
use super::names::TableNames;
use super::uniques::ScopedUnique;
use super::{Findings, Scope};
use crate::catalog::{CitusInfo, ForeignKey, Table, TableKind};
use crate::plan::model::Severity;
use crate::sql::QualifiedName;

/// What stage 9 does.
pub(in crate::plan) struct Distribution<'a> {
    /// The tenant table first, then the shared tables tenant tables reach by foreign key.
    pub reference: Vec<CitusTable>,
    /// The scoped roots, parents first; the first is what the others are colocated with.
    pub distributed: Vec<CitusTable>,
    /// Every foreign key between those tables, taken off before and put back after.
    pub keys: Vec<LinkedKey<'a>>,
}

pub(in crate::plan) struct CitusTable {
    pub name: QualifiedName,
    /// Identity columns (`a` always, `d` by default): Citus resets their sequence when it
    /// makes the table a Citus local table, and refuses to undistribute them.
    pub identity: Vec<(String, String)>,
    /// Why the table cannot be distributed online (set only when it cannot).
    pub blocking: Option<String>,
    /// Has user triggers: Citus copies them to the shards only under
    /// `citus.enable_unsafe_triggers`.
    pub triggers: bool,
    /// What `undistribute_table` does not give back, put back in its transaction: the
    /// sequences' own types (Citus changed them to the columns') and the functions on the
    /// table's row type (its CASCADE drops them).
    pub restore_after_undistribute: Vec<String>,
}

/// One foreign key as it stands after stage 8.
pub(in crate::plan) struct LinkedKey<'a> {
    pub table: QualifiedName,
    pub name: String,
    pub kind: KeyKind<'a>,
    /// PostgreSQL has no NOT VALID foreign key on a partitioned table.
    pub partitioned: bool,
    /// Put back on the distributed tables with NO ACTION for its ON DELETE SET NULL/DEFAULT or
    /// ON UPDATE action, which Citus refuses on a key with the distribution column
    /// (acknowledged by the operator; its rollback restores the action).
    pub no_action_on_citus: bool,
}

pub(in crate::plan) enum KeyKind<'a> {
    /// The tenant column's key to the tenant table (stage 3); a partitioned root's attaches
    /// its leaves' keys, which are put back first under their own names.
    Tenant { leaves: Vec<(QualifiedName, String)> },
    /// Stage 7's composite successor of this key.
    Composite(&'a ForeignKey),
    /// A key stage 7 left as it was (to a shared table).
    Original(&'a ForeignKey),
}

pub(super) fn decide<'a>(
    scope: &Scope<'a>,
    names: &std::collections::HashMap<QualifiedName, TableNames>,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    foreign_keys: &[ForeignKeyGroup<'a>],
    implied: &BTreeMap<QualifiedName, String>,
    findings: &mut Findings,
) -> Option<Distribution<'a>> {
    let options = scope.options.distribute.as_ref()?;
    readiness(scope, scope.catalog.citus.as_ref(), findings);
    let shared = reference_set(scope, findings);
    unique_keys(scope, uniques, findings);
    let mut reference = vec![CitusTable {
        name: scope.tenant.table.clone(),
        identity: Vec::new(),
        blocking: None,
        triggers: false,
        restore_after_undistribute: Vec::new(),
    }];
    for name in &shared {
        reference.push(citus_table(scope, scope.table(name), None, findings));
    }
    let mut distributed = Vec::new();
    for root in &scope.roots {
        let table = scope.table(root);
        let blocking = blocking_reason(scope, table);
        if let Some(why) = &blocking {
            let (severity, head) = if options.allow_blocking {
                (Severity::Warning, "distributed with the blocking create_distributed_table")
            } else {
                (Severity::Error, "cannot be distributed online")
            };
            findings.add(
                severity,
                "citus-blocking-distribution",
                root.display_plain(),
                format!(
                    "{head}: {why}; Citus's online distribution would make every UPDATE and DELETE \
                     on it fail while it copies. {}",
                    if options.allow_blocking {
                        "Writes to it wait while its rows are copied (the plan shows the lock)."
                    } else {
                        "Give it a primary key or REPLICA IDENTITY FULL, or allow the blocking form \
                         with --allow-blocking-distribution (writes to it wait while its rows are copied)."
                    }
                ),
            );
        }
        distributed.push(citus_table(scope, table, blocking, findings));
    }
    materialized_views(scope, &reference, &distributed, findings);
    let with_triggers: Vec<String> =
        distributed.iter().filter(|t| t.triggers).map(|t| t.name.display_plain()).collect();
    if !with_triggers.is_empty() {
        findings.add(
            Severity::Warning,
            "citus-triggers",
            with_triggers.join(", "),
            "have user triggers: Citus copies them to the shards only with \
             citus.enable_unsafe_triggers, which stage 9 sets for its own statements. They then \
             fire on the worker holding the row, where a trigger that reads or writes other \
             tables reaches only the same tenant's colocated shards; review them.",
        );
    }
    // The table the others are colocated with: an ordinary one distributed online, where
    // there is one (the first in foreign-key order, parents first).
    if let Some(anchor) = distributed
        .iter()
        .position(|t| t.blocking.is_none() && scope.table(&t.name).kind == TableKind::Ordinary)
    {
        let anchor = distributed.remove(anchor);
        distributed.insert(0, anchor);
    }
    if let Some(first) = distributed.first() {
        findings.add(
            Severity::Info,
            "citus-routing",
            first.name.display_plain(),
            format!(
                "every tenant table is colocated with this one. The policies see the tenant on the \
                 workers only through SET LOCAL {} (stage 9 sets citus.propagate_set_commands = \
                 'local' for the database; set_config() is not propagated), and only queries that \
                 filter on {} themselves are routed to one shard.",
                scope.tenant.setting, scope.tenant.column
            ),
        );
    }
    let keys = linked_keys(scope, names, foreign_keys, implied, &shared, findings);
    Some(Distribution { reference, distributed, keys })
}

/// What the server lacks for stage 9, in one error naming every missing piece.
/// Citus re-creates the materialized views that read a table when it makes the table one of
/// its own (the first half of every distribution), and refuses one whose query it cannot run
/// on distributed tables: a join of two of them is refused unless it is on the distribution
/// column, which no view written for one server does. Measured on pagila: distributing
/// film_category failed on rental_by_category. Refused before anything changes; a view
/// reading one Citus table is only named.
fn materialized_views(
    scope: &Scope,
    reference: &[CitusTable],
    distributed: &[CitusTable],
    findings: &mut Findings,
) {
    let citus: BTreeSet<&QualifiedName> = reference.iter().chain(distributed).map(|t| &t.name).collect();
    for view in scope.catalog.views.iter().filter(|v| v.materialized) {
        let read: BTreeSet<&QualifiedName> =
            view.reads().map(|t| scope.catalog.partition_root(t)).filter(|t| citus.contains(t)).collect();
        if read.is_empty() {
            continue;
        }
        let names: Vec<String> = read.iter().map(|t| t.display_plain()).collect();
        let (severity, what) = if read.len() > 1 {
            (
                Severity::Error,
                "it joins them, and Citus refuses to re-create a materialized view that joins \
                 distributed tables other than on the distribution column. Drop it before stage 9 \
                 (and re-create it as a query the application runs with the tenant set), or \
                 exclude its tables",
            )
        } else {
            (
                Severity::Warning,
                "Citus re-creates it when the table is distributed; check it refreshes afterwards",
            )
        };
        findings.add(
            severity,
            "citus-materialized-view",
            view.name.display_plain(),
            format!("reads {} that stage 9 gives to Citus: {what}", names.join(", ")),
        );
    }
}

fn readiness(scope: &Scope, citus: Option<&CitusInfo>, findings: &mut Findings) {
    let Some(citus) = citus else {
        findings.add(Severity::Error, "citus-not-ready", "server", "the server was not asked about Citus");
        return;
    };
    let mut missing = Vec::new();
    if !citus.available {
        missing
            .push("the citus extension is not installed on this server (build and install it)".to_string());
    }
    if !citus.preloaded {
        missing.push("shared_preload_libraries must include 'citus' (then restart)".into());
    }
    if citus.wal_level != "logical" {
        missing.push(format!("wal_level is {}; online distribution needs logical", citus.wal_level));
    }
    if let Some(plugins) = &citus.output_plugin_libraries
        && !plugins.split(',').any(|p| p.trim() == "citus")
    {
        missing.push(format!(
            "output_plugin_libraries is {plugins:?}; it must include citus \
             ('pgoutput,test_decoding,citus')"
        ));
    }
    if citus.extension_version.is_none() {
        missing.push(format!(
            "CREATE EXTENSION citus in {} (and on every worker)",
            scope.catalog.server.database
        ));
    } else if citus.preloaded {
        if !citus.coordinator_known {
            missing.push(
                "the coordinator is not registered: SELECT citus_set_coordinator_host(host, port)".into(),
            );
        }
        if citus.workers.is_empty() {
            missing.push("no worker: SELECT citus_add_node(host, port) for each".into());
        }
        for w in &citus.workers {
            if let Some(problem) = &w.problem {
                missing.push(format!("worker {}:{}: {problem}", w.name, w.port));
            }
        }
        if citus.shard_replication_factor != 1 {
            missing.push(format!(
                "citus.shard_replication_factor is {}; online distribution needs 1",
                citus.shard_replication_factor
            ));
        }
    }
    if !missing.is_empty() {
        findings.add(
            Severity::Error,
            "citus-not-ready",
            "server",
            format!("--distribute citus cannot run here: {}", missing.join("; ")),
        );
    }
    for (name, method) in &citus.citus_tables {
        if scope.is_scoped(name) || *name == scope.tenant.table {
            findings.add(
                Severity::Error,
                "citus-already-distributed",
                name.display_plain(),
                format!("is already known to Citus (pg_dist_partition.partmethod {method:?})"),
            );
        }
    }
}

/// The shared tables a tenant table reaches through foreign keys (and those they reach), which
/// become reference tables. A shared table referring to a tenant table cannot: Citus supports
/// no key from a reference or local table to a distributed one.
fn reference_set(scope: &Scope, findings: &mut Findings) -> BTreeSet<QualifiedName> {
    let mut shared = BTreeSet::new();
    let mut queue: Vec<QualifiedName> = Vec::new();
    for name in &scope.scoped {
        for fk in &scope.table(name).foreign_keys {
            if !scope.is_scoped(&fk.referenced_table) && fk.referenced_table != scope.tenant.table {
                queue.push(fk.referenced_table.clone());
            }
        }
    }
    while let Some(name) = queue.pop() {
        if shared.contains(&name) {
            continue;
        }
        let Some(table) = scope.catalog.table(&name) else {
            findings.add(
                Severity::Error,
                "citus-reference-outside-schemas",
                name.display_plain(),
                "a tenant table refers to it, so it must become a reference table, but it is \
                 outside the converted schemas: add its schema with --schema (it stays shared \
                 with --exclude)",
            );
            continue;
        };
        shared.insert(name.clone());
        for fk in &table.foreign_keys {
            if !scope.is_scoped(&fk.referenced_table) && fk.referenced_table != scope.tenant.table {
                queue.push(fk.referenced_table.clone());
            }
        }
    }
    for table in &scope.catalog.tables {
        if scope.is_scoped(&table.name) || table.name == scope.tenant.table || table.partition_of.is_some() {
            continue;
        }
        for fk in &table.foreign_keys {
            if scope.is_scoped(&fk.referenced_table) {
                findings.add(
                    Severity::Error,
                    "citus-shared-references-tenant-table",
                    format!("{}.{}", table.name.display_plain(), fk.name),
                    format!(
                        "the shared table {} refers to the tenant table {}: Citus supports no foreign \
                         key from a reference or local table to a distributed one. Make {} a tenant \
                         table, or drop the key.",
                        table.name.display_plain(),
                        fk.referenced_table.display_plain(),
                        table.name.display_plain()
                    ),
                );
            } else if shared.contains(&fk.referenced_table) && !shared.contains(&table.name) {
                // A local table keyed to a reference table becomes a Citus local table.
                shared.insert(table.name.clone());
            }
        }
    }
    for ext in &scope.catalog.external_foreign_keys {
        let target = &ext.foreign_key.referenced_table;
        if scope.is_scoped(target) || shared.contains(target) {
            findings.add(
                Severity::Error,
                "citus-external-foreign-key",
                format!("{}.{}", ext.table.display_plain(), ext.foreign_key.name),
                format!(
                    "{} (outside the converted schemas) refers to {}, which stage 9 distributes",
                    ext.table.display_plain(),
                    target.display_plain()
                ),
            );
        }
    }
    shared
}

/// Citus requires the distribution column in every unique index of a distributed table.
fn unique_keys(scope: &Scope, uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>, findings: &mut Findings) {
    let column = &scope.tenant.column;
    for name in &scope.roots {
        let table = scope.table(name);
        let scoped: BTreeSet<&str> = uniques
            .get(name)
            .map(|list| list.iter().map(|u| u.original.index_name.as_str()).collect())
            .unwrap_or_default();
        let mut unscoped: Vec<&str> = table
            .uniques
            .iter()
            .filter(|u| !u.is_partition_child && !scoped.contains(u.index_name.as_str()))
            .filter(|u| !u.key_columns.iter().any(|c| c == column || c == &crate::sql::quote_ident(column)))
            .map(|u| u.index_name.as_str())
            .collect();
        if let Some(pk) = &table.primary_key
            && !scoped.contains(pk.name.as_str())
            && !pk.columns.contains(column)
            && !unscoped.contains(&pk.name.as_str())
        {
            unscoped.push(pk.name.as_str());
        }
        unscoped.extend(table.exclusion_constraints.iter().map(|x| x.name.as_str()));
        for index in unscoped {
            findings.add(
                Severity::Error,
                "citus-unique-without-tenant",
                format!("{}.{index}", name.display_plain()),
                format!(
                    "stays without {column} after stage 7: Citus requires the distribution column in \
                     every primary key, unique and exclusion constraint of a distributed table"
                ),
            );
        }
    }
}

fn citus_table(
    scope: &Scope,
    table: &Table,
    blocking: Option<String>,
    findings: &mut Findings,
) -> CitusTable {
    CitusTable {
        name: table.name.clone(),
        identity: table
            .columns
            .iter()
            .filter_map(|c| c.identity.as_ref().map(|kind| (c.name.clone(), kind.clone())))
            .collect(),
        blocking,
        triggers: table.triggers.iter().any(|t| !t.inherited),
        restore_after_undistribute: restore_after_undistribute(scope, &table.name, findings),
    }
}

/// The statements that give back, after `undistribute_table`, what it does not (see
/// `CitusTable::restore_after_undistribute`). Measured on pagila: its integer columns' bigint
/// sequences came back as integer, and `rewards_report` (RETURNS SETOF customer) was gone.
fn restore_after_undistribute(scope: &Scope, table: &QualifiedName, findings: &mut Findings) -> Vec<String> {
    let Some(citus) = scope.catalog.citus.as_ref() else { return Vec::new() };
    let ours = |t: &QualifiedName| scope.catalog.partition_root(t) == table;
    let mut out = Vec::new();
    for s in citus.sequence_types.iter().filter(|s| ours(&s.table)) {
        out.push(format!("ALTER SEQUENCE {} AS {};\n", s.sequence, s.data_type));
    }
    use crate::sql::{quote_ident, quote_literal};
    for f in citus.rowtype_functions.iter().filter(|f| ours(&f.table)) {
        out.push(format!("{};\n", f.definition.trim_end()));
        out.push(format!("ALTER FUNCTION {} OWNER TO {};\n", f.signature, quote_ident(&f.owner)));
        if let Some(comment) = &f.comment {
            out.push(format!("COMMENT ON FUNCTION {} IS {};\n", f.signature, quote_literal(comment)));
        }
        if f.has_grants {
            findings.add(
                Severity::Warning,
                "citus-rollback-function-grants",
                f.signature.clone(),
                format!(
                    "uses the row type of {}: rolling stage 9 back re-creates it (undistribute_table \
                     drops it), with its owner and comment but not the privileges granted on it; \
                     grant them again after a rollback",
                    table.display_plain()
                ),
            );
        }
    }
    out
}

/// Online distribution replicates changes logically: without a replica identity (a primary
/// key, or REPLICA IDENTITY FULL) UPDATE and DELETE fail while it runs.
fn blocking_reason(scope: &Scope, table: &Table) -> Option<String> {
    let mut lacking = Vec::new();
    let mut check = |t: &Table| {
        let identity = match t.replica_identity.as_str() {
            "f" => true,
            "d" => t.primary_key.is_some(),
            _ => false,
        };
        if !identity && t.kind == TableKind::Ordinary {
            lacking.push(t.name.display_plain());
        }
    };
    check(table);
    for leaf in scope.leaves_of(&table.name) {
        check(leaf);
    }
    if lacking.is_empty() {
        return None;
    }
    Some(format!(
        "{} {} no primary key and no REPLICA IDENTITY FULL",
        lacking.join(", "),
        if lacking.len() == 1 { "has" } else { "have" }
    ))
}

/// The foreign keys among the tables stage 9 hands to Citus, as stages 3-8 leave them.
fn linked_keys<'a>(
    scope: &Scope<'a>,
    names: &std::collections::HashMap<QualifiedName, TableNames>,
    foreign_keys: &[ForeignKeyGroup<'a>],
    implied: &BTreeMap<QualifiedName, String>,
    shared: &BTreeSet<QualifiedName>,
    findings: &mut Findings,
) -> Vec<LinkedKey<'a>> {
    let mut keys = Vec::new();
    let partitioned = |name: &QualifiedName| scope.table(name).kind == TableKind::Partitioned;
    for root in &scope.roots {
        if implied.contains_key(root) {
            continue;
        }
        let Some(n) = names.get(root) else { continue };
        let leaves = if partitioned(root) { n.leaf_tenant_fks.clone() } else { Vec::new() };
        keys.push(LinkedKey {
            table: root.clone(),
            name: n.tenant_fk.clone(),
            kind: KeyKind::Tenant { leaves },
            partitioned: partitioned(root),
            no_action_on_citus: false,
        });
    }
    let converted: BTreeMap<(&QualifiedName, &str), &ForeignKey> = foreign_keys
        .iter()
        .flat_map(|g| g.converted.iter().map(move |c| ((&g.child, c.fk.name.as_str()), c.fk)))
        .collect();
    let tables = scope.scoped.iter().chain(shared.iter());
    for name in tables {
        let table = scope.table(name);
        for fk in table.foreign_keys.iter().filter(|fk| !fk.inherited) {
            let kind = if let Some(fk) = converted.get(&(name, fk.name.as_str())) {
                KeyKind::Composite(fk)
            } else if scope.is_scoped(name) && scope.is_scoped(&fk.referenced_table) {
                findings.add(
                    Severity::Error,
                    "citus-foreign-key-stays-global",
                    format!("{}.{}", name.display_plain(), fk.name),
                    format!(
                        "stage 7 leaves this key without {} (see its finding): Citus supports a \
                         foreign key between distributed tables only when it includes the \
                         distribution column",
                        scope.tenant.column
                    ),
                );
                continue;
            } else {
                KeyKind::Original(fk)
            };
            let no_action_on_citus =
                matches!(kind, KeyKind::Composite(_)) && refused_action(scope, name, fk, findings);
            keys.push(LinkedKey {
                table: name.clone(),
                name: fk.name.clone(),
                kind,
                partitioned: partitioned(name),
                no_action_on_citus,
            });
        }
    }
    keys
}

/// Citus refuses ON DELETE SET NULL/SET DEFAULT and ON UPDATE SET NULL/SET DEFAULT/CASCADE on
/// a key that includes the distribution column (every composite key does). An error until
/// the operator accepts NO ACTION on the distributed tables for it.
fn refused_action(scope: &Scope, table: &QualifiedName, fk: &ForeignKey, findings: &mut Findings) -> bool {
    let delete = matches!(fk.on_delete.as_str(), "n" | "d");
    let update = matches!(fk.on_update.as_str(), "n" | "d" | "c");
    if !delete && !update {
        return false;
    }
    let object = format!("{}.{}", table.display_plain(), fk.name);
    let action = if delete { "its ON DELETE SET NULL/SET DEFAULT" } else { "its ON UPDATE action" };
    let acknowledged = scope.options.acknowledges("citus-foreign-key-action", &object);
    findings.add(
        if acknowledged { Severity::Warning } else { Severity::Error },
        "citus-foreign-key-action",
        object.clone(),
        if acknowledged {
            format!(
                "acknowledged: Citus refuses {action} on a key with the distribution column, so \
                 stage 9 puts this key back with NO ACTION: deleting the referenced row now fails \
                 while rows refer to it, and the application clears the reference itself. The \
                 rollback restores the action."
            )
        } else {
            format!(
                "Citus refuses {action} on a key with the distribution column (every tenant-scoped \
                 key has it). Change the key's action, or accept NO ACTION on the distributed \
                 tables with --acknowledge citus-foreign-key-action:{object}"
            )
        },
    );
    true
}
