//! Stage 6: composite indexes that lead with the tenant column, built concurrently.

use super::index_part;
use crate::catalog::TableKind;
use crate::plan::analysis::{Analysis, PlannedIndex, Scope};
use crate::plan::ddl::{exempt, index_valid_check, stmt};
use crate::plan::machine::{names as names_of, state, transaction, transition};
use crate::plan::model::{LockMode, Part, Stage, Step};
use crate::plan::probe::{self, holds, not};
use crate::sql::{QualifiedName, ident_list, quote_ident};

/// One step per table with indexes to build, in table name order.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.indexes.iter().filter_map(|(table, planned)| step(&a.scope, table, planned)).collect()
}

fn step(s: &Scope, table_name: &QualifiedName, planned: &[PlannedIndex]) -> Option<Step> {
    if planned.is_empty() {
        return None;
    }
    let partitioned = s.table(table_name).kind == TableKind::Partitioned;
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for index in planned {
        let qualified = table_name.sibling(index.name.clone());
        if partitioned {
            parts.extend(partitioned_parts(s, table_name, index));
        } else {
            let unique = if index.unique { "UNIQUE " } else { "" };
            let sql = format!(
                "CREATE {unique}INDEX CONCURRENTLY {} ON {table_name} ({});\n",
                quote_ident(&index.name),
                ident_list(&index.columns)
            );
            parts.push(index_part::part(index.name.clone(), &qualified, table_name, sql));
        }
        checks.push(index_valid_check(&qualified));
    }
    let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
    Some(Step {
        id: format!("6.{}:{}", Stage::Indexes.name(), table_name),
        stage: Stage::Indexes,
        title: format!("Build {} on {}", names.join(", "), table_name.display_plain()),
        note: "Built CONCURRENTLY: writes go on. An index left INVALID by an interrupted build \
               is dropped and rebuilt when the step resumes. UNIQUE (tenant, key) is what \
               tenant-consistent foreign keys reference in stage 7."
            .into(),
        tables: vec![table_name.clone()],
        rows_estimate: s.table_rows(table_name),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    })
}

