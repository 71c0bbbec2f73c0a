//! Which tables need their own foreign key to the tenant table. A table whose stage-7
//! composite key `(tenant_id, col) → parent (tenant_id, key)` has every column NOT NULL can
//! only hold tenants its parent holds, and the parent's key (or its parent's, down the chain)
//! already refers to the tenant table: a key of its own would be checked, with a lock on the
//! tenant's one row, by every insert, for nothing (pgbench's history: four checks instead of
//! three, all of its clients locking the same row).

use std::collections::{BTreeMap, BTreeSet};

use super::foreign_keys::ForeignKeyGroup;
use super::{Findings, Scope, Severity};
use crate::catalog::TableKind;
use crate::sql::QualifiedName;

/// Roots whose tenant key is left out, with the composite key that implies it. Decided in
/// rounds: a table is left out only for a parent that keeps its own key, so a cycle of
/// tables referring to each other keeps one (the first in scope order).
pub(super) fn implied(
    scope: &Scope,
    groups: &[ForeignKeyGroup],
    findings: &mut Findings,
) -> BTreeMap<QualifiedName, String> {
    // Per eligible child: (parent, the implying key's description), in scope order.
    let mut candidates: BTreeMap<&QualifiedName, Vec<(&QualifiedName, String)>> = BTreeMap::new();
    for group in groups.iter().filter(|g| !g.partitioned_child) {
        let child = scope.table(&group.child);
        if child.kind != TableKind::Ordinary || child.is_partition() {
            continue;
        }
        for converted in &group.converted {
            let fk = converted.fk;
            let not_null = fk.columns.iter().all(|c| child.column(c).is_some_and(|col| col.not_null));
            if not_null && fk.referenced_table != group.child && scope.roots.contains(&fk.referenced_table) {
                let why = format!("{} → {}", fk.name, fk.referenced_table.display_plain());
                candidates.entry(&group.child).or_default().push((&fk.referenced_table, why));
            }
        }
    }
    let mut keeps: BTreeSet<&QualifiedName> =
        scope.roots.iter().filter(|r| !candidates.contains_key(r)).collect();
    let mut implied: BTreeMap<QualifiedName, String> = BTreeMap::new();
    loop {
        let mut progress = false;
        for (child, parents) in &candidates {
            if keeps.contains(child) || implied.contains_key(*child) {
                continue;
            }
            if let Some((_, why)) = parents.iter().find(|(p, _)| keeps.contains(p)) {
                implied.insert((*child).clone(), why.clone());
                progress = true;
            }
        }
        if progress {
            continue;
        }
        // Only cycles are left undecided: the first of them keeps its key.
        let undecided = scope
            .roots
            .iter()
            .find(|r| candidates.contains_key(r) && !keeps.contains(r) && !implied.contains_key(*r));
        match undecided {
            Some(root) => {
                keeps.insert(root);
            }
            None => break,
        }
    }
    let tenants = scope.tenant.table.display_plain();
    for (child, why) in &implied {
        findings.add(
            Severity::Info,
            "tenant-key-implied",
            child.display_plain(),
            format!(
                "no foreign key of its own to {tenants}: its NOT NULL tenant-scoped key {why} \
                 already holds it to a tenant the parent has (one check and one lock of the \
                 tenant's row less per insert)"
            ),
        );
    }
    implied
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;

    #[test]
    fn a_not_null_scoped_key_to_a_parent_that_keeps_its_own_implies_the_tenant_key() {
        let catalog = CatalogBuilder::new(PG15)
            .table("public", "accounts", |t| t.pk(&["id"]))
            .table("public", "orders", |t| {
                t.pk(&["id"]).col_nn("account_id", "bigint").fk(&["account_id"], "accounts", &["id"], 'c')
            })
            .table("public", "notes", |t| {
                t.pk(&["id"]).col("order_id", "bigint").fk(&["order_id"], "orders", &["id"], 'c')
            })
            // Two tables that refer to each other: one of them keeps its key.
            .table("public", "left_side", |t| {
                t.pk(&["id"]).col_nn("right_id", "bigint").fk(&["right_id"], "right_side", &["id"], 'a')
            })
            .table("public", "right_side", |t| {
                t.pk(&["id"]).col_nn("left_id", "bigint").fk(&["left_id"], "left_side", &["id"], 'a')
            })
            .build();
        let plan = plan_of(&catalog);
        let sql = all_forward_sql(&plan);
        let has_key = |table: &str| {
            sql.contains(&format!("ADD CONSTRAINT {table}_tenant_id_fkey FOREIGN KEY (tenant_id)"))
        };
        assert!(has_key("accounts"), "the root keeps its key");
        assert!(!has_key("orders"), "orders.account_id is NOT NULL and accounts keeps its key");
        assert!(has_fin(&plan, "public.orders"));
        assert!(has_key("notes"), "a nullable key does not hold every row to a tenant");
        assert!(has_key("left_side") != has_key("right_side"), "exactly one of the cycle keeps its key");
        // The composite key stage 7 adds is what holds orders to its tenant.
        assert!(
            sql.contains("FOREIGN KEY (tenant_id, account_id) REFERENCES public.accounts (tenant_id, id)")
        );
        // Stage 5 validates only the keys stage 3 added.
        let orders = forward_sql(step(&plan, "5.not-null:public.orders"));
        assert!(!orders.contains("VALIDATE CONSTRAINT orders_tenant_id_fkey"), "{orders}");
        let accounts = forward_sql(step(&plan, "5.not-null:public.accounts"));
        assert!(accounts.contains("VALIDATE CONSTRAINT accounts_tenant_id_fkey"), "{accounts}");
    }

    fn has_fin(plan: &crate::plan::Plan, object: &str) -> bool {
        plan.findings.iter().any(|f| f.code == "tenant-key-implied" && f.object == object)
    }
}
