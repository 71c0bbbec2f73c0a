//! Stage 3: the nullable tenant column and its foreign key to the tenant table (NOT VALID).

use crate::catalog::TableKind;
use crate::plan::analysis::{Analysis, Scope, TableNames};
use crate::plan::ddl::{check, column_exists_check, regclass, stmt, tenant_fk_sql};
use crate::plan::machine::{names as names_of, state, transaction, transition};
use crate::plan::model::{BackfillMode, Check, Guard, LockMode, Part, Stage, Statement, Step};
use crate::plan::probe::{self, all, holds, not};
use crate::sql::{QualifiedName, quote_literal};

/// One step per root: partitions get the column with their root.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.scope.roots.iter().map(|root| step(a, root)).collect()
}

fn step(a: &Analysis, root: &QualifiedName) -> Step {
    let s = &a.scope;
    let names = &a.names[root];
    let col = s.col();
    let value = s.tenant_value();
    let (column, mut note) = add_column(s, root);
    let mut checks = vec![column_exists_check(&s.tenant, root)];
    let partitioned = s.table(root).kind == TableKind::Partitioned;
    let keys = if let Some(why) = a.implied_tenant_keys.get(root) {
        note.push_str(&format!(
            " No foreign key to the tenant table of its own: stage 7's NOT NULL key {why} implies it."
        ));
        Keys { statement: None, exist: "true".into() }
    } else if partitioned {
        note.push_str(
            " PostgreSQL cannot add a NOT VALID foreign key to a partitioned table, so each \
             partition gets its own; stage 5 validates them and attaches a parent key.",
        );
        leaf_tenant_fks(s, names, &mut checks)
    } else {
        checks.push(check(
            "tenant foreign key exists",
            1,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid = {} AND conname = {}",
                regclass(root),
                quote_literal(&names.tenant_fk)
            ),
        ));
        let fk = tenant_fk_sql(&s.tenant, root, &names.tenant_fk, true);
        Keys {
            statement: Some(stmt(LockMode::ShareRowExclusive, &[root, &s.tenant.table], fk)),
            exist: probe::constraint_exists(root, &names.tenant_fk, 'f'),
        }
    };
    let column_exists = probe::column_exists(root, &s.tenant.column);
    let drop_column = stmt(
        LockMode::AccessExclusive,
        &[root],
        format!("ALTER TABLE {root} DROP COLUMN IF EXISTS {col};\n"),
    );
    let mut transitions =
        vec![transaction("absent", "added", [column].into_iter().chain(keys.statement.clone()).collect())];
    transitions.push(transition("added", "absent", drop_column.clone()));
    if let Some(keys_only) = keys.statement {
        // The column without its key(s): not a state tenantize leaves (one transaction adds
        // both), but one an edit by hand can; both directions know the way on.
        transitions.push(transition("column without its key", "added", keys_only));
        transitions.push(transition("column without its key", "absent", drop_column));
    }
    let part = Part {
        name: format!("{} on {}", s.tenant.column, root.display_plain()),
        states: vec![
            state("added", holds(all(&[column_exists.clone(), keys.exist.clone()]))),
            state("column without its key", holds(column_exists.clone())),
            state("absent", holds(not(column_exists))),
        ],
        done: names_of(&["added"]),
        undone: names_of(&["absent"]),
        rollback_from: None,
        transitions,
        guards: vec![Guard {
            name: format!("rows of other tenants in {}", root.display_plain()),
            message: format!(
                "rows of {} belong to a tenant other than the default one; dropping {} \
                 erases which tenant they belong to",
                root.display_plain(),
                s.tenant.column
            ),
            forceable: true,
            sql: format!("SELECT count(*) FROM {root} WHERE {col} <> {value}"),
        }],
    };
    Step {
        id: format!("3.{}:{}", Stage::AddColumn.name(), root),
        stage: Stage::AddColumn,
        title: format!("Add {} to {}", s.tenant.column, root.display_plain()),
        note,
        tables: vec![root.clone()],
        rows_estimate: s.table_rows(root),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }
}

/// The tenant foreign key(s) stage 3 adds with the column: the statement, and the question
/// whether they all exist.
struct Keys {
    statement: Option<Statement>,
    exist: String,
}

/// The column itself, and the note that says why it is added the way it is.
fn add_column(s: &Scope, root: &QualifiedName) -> (Statement, String) {
    let col = s.col();
    let ty = s.tenant.key_type.sql();
    let value = s.tenant_value();
    match s.tenant.backfill {
        BackfillMode::Fast => (
            stmt(
                LockMode::AccessExclusive,
                &[root],
                format!("ALTER TABLE {root} ADD COLUMN {col} {ty} DEFAULT {value};\n"),
            ),
            "A constant default is metadata only: every existing row reads the default \
             tenant at once and no row is rewritten, so no trigger fires."
                .to_string(),
        ),
        BackfillMode::Batched => (
            stmt(
                LockMode::AccessExclusive,
                &[root],
                format!(
                    "ALTER TABLE {root} ADD COLUMN {col} {ty};\n\
                     ALTER TABLE {root} ALTER COLUMN {col} SET DEFAULT {value};\n"
                ),
            ),
            "The default is set before the backfill so rows inserted meanwhile never join \
             the backfill set."
                .to_string(),
        ),
    }
}

