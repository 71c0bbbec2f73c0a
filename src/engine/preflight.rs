//! Before anything runs: does the database still look like the plan expects (drift), and may
//! the connected role do what the remaining steps need (privileges)? Pure functions over the
//! plan and a fresh catalog.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{
    Catalog, FingerprintIgnore, TableShape, shape_diff, shape_fingerprint, table_shape, view_fingerprint,
};
use crate::plan::{Plan, Severity, Stage, Step};
use crate::sql::{QualifiedName, quote_ident};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriftReport {
    pub missing_tables: Vec<String>,
    pub new_tables: Vec<String>,
    pub changed_tables: Vec<String>,
    /// What changed, per changed table: "column nickname text added", ….
    pub changes: Vec<(String, Vec<String>)>,
    pub missing_views: Vec<String>,
    pub new_views: Vec<String>,
    pub changed_views: Vec<String>,
}

impl DriftReport {
    pub fn is_empty(&self) -> bool {
        self.missing_tables.is_empty()
            && self.new_tables.is_empty()
            && self.changed_tables.is_empty()
            && self.missing_views.is_empty()
            && self.new_views.is_empty()
            && self.changed_views.is_empty()
    }

    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.missing_tables {
            out.push(format!("table {t} is gone"));
        }
        for t in &self.new_tables {
            out.push(format!("table {t} was added after planning (the plan does not cover it)"));
        }
        for t in &self.changed_tables {
            let details = self.changes.iter().find(|(name, _)| name == t).map(|(_, d)| d.join("; "));
            match details {
                Some(details) if !details.is_empty() => out.push(format!("table {t} changed: {details}")),
                _ => out.push(format!("table {t} changed")),
            }
        }
        for v in &self.missing_views {
            out.push(format!("view {v} is gone"));
        }
        for v in &self.new_views {
            out.push(format!("view {v} was added after planning"));
        }
        for v in &self.changed_views {
            out.push(format!("view {v} changed"));
        }
        out
    }
}

/// Compare the live catalog with the plan. With `only`, just those tables (the ones the steps
/// still to run touch) are compared; new tables and views count whenever any step remains.
pub fn drift(plan: &Plan, catalog: &Catalog, only: Option<&BTreeSet<QualifiedName>>) -> DriftReport {
    let owned = plan.owned_name_set();
    let ignore = FingerprintIgnore {
        tenant_column: &plan.tenant.column,
        tenant_table: &plan.tenant.table,
        owned_names: &owned,
        foreign_keys: plan.options.distribute.is_none(),
    };
    let live: BTreeMap<&QualifiedName, TableShape> = catalog
        .tables
        .iter()
        .filter(|t| t.name != plan.tenant.table)
        .map(|t| (&t.name, table_shape(t, &ignore)))
        .collect();
    let mut report = DriftReport::default();
    for table in &plan.tables {
        if only.is_some_and(|set| !set.contains(&table.name)) {
            continue;
        }
        match live.get(&table.name) {
            None => report.missing_tables.push(table.name.display_plain()),
            Some(shape) if shape_fingerprint(shape) != table.fingerprint => {
                report.changed_tables.push(table.name.display_plain());
                report.changes.push((table.name.display_plain(), shape_diff(&table.shape, shape)));
            }
            Some(_) => {}
        }
    }
    let planned: BTreeSet<&QualifiedName> = plan.tables.iter().map(|t| &t.name).collect();
    for name in live.keys() {
        let citus_shard = plan.options.distribute.is_some() && citus_shard_name(name, &planned);
        if !planned.contains(name) && !citus_shard {
            report.new_tables.push(name.display_plain());
        }
    }
    let live_views: BTreeMap<&QualifiedName, String> =
        catalog.views.iter().map(|v| (&v.name, view_fingerprint(v))).collect();
    for view in &plan.views {
        match live_views.get(&view.name) {
            None => report.missing_views.push(view.name.display_plain()),
            Some(fp) if *fp != view.fingerprint => report.changed_views.push(view.name.display_plain()),
            Some(_) => {}
        }
    }
    let planned_views: BTreeSet<&QualifiedName> = plan.views.iter().map(|v| &v.name).collect();
    for name in live_views.keys() {
        if !planned_views.contains(name) {
            report.new_views.push(name.display_plain());
        }
    }
    report
}

/// What the role lacks for the steps still to run (empty: go ahead).
pub fn privilege_problems(plan: &Plan, catalog: &Catalog, pending: &[&Step]) -> Vec<String> {
    let mut problems = Vec::new();
    for finding in plan.findings.iter().filter(|f| f.severity == Severity::Error) {
        problems.push(format!("{}: {}", finding.object, finding.message));
    }
    if !catalog.journal_exists && !catalog.role.can_create_in_database {
        problems.push(format!(
            "role {} may not create the journal schema `tenantize` (needs CREATE on database {}): \
             GRANT CREATE ON DATABASE {} TO {}",
            catalog.role.name, catalog.server.database, catalog.server.database, catalog.role.name
        ));
    }
    if pending.iter().any(|s| s.stage == Stage::TenantTable)
        && !catalog.creatable_schemas.contains(&plan.tenant.table.schema)
    {
        problems.push(format!(
            "role {} may not create tables in schema {} (for the tenant table)",
            catalog.role.name, plan.tenant.table.schema
        ));
    }
    let mut reported = BTreeSet::new();
    for step in pending {
        for name in &step.tables {
            if name == &plan.tenant.table {
                continue;
            }
            if let Some(table) = catalog.table(name)
                && !table.owned_by_current_role
                && reported.insert(name.clone())
            {
                problems.push(format!(
                    "role {} does not own {} (owner: {}); ALTER TABLE needs the owner or a member of its role",
                    catalog.role.name,
                    name.display_plain(),
                    table.owner
                ));
            }
        }
        if let Some(backfill) = &step.backfill
            && backfill.suppress_triggers
            && !catalog.role.can_set_replication_role
        {
            problems.push(format!(
                "step {} keeps triggers from firing with session_replication_role, which role {} may \
                 not set (a superuser may, or on PostgreSQL 15+ a role granted SET ON PARAMETER \
                 session_replication_role); use a plan with --backfill fast",
                step.id, catalog.role.name
            ));
        }
    }
    problems
}

