//! Pure tests of the planner: synthetic catalogs in, plans out. No database, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use super::file::{self, PlanFileError};
use super::test_support::*;
use super::{
    BackfillKey, BackfillMode, KeyType, LockMode, Plan, PlanError, PlanOptions, Severity, Stage,
    StatementKind, TimeoutProfile, backfill_sql, build,
};
use crate::catalog::{Catalog, Column};
use crate::sql::{MAX_IDENTIFIER_BYTES, bounded_name, quote_ident};

// ---------------------------------------------------------------------------------------------
// 1. Stage order and step order
// ---------------------------------------------------------------------------------------------

#[test]
fn steps_run_in_stage_order_and_every_stage_is_present() {
    let plan = plan_of(&with_events(saas(PG15)).build());
    assert!(plan.errors().next().is_none(), "unexpected errors: {:?}", findings(&plan, Severity::Error));
    let stages: Vec<u8> = plan.steps.iter().map(|s| s.stage.number()).collect();
    let mut sorted = stages.clone();
    sorted.sort();
    assert_eq!(stages, sorted, "steps out of stage order: {:#?}", ids(&plan));
    let present: BTreeSet<u8> = stages.into_iter().collect();
    assert_eq!(present, (1..=8).collect::<BTreeSet<u8>>());
    assert_eq!(ids_in(&plan, Stage::TenantTable), ["1.tenant-table"]);
    assert_eq!(ids_in(&plan, Stage::DefaultTenant), ["2.default-tenant"]);
    for step in &plan.steps {
        assert!(
            step.id.starts_with(&format!("{}.", step.stage.number())),
            "{} in stage {}",
            step.id,
            step.stage
        );
    }
}

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

// ---------------------------------------------------------------------------------------------
// 2. Checksums
// ---------------------------------------------------------------------------------------------

fn checksum_fixture() -> Catalog {
    with_events(saas(PG15))
        .table("public", "audit_trail", |t| {
            t.col("happened_at", "timestamp with time zone").col("what", "text")
        })
        .view("public", "user_directory", |v| v.owned_by_superuser().reads("public", "users"))
        .build()
}

#[test]
fn every_step_is_hashed_and_the_plan_verifies() {
    for options in [PlanOptions::default(), batched()] {
        let plan = plan_with(&checksum_fixture(), &options);
        assert!(!plan.plan_hash.is_empty());
        for step in &plan.steps {
            assert_eq!(step.hash.len(), 64, "step {} hash {:?}", step.id, step.hash);
        }
        let unique: BTreeSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(unique.len(), plan.steps.len(), "duplicate step ids");
        file::verify_checksums(&plan, "x").expect("a fresh plan verifies");
        // And it survives the plan file.
        let reread = file::parse(&file::to_toml(&plan), "x").expect("the plan file parses");
        assert_eq!(reread, plan);
        file::verify_checksums(&reread, "x").expect("a re-read plan verifies");
    }
}

/// Change one token: the first word gets a letter.
fn edit_one_token(sql: &mut String) {
    let at = sql.find(char::is_whitespace).unwrap_or(sql.len());
    sql.insert(at, 'X');
}

#[test]
fn editing_one_token_of_any_statement_breaks_its_step_checksum() {
    for options in [PlanOptions::default(), batched()] {
        let plan = plan_with(&checksum_fixture(), &options);
        let mut edits = 0;
        for (i, step) in plan.steps.iter().enumerate() {
            let expect_tampered = |edited: &Plan, what: &str| match file::verify_checksums(edited, "x") {
                Err(PlanFileError::StepTampered { step_id, .. }) => assert_eq!(step_id, step.id, "{what}"),
                other => panic!("editing {what} of {} gave {other:?}", step.id),
            };
            for j in 0..step.forward.len() {
                let mut edited = plan.clone();
                edit_one_token(&mut edited.steps[i].forward[j].sql);
                expect_tampered(&edited, &format!("forward statement {j}"));
                edits += 1;
            }
            for j in 0..step.rollback.len() {
                let mut edited = plan.clone();
                edit_one_token(&mut edited.steps[i].rollback[j].sql);
                expect_tampered(&edited, &format!("rollback statement {j}"));
                edits += 1;
            }
            for j in 0..step.checks.len() {
                let mut edited = plan.clone();
                edit_one_token(&mut edited.steps[i].checks[j].sql);
                expect_tampered(&edited, &format!("check {j}"));
            }
            for j in 0..step.rollback_guards.len() {
                let mut edited = plan.clone();
                edit_one_token(&mut edited.steps[i].rollback_guards[j].sql);
                expect_tampered(&edited, &format!("guard {j}"));
            }
            if step.backfill.is_some() {
                let mut edited = plan.clone();
                edited.steps[i].backfill.as_mut().unwrap().value_sql = "'2'::uuid".into();
                expect_tampered(&edited, "the backfill value");
            }
        }
        assert!(edits > 50, "the fixture has statements to edit ({edits})");
    }
}

#[test]
fn whitespace_only_edits_keep_checksums() {
    let plan = plan_of(&checksum_fixture());
    let mut edited = plan.clone();
    for step in &mut edited.steps {
        for statement in step.forward.iter_mut().chain(step.rollback.iter_mut()) {
            statement.sql = format!("\r\n{}  \r\n\r\n", statement.sql.replace('\n', "   \r\n"));
        }
        for check in &mut step.checks {
            check.sql = format!("{} \t", check.sql);
        }
    }
    assert_ne!(edited, plan, "the edit changed the text");
    file::verify_checksums(&edited, "x").expect("layout changes keep every checksum");
}

