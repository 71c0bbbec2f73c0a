//! Stage 5: the tenant column becomes NOT NULL without a long lock, and the tenant foreign
//! key is validated (before RLS is forced).

use crate::catalog::TableKind;
use crate::plan::analysis::{Analysis, Scope, TableNames};
use crate::plan::ddl::{check, exempt, long, null_count_check, regclass, stmt, tenant_fk_sql};
use crate::plan::model::{Check, LockMode, Stage, Statement, Step};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.scope.roots.iter().map(|root| step(a, root)).collect()
}

fn step(a: &Analysis, root: &QualifiedName) -> Step {
    let s = &a.scope;
    let names = &a.names[root];
    let col = s.col();
    let check_name = quote_ident(&names.not_null_check);
    let mut forward = not_null_statements(root, &col, &check_name);
    let mut rollback_sql = format!(
        "ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {check_name};\n\
         ALTER TABLE {root} ALTER COLUMN {col} DROP NOT NULL;\n"
    );
    let mut checks = vec![
        check(
            format!("{}.{} is NOT NULL", root.display_plain(), s.tenant.column),
            1,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {} AND attnotnull",
                regclass(root),
                quote_literal(&s.tenant.column)
            ),
        ),
        null_count_check(&s.tenant, root),
    ];
    let mut rollback_on = vec![root.clone()];
    if s.table(root).kind == TableKind::Partitioned {
        validate_partitioned_tenant_fk(s, root, names, &mut forward, &mut rollback_sql, &mut rollback_on);
    } else {
        forward.push(long(
            LockMode::ShareUpdateExclusive,
            &[root, &s.tenant.table],
            format!("ALTER TABLE {root} VALIDATE CONSTRAINT {};\n", quote_ident(&names.tenant_fk)),
        ));
    }
    checks.push(fk_validated(root, &names.tenant_fk));
    let on: Vec<&QualifiedName> = rollback_on.iter().collect();
    Step {
        id: format!("5.{}:{}", Stage::NotNull.name(), root),
        stage: Stage::NotNull,
        title: format!("Make {}.{} NOT NULL", root.display_plain(), s.tenant.column),
        note: "CHECK NOT VALID, then VALIDATE under a lock that lets writes go on; SET NOT NULL \
               then skips its scan because the valid check proves it. The tenant foreign key \
               is validated here too, before RLS is forced."
            .into(),
        tables: vec![root.clone()],
        atomic: false,
        rows_estimate: s.table_rows(root),
        forward,
        rollback_atomic: true,
        rollback: vec![stmt(LockMode::AccessExclusive, &on, rollback_sql)],
        no_rollback_reason: None,
        rollback_guards: Vec::new(),
        checks,
        backfill: None,
        hash: String::new(),
    }
}

/// CHECK NOT VALID, VALIDATE (writes go on), then SET NOT NULL, which the valid check lets
/// skip its scan, and the check is dropped again.
fn not_null_statements(root: &QualifiedName, col: &str, check_name: &str) -> Vec<Statement> {
    vec![
        stmt(
            LockMode::AccessExclusive,
            &[root],
            format!("ALTER TABLE {root} ADD CONSTRAINT {check_name} CHECK ({col} IS NOT NULL) NOT VALID;\n"),
        ),
        long(
            LockMode::ShareUpdateExclusive,
            &[root],
            format!("ALTER TABLE {root} VALIDATE CONSTRAINT {check_name};\n"),
        ),
        stmt(
            LockMode::AccessExclusive,
            &[root],
            format!(
                "{}ALTER TABLE {root} ALTER COLUMN {col} SET NOT NULL;\n\
                 {}ALTER TABLE {root} DROP CONSTRAINT {check_name};\n",
                exempt("adding-not-nullable-field", "no scan: the validated CHECK above proves it"),
                exempt("ban-drop-constraint", "the temporary CHECK, now that NOT NULL holds")
            ),
        ),
    ]
}

