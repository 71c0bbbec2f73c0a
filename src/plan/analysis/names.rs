//! Names for what the plan creates: none may collide with an existing relation or constraint
//! (or with another generated name), and all fit PostgreSQL's 63 bytes.

use std::collections::{BTreeSet, HashMap};

use super::{Findings, Scope};
use crate::catalog::{Catalog, TableKind};
use crate::plan::model::{Severity, TenantSpec};
use crate::sql::{QualifiedName, bounded_name};

/// Names the plan gives to what it creates per root, decided once so every stage agrees.
#[derive(Debug, Default, Clone)]
pub(in crate::plan) struct TableNames {
    /// FK from the tenant column to the tenant table (on ordinary tables and partitioned roots).
    pub tenant_fk: String,
    /// Per leaf partition of a partitioned root: the leaf's own tenant FK (added NOT VALID).
    pub leaf_tenant_fks: Vec<(QualifiedName, String)>,
    pub not_null_check: String,
    pub policy: String,
}

/// The names taken in each schema, and those the plan took.
pub(super) struct NameBook {
    taken: BTreeSet<QualifiedName>,
    owned: BTreeSet<String>,
}

impl NameBook {
    /// Every relation of the catalog, and every constraint (constraint names share a namespace
    /// with the indexes behind them).
    pub fn reserving_existing(catalog: &Catalog) -> NameBook {
        let mut taken: BTreeSet<QualifiedName> = catalog.relation_names.iter().cloned().collect();
        for table in &catalog.tables {
            let schema = &table.name.schema;
            let constraint_names = table
                .primary_key
                .iter()
                .map(|p| p.name.clone())
                .chain(table.foreign_keys.iter().map(|f| f.name.clone()))
                .chain(table.check_constraints.iter().map(|c| c.name.clone()))
                .chain(table.exclusion_constraints.iter().map(|c| c.name.clone()))
                .chain(table.uniques.iter().map(|u| u.index_name.clone()));
            for name in constraint_names {
                taken.insert(QualifiedName::new(schema.clone(), name));
            }
        }
        NameBook { taken, owned: BTreeSet::new() }
    }

    /// A name not used by any relation or constraint in `schema`, derived from `natural`.
    pub fn fresh(&mut self, schema: &str, natural: &str) -> String {
        let mut candidate = bounded_name(natural);
        let mut n = 1;
        while self.taken.contains(&QualifiedName::new(schema, candidate.clone())) {
            candidate = bounded_name(&format!("{natural}{n}"));
            n += 1;
        }
        self.taken.insert(QualifiedName::new(schema, candidate.clone()));
        self.owned.insert(candidate.clone());
        candidate
    }

    pub fn into_owned(self) -> BTreeSet<String> {
        self.owned
    }
}

/// The primary key name of the tenant table.
pub(in crate::plan) fn tenant_table_pkey(tenant: &TenantSpec) -> String {
    bounded_name(&format!("{}_pkey", tenant.table.name))
}

pub(super) fn decide(
    scope: &Scope,
    book: &mut NameBook,
    findings: &mut Findings,
) -> HashMap<QualifiedName, TableNames> {
    reserve_tenant_table(scope, book, findings);
    let col = &scope.tenant.column;
    let mut names = HashMap::new();
    for root in &scope.roots {
        let table = scope.table(root);
        let schema = &root.schema;
        let tenant_fk = book.fresh(schema, &format!("{}_{}_fkey", root.name, col));
        let mut leaf_tenant_fks = Vec::new();
        if table.kind == TableKind::Partitioned {
            for leaf in scope.leaves_of(root) {
                let name = book.fresh(&leaf.name.schema, &format!("{}_{}_fkey", leaf.name.name, col));
                leaf_tenant_fks.push((leaf.name.clone(), name));
            }
        }
        let not_null_check = book.fresh(schema, &format!("{}_{}_not_null", root.name, col));
        let policy = policy_name(scope, root, book, findings);
        names.insert(root.clone(), TableNames { tenant_fk, leaf_tenant_fks, not_null_check, policy });
    }
    names
}

fn reserve_tenant_table(scope: &Scope, book: &mut NameBook, findings: &mut Findings) {
    let tenant_table = &scope.tenant.table;
    let pkey = tenant_table.sibling(tenant_table_pkey(&scope.tenant));
    book.taken.insert(tenant_table.clone());
    if book.taken.contains(&pkey) {
        findings.add(
            Severity::Error,
            "tenant-table-exists",
            pkey.display_plain(),
            "the tenant table's primary key name is taken: choose another --tenant-table",
        );
    }
    book.taken.insert(pkey);
}

/// Policy names are per table: one no relation of `root`'s tree has yet. Relations with
/// policies of their own are reported, since the tenant policy narrows them.
fn policy_name(scope: &Scope, root: &QualifiedName, book: &mut NameBook, findings: &mut Findings) -> String {
    let mut all_tables = vec![scope.table(root)];
    all_tables.extend(scope.catalog.partition_descendants(root));
    let mut policy = "tenant_isolation".to_string();
    let mut n = 1;
    while all_tables.iter().any(|t| t.policies.iter().any(|p| p.name == policy)) {
        policy = format!("tenant_isolation_{n}");
        n += 1;
    }
    book.owned.insert(policy.clone());
    for relation in &all_tables {
        if relation.policies.is_empty() {
            continue;
        }
        let existing: Vec<&str> = relation.policies.iter().map(|p| p.name.as_str()).collect();
        findings.add(
            Severity::Warning,
            "existing-policies",
            relation.name.display_plain(),
            format!(
                "already has policies ({}); the tenant policy is added AS RESTRICTIVE so \
                 it narrows them instead of widening them",
                existing.join(", ")
            ),
        );
    }
    policy
}