#[test]
fn plan_hash_is_deterministic_and_ignores_row_estimates() {
    let catalog = checksum_fixture();
    let first = plan_of(&catalog);
    let again = build(&catalog, &PlanOptions::default(), "2030-12-31T23:59:59Z").unwrap();
    assert_eq!(first.plan_hash, again.plan_hash);
    assert_eq!(first.steps, again.steps);
    assert_eq!(file::canonical_text(&first), file::canonical_text(&again));

    let mut grown = catalog.clone();
    for (n, table) in grown.tables.iter_mut().enumerate() {
        table.row_estimate = 7_000_000 + n as i64;
        table.total_bytes = 9_000_000_000 + n as i64;
    }
    let later = plan_of(&grown);
    assert_ne!(later.tables, first.tables, "row estimates are recorded in the plan");
    assert_ne!(file::to_toml(&later), file::to_toml(&first));
    assert_eq!(later.plan_hash, first.plan_hash, "row estimates changed the plan hash");
    assert_eq!(file::canonical_text(&later), file::canonical_text(&first));
    file::verify_checksums(&later, "x").unwrap();

    // A change of schema, on the other hand, is a different plan.
    let mut changed = catalog.clone();
    changed.tables.iter_mut().find(|t| t.name == qn("public", "users")).unwrap().columns.push(Column {
        name: "nickname".into(),
        data_type: "text".into(),
        not_null: false,
        default: None,
        identity: None,
        generated: None,
    });
    assert_ne!(plan_of(&changed).plan_hash, first.plan_hash);
}

// ---------------------------------------------------------------------------------------------
// 3. Stage 3 and 4: the column and its values
// ---------------------------------------------------------------------------------------------

#[test]
fn stage3_fast_path_adds_the_column_with_a_constant_default_and_a_not_valid_tenant_fk() {
    let catalog = with_events(saas(PG15)).build();
    let plan = plan_of(&catalog);
    assert_eq!(plan.tenant.backfill, BackfillMode::Fast);
    // One step per root: partitions are converted with their root.
    assert_eq!(
        ids_in(&plan, Stage::AddColumn),
        [
            "3.add-column:public.users",
            "3.add-column:public.events",
            "3.add-column:public.projects",
            "3.add-column:public.issues",
            "3.add-column:public.issue_comments"
        ]
    );
    let users = step(&plan, "3.add-column:public.users");
    assert!(users.atomic && users.rollback_atomic);
    assert_eq!(users.forward.len(), 2);
    assert_eq!(
        code(&users.forward[0].sql),
        format!("ALTER TABLE public.users ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n")
    );
    assert_eq!(users.forward[0].lock, LockMode::AccessExclusive);
    assert_eq!(
        code(&users.forward[1].sql),
        "ALTER TABLE public.users ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) \
         REFERENCES public.tenants (id) NOT VALID;\n"
    );
    assert_eq!(rollback_sql(users), "ALTER TABLE public.users DROP COLUMN IF EXISTS tenant_id;\n");
    assert_eq!(users.rollback_guards.len(), 1);
    assert!(users.rollback_guards[0].forceable);
    assert_eq!(
        users.rollback_guards[0].sql,
        format!("SELECT count(*) FROM public.users WHERE tenant_id <> {DEFAULT_TENANT}")
    );
    // The fast path writes nothing in stage 4: a step that only proves it.
    let fill = step(&plan, "4.backfill:public.users");
    assert!(fill.forward.is_empty() && fill.backfill.is_none());
    assert_eq!(fill.checks[0].sql, "SELECT count(*) FROM public.users WHERE tenant_id IS NULL");
    assert_eq!(fill.checks[0].expect, 0);

    // A partitioned root: the column on the root, a NOT VALID tenant FK on every leaf.
    let events = forward_sql(step(&plan, "3.add-column:public.events"));
    offset(
        &events,
        &format!("ALTER TABLE public.events ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n"),
    );
    for leaf in ["events_2024", "events_2025_p0", "events_2025_p1"] {
        offset(
            &events,
            &format!(
                "ALTER TABLE public.{leaf} ADD CONSTRAINT {leaf}_tenant_id_fkey FOREIGN KEY (tenant_id) \
                 REFERENCES public.tenants (id) NOT VALID;\n"
            ),
        );
    }
    assert!(
        !events.contains("ALTER TABLE public.events ADD CONSTRAINT"),
        "no NOT VALID FK on a partitioned table"
    );
    assert!(!events.contains("public.events_2025 ADD CONSTRAINT"), "nor on an intermediate one");
}

#[test]
fn stage3_batched_adds_an_empty_column_then_sets_the_default() {
    let plan = plan_with(&saas(PG15).build(), &batched());
    let users = forward_sql(step(&plan, "3.add-column:public.users"));
    let add = offset(&users, "ALTER TABLE public.users ADD COLUMN tenant_id uuid;\n");
    let default = offset(
        &users,
        &format!("ALTER TABLE public.users ALTER COLUMN tenant_id SET DEFAULT {DEFAULT_TENANT};\n"),
    );
    assert!(add < default);
    assert!(
        !users.contains("ADD COLUMN tenant_id uuid DEFAULT"),
        "existing rows must not get the value here"
    );
    offset(&users, "REFERENCES public.tenants (id) NOT VALID;\n");
}

