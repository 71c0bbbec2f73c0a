//! Stage 5: the tenant column becomes NOT NULL without a long lock, and the tenant foreign
//! key is validated (before RLS is forced).

use crate::catalog::TableKind;
use crate::plan::analysis::{Analysis, Scope, TableNames};
use crate::plan::ddl::{check, exempt, long, null_count_check, regclass, stmt, tenant_fk_sql};
use crate::plan::machine::{names, names as names_of, state, transition};
use crate::plan::model::{Check, LockMode, Part, Stage, Step};
use crate::plan::probe::{self, holds, not};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.scope.roots.iter().map(|root| step(a, root)).collect()
}

fn step(a: &Analysis, root: &QualifiedName) -> Step {
    let s = &a.scope;
    let names = &a.names[root];
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
    let mut parts = vec![not_null_part(s, root, &names.not_null_check)];
    if s.table(root).kind == TableKind::Partitioned {
        for (leaf, name) in &names.leaf_tenant_fks {
            parts.push(validated_part(s, leaf, name));
        }
        parts.push(parent_key_part(s, root, names));
    } else if !a.implied_tenant_keys.contains_key(root) {
        parts.push(validated_part(s, root, &names.tenant_fk));
    }
    if !a.implied_tenant_keys.contains_key(root) {
        checks.push(fk_validated(root, &names.tenant_fk));
    }
    parts.push(analyzed_part(s, root));
    Step {
        id: format!("5.{}:{}", Stage::NotNull.name(), root),
        stage: Stage::NotNull,
        title: format!("Make {}.{} NOT NULL", root.display_plain(), s.tenant.column),
        note: "CHECK NOT VALID, then VALIDATE under a lock that lets writes go on; SET NOT NULL \
               then skips its scan because the valid check proves it. The tenant foreign key \
               is validated here too, before RLS is forced. Last, ANALYZE gathers the tenant \
               column's statistics: a metadata-only default changes no row, so autovacuum would \
               not, and without them the planner guesses 0.5% of the rows for every policy's \
               tenant_id = … (a nested loop over a whole tenant's rows)."
            .into(),
        tables: vec![root.clone()],
        rows_estimate: s.table_rows(root),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    }
}

/// CHECK NOT VALID, VALIDATE (writes go on), then SET NOT NULL, which the valid check lets
/// skip its scan, and the check is dropped again. Undone: nullable, no check.
fn not_null_part(s: &Scope, root: &QualifiedName, check_name: &str) -> Part {
    let col = s.col();
    let q = quote_ident(check_name);
    let drop_check = format!("ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {q};\n");
    let undo_check = || stmt(LockMode::AccessExclusive, &[root], drop_check.clone());
    Part {
        name: format!("NOT NULL on {}.{}", root.display_plain(), s.tenant.column),
        states: vec![
            state("not null", holds(probe::column_not_null(root, &s.tenant.column))),
            state("checked", holds(probe::constraint_validated(root, check_name))),
            state("check added", holds(probe::constraint_exists(root, check_name, 'c'))),
            state("nullable", holds("true".into())),
        ],
        done: names(&["not null"]),
        undone: names(&["nullable"]),
        rollback_from: None,
        transitions: vec![
            transition(
                "nullable",
                "check added",
                stmt(
                    LockMode::AccessExclusive,
                    &[root],
                    format!("ALTER TABLE {root} ADD CONSTRAINT {q} CHECK ({col} IS NOT NULL) NOT VALID;\n"),
                ),
            ),
            transition(
                "check added",
                "checked",
                long(
                    LockMode::ShareUpdateExclusive,
                    &[root],
                    format!("ALTER TABLE {root} VALIDATE CONSTRAINT {q};\n"),
                ),
            ),
            transition(
                "checked",
                "not null",
                stmt(
                    LockMode::AccessExclusive,
                    &[root],
                    format!(
                        "{}ALTER TABLE {root} ALTER COLUMN {col} SET NOT NULL;\n\
                         {}ALTER TABLE {root} DROP CONSTRAINT {q};\n",
                        exempt("adding-not-nullable-field", "no scan: the validated CHECK above proves it"),
                        exempt("ban-drop-constraint", "the temporary CHECK, now that NOT NULL holds")
                    ),
                ),
            ),
            transition(
                "not null",
                "nullable",
                stmt(
                    LockMode::AccessExclusive,
                    &[root],
                    format!("{drop_check}ALTER TABLE {root} ALTER COLUMN {col} DROP NOT NULL;\n"),
                ),
            ),
            transition("checked", "nullable", undo_check()),
            transition("check added", "nullable", undo_check()),
        ],
        guards: Vec::new(),
    }
}

