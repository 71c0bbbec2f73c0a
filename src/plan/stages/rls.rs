//! Stage 8: a fail-closed tenant policy on every scoped table and partition, RLS enabled and
//! forced.

use crate::plan::analysis::Analysis;
use crate::plan::ddl::{check, regclass, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{LockMode, Part, Stage, Step};
use crate::plan::probe::{self, all, any, holds, not};
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
    let with_policy: Vec<String> = relations.iter().map(|r| probe::policy_exists(r, policy_name)).collect();
    let forced: Vec<String> = relations.iter().map(probe::rls_forced).collect();
    let undo = stmt(LockMode::AccessExclusive, &on, rollback_sql);
    let part = Part {
        name: format!(
            "{policy_name} on {}{}",
            root.display_plain(),
            if relations.len() > 1 { " and its partitions" } else { "" }
        ),
        states: vec![
            state("on", holds(all(&[all(&with_policy), all(&forced)]))),
            state("off", holds(not(any(&with_policy)))),
            // Not a state tenantize leaves (one transaction does it all): a hand edit's.
            state("partly", holds("true".into())),
        ],
        done: names(&["on"]),
        undone: names(&["off"]),
        rollback_from: None,
        transitions: vec![
            transition("off", "on", stmt(LockMode::AccessExclusive, &on, forward_sql)),
            transition("on", "off", undo.clone()),
            transition("partly", "off", undo),
        ],
        guards: Vec::new(),
    };
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
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check(
            format!("RLS enabled, forced and policy present on {} relations", relations.len()),
            relations.len() as i64,
            check_sql,
        )],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::Severity;
    use crate::plan::test_support::*;

    #[test]
    fn stage8_creates_a_fail_closed_policy_then_enables_and_forces_rls() {
        let plan = plan_of(&with_events(saas(PG15)).build());
        let users = step(&plan, "8.rls:public.users");
        assert_eq!(users.parts[0].forward_path().len(), 1, "one transaction");
        assert_eq!(users.forward().len(), 1);
        assert_eq!(
            code(&users.forward()[0].sql),
            format!(
                "CREATE POLICY tenant_isolation ON public.users AS PERMISSIVE FOR ALL\n    \
                 USING ({POLICY_EXPRESSION})\n    WITH CHECK ({POLICY_EXPRESSION});\n\
                 ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;\n\
                 ALTER TABLE public.users FORCE ROW LEVEL SECURITY;\n"
            )
        );
        // RLS was off before: the rollback turns it off again.
        assert_eq!(
            rollback_sql(users),
            "DROP POLICY IF EXISTS tenant_isolation ON public.users;\n\
             ALTER TABLE public.users NO FORCE ROW LEVEL SECURITY;\n\
             ALTER TABLE public.users DISABLE ROW LEVEL SECURITY;\n"
        );

        // Partitions get their own policy, in their root's step.
        let events = step(&plan, "8.rls:public.events");
        let relations = ["events", "events_2024", "events_2025", "events_2025_p0", "events_2025_p1"];
        assert_eq!(events.tables, relations.map(|r| qn("public", r)).to_vec());
        let sql = forward_sql(events);
        for relation in relations {
            offset(
                &sql,
                &format!("CREATE POLICY tenant_isolation ON public.{relation} AS PERMISSIVE FOR ALL\n"),
            );
            offset(&sql, &format!("ALTER TABLE public.{relation} ENABLE ROW LEVEL SECURITY;\n"));
            offset(&sql, &format!("ALTER TABLE public.{relation} FORCE ROW LEVEL SECURITY;\n"));
        }
        assert_eq!(events.checks[0].expect, 5);
    }

    #[test]
    fn stage8_narrows_existing_policies_and_restores_only_what_was_off() {
        let catalog = saas(PG15)
            .alter("public", "projects", |t| t.policy("projects_owner_access").rls(true, false))
            .alter("public", "issues", |t| t.policy("tenant_isolation").rls(true, true))
            .build();
        let plan = plan_of(&catalog);
        let projects = step(&plan, "8.rls:public.projects");
        offset(
            &forward_sql(projects),
            "CREATE POLICY tenant_isolation ON public.projects AS RESTRICTIVE FOR ALL\n",
        );
        assert!(has_finding(&plan, Severity::Warning, "existing-policies", "public.projects"));
        assert_eq!(
            rollback_sql(projects),
            "DROP POLICY IF EXISTS tenant_isolation ON public.projects;\n\
             ALTER TABLE public.projects NO FORCE ROW LEVEL SECURITY;\n"
        );
        // A policy of the same name already exists: a fresh name, and nothing to switch off again.
        let issues = step(&plan, "8.rls:public.issues");
        offset(
            &forward_sql(issues),
            "CREATE POLICY tenant_isolation_1 ON public.issues AS RESTRICTIVE FOR ALL\n",
        );
        assert_eq!(rollback_sql(issues), "DROP POLICY IF EXISTS tenant_isolation_1 ON public.issues;\n");
        // Tables without policies stay permissive.
        offset(&forward_sql(step(&plan, "8.rls:public.users")), "AS PERMISSIVE");
        assert!(!has_finding(&plan, Severity::Warning, "existing-policies", "public.users"));
    }

    #[test]
    fn stage8_narrows_existing_policies_on_partitions_too() {
        let catalog = with_events(saas(PG15))
            .alter("public", "events_2024", |t| t.policy("archive_readers").rls(true, false))
            .build();
        let plan = plan_of(&catalog);
        let sql = forward_sql(step(&plan, "8.rls:public.events"));
        offset(&sql, "CREATE POLICY tenant_isolation ON public.events_2024 AS RESTRICTIVE FOR ALL\n");
    }
}
