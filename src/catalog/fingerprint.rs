//! Checksums of the catalog's shape that the conversion itself does not change.
//!
//! A plan records a fingerprint per table. Before running the steps still to do, `apply`
//! recomputes them from the live catalog and refuses when they differ (drift). Because some of
//! the plan's steps may already have run, the fingerprint leaves out what the plan adds (the
//! tenant column and every object the plan names) and reads a tenant-scoped unique or foreign
//! key as the original it replaced (a leading tenant column is stripped), and a covered index
//! as the one it replaced (an included tenant column at the end is stripped). Row counts, sizes,
//! owners and RLS flags are left out: they change without changing the plan. So are tablespaces:
//! a rebuilt index lands in its original's own tablespace, but one without a tablespace of its
//! own lands wherever `default_tablespace` points, and a partition's key index where its
//! parent's does; neither is the application's change.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Catalog, Table, View};
use crate::checksum::sha256_hex;
use crate::sql::{QualifiedName, quote_ident, without_included_column};

/// What the plan adds, to be left out of a fingerprint.
pub struct FingerprintIgnore<'a> {
    pub tenant_column: &'a str,
    pub tenant_table: &'a QualifiedName,
    /// Unqualified names of indexes, constraints and policies the plan creates.
    pub owned_names: &'a BTreeSet<String>,
    /// Compare foreign keys. Off for a plan that distributes: stage 9 takes every key among
    /// the tables off and puts it back, so mid-stage the keys' absence is the plan's own doing.
    pub foreign_keys: bool,
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

/// A table's shape as a reviewer would describe it, normalized so the conversion itself does
/// not change it (see the module comment). Stored in plans; its hash is the table fingerprint;
/// two shapes diff into "column x added"-style lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableShape {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits_from: Vec<String>,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uniques: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

pub fn table_shape(table: &Table, ignore: &FingerprintIgnore) -> TableShape {
    let kind = match table.kind {
        super::TableKind::Ordinary => "table",
        super::TableKind::Partitioned => "partitioned table",
    };
    let partition_of = table.partition_of.as_ref().map(|parent| match &table.partition_bound {
        Some(bound) => format!("{parent} {bound}"),
        None => parent.to_string(),
    });
    let columns = table.columns.iter().filter(|c| c.name != ignore.tenant_column).map(column_shape).collect();
    let uniques = table
        .uniques
        .iter()
        .filter(|u| !ignore.owned(&u.index_name) && !u.is_partition_child)
        .map(|u| unique_shape(u, ignore))
        .collect();
    let foreign_keys = table
        .foreign_keys
        .iter()
        .filter(|f| ignore.foreign_keys && !ignore.owned(&f.name) && !f.inherited)
        .map(|f| foreign_key_shape(f, ignore))
        .collect();
    let indexes = table
        .indexes
        .iter()
        .filter(|i| !ignore.owned(&i.name) && !i.is_partition_child)
        // An index the plan covered (`--cover-indexes`) reads as the one it replaced.
        .map(|i| {
            without_included_column(&i.definition, &table.name, ignore.tenant_column)
                .unwrap_or_else(|| i.definition.clone())
        })
        .collect();
    let checks = table
        .check_constraints
        .iter()
        .chain(table.exclusion_constraints.iter())
        .filter(|c| !ignore.owned(&c.name))
        .map(|c| format!("{} {}", quote_ident(&c.name), c.definition))
        .collect();
    let triggers = table
        .triggers
        .iter()
        .filter(|t| !t.inherited)
        .map(|t| if t.enabled == "D" { format!("{} (disabled)", t.definition) } else { t.definition.clone() })
        .collect();
    let policies =
        table.policies.iter().filter(|p| !ignore.owned(&p.name)).map(|p| quote_ident(&p.name)).collect();
    TableShape {
        kind: kind.to_string(),
        partition_of,
        inherits_from: table.inherits_from.iter().map(|t| t.to_string()).collect(),
        columns,
        // A key the plan scoped reads as the key it was (stage 7 put the tenant column in front).
        primary_key: table.primary_key.as_ref().map(|p| {
            let key = ignore.strip_tenant(&p.columns);
            if key.len() < p.columns.len() {
                format!("PRIMARY KEY ({})", crate::sql::ident_list(key))
            } else {
                p.definition.clone()
            }
        }),
        uniques,
        foreign_keys,
        indexes,
        checks,
        triggers,
        policies,
    }
}