#[test]
fn stage4_batched_backfill_is_keyed_on_the_primary_key_or_ctid() {
    let catalog = with_events(saas(PG15))
        .table("public", "memberships", |t| {
            t.col_nn("org_id", "uuid").col_nn("seq", "integer").col("role", "text").pk(&["org_id", "seq"])
        })
        .table("public", "audit_trail", |t| {
            t.col("happened_at", "timestamp with time zone").col("what", "text")
        })
        .build();
    let plan = plan_with(&catalog, &PlanOptions { batch_rows: 2000, ..batched() });
    assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
    let key = |id: &str| {
        step(&plan, id).backfill.as_ref().unwrap_or_else(|| panic!("{id} has no backfill")).key.clone()
    };
    assert_eq!(
        key("4.backfill:public.users"),
        BackfillKey::Keyset { columns: vec!["id".into()], types: vec!["bigint".into()] }
    );
    assert_eq!(
        key("4.backfill:public.memberships"),
        BackfillKey::Keyset {
            columns: vec!["org_id".into(), "seq".into()],
            types: vec!["uuid".into(), "integer".into()]
        }
    );
    assert_eq!(key("4.backfill:public.audit_trail"), BackfillKey::Ctid);

    let users = step(&plan, "4.backfill:public.users");
    assert!(!users.atomic);
    assert_eq!(users.forward.len(), 1);
    let statement = &users.forward[0];
    assert_eq!(statement.kind, StatementKind::Batch);
    assert_eq!(statement.lock, LockMode::RowExclusive);
    let backfill = users.backfill.as_ref().unwrap();
    assert_eq!(statement.sql, backfill_sql(backfill).update_next);
    assert_eq!(backfill.value_sql, DEFAULT_TENANT);
    assert_eq!(backfill.column, "tenant_id");
    assert_eq!(backfill.batch_rows, 2000);
    assert!(!backfill.suppress_triggers);

    // A partitioned root is filled leaf by leaf.
    let stage4 = ids_in(&plan, Stage::Backfill);
    for leaf in ["events_2024", "events_2025_p0", "events_2025_p1"] {
        assert!(stage4.contains(&format!("4.backfill:public.{leaf}").as_str()), "{stage4:?}");
    }
    assert!(!stage4.contains(&"4.backfill:public.events"), "{stage4:?}");
    assert!(!stage4.contains(&"4.backfill:public.events_2025"), "{stage4:?}");
    assert_eq!(
        key("4.backfill:public.events_2024"),
        BackfillKey::Keyset {
            columns: vec!["id".into(), "created_at".into()],
            types: vec!["bigint".into(), "timestamp with time zone".into()]
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Stage 5: NOT NULL
// ---------------------------------------------------------------------------------------------

#[test]
fn stage5_checks_not_valid_then_validates_then_sets_not_null_then_drops_the_check() {
    let plan = plan_of(&with_events(saas(PG15)).build());
    let users = step(&plan, "5.not-null:public.users");
    assert!(!users.atomic, "each statement commits on its own");
    let check = "users_tenant_id_not_null";
    let add =
        statement_index(users, &format!("ADD CONSTRAINT {check} CHECK (tenant_id IS NOT NULL) NOT VALID"));
    let validate = statement_index(users, &format!("ALTER TABLE public.users VALIDATE CONSTRAINT {check};"));
    let set = statement_index(users, "ALTER TABLE public.users ALTER COLUMN tenant_id SET NOT NULL;");
    let drop = statement_index(users, &format!("ALTER TABLE public.users DROP CONSTRAINT {check};"));
    assert!(add < validate && validate < set && set <= drop, "{}", forward_sql(users));
    let last = &users.forward[set].sql;
    assert!(offset(last, "SET NOT NULL") < offset(last, "DROP CONSTRAINT"));
    // VALIDATE lets writes go on.
    assert_eq!(users.forward[validate].lock, LockMode::ShareUpdateExclusive);
    assert_eq!(users.forward[validate].profile, TimeoutProfile::Long);
    // The tenant FK is validated here, before RLS is forced.
    let fk = statement_index(users, "ALTER TABLE public.users VALIDATE CONSTRAINT users_tenant_id_fkey;");
    assert!(!users.forward[fk].lock.blocks_writes());
    assert!(
        users
            .checks
            .iter()
            .any(|c| c.sql.contains("convalidated") && c.sql.contains("'users_tenant_id_fkey'"))
    );
    let rollback = rollback_sql(users);
    offset(&rollback, "ALTER COLUMN tenant_id DROP NOT NULL");

    // Partitioned root: leaf keys validated, then the parent key attached (validated, no NOT VALID).
    let events = step(&plan, "5.not-null:public.events");
    let sql = forward_sql(events);
    let leaf = offset(&sql, "ALTER TABLE public.events_2024 VALIDATE CONSTRAINT events_2024_tenant_id_fkey;");
    let parent = offset(
        &sql,
        "ALTER TABLE public.events ADD CONSTRAINT events_tenant_id_fkey FOREIGN KEY (tenant_id) \
         REFERENCES public.tenants (id);\n",
    );
    assert!(leaf < parent);
}

// ---------------------------------------------------------------------------------------------
// 5. Stage 6: composite indexes
// ---------------------------------------------------------------------------------------------

#[test]
fn stage6_indexes_foreign_keys_and_referenced_keys_with_the_tenant_column_in_front() {
    let catalog = saas(PG15).table("public", "app_settings", |t| t.pk(&["id"]).col("value", "jsonb")).build();
    let plan = plan_of(&catalog);
    let sql_of = |table: &str| forward_sql(step(&plan, &format!("6.indexes:public.{table}")));

    // Referenced by three foreign keys on (id): one unique index.
    let users = step(&plan, "6.indexes:public.users");
    assert_eq!(users.forward.len(), 1, "{}", forward_sql(users));
    assert_eq!(
        code(&users.forward[0].sql),
        "CREATE UNIQUE INDEX CONCURRENTLY users_tenant_id_id_key ON public.users (tenant_id, id);\n"
    );
    assert_eq!(users.forward[0].kind, StatementKind::ConcurrentIndex);
    assert_eq!(users.forward[0].index, Some(qn("public", "users_tenant_id_id_key")));
    assert!(!users.forward[0].lock.blocks_writes());
    assert!(!users.atomic);
    assert_eq!(rollback_sql(users), "DROP INDEX CONCURRENTLY IF EXISTS public.users_tenant_id_id_key;\n");

    let projects = sql_of("projects");
    offset(
        &projects,
        "CREATE INDEX CONCURRENTLY projects_tenant_id_owner_id_idx ON public.projects (tenant_id, owner_id);\n",
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
         CREATE INDEX CONCURRENTLY issues_tenant_id_assignee_id_idx ON public.issues (tenant_id, assignee_id);\n\
         CREATE INDEX CONCURRENTLY issues_tenant_id_parent_id_idx ON public.issues (tenant_id, parent_id);\n\
         CREATE INDEX CONCURRENTLY issues_tenant_id_project_id_idx ON public.issues (tenant_id, project_id);\n"
    );
    assert!(issues.forward.iter().all(|s| s.kind == StatementKind::ConcurrentIndex));
    assert_eq!(issues.checks.len(), 4);

    let comments = sql_of("issue_comments");
    offset(
        &comments,
        "CREATE INDEX CONCURRENTLY issue_comments_tenant_id_issue_id_idx ON public.issue_comments (tenant_id, issue_id);\n",
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
    let plan = plan_of(&catalog);
    let profiles = step(&plan, "6.indexes:public.user_profiles");
    assert_eq!(
        forward_sql(profiles),
        "CREATE UNIQUE INDEX CONCURRENTLY user_profiles_tenant_id_user_id_key ON public.user_profiles (tenant_id, user_id);\n"
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
fn stage6_indexes_partitioned_tables_on_only_then_per_leaf_concurrently_then_attaches() {
    let plan = plan_of(&with_events(saas(PG15)).build());
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
        let attach =
            offset(&sql, &format!("ALTER INDEX public.{parent_index} ATTACH PARTITION public.{index};\n"));
        assert!(parent < build && middle < build && build < attach, "{sql}");
        let statement = &events.forward[statement_index(events, &format!("CONCURRENTLY {index}"))];
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

// ---------------------------------------------------------------------------------------------
// 6. Stage 7: tenant-scoped uniques and foreign keys
// ---------------------------------------------------------------------------------------------

#[test]
fn stage7_rebuilds_uniques_with_the_tenant_column_keeping_predicates_and_expressions() {
    let plan = plan_of(&saas(PG15).build());
    let build_step = step(&plan, "7.unique-build:public.users");
    assert!(!build_step.atomic);
    assert_eq!(
        forward_sql(build_step),
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_tenant_id ON public.users USING btree (tenant_id, email);\n\
         CREATE UNIQUE INDEX CONCURRENTLY users_email_lower_idx_tenant_id ON public.users USING btree (tenant_id, lower(email));\n\
         CREATE UNIQUE INDEX CONCURRENTLY users_username_active_idx_tenant_id ON public.users USING btree (tenant_id, username) WHERE (deleted_at IS NULL);\n"
    );
    assert!(build_step.forward.iter().all(|s| s.kind == StatementKind::ConcurrentIndex));
    assert_eq!(build_step.forward[0].index, Some(qn("public", "users_email_key_tenant_id")));

    let swap = step(&plan, "7.unique-swap:public.users");
    assert_eq!(
        forward_sql(swap),
        "ALTER TABLE public.users DROP CONSTRAINT users_email_key;\n\
         ALTER TABLE public.users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key_tenant_id;\n\
         ALTER INDEX public.users_email_lower_idx RENAME TO users_email_lower_idx_retired;\n\
         ALTER INDEX public.users_email_lower_idx_tenant_id RENAME TO users_email_lower_idx;\n\
         DROP INDEX CONCURRENTLY IF EXISTS public.users_email_lower_idx_retired;\n\
         ALTER INDEX public.users_username_active_idx RENAME TO users_username_active_idx_retired;\n\
         ALTER INDEX public.users_username_active_idx_tenant_id RENAME TO users_username_active_idx;\n\
         DROP INDEX CONCURRENTLY IF EXISTS public.users_username_active_idx_retired;\n"
    );
    // One short transaction per swap; a replaced unique index is renamed aside (a lock that lets
    // reads and writes go on) and dropped concurrently.
    assert_eq!(swap.forward.len(), 5);
    let kinds: Vec<StatementKind> = swap.forward.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StatementKind::Transaction,
            StatementKind::Transaction,
            StatementKind::NonTransactional,
            StatementKind::Transaction,
            StatementKind::NonTransactional
        ]
    );
    assert_eq!(swap.forward[1].lock, LockMode::ShareUpdateExclusive);
    // Rolling back counts values that now repeat across tenants, and cannot be forced.
    let guards: Vec<(&str, bool)> =
        swap.rollback_guards.iter().map(|g| (g.sql.as_str(), g.forceable)).collect();
    assert_eq!(
        guards,
        [
            (
                "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (email) IS NOT NULL \
                 GROUP BY (email) HAVING count(*) > 1) repeated",
                false
            ),
            (
                "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (lower(email)) IS NOT NULL \
                 GROUP BY (lower(email)) HAVING count(*) > 1) repeated",
                false
            ),
            (
                "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (username) IS NOT NULL \
                 AND ((deleted_at IS NULL)) GROUP BY (username) HAVING count(*) > 1) repeated",
                false
            ),
        ]
    );
    // The rollback rebuilds the original global definitions.
    let rollback = rollback_sql(swap);
    offset(
        &rollback,
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_global ON public.users USING btree (email);\n",
    );
    offset(
        &rollback,
        "CREATE UNIQUE INDEX CONCURRENTLY users_username_active_idx_global ON public.users USING btree (username) WHERE (deleted_at IS NULL);\n",
    );
}

#[test]
fn stage7_makes_foreign_keys_between_scoped_tables_composite() {
    let plan = plan_of(&saas(PG15).build());
    let projects = step(&plan, "7.foreign-keys:public.projects");
    assert!(!projects.atomic);
    let add = statement_index(
        projects,
        "ALTER TABLE public.projects ADD CONSTRAINT projects_owner_id_fkey_tenant_id FOREIGN KEY (tenant_id, owner_id) \
         REFERENCES public.users (tenant_id, id) ON DELETE CASCADE NOT VALID;\n",
    );
    let validate = statement_index(
        projects,
        "ALTER TABLE public.projects VALIDATE CONSTRAINT projects_owner_id_fkey_tenant_id;\n",
    );
    let swap = statement_index(
        projects,
        "ALTER TABLE public.projects DROP CONSTRAINT projects_owner_id_fkey;\n\
         ALTER TABLE public.projects RENAME CONSTRAINT projects_owner_id_fkey_tenant_id TO projects_owner_id_fkey;\n",
    );
    assert!(add < validate && validate < swap);
    assert!(!projects.forward[validate].lock.blocks_writes());
    // The rollback puts the original definition back under its own name.
    offset(
        &rollback_sql(projects),
        "ADD CONSTRAINT projects_owner_id_fkey_global FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE NOT VALID;\n",
    );

    let issues = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
    // ON DELETE SET NULL spares the tenant column (PostgreSQL 15+).
    offset(
        &issues,
        "ADD CONSTRAINT issues_assignee_id_fkey_tenant_id FOREIGN KEY (tenant_id, assignee_id) \
         REFERENCES public.users (tenant_id, id) ON DELETE SET NULL (assignee_id) NOT VALID;\n",
    );
    // The self-reference is converted too.
    offset(
        &issues,
        "ADD CONSTRAINT issues_parent_id_fkey_tenant_id FOREIGN KEY (tenant_id, parent_id) \
         REFERENCES public.issues (tenant_id, id) NOT VALID;\n",
    );
    offset(
        &issues,
        "ADD CONSTRAINT issues_project_id_fkey_tenant_id FOREIGN KEY (tenant_id, project_id) \
         REFERENCES public.projects (tenant_id, id) ON DELETE CASCADE NOT VALID;\n",
    );
    let comments = forward_sql(step(&plan, "7.foreign-keys:public.issue_comments"));
    offset(&comments, "REFERENCES public.users (tenant_id, id) ON DELETE RESTRICT NOT VALID;\n");
    assert!(findings(&plan, Severity::Warning).iter().all(|(code, _)| code != "foreign-key-not-scoped"));
}

#[test]
fn stage7_leaves_on_delete_set_null_alone_before_postgres_15() {
    let plan = plan_of(&saas(PG14).build());
    let issues = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
    assert!(!issues.contains("issues_assignee_id_fkey"), "{issues}");
    assert!(!issues.contains("SET NULL"), "{issues}");
    offset(&issues, "ADD CONSTRAINT issues_project_id_fkey_tenant_id");
    assert!(
        has_finding(
            &plan,
            Severity::Warning,
            "foreign-key-not-scoped",
            "issues_assignee_id_fkey on public.issues"
        ),
        "{:?}",
        findings(&plan, Severity::Warning)
    );
}

#[test]
fn stage7_builds_come_before_foreign_keys_which_come_before_swaps() {
    let catalog = saas(PG15)
        .alter("public", "projects", |t| t.col("slug", "text").unique(&["slug"]))
        .table("public", "invitations", |t| {
            t.pk(&["id"]).col_nn("email", "text").fk(&["email"], "users", &["email"], 'c')
        })
        .build();
    let plan = plan_of(&catalog);
    let stage7 = ids_in(&plan, Stage::Unique);
    let kind = |id: &str| id.split(':').next().unwrap().to_string();
    let kinds: Vec<String> = stage7.iter().map(|id| kind(id)).collect();
    let first = |k: &str| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("no {k} in {stage7:?}"));
    let last = |k: &str| kinds.iter().rposition(|x| x == k).unwrap();
    assert!(last("7.unique-build") < first("7.foreign-keys"), "{stage7:?}");
    assert!(last("7.foreign-keys") < first("7.unique-swap"), "{stage7:?}");
    // A foreign key to a unique (not the primary key) references the scoped copy.
    offset(
        &forward_sql(step(&plan, "7.foreign-keys:public.invitations")),
        "FOREIGN KEY (tenant_id, email) REFERENCES public.users (tenant_id, email) ON DELETE CASCADE NOT VALID;\n",
    );
    assert!(
        position(&plan, "7.unique-build:public.users") < position(&plan, "7.foreign-keys:public.invitations")
    );
    assert!(
        position(&plan, "7.foreign-keys:public.invitations") < position(&plan, "7.unique-swap:public.users")
    );
}

#[test]

fn stage7_never_drops_a_unique_that_an_unconverted_foreign_key_depends_on() {
    let mut failures = Vec::new();
    for (version, on_update) in [(PG14, "a"), (PG15, "n")] {
        let catalog = saas(version)
            .table("public", "invitations", |t| {
                t.pk(&["id"])
                    .col("email", "text")
                    .fk(&["email"], "users", &["email"], 'n')
                    .last_fk(|fk| fk.on_update = on_update.into())
            })
            .build();
        let plan = plan_of(&catalog);
        let converted = plan.step("7.foreign-keys:public.invitations").is_some();
        let dropped = all_forward_sql(&plan).contains("DROP CONSTRAINT users_email_key;");
        if dropped && !converted {
            failures.push(format!(
                "server {version}, ON UPDATE {on_update}: invitations_email_fkey is left as it is, yet stage 7 runs \
                 `ALTER TABLE public.users DROP CONSTRAINT users_email_key` which it depends on"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Shared tables
// ---------------------------------------------------------------------------------------------

#[test]
fn a_unique_a_shared_table_references_stays_global() {
    let (catalog, options) = with_shared_tables();
    let plan = plan_with(&catalog, &options);
    assert!(
        has_finding(&plan, Severity::Warning, "unique-kept-global", "users_email_key on public.users"),
        "{:?}",
        findings(&plan, Severity::Warning)
    );
    let stage7: String = plan.steps_in(Stage::Unique).map(|s| forward_sql(s) + &rollback_sql(s)).collect();
    assert!(!stage7.contains("users_email_key"), "{stage7}");
    // The other uniques of users are still scoped.
    offset(&forward_sql(step(&plan, "7.unique-build:public.users")), "users_email_lower_idx_tenant_id");
    offset(&forward_sql(step(&plan, "7.unique-swap:public.users")), "RENAME TO users_email_lower_idx;");
}

#[test]
fn foreign_keys_to_and_from_shared_tables_are_left_alone() {
    let (catalog, options) = with_shared_tables();
    let plan = plan_with(&catalog, &options);
    let all = all_forward_sql(&plan);
    // From a shared table: never converted.
    assert!(plan.step("7.foreign-keys:public.audit_log").is_none());
    assert!(!all.contains("audit_log"), "{all}");
    // From a scoped table to a shared one: not converted, no composite index.
    assert!(!all.contains("status_code"), "{all}");
    let issue_fks = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
    assert!(!issue_fks.contains("lookup"), "{issue_fks}");
    assert!(plan.step("6.indexes:public.lookup").is_none());
    assert!(!all.contains("(tenant_id, code)"));
}

// ---------------------------------------------------------------------------------------------
// 8. Stage 8: row-level security
// ---------------------------------------------------------------------------------------------

#[test]
fn stage8_creates_a_fail_closed_policy_then_enables_and_forces_rls() {
    let plan = plan_of(&with_events(saas(PG15)).build());
    let users = step(&plan, "8.rls:public.users");
    assert!(users.atomic);
    assert_eq!(users.forward.len(), 1);
    assert_eq!(
        code(&users.forward[0].sql),
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
        offset(&sql, &format!("CREATE POLICY tenant_isolation ON public.{relation} AS PERMISSIVE FOR ALL\n"));
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

#[test]
fn stage8_makes_views_that_bypass_rls_run_as_invoker_on_postgres_15() {
    let views = |b: CatalogBuilder| {
        b.table("public", "lookup", |t| t.pk_named("lookup_pkey", &["code"]).col_nn("code", "text"))
            .view("public", "user_directory", |v| v.owned_by_superuser().reads("public", "users"))
            .view("public", "my_projects", |v| v.reads("public", "projects"))
            .view("public", "lookup_labels", |v| v.owned_by_superuser().reads("public", "lookup"))
            .view("public", "user_stats", |v| v.owned_by_superuser().materialized().reads("public", "users"))
    };
    let options = PlanOptions { exclude: vec!["public.lookup".into()], ..PlanOptions::default() };
    let plan = plan_with(&views(saas(PG15)).build(), &options);
    let step15 = step(&plan, "8.rls:views");
    assert!(step15.atomic);
    assert_eq!(forward_sql(step15), "ALTER VIEW public.user_directory SET (security_invoker = true);\n");
    assert_eq!(rollback_sql(step15), "ALTER VIEW public.user_directory RESET (security_invoker);\n");
    assert_eq!(position(&plan, "8.rls:views"), plan.steps.len() - 1);
    assert!(has_finding(&plan, Severity::Warning, "materialized-view", "public.user_stats"));
    assert!(!all_forward_sql(&plan).contains("user_stats"));

    let plan14 = plan_with(&views(saas(PG14)).build(), &options);
    assert!(plan14.step("8.rls:views").is_none());
    assert!(!all_forward_sql(&plan14).contains("security_invoker"));
    assert!(has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.user_directory"));
    assert!(!has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.my_projects"));
    assert!(!has_finding(&plan14, Severity::Warning, "view-bypasses-rls", "public.lookup_labels"));
    assert!(has_finding(&plan14, Severity::Warning, "materialized-view", "public.user_stats"));
}

// ---------------------------------------------------------------------------------------------
// 9. Names
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_names_fit_63_bytes_and_stay_distinct_for_long_table_names() {
    let shared = "customer_subscription_billing_history_adjustments_and_credit_".to_string();
    assert_eq!(shared.len(), 61);
    let first = format!("{shared}aa");
    let second = format!("{shared}bb");
    let mut builder = CatalogBuilder::new(PG15);
    for (table, other) in [(&first, &second), (&second, &first)] {
        let pk = format!("{}_pk", &table[59..]);
        builder = builder.table("public", table, |t| {
            t.pk_named(&pk, &["id"]).col("ref_id", "bigint").fk_named(
                &format!("{}_ref_fkey", &table[59..]),
                &["ref_id"],
                qn("public", other),
                &["id"],
                'a',
            )
        });
    }
    // A relation already holds the name the first tenant FK would naturally get.
    let natural_fk = bounded_name(&format!("{first}_tenant_id_fkey"));
    let catalog = builder.relation("public", &natural_fk).build();
    let plan = plan_of(&catalog);
    assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));

    let names = created_names(&plan);
    // Per table: tenant FK, NOT NULL check, (tenant_id, id) key, (tenant_id, ref_id) index, scoped FK.
    assert_eq!(names.len(), 10, "{names:#?}");
    for name in names.iter().chain(plan.drift.owned_names.iter()) {
        assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name:?} is {} bytes", name.len());
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &names {
        *counts.entry(name).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "names created twice: {repeated:?}");
    assert!(!names.contains(&natural_fk), "{natural_fk} is taken by a relation");
    for name in &names {
        assert!(!catalog.relation_exists(&qn("public", name)), "{name} collides with an existing relation");
    }
}

#[test]
fn generated_names_avoid_existing_relations_and_constraints() {
    let catalog = CatalogBuilder::new(PG15)
        .table("public", "settings", |t| t.pk(&["id"]).col("value", "jsonb"))
        .table("public", "other", |t| {
            t.pk(&["id"])
                .col("x", "int")
                .index("settings_tenant_id_idx", &["x"])
                .check("settings_tenant_id_not_null", "CHECK ((x > 0))")
        })
        .relation("public", "settings_tenant_id_fkey")
        .build();
    let plan = plan_of(&catalog);
    let sql = all_forward_sql(&plan);
    offset(&sql, "ALTER TABLE public.settings ADD CONSTRAINT settings_tenant_id_fkey1 FOREIGN KEY");
    offset(&sql, "ALTER TABLE public.settings ADD CONSTRAINT settings_tenant_id_not_null1 CHECK");
    offset(&sql, "CREATE INDEX CONCURRENTLY settings_tenant_id_idx1 ON public.settings (tenant_id);\n");
    assert!(!sql.contains("CONCURRENTLY settings_tenant_id_idx ON"));
}

#[test]

fn the_tenant_tables_primary_key_name_fits_63_bytes() {
    let long = "t".repeat(MAX_IDENTIFIER_BYTES);
    let options = PlanOptions { tenant_table: qn("public", &long), ..PlanOptions::default() };
    let plan = plan_with(&saas(PG15).build(), &options);
    let create = forward_sql(step(&plan, "1.tenant-table"));
    let at = offset(&create, "CONSTRAINT ") + "CONSTRAINT ".len();
    let name = leading_identifier(&create[at..]);
    assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name:?} is {} bytes", name.len());
}

#[test]
fn quoted_identifiers_are_quoted_in_the_generated_sql() {
    let sales = |name: &str| qn("Sales", name);
    let catalog = CatalogBuilder::new(PG15)
        .schema("Sales")
        .table("Sales", "Customers", |t| t.pk(&["Id"]).col("Name", "text"))
        .table("Sales", "Order Items", |t| {
            t.pk(&["Id"])
                .col_nn("Customer Id", "bigint")
                .col("Code", "text")
                .fk_to(&["Customer Id"], sales("Customers"), &["Id"], 'n')
                .unique(&["Code"])
        })
        .table("public", "select", |t| t.pk(&["id"]).col("user", "text").unique(&["user"]))
        .table("public", "we\"ird", |t| t.pk(&["id"]).col("café", "text"))
        .build();
    let options = PlanOptions { schemas: vec!["public".into(), "Sales".into()], ..PlanOptions::default() };
    let plan = plan_with(&catalog, &options);
    assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
    let all = all_forward_sql(&plan);
    let items = sales("Order Items");
    let customers = sales("Customers");
    let q = quote_ident;
    assert_eq!(items.to_string(), "\"Sales\".\"Order Items\"");

    offset(&all, &format!("ALTER TABLE {items} ADD COLUMN tenant_id uuid DEFAULT {DEFAULT_TENANT};\n"));
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} ADD CONSTRAINT {} FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) NOT VALID;\n",
            q("Order Items_tenant_id_fkey")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {customers} (tenant_id, {});\n",
            q("Customers_tenant_id_Id_key"),
            q("Id")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE INDEX CONCURRENTLY {} ON {items} (tenant_id, {});\n",
            q("Order Items_tenant_id_Customer Id_idx"),
            q("Customer Id")
        ),
    );
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {items} USING btree (tenant_id, {});\n",
            q("Order Items_Code_key_tenant_id"),
            q("Code")
        ),
    );
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} ADD CONSTRAINT {} FOREIGN KEY (tenant_id, {}) REFERENCES {customers} (tenant_id, {}) \
             ON DELETE SET NULL ({}) NOT VALID;\n",
            q("Order Items_Customer Id_fkey_tenant_id"),
            q("Customer Id"),
            q("Id"),
            q("Customer Id")
        ),
    );
    offset(
        &all,
        &format!(
            "ALTER TABLE {items} DROP CONSTRAINT {};\nALTER TABLE {items} ADD CONSTRAINT {} UNIQUE USING INDEX {};\n",
            q("Order Items_Code_key"),
            q("Order Items_Code_key"),
            q("Order Items_Code_key_tenant_id")
        ),
    );
    offset(&all, &format!("CREATE POLICY tenant_isolation ON {items} AS PERMISSIVE"));

    // Reserved words, embedded double quotes and non-ASCII names.
    let select = qn("public", "select");
    assert_eq!(select.to_string(), "public.\"select\"");
    offset(&all, &format!("ALTER TABLE {select} ADD COLUMN tenant_id"));
    offset(
        &all,
        &format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {select} USING btree (tenant_id, {});\n",
            q("select_user_key_tenant_id"),
            q("user")
        ),
    );
    let weird = qn("public", "we\"ird");
    assert_eq!(weird.to_string(), "public.\"we\"\"ird\"");
    offset(&all, &format!("ALTER TABLE {weird} ADD CONSTRAINT {} FOREIGN KEY", q("we\"ird_tenant_id_fkey")));
    offset(
        &all,
        &format!("CREATE INDEX CONCURRENTLY {} ON {weird} (tenant_id);\n", q("we\"ird_tenant_id_idx")),
    );
    offset(&all, &format!("CREATE POLICY tenant_isolation ON {weird} AS PERMISSIVE"));
    // Every step still verifies, and no bare name with a space or capital slipped through.
    file::verify_checksums(&plan, "x").unwrap();
    assert!(!all.contains(" Sales."), "{all}");
    assert!(!all.contains(" Order Items"), "{all}");
}

