//! What row-level security cannot cover, reported for the reviewer: materialized views, views
//! that read as a role bypassing RLS (before PostgreSQL 15), SECURITY DEFINER functions, and
//! the tenant column's default.

use super::{Findings, Scope};
use crate::plan::model::Severity;
use crate::sql::quote_literal;

pub(super) fn report(scope: &Scope, findings: &mut Findings) {
    report_views(scope, findings);
    for function in &scope.catalog.security_definer_functions {
        let object = format!("{}({})", function.name.display_plain(), function.arguments);
        let reads: Vec<String> =
            function.names_tables.iter().filter(|t| scope.is_scoped(t)).map(|t| t.display_plain()).collect();
        let acknowledged = scope.options.acknowledges("security-definer", &object);
        if !reads.is_empty() && acknowledged {
            findings.add(
                Severity::Warning,
                "security-definer",
                object,
                format!(
                    "acknowledged: SECURITY DEFINER function owned by {} names the tenant tables {} \
                     and reads them with its owner's rights, past row-level security",
                    function.owner,
                    reads.join(", ")
                ),
            );
            continue;
        }
        if !reads.is_empty() {
            // Reading a tenant table with its owner's rights bypasses the policies.
            findings.add(
                Severity::Error,
                "security-definer",
                object.clone(),
                format!(
                    "SECURITY DEFINER function owned by {} names the tenant tables {}: it runs with \
                     its owner's rights, past row-level security; make it SECURITY INVOKER, revoke \
                     EXECUTE from the application's roles, or accept it with --acknowledge \
                     security-definer:{object}",
                    function.owner,
                    reads.join(", ")
                ),
            );
            continue;
        }
        findings.add(
            Severity::Warning,
            "security-definer",
            object,
            format!(
                "SECURITY DEFINER function owned by {}: it runs with its owner's rights and \
                 may read across tenants",
                function.owner
            ),
        );
    }
    let tenant = &scope.tenant;
    findings.add(
        Severity::Info,
        "column-default",
        tenant.column.clone(),
        format!(
            "the tenant column keeps the default tenant as its default so the current \
             application keeps working; once it sets {} per transaction, the cutover (stage 10, \
             `tenantize cutover`) switches each table to DEFAULT nullif(current_setting({}, true), '')::{}",
            tenant.setting,
            quote_literal(&tenant.setting),
            tenant.key_type.sql()
        ),
    );
}

fn report_views(scope: &Scope, findings: &mut Findings) {
    for view in &scope.catalog.views {
        let reads_scoped: Vec<String> =
            view.reads().filter(|t| scope.is_scoped(t)).map(|t| t.display_plain()).collect();
        if reads_scoped.is_empty() {
            continue;
        }
        if view.materialized {
            // RLS cannot cover it: it holds a copy of every tenant's rows. Blocks the plan
            // until the operator chooses what to do with it.
            let object = view.name.display_plain();
            let acknowledged = scope.options.acknowledges("materialized-view", &object);
            let (severity, what) = if acknowledged {
                (Severity::Warning, "acknowledged: ".to_string())
            } else {
                (Severity::Error, String::new())
            };
            findings.add(
                severity,
                "materialized-view",
                object.clone(),
                format!(
                    "{what}materialized view over {}: it stores rows of every tenant and RLS does \
                     not apply to it; exclude the tables it reads (--exclude), revoke SELECT on it \
                     from the application's roles, or accept it with --acknowledge \
                     materialized-view:{object}",
                    reads_scoped.join(", ")
                ),
            );
        } else if view.owner_bypasses_rls && view.security_invoker != Some(true) && !scope.pg15 {
            findings.add(
                Severity::Warning,
                "view-bypasses-rls",
                view.name.display_plain(),
                format!(
                    "owned by {} (bypasses RLS); PostgreSQL before 15 has no security_invoker, \
                     so reading through it shows every tenant's rows",
                    view.owner
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{PlanOptions, Severity};

    #[test]
    fn a_security_definer_function_naming_a_tenant_table_blocks_the_plan_until_acknowledged() {
        let catalog = saas(PG15)
            .security_definer("public", "user_count", &[("public", "users")])
            .security_definer("public", "now_utc", &[])
            .build();
        let plan = plan_of(&catalog);
        assert!(has_finding(&plan, Severity::Error, "security-definer", "public.user_count()"));
        assert!(
            has_finding(&plan, Severity::Warning, "security-definer", "public.now_utc()"),
            "names no table"
        );
        let options = PlanOptions {
            acknowledge: vec!["security-definer:public.user_count()".into()],
            ..Default::default()
        };
        let plan = plan_with(&catalog, &options);
        assert!(plan.errors().next().is_none());
        assert!(has_finding(&plan, Severity::Warning, "security-definer", "public.user_count()"));
    }
}
