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
        NameBook { taken: catalog.relation_and_constraint_names(), owned: BTreeSet::new() }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::plan::test_support::*;
    use crate::plan::{PlanOptions, Severity};
    use crate::sql::{MAX_IDENTIFIER_BYTES, bounded_name};

    #[test]
    fn generated_names_fit_63_bytes_and_stay_distinct_for_long_table_names() {
        let shared = "customer_subscription_billing_history_adjustments_and_credit_".to_string();
        assert_eq!(shared.len(), 61);
        let first = format!("{shared}aa");
        let second = format!("{shared}bb");
        let mut builder = CatalogBuilder::new(PG15);
        for (table, other) in [(&first, &second), (&second, &first)] {
            let pk = format!("{}_pk", &table[59..]);
            builder = builder.table("public", table, |t| {
                t.pk_named(&pk, &["id"]).col("ref_id", "bigint").fk_named(
                    &format!("{}_ref_fkey", &table[59..]),
                    &["ref_id"],
                    qn("public", other),
                    &["id"],
                    'a',
                )
            });
        }
        // A relation already holds the name the first tenant FK would naturally get.
        let natural_fk = bounded_name(&format!("{first}_tenant_id_fkey"));
        let catalog = builder.relation("public", &natural_fk).build();
        let plan = plan_with(&catalog, &indexing_foreign_keys());
        assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));

        let names = created_names(&plan);
        // Per table: tenant FK, NOT NULL check, (tenant_id, id) key, (tenant_id, ref_id) index, scoped FK.
        assert_eq!(names.len(), 10, "{names:#?}");
        for name in names.iter().chain(plan.drift.owned_names.iter()) {
            assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name:?} is {} bytes", name.len());
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &names {
            *counts.entry(name).or_default() += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "names created twice: {repeated:?}");
        assert!(!names.contains(&natural_fk), "{natural_fk} is taken by a relation");
        for name in &names {
            assert!(
                !catalog.relation_exists(&qn("public", name)),
                "{name} collides with an existing relation"
            );
        }
    }

    #[test]
    fn generated_names_avoid_existing_relations_and_constraints() {
        let catalog = CatalogBuilder::new(PG15)
            .table("public", "settings", |t| t.pk(&["id"]).col("value", "jsonb"))
            .table("public", "other", |t| {
                t.pk(&["id"])
                    .col("x", "int")
                    .index("settings_tenant_id_idx", &["x"])
                    .check("settings_tenant_id_not_null", "CHECK ((x > 0))")
            })
            .relation("public", "settings_tenant_id_fkey")
            .build();
        let plan = plan_of(&catalog);
        let sql = all_forward_sql(&plan);
        offset(&sql, "ALTER TABLE public.settings ADD CONSTRAINT settings_tenant_id_fkey1 FOREIGN KEY");
        offset(&sql, "ALTER TABLE public.settings ADD CONSTRAINT settings_tenant_id_not_null1 CHECK");
        offset(&sql, "CREATE INDEX CONCURRENTLY settings_tenant_id_idx1 ON public.settings (tenant_id);\n");
        assert!(!sql.contains("CONCURRENTLY settings_tenant_id_idx ON"));
    }

    #[test]
    fn the_tenant_tables_primary_key_name_fits_63_bytes() {
        let long = "t".repeat(MAX_IDENTIFIER_BYTES);
        let options = PlanOptions { tenant_table: qn("public", &long), ..PlanOptions::default() };
        let plan = plan_with(&saas(PG15).build(), &options);
        let create = forward_sql(step(&plan, "1.tenant-table"));
        let at = offset(&create, "CONSTRAINT ") + "CONSTRAINT ".len();
        let name = leading_identifier(&create[at..]);
        assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name:?} is {} bytes", name.len());
    }
}
