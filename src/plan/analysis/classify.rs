//! Which tables get the tenant column (scoped) and which are shared, and the order their roots
//! are converted in: parents before children by foreign keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Findings, Scope};
use crate::catalog::Catalog;
use crate::plan::model::{PlanOptions, Severity, TenantSpec};
use crate::sql::QualifiedName;

pub(super) fn classify<'a>(
    catalog: &'a Catalog,
    options: &'a PlanOptions,
    tenant: TenantSpec,
    pg15: bool,
    findings: &mut Findings,
) -> Scope<'a> {
    let scoped = scoped_tables(catalog, options, &tenant, findings);
    let mut scope = Scope { catalog, options, tenant, pg15, scoped, roots: Vec::new() };
    scope.roots = foreign_key_order(&root_parents(&scope));
    scope
}

fn scoped_tables(
    catalog: &Catalog,
    options: &PlanOptions,
    tenant: &TenantSpec,
    findings: &mut Findings,
) -> BTreeSet<QualifiedName> {
    let excluded: BTreeSet<QualifiedName> =
        options.exclude.iter().map(|e| QualifiedName::parse_plain(e, &options.schemas[0])).collect();
    for name in &excluded {
        if catalog.table(name).is_none() {
            findings.add(
                Severity::Warning,
                "exclude-unknown",
                name.display_plain(),
                "--exclude names a table that does not exist in the chosen schemas",
            );
        }
    }
    let mut scoped = BTreeSet::new();
    for table in &catalog.tables {
        if table.name == tenant.table {
            continue;
        }
        let root = catalog.partition_root(&table.name).clone();
        if catalog.table(&root).is_none() {
            findings.add(
                Severity::Warning,
                "partition-outside-schemas",
                table.name.display_plain(),
                "partition of a table outside the chosen schemas: left alone",
            );
            continue;
        }
        if excluded.contains(&root) {
            continue;
        }
        if let Some(extension) = &catalog.table(&root).and_then(|t| t.extension.clone()) {
            findings.add(
                Severity::Info,
                "extension-table",
                table.name.display_plain(),
                format!(
                    "belongs to the extension {extension}: shared by every tenant and never converted \
                     (the extension owns its rows and reads them without a tenant)"
                ),
            );
            continue;
        }
        // No foreign key in or out: a table of that name that the application's data
        // references is the application's own, and converted.
        if let Some(tool) = crate::plan::migration_tool(&table.name.name).filter(|_| {
            table.name == root
                && table.foreign_keys.is_empty()
                && !catalog.tables.iter().any(|t| t.foreign_keys.iter().any(|f| f.referenced_table == root))
        }) {
            findings.add(
                Severity::Info,
                "migration-table",
                table.name.display_plain(),
                format!(
                    "the migration bookkeeping table of {tool}: shared by every tenant and never \
                     converted (the tool reads it without a tenant; under row-level security it \
                     would find no migration and run them all again)"
                ),
            );
            continue;
        }
        if let Some(queue) = crate::plan::job_queue(&table.name.name).filter(|_| table.name == root) {
            // Converted like the rest: its jobs carry tenants' data, so sharing it is the
            // operator's choice, not ours.
            findings.add(
                Severity::Warning,
                "job-queue",
                table.name.display_plain(),
                format!(
                    "a table of the {queue} job queue: converted like the others, but its workers \
                     fetch jobs without a tenant, so once row-level security is on (stage 8) they \
                     would find none and jobs would stop running; run the workers as a role with \
                     BYPASSRLS, or --exclude it to share it (every tenant's job arguments then \
                     stay readable by the application's role)"
                ),
            );
        }
        if !table.inherits_from.is_empty() {
            findings.add(
                Severity::Error,
                "legacy-inheritance",
                table.name.display_plain(),
                "inherits from another table (not partitioning); tenantize cannot convert \
                 inheritance trees: --exclude it or convert it to partitioning first",
            );
            continue;
        }
        scoped.insert(table.name.clone());
    }
    scoped
}