/// Each leaf's NOT VALID key is validated, then the parent key is added: PostgreSQL attaches
/// the valid leaf keys instead of scanning.
fn validate_partitioned_tenant_fk(
    s: &Scope,
    root: &QualifiedName,
    names: &TableNames,
    forward: &mut Vec<Statement>,
    rollback_sql: &mut String,
    rollback_on: &mut Vec<QualifiedName>,
) {
    for (leaf, name) in &names.leaf_tenant_fks {
        forward.push(long(
            LockMode::ShareUpdateExclusive,
            &[leaf, &s.tenant.table],
            format!("ALTER TABLE {leaf} VALIDATE CONSTRAINT {};\n", quote_ident(name)),
        ));
    }
    forward.push(stmt(
        LockMode::ShareRowExclusive,
        &[root, &s.tenant.table],
        format!(
            "{}{}",
            exempt(
                "constraint-missing-not-valid, adding-foreign-key-constraint",
                "no scan: every partition's own key is validated above and is attached, not checked"
            ),
            tenant_fk_sql(&s.tenant, root, &names.tenant_fk, false)
        ),
    ));
    // Dropping the parent key drops the attached partition keys; put them back as they
    // were after stage 3 (NOT VALID, metadata only).
    rollback_sql.push_str(&format!(
        "ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {};\n",
        quote_ident(&names.tenant_fk)
    ));
    for (leaf, name) in &names.leaf_tenant_fks {
        rollback_sql.push_str(&tenant_fk_sql(&s.tenant, leaf, name, true));
        rollback_on.push(leaf.clone());
    }
}

fn fk_validated(relation: &QualifiedName, name: &str) -> Check {
    check(
        format!("tenant foreign key {name} validated"),
        1,
        format!(
            "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid = {} AND conname = {} AND convalidated",
            regclass(relation),
            quote_literal(name)
        ),
    )
}

#[cfg(test)]
mod tests {

    use crate::plan::test_support::*;
    use crate::plan::{LockMode, TimeoutProfile};

    #[test]
    fn stage5_checks_not_valid_then_validates_then_sets_not_null_then_drops_the_check() {
        let plan = plan_of(&with_events(saas(PG15)).build());
        let users = step(&plan, "5.not-null:public.users");
        assert!(!users.atomic, "each statement commits on its own");
        let check = "users_tenant_id_not_null";
        let add = statement_index(
            users,
            &format!("ADD CONSTRAINT {check} CHECK (tenant_id IS NOT NULL) NOT VALID"),
        );
        let validate =
            statement_index(users, &format!("ALTER TABLE public.users VALIDATE CONSTRAINT {check};"));
        let set = statement_index(users, "ALTER TABLE public.users ALTER COLUMN tenant_id SET NOT NULL;");
        let drop = statement_index(users, &format!("ALTER TABLE public.users DROP CONSTRAINT {check};"));
        assert!(add < validate && validate < set && set <= drop, "{}", forward_sql(users));
        let last = &users.forward[set].sql;
        assert!(offset(last, "SET NOT NULL") < offset(last, "DROP CONSTRAINT"));
        // VALIDATE lets writes go on.
        assert_eq!(users.forward[validate].lock, LockMode::ShareUpdateExclusive);
        assert_eq!(users.forward[validate].profile, TimeoutProfile::Long);
        // The tenant FK is validated here, before RLS is forced.
        let fk = statement_index(users, "ALTER TABLE public.users VALIDATE CONSTRAINT users_tenant_id_fkey;");
        assert!(!users.forward[fk].lock.blocks_writes());
        assert!(
            users
                .checks
                .iter()
                .any(|c| c.sql.contains("convalidated") && c.sql.contains("'users_tenant_id_fkey'"))
        );
        let rollback = rollback_sql(users);
        offset(&rollback, "ALTER COLUMN tenant_id DROP NOT NULL");

        // Partitioned root: leaf keys validated, then the parent key attached (validated, no NOT VALID).
        let events = step(&plan, "5.not-null:public.events");
        let sql = forward_sql(events);
        let leaf =
            offset(&sql, "ALTER TABLE public.events_2024 VALIDATE CONSTRAINT events_2024_tenant_id_fkey;");
        let parent = offset(
            &sql,
            "ALTER TABLE public.events ADD CONSTRAINT events_tenant_id_fkey FOREIGN KEY (tenant_id) \
             REFERENCES public.tenants (id);\n",
        );
        assert!(leaf < parent);
    }
}