fn column_shape(c: &super::Column) -> String {
    let mut text = format!("{} {}", quote_ident(&c.name), c.data_type);
    if c.not_null {
        text.push_str(" NOT NULL");
    }
    if let Some(default) = &c.default {
        text.push_str(&format!(" DEFAULT {default}"));
    }
    match c.identity.as_deref() {
        Some("a") => text.push_str(" GENERATED ALWAYS AS IDENTITY"),
        Some(_) => text.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        None => {}
    }
    if c.generated.is_some() {
        text.push_str(" GENERATED");
    }
    text
}

fn unique_shape(u: &super::UniqueIndex, ignore: &FingerprintIgnore) -> String {
    let mut text =
        format!("{} ({})", quote_ident(&u.index_name), ignore.strip_tenant(&u.key_columns).join(", "));
    if u.nulls_not_distinct {
        text.push_str(" NULLS NOT DISTINCT");
    }
    if let Some(predicate) = &u.predicate {
        text.push_str(&format!(" WHERE {predicate}"));
    }
    match &u.constraint {
        Some(c) if c.initially_deferred => text.push_str(" constraint, DEFERRABLE INITIALLY DEFERRED"),
        Some(c) if c.deferrable => text.push_str(" constraint, DEFERRABLE"),
        Some(_) => text.push_str(" constraint"),
        None => text.push_str(" index"),
    }
    text
}

fn foreign_key_shape(f: &super::ForeignKey, ignore: &FingerprintIgnore) -> String {
    let columns = ignore.strip_tenant(&f.columns);
    let referenced = ignore.strip_tenant(&f.referenced_columns);
    let action = |code: &str| match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    };
    let mut text = format!(
        "{} ({}) REFERENCES {} ({}) ON UPDATE {} ON DELETE {}",
        quote_ident(&f.name),
        columns.join(", "),
        f.referenced_table,
        referenced.join(", "),
        action(&f.on_update),
        action(&f.on_delete)
    );
    // `ON DELETE SET NULL (col)` over every non-tenant column reads as plain SET NULL.
    if !f.on_delete_columns.is_empty() && f.on_delete_columns.as_slice() != columns {
        text.push_str(&format!(" ({})", f.on_delete_columns.join(", ")));
    }
    if f.deferrable {
        text.push_str(if f.initially_deferred { " DEFERRABLE INITIALLY DEFERRED" } else { " DEFERRABLE" });
    }
    text
}

pub fn shape_fingerprint(shape: &TableShape) -> String {
    sha256_hex(serde_json::to_string(shape).expect("a shape serializes").as_bytes())
}

pub fn table_fingerprint(table: &Table, ignore: &FingerprintIgnore) -> String {
    shape_fingerprint(&table_shape(table, ignore))
}

/// What changed from `before` to `after`, one line per difference.
pub fn shape_diff(before: &TableShape, after: &TableShape) -> Vec<String> {
    let mut out = Vec::new();
    let mut single = |what: &str, a: &Option<String>, b: &Option<String>| {
        if a != b {
            out.push(format!(
                "{what}: {} → {}",
                a.as_deref().unwrap_or("none"),
                b.as_deref().unwrap_or("none")
            ));
        }
    };
    single("partition", &before.partition_of, &after.partition_of);
    single("primary key", &before.primary_key, &after.primary_key);
    if before.kind != after.kind {
        out.push(format!("kind: {} → {}", before.kind, after.kind));
    }
    let lists: [(&str, &Vec<String>, &Vec<String>); 8] = [
        ("column", &before.columns, &after.columns),
        ("unique", &before.uniques, &after.uniques),
        ("foreign key", &before.foreign_keys, &after.foreign_keys),
        ("index", &before.indexes, &after.indexes),
        ("check", &before.checks, &after.checks),
        ("trigger", &before.triggers, &after.triggers),
        ("policy", &before.policies, &after.policies),
        ("inherits", &before.inherits_from, &after.inherits_from),
    ];
    for (what, a, b) in lists {
        for gone in a.iter().filter(|x| !b.contains(x)) {
            out.push(format!("{what} removed: {gone}"));
        }
        for new in b.iter().filter(|x| !a.contains(x)) {
            out.push(format!("{what} added: {new}"));
        }
    }
    out
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
