//! Stage 6's decisions: the composite indexes that lead with the tenant column.

use std::collections::{BTreeMap, HashMap};

use super::names::NameBook;
use super::uniques::ScopedUnique;
use super::{Scope, sorted};
use crate::catalog::{Table, TableKind};
use crate::sql::{QualifiedName, quote_ident};

/// An index stage 6 creates.
#[derive(Debug, Clone)]
pub(in crate::plan) struct PlannedIndex {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// On a partitioned table: the name of the index on each of its partitions (at any depth).
    pub partition_names: HashMap<QualifiedName, String>,
}

/// `(tenant, fk columns)` on every child of a scoped foreign key, and `UNIQUE (tenant, pk)`
/// on every parent whose primary key one references; one index per column list.
pub(super) fn decide(
    scope: &Scope,
    book: &mut NameBook,
    findings: &mut super::Findings,
) -> BTreeMap<QualifiedName, Vec<PlannedIndex>> {
    let col = &scope.tenant.column;
    let mut wanted: BTreeMap<QualifiedName, Vec<(Vec<String>, bool)>> = BTreeMap::new();
    for (child, fk) in super::foreign_keys::scoped_foreign_keys(scope) {
        if !served_by_existing(scope, &child, &fk.columns, findings)
            && !unindexed_before(scope, &child, &fk.columns, findings)
        {
            let mut columns = vec![col.clone()];
            columns.extend(fk.columns.iter().cloned());
            wanted.entry(child.clone()).or_default().push((columns, false));
        }
        let parent = scope.table(&fk.referenced_table);
        if let Some(pk) = &parent.primary_key
            && sorted(&pk.columns) == sorted(&fk.referenced_columns)
        {
            let mut columns = vec![col.clone()];
            columns.extend(pk.columns.iter().cloned());
            wanted.entry(parent.name.clone()).or_default().push((columns, true));
        }
    }
    let mut decided = BTreeMap::new();
    for (table, mut list) in wanted {
        let mut planned: Vec<PlannedIndex> = Vec::new();
        // Unique first, so a plain index on the same columns is recognised as redundant.
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (columns, unique) in list {
            if planned.iter().any(|p| p.columns == columns) {
                continue;
            }
            let suffix = if unique { "key" } else { "idx" };
            let natural = format!("{}_{}_{}", table.name, columns.join("_"), suffix);
            let name = book.fresh(&table.schema, &natural);
            planned.push(PlannedIndex { name, columns, unique, partition_names: HashMap::new() });
        }
        decided.insert(table, planned);
    }
    decided
}

/// The table's indexes and the indexes of its unique constraints: name, definition, key
/// columns (quoted), valid.
fn existing_indexes(table: &Table) -> impl Iterator<Item = (&String, &String, &Vec<String>, bool)> {
    table
        .indexes
        .iter()
        .map(|i| (&i.name, &i.definition, &i.key_columns, i.valid))
        .chain(table.uniques.iter().map(|u| (&u.index_name, &u.index_definition, &u.key_columns, u.valid)))
}

/// The index's leading key columns are the foreign key's columns, in any order.
fn leads_with(keys: &[String], fk_columns: &[String]) -> bool {
    let wanted: Vec<String> = sorted(&fk_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>());
    keys.len() >= wanted.len() && sorted(&keys[..wanted.len()]) == wanted
}

/// The application's own index on the foreign key's columns (leading, in any order; valid,
/// btree, not partial) already serves the composite key's lookups: the key's values are the
/// parent's, so the tenant column narrows little. Another index would cost every write and,
/// leading with the tenant column, every plan (see `order_for_planning`).
fn served_by_existing(
    scope: &Scope,
    child: &QualifiedName,
    fk_columns: &[String],
    findings: &mut super::Findings,
) -> bool {
    let table = scope.table(child);
    if table.kind == TableKind::Partitioned {
        return false;
    }
    for (name, definition, keys, valid) in existing_indexes(table) {
        let plain = valid && definition.contains(" USING btree (") && !definition.contains(" WHERE ");
        if plain && leads_with(keys, fk_columns) {
            findings.add(
                super::Severity::Info,
                "index-served",
                format!("({}) on {}", fk_columns.join(", "), child.display_plain()),
                format!(
                    "not built: the existing index {name} ({}) serves the tenant-scoped foreign key",
                    keys.join(", ")
                ),
            );
            return true;
        }
    }
    false
}

