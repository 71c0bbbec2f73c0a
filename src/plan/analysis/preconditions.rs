//! What must hold before anything is converted; each problem is an error finding, which stops
//! `plan` and `apply`.

use super::{Findings, Scope};
use crate::catalog::{Table, TableKind};
use crate::plan::model::{BackfillMode, Severity};

pub(super) fn check(scope: &Scope, findings: &mut Findings) {
    let catalog = scope.catalog;
    let tenant = &scope.tenant;
    if catalog.table(&tenant.table).is_some() || catalog.relation_exists(&tenant.table) {
        findings.add(
            Severity::Error,
            "tenant-table-exists",
            tenant.table.display_plain(),
            "a relation with the tenant table's name already exists: choose another \
             --tenant-table (or see `tenantize status` if a conversion already ran)",
        );
    }
    if !catalog.schemas.contains(&tenant.table.schema)
        && !catalog.creatable_schemas.contains(&tenant.table.schema)
    {
        findings.add(
            Severity::Error,
            "tenant-schema-missing",
            tenant.table.schema.clone(),
            "the tenant table's schema does not exist or the role may not create in it",
        );
    }
    for name in &scope.scoped {
        let table = scope.table(name);
        if table.column(&tenant.column).is_some() {
            findings.add(
                Severity::Error,
                "tenant-column-exists",
                name.display_plain(),
                format!(
                    "already has a column named {}: choose another --tenant-column, or \
                     --exclude the table if it is already tenant-aware",
                    tenant.column
                ),
            );
        }
        if tenant.backfill == BackfillMode::Batched && table.kind == TableKind::Ordinary {
            check_batched_backfill_triggers(scope, table, findings);
        }
    }
    if scope.roots.is_empty() {
        findings.add(
            Severity::Error,
            "nothing-to-convert",
            scope.options.schemas.join(", "),
            "no tables to convert in the chosen schemas",
        );
    }
}

/// A batched backfill updates every row: its UPDATE triggers must be kept from firing.
fn check_batched_backfill_triggers(scope: &Scope, table: &Table, findings: &mut Findings) {
    let always: Vec<&str> = table
        .triggers
        .iter()
        .filter(|t| t.fires_on_update && t.row_level && matches!(t.enabled.as_str(), "A" | "R"))
        .map(|t| t.name.as_str())
        .collect();
    if !always.is_empty() {
        findings.add(
            Severity::Error,
            "batched-backfill-fires-triggers",
            table.name.display_plain(),
            format!(
                "triggers {} are enabled ALWAYS/REPLICA and would fire on every \
                 backfilled row: use --backfill fast",
                always.join(", ")
            ),
        );
    } else if !scope.catalog.role.superuser
        && table.triggers.iter().any(|t| t.fires_on_update && t.row_level && t.enabled == "O")
    {
        findings.add(
            Severity::Error,
            "batched-backfill-fires-triggers",
            table.name.display_plain(),
            "has UPDATE triggers; a batched backfill can only keep them from firing \
             as a superuser (session_replication_role): use --backfill fast or run \
             as a superuser",
        );
    }
}
