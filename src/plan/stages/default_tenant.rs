//! Stage 2: the default tenant's row, which every existing row will belong to.

use crate::plan::analysis::Analysis;
use crate::plan::ddl::{check, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{LockMode, Part, Stage, Step};
use crate::plan::probe::{holds, not, relation_exists, row_exists};
use crate::sql::{quote_ident, quote_literal};

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    let t = &s.tenant.table;
    let key = quote_ident(&s.tenant.key_column);
    let value = s.tenant_value();
    let the_row = format!("{key} = {value}");
    let part = Part {
        name: format!("default tenant {:?}", s.tenant.default_name),
        states: vec![
            // Tested first: without the table the row cannot be asked about.
            state("no tenant table", holds(not(relation_exists(t)))),
            state("inserted", holds(row_exists(t, &the_row))),
            state("absent", holds(not(row_exists(t, &the_row)))),
        ],
        done: names(&["inserted"]),
        undone: names(&["absent", "no tenant table"]),
        rollback_from: None,
        transitions: vec![
            transition(
                "absent",
                "inserted",
                stmt(
                    LockMode::RowExclusive,
                    &[t],
                    format!(
                        "INSERT INTO {t} ({key}, name) VALUES ({value}, {});\n",
                        quote_literal(&s.tenant.default_name)
                    ),
                ),
            ),
            transition(
                "inserted",
                "absent",
                stmt(LockMode::RowExclusive, &[t], format!("DELETE FROM {t} WHERE {the_row};\n")),
            ),
        ],
        guards: Vec::new(),
    };
    vec![Step {
        id: format!("2.{}", Stage::DefaultTenant.name()),
        stage: Stage::DefaultTenant,
        title: format!("Insert the default tenant {:?}", s.tenant.default_name),
        note: "Every existing row will belong to this tenant.".into(),
        tables: vec![t.clone()],
        rows_estimate: 1,
        no_rollback_reason: None,
        checks: vec![check(
            "default tenant row exists",
            1,
            format!("SELECT count(*) FROM {t} WHERE {the_row}"),
        )],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }]
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{KeyType, LockMode, PlanOptions};

    #[test]
    fn stage2_inserts_the_default_tenant_and_deletes_only_it_on_rollback() {
        let plan = plan_of(&saas(PG15).build());
        let insert = step(&plan, "2.default-tenant");
        assert_eq!(
            forward_sql(insert),
            format!("INSERT INTO public.tenants (id, name) VALUES ({DEFAULT_TENANT}, 'Default tenant');\n")
        );
        assert!(!insert.forward()[0].lock.blocks_writes());
        assert_eq!(insert.forward()[0].lock, LockMode::RowExclusive);
        assert_eq!(
            rollback_sql(insert),
            format!("DELETE FROM public.tenants WHERE id = {DEFAULT_TENANT};\n")
        );
        assert_eq!(insert.checks[0].expect, 1);

        let options = PlanOptions {
            tenant_key_type: KeyType::Text,
            default_tenant_id: "o'brien".into(),
            default_tenant_name: "O'Brien & Co".into(),
            ..PlanOptions::default()
        };
        let text = forward_sql(step(&plan_with(&saas(PG15).build(), &options), "2.default-tenant"));
        assert_eq!(
            text,
            "INSERT INTO public.tenants (id, name) VALUES ('o''brien'::text, 'O''Brien & Co');\n"
        );
    }
}