#[test]
fn a_quoted_tenant_column_is_quoted_everywhere() {
    let options = PlanOptions { tenant_column: "TenantId".into(), ..PlanOptions::default() };
    let plan = plan_with(&saas(PG15).build(), &options);
    let all = all_forward_sql(&plan);
    offset(
        &all,
        &format!("ALTER TABLE public.users ADD COLUMN \"TenantId\" uuid DEFAULT {DEFAULT_TENANT};\n"),
    );
    offset(&all, "FOREIGN KEY (\"TenantId\") REFERENCES public.tenants (id) NOT VALID");
    offset(&all, "CHECK (\"TenantId\" IS NOT NULL) NOT VALID");
    offset(&all, "ON public.users (\"TenantId\", id);\n");
    offset(&all, "USING btree (\"TenantId\", lower(email))");
    offset(&all, "FOREIGN KEY (\"TenantId\", owner_id) REFERENCES public.users (\"TenantId\", id)");
    offset(&all, "USING (\"TenantId\" = nullif((SELECT current_setting('app.tenant_id', true)), '')::uuid)");
    assert!(!all.contains(" TenantId"), "an unquoted TenantId would fold to tenantid");
}

#[test]

fn step_ids_are_unique_even_with_dots_in_names() {
    let catalog = CatalogBuilder::new(PG15)
        .schema("app")
        .schema("app.v2")
        .table("app", "v2.users", |t| t.pk(&["id"]))
        .table("app.v2", "users", |t| t.pk(&["id"]))
        .build();
    let options = PlanOptions {
        schemas: vec!["public".into(), "app".into(), "app.v2".into()],
        ..PlanOptions::default()
    };
    let plan = plan_with(&catalog, &options);
    file::verify_checksums(&plan, "x").expect("a fresh plan verifies");
}

