//! What must hold before anything is converted; each problem is an error finding, which stops
//! `plan` and `apply`.

use super::{Findings, Scope};
use crate::catalog::{Table, TableKind};
use crate::plan::model::{BackfillMode, Severity};

pub(super) fn check(scope: &Scope, findings: &mut Findings) {
    let catalog = scope.catalog;
    let tenant = &scope.tenant;
    if catalog.table(&tenant.table).is_some() || catalog.relation_exists(&tenant.table) {
        findings.add(
            Severity::Error,
            "tenant-table-exists",
            tenant.table.display_plain(),
            "a relation with the tenant table's name already exists: choose another \
             --tenant-table (or see `tenantize status` if a conversion already ran)",
        );
    }
    if !catalog.schemas.contains(&tenant.table.schema)
        && !catalog.creatable_schemas.contains(&tenant.table.schema)
    {
        findings.add(
            Severity::Error,
            "tenant-schema-missing",
            tenant.table.schema.clone(),
            "the tenant table's schema does not exist or the role may not create in it",
        );
    }
    for name in &scope.scoped {
        let table = scope.table(name);
        if table.column(&tenant.column).is_some() {
            findings.add(
                Severity::Error,
                "tenant-column-exists",
                name.display_plain(),
                format!(
                    "already has a column named {}: choose another --tenant-column, or \
                     --exclude the table if it is already tenant-aware",
                    tenant.column
                ),
            );
        }
        if tenant.backfill == BackfillMode::Batched && table.kind == TableKind::Ordinary {
            check_batched_backfill_triggers(scope, table, findings);
        }
        report_triggers_writing_tenant_tables(scope, table, findings);
    }
    report_wal_init_zero(scope, findings);
    if scope.roots.is_empty() {
        findings.add(
            Severity::Error,
            "nothing-to-convert",
            scope.options.schemas.join(", "),
            "no tables to convert in the chosen schemas",
        );
    }
}

/// A batched backfill writes about a table's size of WAL and more. Whichever session first
/// writes into a new WAL segment zero-fills it while holding the WAL write lock, and that is
/// nearly always an application commit (each commit writes out all the WAL queued before it).
/// Only the server's setting changes that, so the DBA is told before the window.
fn report_wal_init_zero(scope: &Scope, findings: &mut Findings) {
    if scope.tenant.backfill != BackfillMode::Batched || !scope.catalog.server.wal_init_zero {
        return;
    }
    findings.add(
        Severity::Warning,
        "wal-init-zero",
        "wal_init_zero",
        "the server zero-fills each new 16 MB WAL segment inside whichever commit first \
         writes into it, and the batched backfill writes WAL fast enough to need a new one \
         every second or so: on the benchmark's machine each one held an application write for \
         60-70 ms (`IO:WALInitWrite`). Unless the filesystem \
         needs it, ALTER SYSTEM SET wal_init_zero = off; SELECT pg_reload_conf(); before \
         the window (a superuser), or keep --backfill fast",
    );
}

/// A trigger whose function writes another tenant table: the rows it inserts get that table's
/// column default (the default tenant) unless the function sets the tenant column itself, and
/// under RLS its writes are checked against the caller's tenant.
fn report_triggers_writing_tenant_tables(scope: &Scope, table: &Table, findings: &mut Findings) {
    for trigger in table.triggers.iter().filter(|t| !t.inherited) {
        let written: Vec<String> = trigger
            .writes_tables
            .iter()
            .filter(|t| **t != table.name && scope.is_scoped(t))
            .map(|t| t.display_plain())
            .collect();
        if written.is_empty() {
            continue;
        }
        findings.add(
            Severity::Warning,
            "trigger-writes-tenant-table",
            format!("{} on {}", trigger.name, table.name.display_plain()),
            format!(
                "its function writes {}: rows it inserts there get the default tenant unless it \
                 sets {} (from NEW.{}), and row-level security checks them against the caller's tenant",
                written.join(", "),
                scope.tenant.column,
                scope.tenant.column
            ),
        );
    }
}