/// PostgreSQL cannot build a partitioned index concurrently: each leaf's index is built
/// concurrently first (a part each), then one short transaction creates the index ON ONLY the
/// parent and every intermediate table and attaches the leaves' bottom up, which makes it
/// valid. Undoing it drops the parent's index, which drops the attached ones with it.
fn partitioned_parts(s: &Scope, table_name: &QualifiedName, index: &PlannedIndex) -> Vec<Part> {
    let unique = if index.unique { "UNIQUE " } else { "" };
    let columns = ident_list(&index.columns);
    let qualified = table_name.sibling(index.name.clone());
    let descendants = s.catalog.partition_descendants(table_name);
    let names = &index.partition_names;
    let mut parts = Vec::new();
    for leaf in descendants.iter().filter(|c| c.kind == TableKind::Ordinary) {
        let leaf_index = leaf.name.sibling(names[&leaf.name].clone());
        let sql = format!(
            "CREATE {unique}INDEX CONCURRENTLY {} ON {} ({columns});\n",
            quote_ident(&leaf_index.name),
            leaf.name
        );
        parts.push(index_part::part(leaf_index.name.clone(), &leaf_index, &leaf.name, sql));
    }
    let on_only = |name: &str, table: &QualifiedName| {
        format!(
            "{}CREATE {unique}INDEX IF NOT EXISTS {} ON ONLY {table} ({columns});\n",
            exempt(
                "require-concurrent-index-creation",
                "ON ONLY: an empty parent index, instant; the partitions' are built concurrently above"
            ),
            quote_ident(name)
        )
    };
    let mut assemble = vec![stmt(LockMode::Share, &[table_name], on_only(&index.name, table_name))];
    for child in descendants.iter().filter(|c| c.kind == TableKind::Partitioned) {
        assemble.push(stmt(LockMode::Share, &[&child.name], on_only(&names[&child.name], &child.name)));
    }
    for child in descendants.iter().rev() {
        let child_index = child.name.sibling(names[&child.name].clone());
        let parent = child.partition_of.as_ref().expect("descendants are partitions");
        let parent_index =
            if parent == table_name { qualified.clone() } else { parent.sibling(names[parent].clone()) };
        assemble.push(stmt(
            LockMode::ShareUpdateExclusive,
            &[parent, &child.name],
            format!("ALTER INDEX {parent_index} ATTACH PARTITION {child_index};\n"),
        ));
    }
    let drop = stmt(LockMode::AccessExclusive, &[table_name], format!("DROP INDEX IF EXISTS {qualified};\n"));
    parts.push(Part {
        name: format!("{} on {} and its partitions", index.name, table_name.display_plain()),
        states: vec![
            state("assembled", holds(probe::index_valid(&qualified))),
            // Not a state tenantize leaves (one transaction creates and attaches): a hand edit's.
            state("incomplete", holds(probe::relation_exists(&qualified))),
            state("absent", holds(not(probe::relation_exists(&qualified)))),
        ],
        done: names_of(&["assembled"]),
        undone: names_of(&["absent"]),
        rollback_from: None,
        transitions: vec![
            transaction("absent", "assembled", assemble),
            transition("assembled", "absent", drop.clone()),
            transition("incomplete", "absent", drop),
        ],
        guards: Vec::new(),
    });
    parts
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{Severity, Stage, StatementKind};

    #[test]
    fn stage6_indexes_foreign_keys_and_referenced_keys_with_the_tenant_column() {
        let catalog =
            saas(PG15).table("public", "app_settings", |t| t.pk(&["id"]).col("value", "jsonb")).build();
        let plan = plan_with(&catalog, &indexing_foreign_keys());
        let sql_of = |table: &str| forward_sql(step(&plan, &format!("6.indexes:public.{table}")));

        // Referenced by three foreign keys on (id): one unique index.
        let users = step(&plan, "6.indexes:public.users");
        assert_eq!(users.forward().len(), 1, "{}", forward_sql(users));
        assert_eq!(
            code(&users.forward()[0].sql),
            "CREATE UNIQUE INDEX CONCURRENTLY users_tenant_id_id_key ON public.users (tenant_id, id);\n"
        );
        assert_eq!(users.forward()[0].kind, StatementKind::ConcurrentIndex);
        assert_eq!(users.forward()[0].index, Some(qn("public", "users_tenant_id_id_key")));
        assert!(!users.forward()[0].lock.blocks_writes());
        assert_eq!(rollback_sql(users), "DROP INDEX CONCURRENTLY IF EXISTS public.users_tenant_id_id_key;\n");

        let projects = sql_of("projects");
        offset(
            &projects,
            "CREATE INDEX CONCURRENTLY projects_owner_id_tenant_id_idx ON public.projects (owner_id, tenant_id);\n",
        );
        offset(
            &projects,
            "CREATE UNIQUE INDEX CONCURRENTLY projects_tenant_id_id_key ON public.projects (tenant_id, id);\n",
        );

        // issues: three foreign keys out, referenced by itself and by issue_comments.
        let issues = step(&plan, "6.indexes:public.issues");
        assert_eq!(
            forward_sql(issues),
            "CREATE UNIQUE INDEX CONCURRENTLY issues_tenant_id_id_key ON public.issues (tenant_id, id);\n\
             CREATE INDEX CONCURRENTLY issues_assignee_id_tenant_id_idx ON public.issues (assignee_id, tenant_id);\n\
             CREATE INDEX CONCURRENTLY issues_parent_id_tenant_id_idx ON public.issues (parent_id, tenant_id);\n"
        );
        // The tenant column leads the key index; the others put it last so the policy's
        // condition does not make the planner cost each of them for every query.
        assert!(issues.forward().iter().all(|s| s.kind == StatementKind::ConcurrentIndex));
        assert_eq!(issues.checks.len(), 3);
        // The application's own unique (project_id, number) serves the project_id key.
        let served = plan
            .findings
            .iter()
            .find(|f| f.code == "index-served" && f.object == "(project_id) on public.issues");
        assert!(served.is_some_and(|f| f.message.contains("existing index")), "{:?}", plan.findings);

        let comments = sql_of("issue_comments");
        offset(
            &comments,
            "CREATE INDEX CONCURRENTLY issue_comments_issue_id_tenant_id_idx ON public.issue_comments (issue_id, tenant_id);\n",
        );
        offset(
            &comments,
            "CREATE INDEX CONCURRENTLY issue_comments_tenant_id_author_id_idx ON public.issue_comments (tenant_id, author_id);\n",
        );
        assert!(!comments.contains("UNIQUE"), "nothing references issue_comments");

        // No foreign key in or out, no unique: still an index that leads with the tenant column.
        assert_eq!(
            sql_of("app_settings"),
            "CREATE INDEX CONCURRENTLY app_settings_tenant_id_idx ON public.app_settings (tenant_id);\n"
        );
    }

    #[test]
    fn stage6_by_default_indexes_no_foreign_key_the_application_left_unindexed() {
        let plan = plan_of(&saas(PG15).build());
        // issues keeps the key index its children's composite keys reference, and nothing for
        // (assignee_id) or (parent_id): the application has no index on either.
        assert_eq!(
            forward_sql(step(&plan, "6.indexes:public.issues")),
            "CREATE UNIQUE INDEX CONCURRENTLY issues_tenant_id_id_key ON public.issues (tenant_id, id);\n"
        );
        for object in ["(assignee_id) on public.issues", "(parent_id) on public.issues"] {
            assert!(has_finding(&plan, Severity::Info, "index-not-needed", object), "{:?}", plan.findings);
        }
        // The application's unique (project_id, number) still serves the project key.
        assert!(has_finding(&plan, Severity::Info, "index-served", "(project_id) on public.issues"));
        // Its plain (project_id) index is named as one an index-only scan loses after stage 8.
        let lost: Vec<&str> =
            plan.findings.iter().filter(|f| f.code == "index-only-scan").map(|f| f.object.as_str()).collect();
        assert_eq!(lost, ["issues_project_id_idx (project_id) on public.issues"]);
        let all = all_forward_sql(&plan);
        let indexed = |column: &str| all.lines().any(|l| l.contains("INDEX") && l.contains(column));
        assert!(!indexed("assignee_id") && !indexed("parent_id"), "{all}");
        // The composite foreign keys are planned all the same.
        offset(
            &all,
            "FOREIGN KEY (tenant_id, assignee_id) REFERENCES public.users (tenant_id, id) ON DELETE SET NULL",
        );
    }

    #[test]
    fn an_index_only_scan_finding_names_plain_column_indexes_only() {
        // An expression key rarely gave an index-only scan before the conversion: not named.
        let catalog = saas(PG15)
            .table("public", "tags", |t| {
                t.pk(&["id"])
                    .col_nn("name", "text")
                    .index("tags_name_idx", &["name"])
                    .expression_index("tags_lower_name_idx", &["lower(name)"])
            })
            .build();
        let plan = plan_of(&catalog);
        let lost: Vec<&str> = plan
            .findings
            .iter()
            .filter(|f| f.code == "index-only-scan" && f.object.ends_with("on public.tags"))
            .map(|f| f.object.as_str())
            .collect();
        assert_eq!(lost, ["tags_name_idx (name) on public.tags"]);
    }

    #[test]
    fn stage6_builds_no_index_that_a_scoped_unique_or_a_longer_index_serves() {
        // memberships: FK (team_id) and UNIQUE (team_id, user_id), which stage 7 rebuilds as
        // (tenant_id, team_id, user_id): (tenant_id, team_id) would be redundant. grants: FKs
        // (team_id) and (team_id, role) to two parents: (tenant_id, team_id) is a prefix of the other.
        let catalog = saas(PG15)
            .table("public", "teams", |t| t.pk(&["id"]).col("name", "text").unique(&["id", "name"]))
            .table("public", "memberships", |t| {
                t.pk(&["id"])
                    .col_nn("team_id", "bigint")
                    .col_nn("user_id", "bigint")
                    .unique(&["team_id", "user_id"])
                    .fk(&["team_id"], "teams", &["id"], 'c')
            })
            .table("public", "team_roles", |t| t.pk(&["team_id", "role"]).col_nn("role", "text"))
            .table("public", "grants", |t| {
                t.pk(&["id"])
                    .col_nn("team_id", "bigint")
                    .col_nn("role", "text")
                    .fk(&["team_id"], "teams", &["id"], 'c')
                    .fk(&["team_id", "role"], "team_roles", &["team_id", "role"], 'c')
            })
            .build();
        let plan = plan_with(&catalog, &indexing_foreign_keys());
        assert!(plan.step("6.indexes:public.memberships").is_none(), "{:?}", ids_in(&plan, Stage::Indexes));
        assert!(has_finding(&plan, Severity::Info, "index-served", "(team_id) on public.memberships"));
        assert!(all_forward_sql(&plan).contains("(tenant_id, team_id, user_id)"), "the unique serves it");
        let grants = forward_sql(step(&plan, "6.indexes:public.grants"));
        assert_eq!(
            grants,
            "CREATE INDEX CONCURRENTLY grants_tenant_id_team_id_role_idx ON public.grants (tenant_id, team_id, role);\n"
        );
        let count =
            plan.findings.iter().find(|f| f.code == "index-count").expect("the index count is reported");
        assert!(
            count.message.contains(" before, ") && count.message.ends_with(" after"),
            "{}",
            count.message
        );
    }

    #[test]
    fn stage6_builds_one_index_per_column_list() {
        // user_profiles' own FK (user_id) -> users and its primary key (user_id), referenced by
        // profile_badges, ask for the same columns: the unique index serves both.
        // profile_badges has two foreign keys over the same column.
        let catalog = saas(PG15)
            .table("public", "user_profiles", |t| {
                t.pk(&["user_id"]).col("bio", "text").fk(&["user_id"], "users", &["id"], 'c')
            })
            .table("public", "profile_badges", |t| {
                t.pk(&["id"])
                    .col_nn("user_id", "bigint")
                    .fk(&["user_id"], "user_profiles", &["user_id"], 'c')
                    .fk_named("profile_badges_owner_fkey", &["user_id"], qn("public", "users"), &["id"], 'c')
            })
            .build();
        let plan = plan_with(&catalog, &indexing_foreign_keys());
        // user_profiles' natural key is scoped by stage 7, built before the foreign keys: it
        // serves both, and stage 6 builds nothing on the table.
        assert!(plan.step("6.indexes:public.user_profiles").is_none(), "{:?}", ids_in(&plan, Stage::Indexes));
        assert!(
            forward_sql(step(&plan, "7.unique-build:public.user_profiles"))
                .contains("ON public.user_profiles USING btree (tenant_id, user_id)")
        );
        let badges = step(&plan, "6.indexes:public.profile_badges");
        assert_eq!(
            forward_sql(badges),
            "CREATE INDEX CONCURRENTLY profile_badges_tenant_id_user_id_idx ON public.profile_badges (tenant_id, user_id);\n"
        );
        // Both badge FKs become tenant-consistent through the one parent index each.
        let fks = forward_sql(step(&plan, "7.foreign-keys:public.profile_badges"));
        offset(&fks, "REFERENCES public.user_profiles (tenant_id, user_id) ON DELETE CASCADE NOT VALID");
        offset(&fks, "REFERENCES public.users (tenant_id, id) ON DELETE CASCADE NOT VALID");
    }

    #[test]
    fn stage6_indexes_partitioned_tables_per_leaf_concurrently_then_on_only_and_attach_together() {
        let plan = plan_with(&with_events(saas(PG15)).build(), &indexing_foreign_keys());
        let events = step(&plan, "6.indexes:public.events");
        let sql = forward_sql(events);
        let parent = offset(
            &sql,
            "CREATE INDEX IF NOT EXISTS events_tenant_id_user_id_idx ON ONLY public.events (tenant_id, user_id);\n",
        );
        let middle = offset(
            &sql,
            "CREATE INDEX IF NOT EXISTS events_2025_tenant_id_user_id_idx ON ONLY public.events_2025 (tenant_id, user_id);\n",
        );
        for (leaf, parent_index) in [
            ("events_2024", "events_tenant_id_user_id_idx"),
            ("events_2025_p0", "events_2025_tenant_id_user_id_idx"),
            ("events_2025_p1", "events_2025_tenant_id_user_id_idx"),
        ] {
            let index = format!("{leaf}_tenant_id_user_id_idx");
            let build = offset(
                &sql,
                &format!("CREATE INDEX CONCURRENTLY {index} ON public.{leaf} (tenant_id, user_id);\n"),
            );
            let attach = offset(
                &sql,
                &format!("ALTER INDEX public.{parent_index} ATTACH PARTITION public.{index};\n"),
            );
            // Leaves first, concurrently; then one transaction creates the parents' ON ONLY and
            // attaches (so the parent index is never left half-assembled).
            assert!(build < parent && build < middle && parent < attach && middle < attach, "{sql}");
            let statement = &events.forward()[statement_index(events, &format!("CONCURRENTLY {index}"))];
            assert_eq!(statement.kind, StatementKind::ConcurrentIndex);
            assert_eq!(statement.index, Some(qn("public", &index)));
        }
        // The intermediate index is attached after its own leaves.
        let middle_attach = offset(
            &sql,
            "ALTER INDEX public.events_tenant_id_user_id_idx ATTACH PARTITION public.events_2025_tenant_id_user_id_idx;\n",
        );
        assert!(middle_attach > offset(&sql, "ATTACH PARTITION public.events_2025_p0_tenant_id_user_id_idx"));
        assert!(middle_attach > offset(&sql, "ATTACH PARTITION public.events_2025_p1_tenant_id_user_id_idx"));
        assert!(
            !sql.contains("CONCURRENTLY events_tenant_id_user_id_idx"),
            "no concurrent build on a partitioned table"
        );
        assert!(!sql.contains("ON public.events_2025 "), "no concurrent build on an intermediate table");
        // Partitions get no steps of their own.
        for id in ids(&plan) {
            assert!(!id.contains("public.events_"), "partition step {id}");
        }
    }
}
