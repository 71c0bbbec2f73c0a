//! `export --format pgtap`: one pgTAP test file that asserts the converted schema's tenant
//! invariants, for the team's own CI (`pg_prove -d DB tenantize_invariants.sql`): the tenant
//! column NOT NULL on every scoped table, row-level security enabled and forced with the
//! plan's policy on every scoped table and partition, every step's checks (composite foreign
//! keys, scoped uniques and keys, views run as invoker, ...), no foreign key between scoped
//! tables without the tenant column, and no table in the converted schemas without the tenant
//! column unless the plan shares it. The file runs in a transaction it rolls back (installing
//! pgTAP there if the database lacks it), as a role that bypasses row-level security.

use super::assertions;
use super::units::ExportedFile;
use crate::plan::Plan;
use crate::sql::{comment, dollar_quote, quote_literal};

pub(super) const FILE_NAME: &str = "tenantize_invariants.sql";

/// The tables that exist of `names`, as a subquery. Missing ones are left out, not NULL: a
/// NULL in `NOT IN` makes it never true, and the test would pass whatever the schema.
fn regclasses(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
    format!(
        "(SELECT pg_catalog.to_regclass(x) FROM pg_catalog.unnest(ARRAY[{}]::text[]) x \
         WHERE pg_catalog.to_regclass(x) IS NOT NULL)",
        list.join(", ")
    )
}

/// Each test as one `SELECT` of a pgTAP function.
fn tests(plan: &Plan) -> Vec<String> {
    let col = &plan.tenant.column;
    let mut out = Vec::new();
    let scoped: Vec<String> = plan.scoped_tables().map(|t| t.name.to_string()).collect();
    let owned: Vec<String> = plan.drift.owned_names.iter().map(|n| quote_literal(n)).collect();
    let owned = if owned.is_empty() { "NULL".to_string() } else { owned.join(", ") };
    for table in plan.scoped_tables() {
        let plain = table.name.display_plain();
        out.push(format!(
            "SELECT col_not_null({}, {}, {}, {});",
            quote_literal(&table.name.schema),
            quote_literal(&table.name.name),
            quote_literal(col),
            quote_literal(&format!("{plain}.{col} is NOT NULL"))
        ));
        out.push(format!(
            "SELECT ok(coalesce((SELECT c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname IN ({owned})) FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass({})), false), {});",
            quote_literal(&table.name.to_string()),
            quote_literal(&format!("{plain}: row-level security enabled and forced, with the tenant policy"))
        ));
    }
    // The invariants hold before the cutover and after it: the cutover's own checks (and the
    // legacy roles' default tenant, which the cutover empties) describe a moment, not the schema.
    let lasting = |s: &&crate::plan::Step| {
        !s.stage.needs_asking()
            && s.stage != crate::plan::Stage::Distribute
            && !s.id.starts_with("8.legacy-role:")
    };
    for step in plan.steps.iter().filter(lasting) {
        for a in assertions::of_step(plan, step) {
            out.push(format!(
                "SELECT ok(coalesce({}, false), {});",
                a.condition,
                quote_literal(&format!("{}: {}", step.id, a.name))
            ));
        }
    }
    let scoped_set = regclasses(&scoped);
    out.push(format!(
        "SELECT is_empty({}, {});",
        dollar_quote(&format!(
            "SELECT k.conrelid::regclass::text || ' ' || k.conname FROM pg_catalog.pg_constraint k WHERE k.contype = 'f' AND k.conrelid IN {scoped_set} AND k.confrelid IN {scoped_set} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = {} AND a.attnum = ANY (k.conkey))",
            quote_literal(col)
        )),
        quote_literal(&format!("every foreign key between tenant tables includes {col}"))
    ));
    let mut shared: Vec<String> =
        plan.tables.iter().filter(|t| !t.scoped).map(|t| t.name.to_string()).collect();
    shared.push(plan.tenant.table.to_string());
    // A migration tool's bookkeeping table is shared whenever it appears, also after the plan.
    for schema in &plan.options.schemas {
        shared.extend(
            crate::plan::migration_table_names()
                .map(|t| crate::sql::QualifiedName::new(schema, t).to_string()),
        );
    }
    let schemas: Vec<String> = plan.options.schemas.iter().map(|s| quote_literal(s)).collect();
    out.push(format!(
        "SELECT is_empty({}, {});",
        dollar_quote(&format!(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname IN ({}) AND c.oid NOT IN {} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = {} AND NOT a.attisdropped) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')",
            schemas.join(", "),
            regclasses(&shared),
            quote_literal(col)
        )),
        quote_literal(&format!(
            "every table in {} has {col}, except the plan's shared tables and migration tools' tables",
            plan.options.schemas.join(", ")
        ))
    ));
    out
}

pub(super) fn export(plan: &Plan) -> Vec<ExportedFile> {
    let tests = tests(plan);
    let mut text = format!(
        "{}\n-- Run with: pg_prove -d DATABASE {FILE_NAME} (as a role that bypasses row-level security).\n-- Everything runs in a transaction rolled back at the end; pgTAP is installed in it if missing.\nBEGIN;\nCREATE EXTENSION IF NOT EXISTS pgtap;\nSET LOCAL row_security = off;\nSELECT plan({});\n",
        comment(&format!(
            "tenantize plan {:.12}: the tenant invariants of the converted schema",
            plan.plan_hash
        )),
        tests.len()
    );
    for t in &tests {
        text.push_str(t);
        text.push('\n');
    }
    text.push_str("SELECT * FROM finish();\nROLLBACK;\n");
    vec![ExportedFile { name: FILE_NAME.into(), content: text }]
}
