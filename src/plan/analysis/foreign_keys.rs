//! Stage 7's decisions about foreign keys between scoped tables: which become composite
//! `(tenant, key)` keys, and which are left as they are (reported).

use std::collections::BTreeMap;

use super::indexes::PlannedIndex;
use super::names::NameBook;
use super::uniques::ScopedUnique;
use super::{Findings, Scope, sorted};
use crate::catalog::{ForeignKey, TableKind};
use crate::plan::model::Severity;
use crate::sql::QualifiedName;

/// The foreign keys of one child table between scoped tables.
pub(in crate::plan) struct ForeignKeyGroup<'a> {
    pub child: QualifiedName,
    /// PostgreSQL has no NOT VALID foreign keys on partitioned tables.
    pub partitioned_child: bool,
    /// Every one of them, converted or not (the step lists all their parents).
    pub all: Vec<&'a ForeignKey>,
    pub converted: Vec<ScopedForeignKey<'a>>,
}

/// A foreign key that stage 7 replaces by its composite successor.
pub(in crate::plan) struct ScopedForeignKey<'a> {
    pub fk: &'a ForeignKey,
    /// Name the successor is added under before the swap.
    pub temp_name: String,
    /// Name the original is re-added under when rolling back.
    pub restore_name: String,
}

/// (child table, fk) for every FK between scoped tables that is not cloned from a
/// partitioned parent.
pub(super) fn scoped_foreign_keys<'a>(scope: &Scope<'a>) -> Vec<(QualifiedName, &'a ForeignKey)> {
    let mut out = Vec::new();
    for name in &scope.scoped {
        for fk in &scope.table(name).foreign_keys {
            if !fk.inherited && scope.is_scoped(&fk.referenced_table) {
                out.push((name.clone(), fk));
            }
        }
    }
    out
}

/// Why a foreign key between scoped tables cannot become a composite tenant key, if it
/// cannot (whatever its target).
pub(super) fn unconvertible_reason(scope: &Scope, fk: &ForeignKey) -> Option<&'static str> {
    if matches!(fk.on_update.as_str(), "n" | "d") {
        return Some("ON UPDATE SET NULL/SET DEFAULT would also change the tenant column");
    }
    if matches!(fk.on_delete.as_str(), "n" | "d") && !scope.pg15 {
        return Some(
            "ON DELETE SET NULL/SET DEFAULT needs a column list (PostgreSQL 15+) to spare the tenant column",
        );
    }
    None
}

/// Groups per child, children in root order (partitions after their root) so the journal
/// reads parents first.
pub(super) fn decide<'a>(
    scope: &Scope<'a>,
    indexes: &BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    book: &mut NameBook,
    findings: &mut Findings,
) -> Vec<ForeignKeyGroup<'a>> {
    let mut by_child: BTreeMap<QualifiedName, Vec<&'a ForeignKey>> = BTreeMap::new();
    for (child, fk) in scoped_foreign_keys(scope) {
        by_child.entry(child).or_default().push(fk);
    }
    let order = scope.roots.iter().flat_map(|r| {
        let mut group = vec![r.clone()];
        group.extend(scope.catalog.partition_descendants(r).into_iter().map(|t| t.name.clone()));
        group
    });
    let mut groups = Vec::new();
    for child in order {
        let Some(all) = by_child.get(&child).cloned() else { continue };
        let mut converted = Vec::new();
        for fk in &all {
            if convertible(scope, indexes, uniques, &child, fk, findings) {
                let temp_name = book.fresh(&child.schema, &format!("{}_{}", fk.name, scope.tenant.column));
                let restore_name = book.fresh(&child.schema, &format!("{}_global", fk.name));
                converted.push(ScopedForeignKey { fk, temp_name, restore_name });
            }
        }
        let partitioned_child = scope.table(&child).kind == TableKind::Partitioned;
        groups.push(ForeignKeyGroup { child, partitioned_child, all, converted });
    }
    groups
}

/// Whether `fk` becomes a composite key; when not, why is reported. MATCH FULL keys are
/// converted, with a warning.
fn convertible(
    scope: &Scope,
    indexes: &BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    child: &QualifiedName,
    fk: &ForeignKey,
    findings: &mut Findings,
) -> bool {
    let object = format!("{} on {}", fk.name, child.display_plain());
    if !scoped_target_exists(scope, indexes, uniques, &fk.referenced_table, &fk.referenced_columns) {
        findings.add(
            Severity::Warning,
            "foreign-key-not-scoped",
            object,
            format!(
                "references {} ({}), which gets no tenant-scoped unique; left as it is \
                 (a child row may point at another tenant's parent)",
                fk.referenced_table.display_plain(),
                fk.referenced_columns.join(", ")
            ),
        );
        return false;
    }
    if let Some(reason) = unconvertible_reason(scope, fk) {
        findings.add(Severity::Warning, "foreign-key-not-scoped", object, format!("{reason}; left as it is"));
        return false;
    }
    if fk.match_type == "f" && fk.columns.len() > 1 {
        findings.add(
            Severity::Warning,
            "foreign-key-match-full",
            object,
            "MATCH FULL becomes MATCH SIMPLE: with the NOT NULL tenant column in the key, \
             MATCH FULL would reject rows whose other key columns are partly NULL",
        );
    }
    true
}

/// Whether the plan gives `parent (tenant, columns)` a unique index a composite FK can use.
fn scoped_target_exists(
    scope: &Scope,
    indexes: &BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    uniques: &BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    parent: &QualifiedName,
    columns: &[String],
) -> bool {
    let table = scope.table(parent);
    let pk_matches = table.primary_key.as_ref().is_some_and(|pk| sorted(&pk.columns) == sorted(columns));
    if pk_matches {
        return indexes.get(parent).is_some_and(|v| v.iter().any(|i| i.unique))
            || super::indexes::scoped_primary_key(uniques, parent).is_some();
    }
    uniques.get(parent).is_some_and(|list| {
        list.iter().any(|u| {
            u.original.predicate.is_none()
                && u.original.key_column_names.as_ref().map(|c| sorted(c)) == Some(sorted(columns))
        })
    })
}
