//! Stage 8's views: on PostgreSQL 15+, views that would read scoped tables with the rights of
//! a role that bypasses RLS are made to read with the caller's (security_invoker).

use crate::plan::analysis::Analysis;
use crate::plan::ddl::{check, regclass, stmt};
use crate::plan::machine::{names as names_of, state, transition};
use crate::plan::model::{LockMode, Part, Stage, Step};
use crate::plan::probe::{self, all, any, holds, not};
use crate::sql::QualifiedName;

/// At most one step, after every table's policy.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    if !s.pg15 {
        return Vec::new();
    }
    let views: Vec<_> = s
        .catalog
        .views
        .iter()
        .filter(|v| {
            !v.materialized
                && v.owner_bypasses_rls
                && v.security_invoker != Some(true)
                && v.reads().any(|t| s.is_scoped(t))
        })
        .collect();
    if views.is_empty() {
        return Vec::new();
    }
    let mut forward_sql = String::new();
    let mut rollback_sql = String::new();
    let names: Vec<QualifiedName> = views.iter().map(|v| v.name.clone()).collect();
    for view in &views {
        forward_sql.push_str(&format!("ALTER VIEW {} SET (security_invoker = true);\n", view.name));
        rollback_sql.push_str(&match view.security_invoker {
            Some(false) => format!("ALTER VIEW {} SET (security_invoker = false);\n", view.name),
            _ => format!("ALTER VIEW {} RESET (security_invoker);\n", view.name),
        });
    }
    let list: Vec<String> = names.iter().map(regclass).collect();
    let on: Vec<&QualifiedName> = names.iter().collect();
    let invoker: Vec<String> = names.iter().map(probe::view_invoker).collect();
    let part = Part {
        name: format!("security_invoker on {} views", names.len()),
        states: vec![
            state("invoker", holds(all(&invoker))),
            state("as planned", holds(not(any(&invoker)))),
            // Not a state tenantize leaves (one transaction does them all): a hand edit's.
            state("partly", holds("true".into())),
        ],
        done: names_of(&["invoker"]),
        undone: names_of(&["as planned"]),
        rollback_from: None,
        transitions: vec![
            transition("as planned", "invoker", stmt(LockMode::AccessExclusive, &on, forward_sql)),
            transition("invoker", "as planned", stmt(LockMode::AccessExclusive, &on, rollback_sql.clone())),
            transition("partly", "as planned", stmt(LockMode::AccessExclusive, &on, rollback_sql)),
        ],
        guards: Vec::new(),
    };
    vec![Step {
        id: format!("8.{}:views", Stage::Rls.name()),
        stage: Stage::Rls,
        title: format!("Make {} views respect row-level security", views.len()),
        note: "These views are owned by a role that bypasses RLS, so reading through them would \
               show every tenant. security_invoker (PostgreSQL 15+) makes them read with the \
               caller's rights, under the caller's policies."
            .into(),
        tables: names.clone(),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check(
            "views run as invoker",
            names.len() as i64,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid IN ({}) AND \
                 'security_invoker=true' = ANY (c.reloptions)",
                list.join(", ")
            ),
        )],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }]
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{PlanOptions, Severity};

    #[test]
    fn stage8_makes_views_that_bypass_rls_run_as_invoker_on_postgres_15() {
        let views = |b: CatalogBuilder| {
            b.table("public", "lookup", |t| t.pk_named("lookup_pkey", &["code"]).col_nn("code", "text"))
                .view("public", "user_directory", |v| v.owned_by_superuser().reads("public", "users"))
                .view("public", "my_projects", |v| v.reads("public", "projects"))
                .view("public", "lookup_labels", |v| v.owned_by_superuser().reads("public", "lookup"))
                .view("public", "user_stats", |v| {
                    v.owned_by_superuser().materialized().reads("public", "users")
                })
        };
        let options = PlanOptions { exclude: vec!["public.lookup".into()], ..PlanOptions::default() };
        let plan = plan_with(&views(saas(PG15)).build(), &options);
        let step15 = step(&plan, "8.rls:views");
        assert_eq!(step15.parts[0].forward_path().len(), 1, "one transaction");
        assert_eq!(forward_sql(step15), "ALTER VIEW public.user_directory SET (security_invoker = true);\n");
        assert_eq!(rollback_sql(step15), "ALTER VIEW public.user_directory RESET (security_invoker);\n");
        let last_of_stage8 = plan.steps.iter().rposition(|s| s.stage == crate::plan::Stage::Rls).unwrap();
        assert_eq!(position(&plan, "8.rls:views"), last_of_stage8);
        // RLS cannot cover a materialized view: the plan is blocked until the operator chooses.
        assert!(has_finding(&plan, Severity::Error, "materialized-view", "public.user_stats"));
        assert!(!all_forward_sql(&plan).contains("user_stats"));
        let accepted = PlanOptions {
            acknowledge: vec!["materialized-view:public.user_stats".into()],
            ..options.clone()
        };
        let plan_accepted = plan_with(&views(saas(PG15)).build(), &accepted);
        assert!(has_finding(&plan_accepted, Severity::Warning, "materialized-view", "public.user_stats"));
        assert!(plan_accepted.errors().next().is_none());

        // A view in a schema of its own, reading a converted table through another view.
        let catalog = views(saas(PG15))
            .view("reporting", "user_overview", |v| v.owned_by_superuser().reads_via("public", "users"))
            .build();
        let step = step(&plan_with(&catalog, &options), "8.rls:views").clone();
        assert!(
            forward_sql(&step).contains("ALTER VIEW reporting.user_overview SET (security_invoker = true);")
        );
        assert!(rollback_sql(&step).contains("ALTER VIEW reporting.user_overview RESET (security_invoker);"));

        let plan14 = plan_with(&views(saas(PG14)).build(), &options);
        assert!(plan14.step("8.rls:views").is_none());
        assert!(!all_forward_sql(&plan14).contains("security_invoker"));
        assert!(has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.user_directory"));
        assert!(!has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.my_projects"));
        assert!(!has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.lookup_labels"));
        assert!(has_finding(&plan14, Severity::Error, "materialized-view", "public.user_stats"));
    }
}