/// A tenant foreign key validated (before RLS is forced). Undoing it needs nothing: the key
/// goes with the column in stage 3's rollback.
fn validated_part(s: &Scope, table: &QualifiedName, name: &str) -> Part {
    Part {
        name: format!("{name} validated"),
        states: vec![
            state("validated", holds(probe::constraint_validated(table, name))),
            state("not validated", holds(not(probe::constraint_validated(table, name)))),
        ],
        done: names(&["validated"]),
        undone: names(&["not validated", "validated"]),
        rollback_from: None,
        transitions: vec![transition(
            "not validated",
            "validated",
            long(
                LockMode::ShareUpdateExclusive,
                &[table, &s.tenant.table],
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT {};\n", quote_ident(name)),
            ),
        )],
        guards: Vec::new(),
    }
}

/// The tenant column's statistics, for the policies' `tenant_id = …` and the composite
/// indexes. ANALYZE takes a lock that lets writes go on, samples a bounded number of rows and
/// fires no trigger; on a partitioned root it analyzes the partitions too. Undoing it needs
/// nothing: the statistics go with the column in stage 3's rollback.
fn analyzed_part(s: &Scope, root: &QualifiedName) -> Part {
    let analyzed = probe::column_analyzed(root, &s.tenant.column);
    // ANALYZE of a partitioned root analyzes, and so locks, every partition under it too.
    let partitions = s.catalog.partition_descendants(root);
    let on: Vec<&QualifiedName> = std::iter::once(root).chain(partitions.iter().map(|t| &t.name)).collect();
    Part {
        name: format!("statistics of {}.{}", root.display_plain(), s.tenant.column),
        states: vec![
            state("analyzed", holds(analyzed.clone())),
            state("no statistics", holds(not(analyzed))),
        ],
        done: names(&["analyzed"]),
        undone: names(&["no statistics", "analyzed"]),
        rollback_from: None,
        transitions: vec![transition(
            "no statistics",
            "analyzed",
            long(LockMode::ShareUpdateExclusive, &on, format!("ANALYZE {root} ({});\n", s.col())),
        )],
        guards: Vec::new(),
    }
}

/// With every leaf's key valid, the partitioned root's own key is added: PostgreSQL attaches
/// the leaf keys instead of scanning. Undone: the root key dropped (which drops the attached
/// leaf keys) and the leaf keys put back as stage 3 left them (NOT VALID, metadata only).
fn parent_key_part(s: &Scope, root: &QualifiedName, names: &TableNames) -> Part {
    let mut undo =
        format!("ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {};\n", quote_ident(&names.tenant_fk));
    let mut undo_on = vec![root];
    for (leaf, name) in &names.leaf_tenant_fks {
        undo.push_str(&tenant_fk_sql(&s.tenant, leaf, name, true));
        undo_on.push(leaf);
    }
    let attached = probe::constraint_exists(root, &names.tenant_fk, 'f');
    Part {
        name: format!("{} on {}", names.tenant_fk, root.display_plain()),
        states: vec![state("attached", holds(attached.clone())), state("absent", holds(not(attached)))],
        done: names_of(&["attached"]),
        undone: names_of(&["absent"]),
        rollback_from: None,
        transitions: vec![
            transition(
                "absent",
                "attached",
                stmt(
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
                ),
            ),
            transition("attached", "absent", stmt(LockMode::AccessExclusive, &undo_on, undo)),
        ],
        guards: Vec::new(),
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
        assert!(users.parts[0].forward_path().len() == 3, "each statement commits on its own");
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
        let last = &users.forward()[set].sql;
        assert!(offset(last, "SET NOT NULL") < offset(last, "DROP CONSTRAINT"));
        // VALIDATE lets writes go on.
        assert_eq!(users.forward()[validate].lock, LockMode::ShareUpdateExclusive);
        assert_eq!(users.forward()[validate].profile, TimeoutProfile::Long);
        // The tenant FK is validated here, before RLS is forced.
        let fk = statement_index(users, "ALTER TABLE public.users VALIDATE CONSTRAINT users_tenant_id_fkey;");
        assert!(!users.forward()[fk].lock.blocks_writes());
        assert!(
            users
                .checks
                .iter()
                .any(|c| c.sql.contains("convalidated") && c.sql.contains("'users_tenant_id_fkey'"))
        );
        let rollback = rollback_sql(users);
        offset(&rollback, "ALTER COLUMN tenant_id DROP NOT NULL");
        // Last, the tenant column's statistics, under a lock that lets writes go on; nothing
        // to undo (they go with the column).
        let analyze = statement_index(users, "ANALYZE public.users (tenant_id);");
        assert_eq!(analyze, users.forward().len() - 1, "{}", forward_sql(users));
        assert!(!users.forward()[analyze].lock.blocks_writes());
        assert!(!rollback.contains("ANALYZE"), "{rollback}");

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
        // One ANALYZE on the root covers its partitions.
        assert!(offset(&sql, "ANALYZE public.events (tenant_id);") > parent);
        assert!(!sql.contains("ANALYZE public.events_2024"), "{sql}");
        // It locks them too, at any depth, and says so.
        let analyze = &events.forward()[statement_index(events, "ANALYZE public.events (tenant_id);")];
        assert_eq!(
            analyze.on,
            [
                "public.events",
                "public.events_2024",
                "public.events_2025",
                "public.events_2025_p0",
                "public.events_2025_p1"
            ]
        );
    }
}