/// A partitioned root's tenant FK: one NOT VALID key per leaf partition.
fn leaf_tenant_fks(s: &Scope, names: &TableNames, checks: &mut Vec<Check>) -> Keys {
    let mut sql = String::new();
    let mut on = vec![&s.tenant.table];
    let mut exist = Vec::new();
    for (leaf, name) in &names.leaf_tenant_fks {
        sql.push_str(&tenant_fk_sql(&s.tenant, leaf, name, true));
        on.push(leaf);
        exist.push(probe::constraint_exists(leaf, name, 'f'));
    }
    let leaf_names: Vec<String> = names.leaf_tenant_fks.iter().map(|(_, n)| quote_literal(n)).collect();
    if !leaf_names.is_empty() {
        checks.push(check(
            "partition tenant foreign keys exist",
            leaf_names.len() as i64,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_constraint WHERE contype = 'f' AND conname IN ({})",
                leaf_names.join(", ")
            ),
        ));
    }
    Keys {
        statement: (!sql.is_empty()).then(|| stmt(LockMode::ShareRowExclusive, &on, sql)),
        exist: all(&exist),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{BackfillMode, LockMode, Stage};

    #[test]
    fn stage3_fast_path_adds_the_column_with_a_constant_default_and_a_not_valid_tenant_fk() {
        let catalog = with_events(saas(PG15)).build();
        let plan = plan_of(&catalog);
        assert_eq!(plan.tenant.backfill, BackfillMode::Fast);
        // One step per root: partitions are converted with their root.
        assert_eq!(
            ids_in(&plan, Stage::AddColumn),
            [
                "3.add-column:public.users",
                "3.add-column:public.events",
                "3.add-column:public.projects",
                "3.add-column:public.issues",
                "3.add-column:public.issue_comments"
            ]
        );
        let users = step(&plan, "3.add-column:public.users");
        // Column and key in one transaction, undone by one statement.
        let part = &users.parts[0];
        assert_eq!(part.forward_path().len(), 1);
        assert_eq!(part.forward_path()[0].statements.len(), 2);
        assert_eq!(users.forward().len(), 2);
        assert_eq!(
            code(&users.forward()[0].sql),
            format!("ALTER TABLE public.users ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n")
        );
        assert_eq!(users.forward()[0].lock, LockMode::AccessExclusive);
        assert_eq!(
            code(&users.forward()[1].sql),
            "ALTER TABLE public.users ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) \
             REFERENCES public.tenants (id) NOT VALID;\n"
        );
        assert_eq!(rollback_sql(users), "ALTER TABLE public.users DROP COLUMN IF EXISTS tenant_id;\n");
        assert_eq!(users.guards().len(), 1);
        assert!(users.guards()[0].forceable);
        assert_eq!(
            users.guards()[0].sql,
            format!("SELECT count(*) FROM public.users WHERE tenant_id <> {DEFAULT_TENANT}")
        );
        // The fast path writes nothing in stage 4: a step that only proves it.
        let fill = step(&plan, "4.backfill:public.users");
        assert!(fill.forward().is_empty() && fill.backfill.is_none());
        assert_eq!(fill.checks[0].sql, "SELECT count(*) FROM public.users WHERE tenant_id IS NULL");
        assert_eq!(fill.checks[0].expect, 0);

        // A partitioned root: the column on the root, a NOT VALID tenant FK on every leaf.
        let events = forward_sql(step(&plan, "3.add-column:public.events"));
        offset(
            &events,
            &format!("ALTER TABLE public.events ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n"),
        );
        for leaf in ["events_2024", "events_2025_p0", "events_2025_p1"] {
            offset(
                &events,
                &format!(
                    "ALTER TABLE public.{leaf} ADD CONSTRAINT {leaf}_tenant_id_fkey FOREIGN KEY (tenant_id) \
                     REFERENCES public.tenants (id) NOT VALID;\n"
                ),
            );
        }
        assert!(
            !events.contains("ALTER TABLE public.events ADD CONSTRAINT"),
            "no NOT VALID FK on a partitioned table"
        );
        assert!(!events.contains("public.events_2025 ADD CONSTRAINT"), "nor on an intermediate one");
    }

    #[test]
    fn stage3_batched_adds_an_empty_column_then_sets_the_default() {
        let plan = plan_with(&saas(PG15).build(), &batched());
        let users = forward_sql(step(&plan, "3.add-column:public.users"));
        let add = offset(&users, "ALTER TABLE public.users ADD COLUMN tenant_id uuid;\n");
        let default = offset(
            &users,
            &format!("ALTER TABLE public.users ALTER COLUMN tenant_id SET DEFAULT {DEFAULT_TENANT};\n"),
        );
        assert!(add < default);
        assert!(
            !users.contains("ADD COLUMN tenant_id uuid DEFAULT"),
            "existing rows must not get the value here"
        );
        offset(&users, "REFERENCES public.tenants (id) NOT VALID;\n");
    }
}
