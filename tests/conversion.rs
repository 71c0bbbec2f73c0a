//! The full cycle on the sample application and on the real schemas in ../shared/fixtures:
//! plan → apply → verify → every row unchanged → rollback --all → schema and data as before.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn sample_application_fast_path_round_trips() {
    let db = sample_db("sample_fast", 3000).await;
    let plan = full_cycle(&db, &["--exclude", "issue_statuses"], &["public"]).await;
    // The fast path writes no row: stage 4 only proves it with counts.
    assert!(plan.contains("ADD COLUMN tenant_id uuid DEFAULT '00000000-0000-0000-0000-000000000001'::uuid"));
    assert!(!plan.contains("kind = \"batch\""));
    assert!(!plan.contains("wal-init-zero"), "no table's worth of WAL to warn about");
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_application_batched_backfill_round_trips_without_firing_triggers() {
    let db = sample_db("sample_batched", 3000).await;
    // Row checksums include updated_at, which the sample's touch triggers would rewrite.
    let plan = full_cycle(
        &db,
        &["--exclude", "issue_statuses", "--backfill", "batched", "--batch-rows", "700"],
        &["public"],
    )
    .await;
    assert!(plan.contains("kind = \"batch\""));
    assert!(plan.contains("session_replication_role"), "the plan must say triggers are kept from firing");
    // The test cluster keeps the server's default, wal_init_zero = on, read from the live server.
    assert!(plan.contains("code = \"wal-init-zero\""), "the backfill's WAL stalls must be warned of");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_round_trips() {
    let db = pagila_db("pagila_fast").await;
    let plan = full_cycle(&db, &PAGILA_ACKNOWLEDGE, &["public"]).await;
    // The partitioned payment table and its partitions are covered.
    assert!(plan.contains("8.rls:public.payment"));
    assert!(plan.contains("CREATE POLICY tenant_isolation ON public.payment_p2022_03"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_batched_with_shared_lookups_round_trips() {
    let db = pagila_db("pagila_batched").await;
    full_cycle(
        &db,
        &[
            "--backfill",
            "batched",
            "--batch-rows",
            "500",
            "--exclude",
            "language",
            "--exclude",
            "country",
            "--exclude",
            "category",
            PAGILA_ACKNOWLEDGE[0],
            PAGILA_ACKNOWLEDGE[1],
            PAGILA_ACKNOWLEDGE[2],
            PAGILA_ACKNOWLEDGE[3],
        ],
        &["public"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chinook_round_trips_with_bigint_tenants() {
    let db = chinook_db("chinook").await;
    let plan = full_cycle(
        &db,
        &["--tenant-key-type", "bigint", "--exclude", "media_type", "--exclude", "genre"],
        &["public"],
    )
    .await;
    // The self-reference employee.reports_to becomes tenant-consistent.
    assert!(
        plan.contains(
            "FOREIGN KEY (tenant_id, reports_to) REFERENCES public.employee (tenant_id, employee_id)"
        )
    );
}

/// The sample's typical queries, run as a plain application role with its tenant set, scan no
/// table sequentially after the conversion that they did not scan before: the policy's
/// tenant condition and the composite indexes keep them on indexes. An issue's comment count
/// reads `issue_comments (issue_id)` with an index-only scan before; `--cover-indexes` keeps
/// it one, and without the flag it is lost (the default's cost, measured in the README).
#[tokio::test(flavor = "multi_thread")]
async fn the_applications_queries_keep_to_their_indexes() {
    use tenantize::sample::queries::SETUP_SQL;
    let db = sample_db("app_queries", 20_000).await;
    let plain = sample_db("app_queries_plain", 20_000).await;
    let role = "app_queries_role";
    let spec = application_role(&db, role, SETUP_SQL).await;
    let plain_spec = application_role(&plain, "app_queries_plain_role", SETUP_SQL).await;
    // The visibility map, as on a live table: an index-only scan is then what it would be.
    let vacuum = async |db: &TestDb| db.connect().await.batch_execute("VACUUM ANALYZE").await.unwrap();
    vacuum(&db).await;
    let before = explain_all(&spec).await;
    let comment_count = |scans: &[Scans]| {
        let (_, _, index_only) =
            scans.iter().find(|(name, _, _)| *name == "an issue's comment count").unwrap();
        index_only.iter().any(|r| r == "issue_comments")
    };
    assert!(comment_count(&before), "before: {before:?}");
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &["--cover-indexes"]);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    vacuum(&db).await;
    let after = explain_all(&spec).await;
    for ((name, was, _), (_, now, _)) in before.iter().zip(&after) {
        let new: Vec<&String> = now.iter().filter(|r| !was.contains(r)).collect();
        assert!(new.is_empty(), "{name}: sequential scan of {new:?} after the conversion (before: {was:?})");
    }
    assert!(comment_count(&after), "with --cover-indexes: {after:?}");
    let plain_plan = plain.plan_sample(&dir.path().join("plain.toml"), &[]);
    plain.tenantize(&["apply", &plain_plan, "--yes"]).expect_ok();
    vacuum(&plain).await;
    let plain_after = explain_all(&plain_spec).await;
    assert!(!comment_count(&plain_after), "without --cover-indexes: {plain_after:?}");
    // Stage 5 gathered the tenant column's statistics: the fast path changes no row, so
    // without its ANALYZE the planner would guess 0.5% of a table for the policy's condition,
    // when here the one tenant has every row (the plain conversion is not vacuumed after).
    let fresh = sample_db("app_queries_stats", 20_000).await;
    let fresh_spec = application_role(&fresh, "app_queries_stats_role", SETUP_SQL).await;
    let fresh_plan = fresh.plan_sample(&dir.path().join("fresh.toml"), &[]);
    fresh.tenantize(&["apply", &fresh_plan, "--yes"]).expect_ok();
    let app = fresh_spec.connect("tenantize-test").await.unwrap();
    app.batch_execute("BEGIN; SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000001'")
        .await
        .unwrap();
    let row = app.query_one("EXPLAIN (FORMAT JSON) SELECT * FROM public.issue_comments", &[]).await.unwrap();
    let plan: serde_json::Value = row.get(0);
    let estimated_rows = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap();
    let rows: i64 = app.query_one("SELECT count(*) FROM public.issue_comments", &[]).await.unwrap().get(0);
    app.batch_execute("ROLLBACK").await.unwrap();
    assert!(estimated_rows > 0.9 * rows as f64, "the policy's rows estimated {estimated_rows} of {rows}");
    // The check can fail: the same query without the policy's tenant condition to lead the
    // composite key scans issues.
    db.exec("DROP POLICY tenant_isolation ON public.issues").await;
    db.exec("ALTER TABLE public.issues DISABLE ROW LEVEL SECURITY; ANALYZE public.issues").await;
    let unscoped = explain_all(&spec).await;
    assert!(
        unscoped.iter().any(|(_, scans, _)| scans.iter().any(|r| r == "issues")),
        "without the policy some query should scan issues: {unscoped:?}"
    );
    for (db, role) in [(&db, role), (&plain, "app_queries_plain_role"), (&fresh, "app_queries_stats_role")] {
        db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role};")).await;
    }
}

/// A query's name, the relations it reads sequentially, and those it reads index-only.
type Scans = (&'static str, Vec<String>, Vec<String>);

/// Each of the sample's queries EXPLAINed as the application role with its tenant set.
async fn explain_all(spec: &tenantize::db::ConnSpec) -> Vec<Scans> {
    use tenantize::sample::queries::{QUERIES, index_only_scans, sequential_scans};
    let app = spec.connect("tenantize-test").await.expect("connect as the application role");
    let mut scans = Vec::new();
    for query in &QUERIES {
        let sql = query.bind(&[("issue", 77), ("project", 3), ("user", 5)]);
        app.batch_execute("BEGIN; SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000001'")
            .await
            .unwrap();
        let row = app.query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &[]).await.unwrap();
        let plan: serde_json::Value = row.get(0);
        app.batch_execute("ROLLBACK").await.unwrap();
        scans.push((query.name, sequential_scans(&plan), index_only_scans(&plan)));
    }
    scans
}

/// A plain application role (no superuser, no BYPASSRLS) with the application's grants, after
/// `setup_sql`; how to connect as it.
async fn application_role(db: &TestDb, role: &str, setup_sql: &str) -> tenantize::db::ConnSpec {
    db.exec(&format!(
        "{setup_sql} CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS; GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
    ))
    .await;
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    tenantize::db::ConnSpec::resolve(Some(&url), &tenantize::db::ProcessEnv).unwrap()
}

/// `--cover-indexes`: an index-only scan of the application's `issue_comments (issue_id)`
/// stays one under the policy (the index now holds the tenant column), and a rollback puts
/// the original index back exactly, also from a half-dropped retired index.
#[tokio::test(flavor = "multi_thread")]
async fn covered_indexes_keep_index_only_scans_and_roll_back_exactly() {
    let db = sample_db("cover_indexes", 20_000).await;
    let role = "cover_indexes_role";
    // Neither is part of the index's definition: both must follow it to the copy and back.
    let marks = "COMMENT ON INDEX issue_comments_issue_id_idx IS 'comments by issue'; \
                 ALTER TABLE issue_comments CLUSTER ON issue_comments_issue_id_idx;";
    let spec = application_role(&db, role, marks).await;
    let dump_before = db.schema_dump();
    let rows_before = db.row_checksums(&["public"], "tenant_id").await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &["--cover-indexes"]);
    assert!(std::fs::read_to_string(&plan).unwrap().contains("6.cover-indexes:public.issue_comments"));
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
    let definition: String = db
        .connect()
        .await
        .query_one("SELECT pg_get_indexdef('public.issue_comments_issue_id_idx'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        definition,
        "CREATE INDEX issue_comments_issue_id_idx ON public.issue_comments USING btree (issue_id) INCLUDE (tenant_id)"
    );
    let applied = db.schema_dump();
    assert!(applied.contains("COMMENT ON INDEX public.issue_comments_issue_id_idx IS 'comments by issue';"));
    assert!(applied.contains("ALTER TABLE public.issue_comments CLUSTER ON issue_comments_issue_id_idx;"));
    // The visibility map, so that an index-only scan is what the planner would pick.
    db.connect().await.batch_execute("VACUUM public.issue_comments").await.unwrap();
    let app = spec.connect("tenantize-test").await.unwrap();
    app.batch_execute("BEGIN; SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000001'")
        .await
        .unwrap();
    let sql = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM public.issue_comments WHERE issue_id = 77";
    let explained: serde_json::Value = app.query_one(sql, &[]).await.unwrap().get(0);
    app.batch_execute("ROLLBACK").await.unwrap();
    let scan = find_node(&explained[0]["Plan"], "Index Only Scan")
        .unwrap_or_else(|| panic!("no index-only scan under the policy: {explained}"));
    assert_eq!(scan["Index Name"], "issue_comments_issue_id_idx", "{explained}");
    assert_eq!(scan["Heap Fetches"], 0, "{explained}");
    drop(app);
    // What an interrupted DROP INDEX CONCURRENTLY of the retired original leaves (its first
    // transaction clears indisvalid): the rollback finishes the drop and rebuilds the original,
    // rather than renaming a half-dropped index back in.
    // The same for stage 7's swap of a plain unique index.
    db.exec(
        "CREATE INDEX issue_comments_issue_id_idx_retired ON public.issue_comments (issue_id); \
         CREATE UNIQUE INDEX users_email_key_retired ON public.users (lower(email)) WHERE deleted_at IS NULL; \
         UPDATE pg_catalog.pg_index SET indisvalid = false \
          WHERE indexrelid IN ('public.issue_comments_issue_id_idx_retired'::regclass, \
                               'public.users_email_key_retired'::regclass)",
    )
    .await;
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    let dump_after = db.schema_dump();
    assert!(
        dump_before == dump_after,
        "schema after rollback differs:\n{}",
        text_diff(&dump_before, &dump_after)
    );
    assert_eq!(rows_before, db.row_checksums(&["public"], "tenant_id").await);
    db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role};")).await;
}

/// The first plan node of `kind`, depth first.
fn find_node<'a>(node: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    if node["Node Type"] == kind {
        return Some(node);
    }
    node["Plans"].as_array()?.iter().find_map(|child| find_node(child, kind))
}
