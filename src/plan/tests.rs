//! Tests of whole plans: what holds across every stage (stage order, quoting, step ids).
//! Each stage's and each decision's own tests sit next to it.

use std::collections::BTreeSet;

use crate::plan::file;
use crate::plan::test_support::*;
use crate::plan::{PlanOptions, Severity, Stage};
use crate::sql::quote_ident;

#[test]
fn steps_run_in_stage_order_and_every_stage_is_present() {
    let plan = plan_of(&with_events(saas(PG15)).build());
    assert!(plan.errors().next().is_none(), "unexpected errors: {:?}", findings(&plan, Severity::Error));
    let stages: Vec<u8> = plan.steps.iter().map(|s| s.stage.number()).collect();
    let mut sorted = stages.clone();
    sorted.sort();
    assert_eq!(stages, sorted, "steps out of stage order: {:#?}", ids(&plan));
    let present: BTreeSet<u8> = stages.into_iter().collect();
    // Stage 9 is kept for a stage to come: numbers need not be contiguous.
    assert_eq!(present, (1..=8).chain([10]).collect::<BTreeSet<u8>>());
    assert_eq!(ids_in(&plan, Stage::TenantTable), ["1.tenant-table"]);
    assert_eq!(ids_in(&plan, Stage::DefaultTenant), ["2.default-tenant"]);
    for step in &plan.steps {
        assert!(
            step.id.starts_with(&format!("{}.", step.stage.number())),
            "{} in stage {}",
            step.id,
            step.stage
        );
    }
}

#[test]
fn quoted_identifiers_are_quoted_in_the_generated_sql() {
    let sales = |name: &str| qn("Sales", name);
    let catalog = CatalogBuilder::new(PG15)
        .schema("Sales")
        .table("Sales", "Customers", |t| t.pk(&["Id"]).col("Name", "text"))
        .table("Sales", "Order Items", |t| {
            t.pk(&["Id"])
                .col("Customer Id", "bigint")
                .col("Code", "text")
                .fk_to(&["Customer Id"], sales("Customers"), &["Id"], 'n')
                .unique(&["Code"])
        })
        .table("public", "select", |t| t.pk(&["id"]).col("user", "text").unique(&["user"]))
        .table("public", "we\"ird", |t| t.pk(&["id"]).col("café", "text"))
        .build();
    let options = PlanOptions { schemas: vec!["public".into(), "Sales".into()], ..indexing_foreign_keys() };
    let plan = plan_with(&catalog, &options);
    assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
    let all = all_forward_sql(&plan);
    let items = sales("Order Items");
    let customers = sales("Customers");
    let q = quote_ident;
    assert_eq!(items.to_string(), "\"Sales\".\"Order Items\"");

    offset(&all, &format!("ALTER TABLE {items} ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n"));
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} ADD CONSTRAINT {} FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) NOT VALID;\n",
            q("Order Items_tenant_id_fkey")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {customers} USING btree (tenant_id, {});\n",
            q("Customers_pkey_tenant_id"),
            q("Id")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE INDEX CONCURRENTLY {} ON {items} ({}, tenant_id);\n",
            q("Order Items_Customer Id_tenant_id_idx"),
            q("Customer Id")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {items} USING btree (tenant_id, {});\n",
            q("Order Items_Code_key_tenant_id"),
            q("Code")
        ),
    );
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} ADD CONSTRAINT {} FOREIGN KEY (tenant_id, {}) REFERENCES {customers} (tenant_id, {}) \
             ON DELETE SET NULL ({}) NOT VALID;\n",
            q("Order Items_Customer Id_fkey_tenant_id"),
            q("Customer Id"),
            q("Id"),
            q("Customer Id")
        ),
    );
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} DROP CONSTRAINT {};\nALTER TABLE {items} ADD CONSTRAINT {} UNIQUE USING INDEX {};\n",
            q("Order Items_Code_key"),
            q("Order Items_Code_key"),
            q("Order Items_Code_key_tenant_id")
        ),
    );
    offset(&all, &format!("CREATE POLICY tenant_isolation ON {items} AS PERMISSIVE"));

    // Reserved words, embedded double quotes and non-ASCII names.
    let select = qn("public", "select");
    assert_eq!(select.to_string(), "public.\"select\"");
    offset(&all, &format!("ALTER TABLE {select} ADD COLUMN tenant_id"));
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {select} USING btree (tenant_id, {});\n",
            q("select_user_key_tenant_id"),
            q("user")
        ),
    );
    let weird = qn("public", "we\"ird");
    assert_eq!(weird.to_string(), "public.\"we\"\"ird\"");
    offset(&all, &format!("ALTER TABLE {weird} ADD CONSTRAINT {} FOREIGN KEY", q("we\"ird_tenant_id_fkey")));
    offset(
        &all,
        &format!("CREATE INDEX CONCURRENTLY {} ON {weird} (tenant_id);\n", q("we\"ird_tenant_id_idx")),
    );
    offset(&all, &format!("CREATE POLICY tenant_isolation ON {weird} AS PERMISSIVE"));
    // Every step still verifies, and no bare name with a space or capital slipped through.
    file::verify_checksums(&plan, "x").unwrap();
    assert!(!all.contains(" Sales."), "{all}");
    assert!(!all.contains(" Order Items"), "{all}");
}

#[test]
fn a_quoted_tenant_column_is_quoted_everywhere() {
    let options = PlanOptions { tenant_column: "TenantId".into(), ..PlanOptions::default() };
    let plan = plan_with(&saas(PG15).build(), &options);
    let all = all_forward_sql(&plan);
    offset(
        &all,
        &format!("ALTER TABLE public.users ADD COLUMN \"TenantId\" uuid DEFAULT {DEFAULT_TENANT};\n"),
    );
    offset(&all, "FOREIGN KEY (\"TenantId\") REFERENCES public.tenants (id) NOT VALID");
    offset(&all, "CHECK (\"TenantId\" IS NOT NULL) NOT VALID");
    offset(&all, "ON public.users (\"TenantId\", id);\n");
    offset(&all, "USING btree (\"TenantId\", lower(email))");
    offset(&all, "FOREIGN KEY (\"TenantId\", owner_id) REFERENCES public.users (\"TenantId\", id)");
    offset(&all, "USING (\"TenantId\" = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))");
    assert!(!all.contains(" TenantId"), "an unquoted TenantId would fold to tenantid");
}

#[test]
fn step_ids_are_unique_even_with_dots_in_names() {
    let catalog = CatalogBuilder::new(PG15)
        .schema("app")
        .schema("app.v2")
        .table("app", "v2.users", |t| t.pk(&["id"]))
        .table("app.v2", "users", |t| t.pk(&["id"]))
        .build();
    let options = PlanOptions {
        schemas: vec!["public".into(), "app".into(), "app.v2".into()],
        ..PlanOptions::default()
    };
    let plan = plan_with(&catalog, &options);
    file::verify_checksums(&plan, "x").expect("a fresh plan verifies");
}
