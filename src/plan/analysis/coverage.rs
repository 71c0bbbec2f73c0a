//! What row-level security cannot cover, reported for the reviewer: materialized views, views
//! that read as a role bypassing RLS (before PostgreSQL 15), SECURITY DEFINER functions, and
//! the tenant column's default.

use super::{Findings, Scope};
use crate::plan::model::Severity;
use crate::sql::quote_literal;

pub(super) fn report(scope: &Scope, findings: &mut Findings) {
    report_views(scope, findings);
    for function in &scope.catalog.security_definer_functions {
        findings.add(
            Severity::Warning,
            "security-definer",
            format!("{}({})", function.name.display_plain(), function.arguments),
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
             application keeps working; once it sets {} per transaction, switch each table \
             with ALTER TABLE ... ALTER COLUMN {} SET DEFAULT nullif(current_setting({}, true), '')::{}",
            tenant.setting,
            scope.col(),
            quote_literal(&tenant.setting),
            tenant.key_type.sql()
        ),
    );
}

fn report_views(scope: &Scope, findings: &mut Findings) {
    for view in &scope.catalog.views {
        let reads_scoped: Vec<String> =
            view.reads_tables.iter().filter(|t| scope.is_scoped(t)).map(|t| t.display_plain()).collect();
        if reads_scoped.is_empty() {
            continue;
        }
        if view.materialized {
            findings.add(
                Severity::Warning,
                "materialized-view",
                view.name.display_plain(),
                format!(
                    "materialized view over {}: it stores rows of every tenant and RLS does \
                     not apply to it; restrict who may read it",
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