/// The application has no index of any kind whose leading columns are the foreign key's, so
/// a change to a parent's key scanned the child before the conversion and may go on doing so:
/// the composite key's check is the same query with the tenant added. An index built for it
/// anyway would cost every write of the table and, opened and costed by the planner, every
/// query of it (pgbench's lookup by key: 44 → 49 µs to plan with one such index beside the
/// key, see README).
fn unindexed_before(
    scope: &Scope,
    child: &QualifiedName,
    fk_columns: &[String],
    findings: &mut super::Findings,
) -> bool {
    if scope.options.index_foreign_keys {
        return false;
    }
    // Any index at all, partial or not btree included: the application asked for some
    // indexed access to these columns, and stage 6 gives the key a full one.
    if existing_indexes(scope.table(child)).any(|(_, _, keys, _)| leads_with(keys, fk_columns)) {
        return false;
    }
    findings.add(
        super::Severity::Info,
        "index-not-needed",
        format!("({}) on {}", fk_columns.join(", "), child.display_plain()),
        "not built: the application has no index on these columns either, so a parent's key \
         change scans this table as it did before the conversion (--index-foreign-keys builds one)"
            .to_string(),
    );
    true
}

/// Put the tenant column last in a foreign key's index when the table already has an index
/// that leads with it. The policy's `tenant_id = …` condition matches every index that leads
/// with the tenant column, and the planner costs each of them for every query of the table
/// (pgbench's lookup by key: a fifth of its time); the key's lookups need both columns, not
/// their order. The first such index keeps the tenant first when nothing else does, so the
/// table's tenant-wide reads and the tenant foreign key's checks have one.
pub(super) fn order_for_planning(
    scope: &Scope,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    indexes: &mut BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    book: &mut NameBook,
) {
    let col = &scope.tenant.column;
    for (table, planned) in indexes.iter_mut() {
        let mut led = uniques.get(table).is_some_and(|v| !v.is_empty()) || planned.iter().any(|p| p.unique);
        for index in planned.iter_mut().filter(|p| !p.unique && p.columns.len() > 1) {
            if !led {
                led = true;
                continue;
            }
            let mut columns: Vec<String> = index.columns[1..].to_vec();
            columns.push(col.clone());
            index.name = book.fresh(&table.schema, &format!("{}_{}_idx", table.name, columns.join("_")));
            index.columns = columns;
        }
    }
}

/// Drop each planned plain index that another index the plan builds already serves: its
/// columns are a leading prefix of another planned index on the table, or of a scoped unique
/// stage 7 builds concurrently (same table, no predicate, plain columns) — stage 7 builds that
/// unique before it adds the foreign keys the index is for, and drops it only after them.
/// Every such index is a write the application would pay for on each insert.
pub(super) fn drop_redundant(
    scope: &Scope,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    indexes: &mut BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    findings: &mut super::Findings,
) {
    let col = &scope.tenant.column;
    for (table, planned) in indexes.iter_mut() {
        let mut served: Vec<(Vec<String>, String)> = uniques
            .get(table)
            .into_iter()
            .flatten()
            .filter(|u| !u.partitioned && u.build_definition.is_some() && u.original.predicate.is_none())
            .filter_map(|u| {
                let mut columns = vec![col.clone()];
                columns.extend(u.original.key_column_names.clone()?);
                Some((columns, format!("the tenant-scoped {}", u.original.index_name)))
            })
            .collect();
        served.extend(planned.iter().map(|p| (p.columns.clone(), p.name.clone())));
        let scoped_key = scoped_primary_key(uniques, table).and_then(|u| {
            let mut columns = vec![col.clone()];
            columns.extend(u.original.key_column_names.clone()?);
            Some((columns, u.original.index_name.clone()))
        });
        planned.retain(|index| {
            if index.unique {
                // The key's scoped copy is built before the foreign keys that need a
                // `(tenant, key)` unique and becomes the key: a second index on the same
                // columns would cost every write and every plan of the table.
                let Some((columns, key)) = scoped_key.as_ref().filter(|(c, _)| *c == index.columns) else {
                    return true;
                };
                findings.add(
                    super::Severity::Info,
                    "index-served",
                    format!("({}) on {}", index.columns.join(", "), table.display_plain()),
                    format!(
                        "not built: the tenant-scoped primary key {key} ({}) is built first and the \
                         tenant-scoped foreign keys reference it",
                        columns.join(", ")
                    ),
                );
                return false;
            }
            let by = served.iter().find(|(columns, name)| {
                *name != index.name
                    && columns.len() > index.columns.len()
                    && columns.starts_with(&index.columns)
            });
            let Some((columns, name)) = by else { return true };
            findings.add(
                super::Severity::Info,
                "index-served",
                format!("({}) on {}", index.columns.join(", "), table.display_plain()),
                format!(
                    "not built: {name} ({}) leads with the same columns and serves it",
                    columns.join(", ")
                ),
            );
            false
        });
    }
    indexes.retain(|_, planned| !planned.is_empty());
}