/// Per scoped root, the other scoped roots its tables (partitions included) reference.
fn root_parents(scope: &Scope) -> BTreeMap<QualifiedName, BTreeSet<QualifiedName>> {
    let catalog = scope.catalog;
    let mut parents_of: BTreeMap<QualifiedName, BTreeSet<QualifiedName>> = scope
        .scoped
        .iter()
        .filter(|n| !scope.table(n).is_partition())
        .map(|r| (r.clone(), BTreeSet::new()))
        .collect();
    for name in &scope.scoped {
        let child_root = catalog.partition_root(name).clone();
        for fk in &scope.table(name).foreign_keys {
            if !scope.is_scoped(&fk.referenced_table) {
                continue;
            }
            let parent_root = catalog.partition_root(&fk.referenced_table).clone();
            if parent_root != child_root
                && let Some(set) = parents_of.get_mut(&child_root)
            {
                set.insert(parent_root);
            }
        }
    }
    parents_of
}

/// Roots ordered parents first. Tables in a foreign-key cycle form one group (strongly
/// connected component) ordered by name; groups come in dependency order, the smallest name
/// first among those ready, so the order is deterministic and readable.
fn foreign_key_order(parents_of: &BTreeMap<QualifiedName, BTreeSet<QualifiedName>>) -> Vec<QualifiedName> {
    let names: Vec<&QualifiedName> = parents_of.keys().collect();
    let index: HashMap<&QualifiedName, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> =
        names.iter().map(|n| parents_of[*n].iter().filter_map(|p| index.get(p).copied()).collect()).collect();
    let (component, components) = strongly_connected_components(&edges);
    order_components(&names, &edges, &component, components)
}