/// Names the plan gives what it creates that already exist although the step that first
/// names them has never started: someone made them after planning. Drift leaves the plan's
/// names out (mid-run they are its own work), and a step reads its objects by name, so a
/// hand-made `<index>_tenant_id` would pass for the scoped copy and be swapped in. Checked
/// in the schema of that step's own table (relations and constraints share a namespace
/// there), and a policy's name on the step's tables.
pub fn names_taken_since_planning(
    plan: &Plan,
    catalog: &Catalog,
    never_started: &BTreeSet<&str>,
) -> Vec<String> {
    let mut first_named_by: BTreeMap<&str, &Step> = BTreeMap::new();
    for step in &plan.steps {
        for name in &plan.drift.owned_names {
            if !first_named_by.contains_key(name.as_str())
                && step.all_statements().any(|s| mentions(&s.sql, name))
            {
                first_named_by.insert(name, step);
            }
        }
    }
    let mut taken = catalog.relation_and_constraint_names();
    for table in &catalog.tables {
        // An INVALID index (what an interrupted concurrent build leaves) is never taken for a
        // step's work: the step drops it and builds again.
        let invalid = table.indexes.iter().filter(|i| !i.valid).map(|i| &i.name);
        let invalid = invalid.chain(table.uniques.iter().filter(|u| !u.valid).map(|u| &u.index_name));
        for name in invalid {
            taken.remove(&table.name.sibling(name.clone()));
        }
    }
    let mut lines = Vec::new();
    for (name, step) in first_named_by.into_iter().filter(|(_, s)| never_started.contains(s.id.as_str())) {
        // A policy's name is its table's alone; any other name lives in the schema of the
        // step's own table, its first (a foreign-key step goes on to list the referenced ones).
        let policy = format!("POLICY {} ON ", quote_ident(name));
        let holder = if step.all_statements().any(|s| s.sql.contains(&policy)) {
            let on = step.tables.iter().filter_map(|t| catalog.table(t));
            match on.into_iter().find(|t| t.policies.iter().any(|p| p.name == name)) {
                Some(t) => format!("policy {name} on {}", t.name.display_plain()),
                None => continue,
            }
        } else {
            let Some(own) = step.tables.first() else { continue };
            match own.sibling(name) {
                q if taken.contains(&q) => q.display_plain(),
                _ => continue,
            }
        };
        lines.push(format!(
            "{holder} exists, but the plan creates it in step {}, which has not started: it was \
             made after planning (the step would take it for its own work); drop or rename it, \
             or plan again",
            step.id
        ));
    }
    lines
}

/// Whether `sql` names `name` (as `quote_ident` writes it) as a whole identifier.
fn mentions(sql: &str, name: &str) -> bool {
    let token = quote_ident(name);
    let part_of_identifier = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    sql.match_indices(&token).any(|(at, _)| {
        !sql[..at].chars().next_back().is_some_and(part_of_identifier)
            && !sql[at + token.len()..].chars().next().is_some_and(part_of_identifier)
    })
}

/// Tables the steps touch (for drift).
pub fn tables_of(steps: &[&Step]) -> BTreeSet<QualifiedName> {
    steps.iter().flat_map(|s| s.tables.iter().cloned()).collect()
}

/// Citus names a shard `<table>_<shard id>`; an online copy's old shard stays visible as a
/// table until Citus's deferred cleanup drops it (stage 9 runs the cleanup itself, but a run
/// killed in between leaves one). Not drift in a plan that distributes.
fn citus_shard_name(name: &QualifiedName, planned: &BTreeSet<&QualifiedName>) -> bool {
    let Some((base, id)) = name.name.rsplit_once('_') else { return false };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (planned.contains(&QualifiedName::new(&name.schema, base)))
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_name_is_mentioned_only_as_a_whole_identifier() {
        let sql = "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_tenant_id ON public.users (tenant_id, email);\n\
                   ALTER INDEX public.\"Users_key\" RENAME TO x;";
        assert!(mentions(sql, "users_email_key_tenant_id"));
        assert!(!mentions(sql, "users_email_key"), "a prefix of a longer name");
        assert!(!mentions(sql, "email_key_tenant_id"), "a suffix of a longer name");
        assert!(mentions(sql, "Users_key"), "quoted as quote_ident writes it");
        assert!(!mentions(sql, "users_key"));
    }
}