/// The table's primary key as stage 7 scopes it concurrently (not partitioned, not partial),
/// if it does: its scoped copy is what the composite foreign keys reference.
pub(super) fn scoped_primary_key<'u>(
    uniques: &'u BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    table: &QualifiedName,
) -> Option<&'u ScopedUnique> {
    uniques.get(table)?.iter().find(|u| {
        u.primary_key && !u.partitioned && u.build_definition.is_some() && u.original.predicate.is_none()
    })
}

/// The converted tables' index count before the plan and after it, as an info finding.
pub(super) fn report_count(
    scope: &Scope,
    indexes: &BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    findings: &mut super::Findings,
) {
    let before: usize = scope
        .scoped
        .iter()
        .map(|n| scope.table(n))
        .map(|t| usize::from(t.primary_key.is_some()) + t.uniques.len() + t.indexes.len())
        .sum();
    // Scoped uniques and keys replace the global ones one for one; stage 6 adds its own, one
    // per partition too.
    let built: usize = indexes.values().flatten().map(|i| 1 + i.partition_names.len()).sum();
    findings.add(
        super::Severity::Info,
        "index-count",
        scope.options.schemas.join(", "),
        format!("indexes on the converted tables: {before} before, {} after", before + built),
    );
}

/// Every scoped root should end up with an index that leads with the tenant column, so that
/// RLS-filtered queries are not sequential scans.
pub(super) fn add_leading_indexes(
    scope: &Scope,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    indexes: &mut BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    book: &mut NameBook,
) {
    let col = &scope.tenant.column;
    for root in &scope.roots {
        let has_lead = indexes.get(root).is_some_and(|v| !v.is_empty())
            || uniques.get(root).is_some_and(|v| !v.is_empty());
        if !has_lead {
            let name = book.fresh(&root.schema, &format!("{}_{}_idx", root.name, col));
            indexes.entry(root.clone()).or_default().push(PlannedIndex {
                name,
                columns: vec![col.clone()],
                unique: false,
                partition_names: HashMap::new(),
            });
        }
    }
}

/// PostgreSQL cannot build a partitioned index concurrently, so stage 6 builds one per
/// partition and attaches it: name those.
pub(super) fn name_partition_indexes(
    scope: &Scope,
    indexes: &mut BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    book: &mut NameBook,
) {
    for (table, planned) in indexes.iter_mut() {
        if scope.table(table).kind != TableKind::Partitioned {
            continue;
        }
        for index in planned {
            let suffix = if index.unique { "key" } else { "idx" };
            for child in scope.catalog.partition_descendants(table) {
                let natural = format!("{}_{}_{}", child.name.name, index.columns.join("_"), suffix);
                let name = book.fresh(&child.name.schema, &natural);
                index.partition_names.insert(child.name.clone(), name);
            }
        }
    }
}