/// Tarjan's algorithm, iteratively (thousands of tables must not exhaust the stack): the
/// component of every node, and the number of components.
fn strongly_connected_components(edges: &[Vec<usize>]) -> (Vec<usize>, usize) {
    let count = edges.len();
    let mut component = vec![usize::MAX; count];
    let mut low = vec![0usize; count];
    let mut order_of = vec![usize::MAX; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next_order = 0;
    let mut components = 0;
    for start in 0..count {
        if order_of[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        order_of[start] = next_order;
        low[start] = next_order;
        next_order += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some((node, edge)) = work.pop() {
            if edge < edges[node].len() {
                work.push((node, edge + 1));
                let next = edges[node][edge];
                if order_of[next] == usize::MAX {
                    order_of[next] = next_order;
                    low[next] = next_order;
                    next_order += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(order_of[next]);
                }
                continue;
            }
            if low[node] == order_of[node] {
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component[member] = components;
                    if member == node {
                        break;
                    }
                }
                components += 1;
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
        }
    }
    (component, components)
}

/// Kahn's algorithm over the components: a component is ready when every parent outside it
/// is placed; among ready ones the smallest member name goes first.
fn order_components(
    names: &[&QualifiedName],
    edges: &[Vec<usize>],
    component: &[usize],
    components: usize,
) -> Vec<QualifiedName> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); components];
    for (node, &c) in component.iter().enumerate() {
        members[c].push(node);
    }
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    let mut children: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    for (node, parents) in edges.iter().enumerate() {
        for &parent in parents {
            let (c, p) = (component[node], component[parent]);
            if c != p {
                waiting_on[c].insert(p);
                children[p].insert(c);
            }
        }
    }
    let first_name = |c: usize| members[c].iter().map(|&n| names[n]).min().expect("components are not empty");
    let mut ready: BTreeSet<(&QualifiedName, usize)> =
        (0..components).filter(|&c| waiting_on[c].is_empty()).map(|c| (first_name(c), c)).collect();
    let mut out = Vec::with_capacity(names.len());
    while let Some(&(name, c)) = ready.iter().next() {
        ready.remove(&(name, c));
        let mut group: Vec<&QualifiedName> = members[c].iter().map(|&n| names[n]).collect();
        group.sort();
        out.extend(group.into_iter().cloned());
        for &child in &children[c] {
            waiting_on[child].remove(&c);
            if waiting_on[child].is_empty() {
                ready.insert((first_name(child), child));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::catalog::Catalog;
    use crate::plan::test_support::*;
    use crate::plan::{Plan, PlanOptions, Severity, Stage};

    #[test]
    fn stage3_orders_tables_parents_before_children_by_foreign_keys() {
        let plan = plan_of(&saas(PG15).build());
        let expected = ["public.users", "public.projects", "public.issues", "public.issue_comments"];
        for (stage, prefix) in
            [(Stage::AddColumn, "3.add-column"), (Stage::NotNull, "5.not-null"), (Stage::Rls, "8.rls")]
        {
            let want: Vec<String> = expected.iter().map(|t| format!("{prefix}:{t}")).collect();
            assert_eq!(ids_in(&plan, stage), want, "stage {stage}");
        }
        // Stage 7's foreign-key steps follow the same order (issues' self-reference included).
        let fk_steps: Vec<&str> = plan
            .steps_in(Stage::Unique)
            .filter(|s| s.id.starts_with("7.foreign-keys:"))
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            fk_steps,
            [
                "7.foreign-keys:public.projects",
                "7.foreign-keys:public.issues",
                "7.foreign-keys:public.issue_comments"
            ]
        );
    }

    /// Builds in a thread so that a planner stuck in a loop fails the test instead of hanging it.
    fn plan_within_seconds(catalog: Catalog, seconds: u64) -> Plan {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(plan_of(&catalog));
        });
        rx.recv_timeout(Duration::from_secs(seconds)).expect("the planner finished (no endless loop)")
    }

    #[test]
    fn stage3_breaks_foreign_key_cycles_and_lists_every_table_once() {
        // accounts <- teams <-> members (a cycle), members also references itself (mentor_id).
        let catalog = CatalogBuilder::new(PG15)
            .table("public", "teams", |t| {
                t.pk(&["id"])
                    .col_nn("account_id", "bigint")
                    .col("lead_id", "bigint")
                    .fk(&["account_id"], "accounts", &["id"], 'c')
                    .fk(&["lead_id"], "members", &["id"], 'n')
            })
            .table("public", "members", |t| {
                t.pk(&["id"])
                    .col_nn("team_id", "bigint")
                    .col("mentor_id", "bigint")
                    .fk(&["team_id"], "teams", &["id"], 'c')
                    .fk(&["mentor_id"], "members", &["id"], 'n')
            })
            .table("public", "accounts", |t| t.pk(&["id"]).col("name", "text"))
            .build();
        let plan = plan_within_seconds(catalog, 10);
        let order = ids_in(&plan, Stage::AddColumn);
        assert_eq!(order.len(), 3, "{order:?}");
        let unique: BTreeSet<&&str> = order.iter().collect();
        assert_eq!(unique.len(), 3, "a table appears twice: {order:?}");
        assert_eq!(
            order[0], "3.add-column:public.accounts",
            "the parent outside the cycle comes first: {order:?}"
        );
        for stage in [Stage::NotNull, Stage::Rls] {
            assert_eq!(ids_in(&plan, stage).len(), 3);
        }
        // Both halves of the cycle still get tenant-consistent keys.
        step(&plan, "7.foreign-keys:public.teams");
        step(&plan, "7.foreign-keys:public.members");
        assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
    }

    #[test]
    fn stage3_orders_children_of_a_foreign_key_cycle_after_the_cycle() {
        // a_reports -> teams <-> members. a_reports is in no cycle: it must come after teams.
        let catalog = CatalogBuilder::new(PG15)
            .table("public", "teams", |t| {
                t.pk(&["id"]).col("lead_id", "bigint").fk(&["lead_id"], "members", &["id"], 'n')
            })
            .table("public", "members", |t| {
                t.pk(&["id"]).col_nn("team_id", "bigint").fk(&["team_id"], "teams", &["id"], 'c')
            })
            .table("public", "a_reports", |t| {
                t.pk(&["id"]).col_nn("team_id", "bigint").fk(&["team_id"], "teams", &["id"], 'c')
            })
            .build();
        let plan = plan_within_seconds(catalog, 10);
        let order = ids_in(&plan, Stage::AddColumn);
        let at = |t: &str| order.iter().position(|id| *id == format!("3.add-column:public.{t}")).unwrap();
        assert!(at("teams") < at("a_reports"), "a_reports (child of teams) comes before teams: {order:?}");
    }

    #[test]
    fn refuses_legacy_inheritance() {
        let catalog = saas(PG15)
            .table("public", "measurements", |t| t.pk(&["id"]).col("value", "numeric"))
            .table("public", "measurements_2019", |t| {
                t.col_nn("id", "bigint").col("value", "numeric").inherits(qn("public", "measurements"))
            })
            .build();
        let plan = plan_of(&catalog);
        assert_eq!(error_objects(&plan, "legacy-inheritance"), ["public.measurements_2019"]);
        let child = plan.tables.iter().find(|t| t.name == qn("public", "measurements_2019")).unwrap();
        assert!(!child.scoped);
    }

    #[test]
    fn extension_tables_are_shared_and_never_converted() {
        let catalog = saas(PG15)
            .table("public", "spatial_ref_sys", |t| {
                t.pk_named("spatial_ref_sys_pkey", &["srid"]).col_nn("srid", "integer").extension("postgis")
            })
            .table("public", "places", |t| {
                t.pk(&["id"]).col_nn("srid", "integer").fk(&["srid"], "spatial_ref_sys", &["srid"], 'r')
            })
            .build();
        let plan = plan_of(&catalog);
        let name = qn("public", "spatial_ref_sys");
        assert!(has_finding(&plan, Severity::Info, "extension-table", "public.spatial_ref_sys"));
        assert!(!plan.tables.iter().find(|t| t.name == name).unwrap().scoped);
        for step in &plan.steps {
            assert!(!step.tables.contains(&name), "{} touches {name}", step.id);
            for statement in step.all_statements() {
                assert!(!statement.on.contains(&name.to_string()), "{} locks {name}", step.id);
            }
        }
        assert!(plan.scoped_tables().any(|t| t.name == qn("public", "places")), "its users are converted");
    }

    #[test]
    fn migration_tool_tables_are_shared_unless_data_references_them() {
        let catalog = saas(PG15)
            .table("public", "schema_migrations", |t| t.pk(&["version"]).col_nn("version", "text"))
            .table("public", "alembic_version", |t| t.pk(&["version_num"]).col_nn("version_num", "text"))
            .table("public", "orders", |t| {
                t.pk(&["id"]).col_nn("version_num", "text").fk(
                    &["version_num"],
                    "alembic_version",
                    &["version_num"],
                    'r',
                )
            })
            .build();
        let plan = plan_of(&catalog);
        let shared = qn("public", "schema_migrations");
        assert!(has_finding(&plan, Severity::Info, "migration-table", "public.schema_migrations"));
        assert!(!plan.tables.iter().find(|t| t.name == shared).unwrap().scoped);
        assert!(plan.steps.iter().all(|s| !s.tables.contains(&shared)));
        // Referenced by the application's data: the application's own table, converted.
        assert!(plan.scoped_tables().any(|t| t.name == qn("public", "alembic_version")));
        assert!(!has_finding(&plan, Severity::Info, "migration-table", "public.alembic_version"));
    }

    #[test]
    fn job_queue_tables_are_converted_with_a_warning() {
        let catalog = saas(PG15)
            .table("public", "oban_jobs", |t| t.pk(&["id"]).col_nn("args", "jsonb"))
            .table("public", "jobs", |t| t.pk(&["id"]).col_nn("args", "jsonb"))
            .build();
        let plan = plan_of(&catalog);
        assert!(has_finding(&plan, Severity::Warning, "job-queue", "public.oban_jobs"));
        assert!(plan.scoped_tables().any(|t| t.name == qn("public", "oban_jobs")));
        // A generic name is the application's own.
        assert!(!has_finding(&plan, Severity::Warning, "job-queue", "public.jobs"));
    }

    #[test]
    fn excluded_tables_get_no_steps() {
        let (catalog, options) = with_shared_tables();
        let plan = plan_with(&catalog, &options);
        for shared in ["lookup", "audit_log"] {
            let name = qn("public", shared);
            for step in &plan.steps {
                assert!(!step.tables.contains(&name), "{} touches {name}", step.id);
                for statement in step.all_statements() {
                    assert!(!statement.on.contains(&name.to_string()), "{} locks {name}", step.id);
                    assert!(!statement.sql.contains(&name.to_string()), "{} mentions {name}", step.id);
                }
                assert!(!step.id.ends_with(&format!(":{}", name.display_plain())), "{}", step.id);
            }
            let table = plan.tables.iter().find(|t| t.name == name).expect("shared tables are listed");
            assert!(!table.scoped);
        }
        assert_eq!(plan.scoped_tables().count(), 4);
        // Without --exclude, the same table is converted.
        let plan = plan_of(&catalog);
        step(&plan, "3.add-column:public.lookup");
        // An --exclude naming no table is reported.
        let options = PlanOptions { exclude: vec!["public.nope".into()], ..PlanOptions::default() };
        assert!(has_finding(
            &plan_with(&catalog, &options),
            Severity::Warning,
            "exclude-unknown",
            "public.nope"
        ));
    }
}
