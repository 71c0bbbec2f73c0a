//! Stage 8: a fail-closed tenant policy on every scoped table and partition, RLS enabled and
//! forced.

use crate::plan::analysis::Analysis;
use crate::plan::ddl::{check, regclass, stmt};
use crate::plan::model::{LockMode, Stage, Step};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// One step per root, covering its partitions.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.scope.roots.iter().map(|root| step(a, root)).collect()
}

fn step(a: &Analysis, root: &QualifiedName) -> Step {
    let s = &a.scope;
    let policy_name = &a.names[root].policy;
    let mut relations = vec![root.clone()];
    relations.extend(s.catalog.partition_descendants(root).into_iter().map(|t| t.name.clone()));
    let expression = s.policy_expression();
    let policy = quote_ident(policy_name);
    let mut forward_sql = String::new();
    let mut rollback_sql = String::new();
    let mut regclasses = Vec::new();
    for relation in &relations {
        let table = s.table(relation);
        // Permissive policies are OR'ed: next to existing ones ours must narrow, not widen.
        let kind = if table.policies.is_empty() { "PERMISSIVE" } else { "RESTRICTIVE" };
        forward_sql.push_str(&format!(
            "CREATE POLICY {policy} ON {relation} AS {kind} FOR ALL\n    USING ({expression})\n    WITH CHECK ({expression});\n\
             ALTER TABLE {relation} ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE {relation} FORCE ROW LEVEL SECURITY;\n"
        ));
        rollback_sql.push_str(&format!("DROP POLICY IF EXISTS {policy} ON {relation};\n"));
        if !table.rls_forced {
            rollback_sql.push_str(&format!("ALTER TABLE {relation} NO FORCE ROW LEVEL SECURITY;\n"));
        }
        if !table.rls_enabled {
            rollback_sql.push_str(&format!("ALTER TABLE {relation} DISABLE ROW LEVEL SECURITY;\n"));
        }
        regclasses.push(regclass(relation));
    }
    let on: Vec<&QualifiedName> = relations.iter().collect();
    let check_sql = format!(
        "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid IN ({}) AND c.relrowsecurity \
         AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p \
         WHERE p.polrelid = c.oid AND p.polname = {})",
        regclasses.join(", "),
        quote_literal(policy_name)
    );
    let partitions = match relations.len() {
        1 => String::new(),
        n => format!(" and its {} partitions", n - 1),
    };
    Step {
        id: format!("8.{}:{}", Stage::Rls.name(), root),
        stage: Stage::Rls,
        title: format!("Row-level security on {}{partitions}", root.display_plain()),
        note: "The policy reads the tenant from a setting the application sets per transaction \
               (SET LOCAL works behind a pooler). Unset, it matches no row (fails closed). \
               FORCE makes the table owner obey it too; partitions get their own policy because \
               reading a partition directly skips the parent's."
            .into(),
        tables: relations.clone(),
        atomic: true,
        rows_estimate: 0,
        forward: vec![stmt(LockMode::AccessExclusive, &on, forward_sql)],
        rollback_atomic: true,
        rollback: vec![stmt(LockMode::AccessExclusive, &on, rollback_sql)],
        no_rollback_reason: None,
        rollback_guards: Vec::new(),
        checks: vec![check(
            format!("RLS enabled, forced and policy present on {} relations", relations.len()),
            relations.len() as i64,
            check_sql,
        )],
        backfill: None,
        hash: String::new(),
    }
}
