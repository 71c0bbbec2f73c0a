//! Checksums of the catalog's shape that the conversion itself does not change.
//!
//! A plan records a fingerprint per table. Before running the steps still to do, `apply`
//! recomputes them from the live catalog and refuses when they differ (drift). Because some of
//! the plan's steps may already have run, the fingerprint leaves out what the plan adds (the
//! tenant column and every object the plan names) and reads a tenant-scoped unique or foreign
//! key as the original it replaced (a leading tenant column is stripped). Row counts, sizes,
//! owners and RLS flags are left out: they change without changing the plan.

use std::collections::BTreeSet;

use serde_json::json;

use super::{Catalog, Table, View};
use crate::checksum::sha256_hex;
use crate::sql::{QualifiedName, quote_ident};

/// What the plan adds, to be left out of a fingerprint.
pub struct FingerprintIgnore<'a> {
    pub tenant_column: &'a str,
    pub tenant_table: &'a QualifiedName,
    /// Unqualified names of indexes, constraints and policies the plan creates.
    pub owned_names: &'a BTreeSet<String>,
}

impl FingerprintIgnore<'_> {
    fn strip_tenant<'s>(&self, columns: &'s [String]) -> &'s [String] {
        match columns.first() {
            Some(first) if *first == self.tenant_column || *first == quote_ident(self.tenant_column) => {
                &columns[1..]
            }
            _ => columns,
        }
    }

    fn owned(&self, name: &str) -> bool {
        self.owned_names.contains(name)
    }
}

pub fn table_fingerprint(table: &Table, ignore: &FingerprintIgnore) -> String {
    let columns: Vec<_> = table
        .columns
        .iter()
        .filter(|c| c.name != ignore.tenant_column)
        .map(|c| json!([c.name, c.data_type, c.not_null, c.default, c.identity, c.generated]))
        .collect();
    let uniques: Vec<_> = table
        .uniques
        .iter()
        .filter(|u| !ignore.owned(&u.index_name) && !u.is_partition_child)
        .map(|u| {
            let constraint = u.constraint.as_ref().map(|c| json!([c.deferrable, c.initially_deferred]));
            json!([
                u.index_name,
                ignore.strip_tenant(&u.key_columns),
                u.predicate,
                u.access_method,
                u.nulls_not_distinct,
                constraint
            ])
        })
        .collect();
    let indexes: Vec<_> = table
        .indexes
        .iter()
        .filter(|i| !ignore.owned(&i.name) && !i.is_partition_child)
        .map(|i| json!([i.name, i.definition]))
        .collect();
    let foreign_keys: Vec<_> = table
        .foreign_keys
        .iter()
        .filter(|f| !ignore.owned(&f.name) && !f.inherited)
        .map(|f| {
            let columns = ignore.strip_tenant(&f.columns);
            let referenced = ignore.strip_tenant(&f.referenced_columns);
            // `ON DELETE SET NULL (col)` over every non-tenant column reads as plain SET NULL.
            let delete_columns: &[String] =
                if f.on_delete_columns.as_slice() == columns { &[] } else { &f.on_delete_columns };
            json!([
                f.name,
                columns,
                f.referenced_table,
                referenced,
                f.on_update,
                f.on_delete,
                delete_columns,
                f.match_type,
                f.deferrable,
                f.initially_deferred
            ])
        })
        .collect();
    let named = |items: &[super::NamedDefinition]| -> Vec<serde_json::Value> {
        items.iter().filter(|c| !ignore.owned(&c.name)).map(|c| json!([c.name, c.definition])).collect()
    };
    let triggers: Vec<_> = table
        .triggers
        .iter()
        .filter(|t| !t.inherited)
        .map(|t| json!([t.name, t.definition, t.enabled]))
        .collect();
    let policies: Vec<_> =
        table.policies.iter().filter(|p| !ignore.owned(&p.name)).map(|p| json!(p.name)).collect();
    let shape = json!({
        "name": table.name,
        "kind": table.kind,
        "partition_of": table.partition_of,
        "partition_bound": table.partition_bound,
        "partition_key": table.partition_key,
        "inherits_from": table.inherits_from,
        "columns": columns,
        "primary_key": table.primary_key.as_ref().map(|p| &p.definition),
        "uniques": uniques,
        "indexes": indexes,
        "foreign_keys": foreign_keys,
        "checks": named(&table.check_constraints),
        "exclusions": named(&table.exclusion_constraints),
        "triggers": triggers,
        "policies": policies,
    });
    sha256_hex(shape.to_string().as_bytes())
}

pub fn view_fingerprint(view: &View) -> String {
    let shape = json!({
        "name": view.name,
        "materialized": view.materialized,
        "reads_tables": view.reads_tables,
    });
    sha256_hex(shape.to_string().as_bytes())
}

/// One checksum over every table (but the tenant table) and view in the introspected schemas.
pub fn catalog_fingerprint(catalog: &Catalog, ignore: &FingerprintIgnore) -> String {
    let tables: Vec<_> = catalog
        .tables
        .iter()
        .filter(|t| &t.name != ignore.tenant_table)
        .map(|t| json!([t.name, table_fingerprint(t, ignore)]))
        .collect();
    let views: Vec<_> = catalog.views.iter().map(|v| json!([v.name, view_fingerprint(v)])).collect();
    let shape = json!({ "schemas": catalog.schemas, "tables": tables, "views": views });
    sha256_hex(shape.to_string().as_bytes())
}