/// A batched backfill updates every row: its UPDATE triggers, row or statement level, must be
/// kept from firing.
fn check_batched_backfill_triggers(scope: &Scope, table: &Table, findings: &mut Findings) {
    let always: Vec<&str> = table
        .triggers
        .iter()
        .filter(|t| t.fires_on_backfill() && matches!(t.enabled.as_str(), "A" | "R"))
        .map(|t| t.name.as_str())
        .collect();
    if !always.is_empty() {
        findings.add(
            Severity::Error,
            "batched-backfill-fires-triggers",
            table.name.display_plain(),
            format!(
                "triggers {} are enabled ALWAYS/REPLICA and would fire on every \
                 backfilled row: use --backfill fast",
                always.join(", ")
            ),
        );
        return;
    }
    let fired: Vec<&str> =
        table.triggers.iter().filter(|t| t.fires_on_backfill()).map(|t| t.name.as_str()).collect();
    if !scope.catalog.role.can_set_replication_role && !fired.is_empty() {
        findings.add(
            Severity::Error,
            "batched-backfill-fires-triggers",
            table.name.display_plain(),
            format!(
                "UPDATE triggers {} would fire on every batch; a batched backfill keeps them from \
                 firing with session_replication_role, which role {} may not set: use --backfill \
                 fast (it fires nothing), run as a superuser, or on PostgreSQL 15+ \
                 GRANT SET ON PARAMETER session_replication_role TO {}",
                fired.join(", "),
                scope.catalog.role.name,
                crate::sql::quote_ident(&scope.catalog.role.name)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{BackfillMode, PlanOptions, Severity};

    #[test]
    fn refuses_when_the_tenant_table_name_is_taken() {
        let as_table = saas(PG15).table("public", "tenants", |t| t.pk(&["id"]).col("name", "text")).build();
        let plan = plan_of(&as_table);
        // The table, and the name of its primary key.
        assert_eq!(error_objects(&plan, "tenant-table-exists"), ["public.tenants", "public.tenants_pkey"]);
        assert!(
            plan.tables.iter().all(|t| t.name != qn("public", "tenants")),
            "the tenant table is not converted"
        );

        let as_view = saas(PG15).view("public", "tenants", |v| v.reads("public", "users")).build();
        assert_eq!(error_objects(&plan_of(&as_view), "tenant-table-exists"), ["public.tenants"]);

        assert!(plan_of(&saas(PG15).build()).errors().next().is_none());
    }

    #[test]
    fn a_batched_backfill_on_a_server_that_zero_fills_wal_segments_is_warned() {
        let mut catalog = saas(PG15).build();
        let batched = PlanOptions { backfill: Some(BackfillMode::Batched), ..PlanOptions::default() };
        let fast = PlanOptions { backfill: Some(BackfillMode::Fast), ..PlanOptions::default() };
        assert!(!has_finding(
            &plan_with(&catalog, &batched),
            Severity::Warning,
            "wal-init-zero",
            "wal_init_zero"
        ));
        catalog.server.wal_init_zero = true;
        assert!(has_finding(
            &plan_with(&catalog, &batched),
            Severity::Warning,
            "wal-init-zero",
            "wal_init_zero"
        ));
        // The metadata-only default writes no table's worth of WAL.
        assert!(!plan_with(&catalog, &fast).findings.iter().any(|f| f.code == "wal-init-zero"));
    }

    #[test]
    fn refuses_a_scoped_table_that_already_has_the_tenant_column() {
        let catalog = saas(PG15).alter("public", "projects", |t| t.col("tenant_id", "uuid")).build();
        let plan = plan_of(&catalog);
        assert_eq!(error_objects(&plan, "tenant-column-exists"), ["public.projects"]);
        // An excluded (shared) table may have one.
        let options = PlanOptions { exclude: vec!["public.projects".into()], ..PlanOptions::default() };
        assert!(error_objects(&plan_with(&catalog, &options), "tenant-column-exists").is_empty());
    }

    #[test]
    fn a_trigger_that_writes_another_tenant_table_is_reported() {
        let catalog = saas(PG15)
            .alter("public", "issues", |t| t.trigger_writing("issues_log", "public", "issue_comments"))
            .alter("public", "users", |t| t.trigger_writing("users_self", "public", "users"))
            .build();
        let plan = plan_of(&catalog);
        assert!(has_finding(
            &plan,
            Severity::Warning,
            "trigger-writes-tenant-table",
            "issues_log on public.issues"
        ));
        assert!(
            !plan.findings.iter().any(|f| f.object.starts_with("users_self")),
            "writing its own table is fine"
        );
    }

    #[test]
    fn refuses_a_batched_backfill_that_would_fire_update_triggers() {
        let catalog = |superuser: bool| {
            let b = saas(PG15).alter("public", "projects", |t| t.update_trigger("projects_touch", "O"));
            if superuser { b.superuser().build() } else { b.build() }
        };
        let plan = plan_with(&catalog(false), &batched());
        assert_eq!(error_objects(&plan, "batched-backfill-fires-triggers"), ["public.projects"]);
        // The fast path fires nothing.
        assert!(plan_of(&catalog(false)).errors().next().is_none());
        // A superuser can keep them from firing.
        let plan = plan_with(&catalog(true), &batched());
        assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
        let fill = step(&plan, "4.backfill:public.projects");
        assert!(fill.backfill.as_ref().unwrap().suppress_triggers);
        assert!(!step(&plan, "4.backfill:public.users").backfill.as_ref().unwrap().suppress_triggers);
        // Statement-level triggers (with transition tables) fire on every batch too.
        let statement = |superuser: bool| {
            let b = saas(PG15).alter("public", "issues", |t| t.statement_update_trigger("issues_audit"));
            if superuser { b.superuser().build() } else { b.build() }
        };
        let plan = plan_with(&statement(false), &batched());
        assert_eq!(error_objects(&plan, "batched-backfill-fires-triggers"), ["public.issues"]);
        let finding = plan.findings.iter().find(|f| f.code == "batched-backfill-fires-triggers").unwrap();
        assert!(finding.message.contains("issues_audit"), "{}", finding.message);
        assert!(
            finding.message.contains("GRANT SET ON PARAMETER session_replication_role"),
            "{}",
            finding.message
        );
        let plan = plan_with(&statement(true), &batched());
        assert!(step(&plan, "4.backfill:public.issues").backfill.as_ref().unwrap().suppress_triggers);
        // Triggers enabled ALWAYS fire even under session_replication_role = replica.
        let always = saas(PG15)
            .superuser()
            .alter("public", "projects", |t| t.update_trigger("projects_audit", "A"))
            .build();
        assert_eq!(
            error_objects(&plan_with(&always, &batched()), "batched-backfill-fires-triggers"),
            ["public.projects"]
        );
    }
}