// ---------------------------------------------------------------------------------------------
// 10. Refusals
// ---------------------------------------------------------------------------------------------

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
fn refuses_a_scoped_table_that_already_has_the_tenant_column() {
    let catalog = saas(PG15).alter("public", "projects", |t| t.col("tenant_id", "uuid")).build();
    let plan = plan_of(&catalog);
    assert_eq!(error_objects(&plan, "tenant-column-exists"), ["public.projects"]);
    // An excluded (shared) table may have one.
    let options = PlanOptions { exclude: vec!["public.projects".into()], ..PlanOptions::default() };
    assert!(error_objects(&plan_with(&catalog, &options), "tenant-column-exists").is_empty());
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

#[test]
fn rejects_invalid_options() {
    let catalog = saas(PG15).build();
    let cases = [
        ("bad uuid", PlanOptions { default_tenant_id: "not-a-uuid".into(), ..PlanOptions::default() }),
        (
            "uuid one digit short",
            PlanOptions {
                default_tenant_id: "00000000-0000-0000-0000-00000000001".into(),
                ..PlanOptions::default()
            },
        ),
        (
            "setting without a dot",
            PlanOptions { tenant_setting: "tenant_id".into(), ..PlanOptions::default() },
        ),
        (
            "setting with an empty part",
            PlanOptions { tenant_setting: "app.".into(), ..PlanOptions::default() },
        ),
        ("journal schema", PlanOptions { schemas: vec!["tenantize".into()], ..PlanOptions::default() }),
        ("no schema", PlanOptions { schemas: Vec::new(), ..PlanOptions::default() }),
        ("zero batch", PlanOptions { batch_rows: 0, ..PlanOptions::default() }),
        (
            "bigint key with a uuid id",
            PlanOptions { tenant_key_type: KeyType::Bigint, ..PlanOptions::default() },
        ),
    ];
    for (what, options) in cases {
        match build(&catalog, &options, GENERATED_AT) {
            Err(PlanError::InvalidOption(_)) => {}
            Ok(_) => panic!("{what}: accepted"),
        }
    }
    let fine = PlanOptions {
        tenant_key_type: KeyType::Bigint,
        default_tenant_id: "1".into(),
        tenant_setting: "myapp.current_tenant".into(),
        ..PlanOptions::default()
    };
    let plan = plan_with(&catalog, &fine);
    offset(&all_forward_sql(&plan), "ADD COLUMN tenant_id bigint DEFAULT '1'::bigint;");
    offset(
        &all_forward_sql(&plan),
        "nullif((SELECT current_setting('myapp.current_tenant', true)), '')::bigint",
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Excluded tables
// ---------------------------------------------------------------------------------------------

#[test]
fn excluded_tables_get_no_steps() {
    let (catalog, options) = with_shared_tables();
    let plan = plan_with(&catalog, &options);
    for shared in ["lookup", "audit_log"] {
        let name = qn("public", shared);
        for step in &plan.steps {
            assert!(!step.tables.contains(&name), "{} touches {name}", step.id);
            for statement in step.forward.iter().chain(&step.rollback) {
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
    assert!(has_finding(&plan_with(&catalog, &options), Severity::Warning, "exclude-unknown", "public.nope"));
}
