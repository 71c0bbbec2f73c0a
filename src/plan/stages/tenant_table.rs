//! Stage 1: the tenant table.

use crate::plan::analysis::{Analysis, tenant_table_pkey};
use crate::plan::ddl::{check, stmt, to_regclass};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{Guard, LockMode, Part, Stage, Step};
use crate::plan::probe::{holds, not, relation_exists};
use crate::sql::quote_ident;

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    let t = &s.tenant.table;
    let key = quote_ident(&s.tenant.key_column);
    let pkey = quote_ident(&tenant_table_pkey(&s.tenant));
    let sql = format!(
        "CREATE TABLE {t} (\n    {key} {ty} NOT NULL,\n    name text NOT NULL,\n    \
         created_at timestamp with time zone NOT NULL DEFAULT now(),\n    \
         CONSTRAINT {pkey} PRIMARY KEY ({key})\n);\n",
        ty = s.tenant.key_type.sql()
    );
    let guard_sql = format!("SELECT count(*) FROM {t} WHERE {key} <> {value}", value = s.tenant_value());
    let part = Part {
        name: format!("tenant table {}", t.display_plain()),
        states: vec![
            state("created", holds(relation_exists(t))),
            state("absent", holds(not(relation_exists(t)))),
        ],
        done: names(&["created"]),
        undone: names(&["absent"]),
        rollback_from: None,
        transitions: vec![
            transition("absent", "created", stmt(LockMode::AccessExclusive, &[t], sql)),
            transition(
                "created",
                "absent",
                stmt(LockMode::AccessExclusive, &[t], format!("DROP TABLE IF EXISTS {t};\n")),
            ),
        ],
        guards: vec![Guard {
            name: "tenants other than the default".into(),
            message: "tenants other than the default one exist; dropping the tenant table deletes them"
                .into(),
            forceable: true,
            sql: guard_sql,
        }],
    };
    vec![Step {
        id: format!("1.{}", Stage::TenantTable.name()),
        stage: Stage::TenantTable,
        title: format!("Create the tenant table {}", t.display_plain()),
        note: String::new(),
        tables: vec![t.clone()],
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check(
            "tenant table exists",
            1,
            format!("SELECT count(*) FROM pg_catalog.pg_class WHERE oid = {}", to_regclass(t)),
        )],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }]
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{LockMode, PlanOptions};

    #[test]
    fn stage1_creates_the_tenant_table_and_guards_other_tenants_on_rollback() {
        let plan = plan_of(&saas(PG15).build());
        let create = step(&plan, "1.tenant-table");
        assert_eq!((create.forward().len(), create.rollback().len()), (1, 1));
        assert_eq!(
            forward_sql(create),
            "CREATE TABLE public.tenants (\n    id uuid NOT NULL,\n    name text NOT NULL,\n    \
             created_at timestamp with time zone NOT NULL DEFAULT now(),\n    \
             CONSTRAINT tenants_pkey PRIMARY KEY (id)\n);\n"
        );
        assert_eq!(create.forward()[0].lock, LockMode::AccessExclusive);
        assert_eq!(rollback_sql(create), "DROP TABLE IF EXISTS public.tenants;\n");
        assert!(create.guards()[0].forceable);
        assert_eq!(
            create.guards()[0].sql,
            format!("SELECT count(*) FROM public.tenants WHERE id <> {DEFAULT_TENANT}")
        );

        let options = PlanOptions { tenant_table: qn("public", "Accounts"), ..PlanOptions::default() };
        let quoted = forward_sql(step(&plan_with(&saas(PG15).build(), &options), "1.tenant-table"));
        offset(&quoted, "CREATE TABLE public.\"Accounts\" (\n");
        offset(&quoted, "CONSTRAINT \"Accounts_pkey\" PRIMARY KEY (id)\n");
    }
}
