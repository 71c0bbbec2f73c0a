//! Stage 9 on a real Citus cluster (a coordinator and two workers, see `common/citus.rs`):
//! plan --distribute citus → apply → verify → every row unchanged → an application role
//! through the coordinator sees its tenant's rows only, and `verify --isolation` proves it
//! there (and finds a leak made on purpose) → rollback --all → the original
//! single-node schema and rows. Also the refusal on a database without Citus, and kills
//! during stage 9 that `apply` resumes from.

mod common;

use common::citus::{
    add_worker, citus_chinook_db, citus_db, citus_pagila_db, citus_sample_db, nodes, placements_per_worker,
    serial,
};
use common::*;

const ROWS: u64 = 2000;

/// The sample's keys with ON DELETE SET NULL, which Citus refuses on a tenant-scoped key: the
/// operator accepts NO ACTION for them on the distributed tables.
const SAMPLE_ACKNOWLEDGE: [&str; 8] = [
    "--acknowledge",
    "citus-foreign-key-action:public.attachments.attachments_comment_id_fkey",
    "--acknowledge",
    "citus-foreign-key-action:public.issues.issues_assignee_id_fkey",
    "--acknowledge",
    "citus-foreign-key-action:public.issues.issues_epic_id_fkey",
    "--acknowledge",
    "citus-foreign-key-action:public.issues.issues_sprint_id_fkey",
];

/// `--distribute citus`, with the blocking form allowed for the sample's audit log (it has
/// no primary key) and its SET NULL keys accepted.
fn distribute_args() -> Vec<&'static str> {
    let mut args = vec!["--distribute", "citus", "--allow-blocking-distribution", "--shard-count", "4"];
    args.extend_from_slice(&SAMPLE_ACKNOWLEDGE);
    args
}

const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";
const OTHER_TENANT: &str = "00000000-0000-0000-0000-0000000000b2";

/// The application's role for `db`: its own name, since roles are the nodes' and the tests
/// that share them run at once.
fn app_role(db: &TestDb) -> String {
    format!("{}_app", db.name)
}

/// As a plain role (not owner, no BYPASSRLS) through the coordinator, with `tenant` set by
/// SET LOCAL (none: no tenant): how many rows of `table` it reads.
async fn count_as_app(db: &TestDb, tenant: Option<&str>, table: &str) -> i64 {
    let client = db.connect().await;
    client.batch_execute(&format!("BEGIN; SET LOCAL ROLE {}", app_role(db))).await.unwrap();
    if let Some(t) = tenant {
        client.batch_execute(&format!("SET LOCAL app.tenant_id = '{t}'")).await.unwrap();
    }
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("{table}: {}", tenantize::db::describe_pg_error(&e)))
        .get(0);
    client.batch_execute("ROLLBACK").await.unwrap();
    n
}

/// `verify --json` after stage 9, read through the coordinator: every tenant table
/// hash-distributed by tenant_id in one colocation group, shards on both workers, the tenant
/// table and the lookup with a placement on both.
fn verify_reports_the_distribution(db: &TestDb, plan: &str) {
    let run = db.tenantize(&["verify", plan, "--json"]);
    run.expect_ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("verify --json prints JSON");
    let d = &json["distribution"];
    assert_eq!(d["problems"], serde_json::json!([]), "{d:#}");
    let tables = d["tables"].as_array().expect("tables");
    let scoped: Vec<&serde_json::Value> =
        tables.iter().filter(|t| t["planned_as"] == "distributed").collect();
    assert_eq!(scoped.len(), 8 + 3, "{d:#}");
    assert!(scoped.iter().all(|t| t["citus"] == "distributed" && t["column"] == "tenant_id"), "{d:#}");
    let groups: std::collections::BTreeSet<i64> =
        scoped.iter().map(|t| t["colocation_id"].as_i64().unwrap()).collect();
    assert_eq!(groups.len(), 1, "{d:#}");
    let workers = d["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{d:#}");
    for w in workers {
        assert!(w["shards"].as_i64().unwrap() > 0, "{w}");
        assert!(w["size_bytes"].as_i64().unwrap() > 0, "{w}");
    }
    let mut nodes: Vec<&str> = workers.iter().map(|w| w["node"].as_str().unwrap()).collect();
    nodes.sort();
    for name in ["public.tenants", "public.issue_statuses"] {
        let t = tables.iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("{name}: {d:#}"));
        assert_eq!((&t["planned_as"], &t["citus"]), (&"reference".into(), &"reference".into()), "{t}");
        let mut on: Vec<&str> =
            t["workers"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        on.sort();
        assert_eq!(on, nodes, "{name} is on every worker");
    }
}

#[tokio::test]
async fn the_sample_is_distributed_online_isolated_through_the_coordinator_and_rolled_back_exactly() {
    let _serial = serial().await;
    let db = citus_sample_db("dist_sample", ROWS).await;
    let before_dump = db.schema_dump();
    let before_rows = db.row_checksums(&["public"], "tenant_id").await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("d.plan.toml"), &distribute_args());
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains(
        "create_distributed_table_concurrently('public.issues', 'tenant_id', colocate_with => 'public.users')"
    ));
    assert!(text.contains("create_reference_table('public.tenants')"));
    assert!(text.contains("create_reference_table('public.issue_statuses')"));
    assert!(!text.contains("(SELECT nullif(current_setting"), "Citus refuses a policy with a subquery");

    // Stage 9 online while the application writes: a comment every 50 ms into
    // issue_comments, which Citus copies and replicates logically meanwhile.
    db.tenantize(&["apply", &plan, "--yes", "--through", "8"]).expect_ok();
    let writer = Writer::start(&db.url);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok().expect_output("cutover pending");
    let (written, failed) = writer.stop();
    assert!(written > 0 && failed.is_empty(), "{written} writes, failed: {failed:?}");
    db.connect()
        .await
        .batch_execute("DELETE FROM public.issue_comments WHERE body = 'tenantize-test writer'")
        .await
        .unwrap();
    db.tenantize(&["verify", &plan]).expect_ok().expect_output(
        "distribution: 11 tables distributed by tenant_id in 1 colocation group, 2 reference tables on 2 workers",
    );
    verify_reports_the_distribution(&db, &plan);
    // A broken fact fails verify: the audit log put in a colocation group of its own
    // (metadata only, its shards stay where they are), then back. Not a table with keys to
    // other tenant tables: verify's cross-tenant counts join those, which Citus refuses
    // between tables that are not colocated.
    db.exec("SELECT update_distributed_table_colocation('public.audit_events', colocate_with => 'none')")
        .await;
    db.tenantize(&["verify", &plan])
        .expect_code(3)
        .expect_output("the tenant tables are in 2 colocation groups");
    db.exec(
        "SELECT update_distributed_table_colocation('public.audit_events', colocate_with => 'public.users')",
    )
    .await;
    db.tenantize(&["verify", &plan]).expect_ok();

    // Distribution facts: every tenant table hash-distributed by tenant_id in one colocation
    // group, the tenant table and the lookup replicated, shards on both workers.
    let groups = db
        .query_i64(
            "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
              WHERE partmethod = 'h' AND column_to_column_name(logicalrelid, partkey) = 'tenant_id'",
        )
        .await;
    assert_eq!(groups, 1);
    let distributed = db.query_i64("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'").await;
    assert_eq!(distributed, 8 + 3, "eight tenant tables and the audit log's three partitions");
    let reference = db
        .query_i64(
            "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'n' AND repmodel = 't'
               AND logicalrelid IN ('public.tenants'::regclass, 'public.issue_statuses'::regclass)",
        )
        .await;
    assert_eq!(reference, 2);
    let placements = placements_per_worker(&db).await;
    assert_eq!(placements.len(), 2, "{placements:?}");
    assert!(placements.iter().all(|(_, n)| *n > 0), "{placements:?}");

    // Nothing lost, nothing changed, read through the coordinator (the tenant table is new).
    let mut after_rows = db.row_checksums(&["public"], "tenant_id").await;
    assert!(after_rows.remove("public.tenants").is_some());
    assert_eq!(after_rows, before_rows);

    // Isolation proven through the coordinator, with its probe role gone afterwards; and the
    // probe can fail there: with one table's RLS off it finds the leak.
    db.tenantize(&["verify", &plan, "--isolation"])
        .expect_ok()
        .expect_output("proven for 11 of 11 tables, 1 of 1 views")
        .expect_output("refuses this view's query as written")
        .expect_output("committed temporary role (tenantize_isolation_probe_");
    // The role is named after the database (two databases' probes must not drop each other's).
    let probe_roles = "SELECT count(*) FROM pg_roles WHERE rolname = 'tenantize_isolation_probe_' \
                       || (SELECT oid FROM pg_database WHERE datname = current_database())";
    assert_eq!(db.query_i64(probe_roles).await, 0);
    // On Citus the probe's role is committed: a second probe of the database (here the run
    // lock held by another session, as a run or a probe would) is refused, not interleaved.
    let holder = db.connect().await;
    hold_run_lock(&holder).await;
    db.tenantize(&["verify", &plan, "--isolation"])
        .expect_code(5)
        .expect_output("another tenantize run holds the lock");
    release_run_lock(&holder).await;
    assert_eq!(db.query_i64(probe_roles).await, 0, "a refused probe creates no role");
    // One command per string: Citus refuses several on a distributed table.
    let client = db.connect().await;
    client.batch_execute("ALTER TABLE public.sprints NO FORCE ROW LEVEL SECURITY").await.unwrap();
    client.batch_execute("ALTER TABLE public.sprints DISABLE ROW LEVEL SECURITY").await.unwrap();
    db.tenantize(&["verify", &plan, "--isolation"])
        .expect_code(3)
        .expect_output("LEAK public.sprints")
        .expect_output("tenant A reads only its rows: saw");
    client.batch_execute("ALTER TABLE public.sprints ENABLE ROW LEVEL SECURITY").await.unwrap();
    client.batch_execute("ALTER TABLE public.sprints FORCE ROW LEVEL SECURITY").await.unwrap();
    assert_eq!(db.query_i64(probe_roles).await, 0);

    // The application through the coordinator: SET LOCAL reaches the shards.
    let app = app_role(&db);
    db.exec(&format!(
        "CREATE ROLE {app} LOGIN;
         GRANT USAGE ON SCHEMA public TO {app};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app};
         INSERT INTO tenants (id, name) VALUES ('{OTHER_TENANT}', 'B');"
    ))
    .await;
    let issues = db.query_i64("SELECT count(*) FROM public.issues").await;
    assert!(issues > 0);
    assert_eq!(count_as_app(&db, Some(DEFAULT_TENANT), "public.issues").await, issues);
    assert_eq!(count_as_app(&db, Some(OTHER_TENANT), "public.issues").await, 0);
    assert_eq!(count_as_app(&db, None, "public.issues").await, 0);
    assert_eq!(count_as_app(&db, Some(OTHER_TENANT), "public.issue_comments").await, 0);

    // An insert as the application gets the next identity value, not one Citus restarted.
    let max_user = db.query_i64("SELECT max(id) FROM public.users").await;
    let client = db.connect().await;
    client
        .batch_execute(&format!("BEGIN; SET LOCAL ROLE {app}; SET LOCAL app.tenant_id = '{OTHER_TENANT}'"))
        .await
        .unwrap();
    let new_id: i64 = client
        .query_one(
            "INSERT INTO public.users (tenant_id, email, display_name, password_hash)
             VALUES ($1::text::uuid, 'b@example.com', 'B', 'x') RETURNING id",
            &[&OTHER_TENANT],
        )
        .await
        .expect("the application inserts through the coordinator")
        .get(0);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(new_id > max_user, "identity restarted: {new_id} <= {max_user}");
    db.exec(&format!(
        "DELETE FROM tenants WHERE id = '{OTHER_TENANT}'; DROP OWNED BY {app}; DROP ROLE {app};"
    ))
    .await;

    // Back to the single-node database, exactly.
    rolled_back_exactly(&db, &plan, &before_dump, &before_rows).await;
    let identity_after = db.query_i64("SELECT last_value FROM public.users_id_seq").await;
    assert!(identity_after >= max_user, "the identity's sequence went back: {identity_after} < {max_user}");
}

/// The application writing during stage 9: new comments, each in its own transaction, as the
/// superuser (RLS does not apply; its rows are deleted afterwards).
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Writer {
    fn start(url: &str) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, url) = (stop.clone(), url.to_string());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let spec = tenantize::db::ConnSpec::resolve(Some(&url), &tenantize::db::ProcessEnv).unwrap();
                let client = spec.connect("tenantize-test writer").await.unwrap();
                let issue = "SELECT id, reporter_id FROM public.issues ORDER BY id LIMIT 1";
                let row = client.query_one(issue, &[]).await.unwrap();
                let (issue, author): (i64, i64) = (row.get(0), row.get(1));
                let (mut written, mut failed) = (0, Vec::new());
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let sql = "INSERT INTO public.issue_comments (issue_id, author_id, body)
                               VALUES ($1, $2, 'tenantize-test writer')";
                    match client.execute(sql, &[&issue, &author]).await {
                        Ok(_) => written += 1,
                        Err(e) => failed.push(tenantize::db::describe_pg_error(&e)),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                (written, failed)
            })
        });
        Writer { stop, thread }
    }

    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// `rollback --all`: nothing left to Citus, and the schema dump and every row as they were.
async fn rolled_back_exactly(
    db: &TestDb,
    plan: &str,
    before_dump: &str,
    before_rows: &std::collections::BTreeMap<String, (i64, String)>,
) {
    db.tenantize(&["rollback", plan, "--all", "--yes"]).expect_ok();
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_dist_partition").await, 0);
    let after = db.schema_dump();
    assert!(after == before_dump, "schema differs after rollback:\n{}", text_diff(before_dump, &after));
    assert_eq!(&db.row_checksums(&["public"], "tenant_id").await, before_rows);
}

/// As the plain LOGIN role `app_role` through the coordinator: with the default tenant set it
/// reads every row of `table`, with another tenant none, with no tenant none.
async fn app_role_sees_only_its_tenant(db: &TestDb, table: &str) {
    let app = app_role(db);
    db.exec(&format!(
        "CREATE ROLE {app} LOGIN;
         GRANT USAGE ON SCHEMA public TO {app};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
         INSERT INTO tenants (id, name) VALUES ('{OTHER_TENANT}', 'B');"
    ))
    .await;
    let rows = db.query_i64(&format!("SELECT count(*) FROM {table}")).await;
    assert!(rows > 0);
    assert_eq!(count_as_app(db, Some(DEFAULT_TENANT), table).await, rows);
    assert_eq!(count_as_app(db, Some(OTHER_TENANT), table).await, 0);
    assert_eq!(count_as_app(db, None, table).await, 0);
    db.exec(&format!(
        "DELETE FROM tenants WHERE id = '{OTHER_TENANT}'; DROP OWNED BY {app}; DROP ROLE {app};"
    ))
    .await;
}

/// chinook: distributed (no option needed: every key is NO ACTION, every table has a primary
/// key), proven isolated through the coordinator, then the cluster outgrows two workers: a
/// third is added and the shards rebalanced online, and it all still holds; then back to the
/// single-node database, exactly.
#[tokio::test]
async fn chinook_is_distributed_rebalanced_onto_a_new_worker_and_rolled_back_exactly() {
    let _serial = serial().await;
    let db = citus_chinook_db("dist_chinook").await;
    let before_dump = db.schema_dump();
    let before_rows = db.row_checksums(&["public"], "tenant_id").await;
    let dir = scratch_dir();
    let plan = dir.path().join("c.plan.toml").to_str().unwrap().to_string();
    db.tenantize(&["plan", "--out", &plan, "--distribute", "citus", "--shard-count", "4"]).expect_ok();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
    db.tenantize(&["verify", &plan, "--isolation"]).expect_ok().expect_output("proven for 11 of 11 tables");
    let distributed = "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'
                        AND column_to_column_name(logicalrelid, partkey) = 'tenant_id'";
    assert_eq!(db.query_i64(distributed).await, 11);
    let mut after_rows = db.row_checksums(&["public"], "tenant_id").await;
    assert!(after_rows.remove("public.tenants").is_some());
    assert_eq!(after_rows, before_rows);
    app_role_sees_only_its_tenant(&db, "public.invoice_line").await;

    // Outgrowing two workers: add a third, rebalance online (logical replication, as
    // create_distributed_table_concurrently), and the facts still hold.
    let _third = add_worker(&db).await;
    db.exec("SELECT citus_rebalance_start(shard_transfer_mode => 'force_logical')").await;
    db.exec("SELECT citus_rebalance_wait()").await;
    let placements = placements_per_worker(&db).await;
    assert_eq!(placements.len(), 3, "{placements:?}");
    assert!(placements.iter().all(|(_, n)| *n > 0), "every worker holds shards: {placements:?}");
    db.tenantize(&["verify", &plan]).expect_ok();
    db.tenantize(&["verify", &plan, "--isolation"]).expect_ok();
    app_role_sees_only_its_tenant(&db, "public.invoice_line").await;
    let mut after_rows = db.row_checksums(&["public"], "tenant_id").await;
    assert!(after_rows.remove("public.tenants").is_some());
    assert_eq!(after_rows, before_rows, "rows unchanged by the rebalance");

    rolled_back_exactly(&db, &plan, &before_dump, &before_rows).await;
}

/// pagila: partitioned `payment` (its primary key scoped in place, the partitions distributed
/// with it), user triggers on most tables, ON UPDATE CASCADE keys the operator accepts as NO
/// ACTION, and a materialized view joining six tables that Citus cannot re-create: the plan
/// refuses it first, naming it, and the operator drops it.
#[tokio::test]
async fn pagila_with_partitions_and_triggers_is_distributed_isolated_and_rolled_back_exactly() {
    let _serial = serial().await;
    let db = citus_pagila_db("dist_pagila").await;
    let dir = scratch_dir();
    let plan = dir.path().join("p.plan.toml").to_str().unwrap().to_string();
    let definer = PAGILA_ACKNOWLEDGE[3];
    let mut args = vec!["plan", "--out", &plan, "--distribute", "citus", "--acknowledge", definer];
    args.extend(PAGILA_ACKNOWLEDGE[..2].iter());
    let refused = db.tenantize(&args);
    refused.expect_code(1).expect_output("citus-materialized-view public.rental_by_category");
    assert!(!std::path::Path::new(&plan).exists(), "nothing is written");
    db.exec("DROP MATERIALIZED VIEW public.rental_by_category").await;
    let before_dump = db.schema_dump();
    let before_rows = db.row_checksums(&["public"], "tenant_id").await;
    let mut args = vec!["plan", "--out", &plan, "--distribute", "citus", "--acknowledge", definer];
    let keys = db.tenantize(&args);
    keys.expect_code(1);
    // The keys' acknowledgements, as the operator copies them from the findings.
    let accepted: Vec<String> = keys
        .text()
        .split_whitespace()
        .filter(|w| w.starts_with("citus-foreign-key-action:"))
        .map(str::to_string)
        .collect();
    assert_eq!(accepted.len(), 17, "pagila's ON UPDATE CASCADE keys: {}", keys.text());
    for key in &accepted {
        args.extend(["--acknowledge", key.as_str()]);
    }
    db.tenantize(&args).expect_ok().expect_output("partitioned-unique-in-place payment_pkey");
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
    db.tenantize(&["verify", &plan, "--isolation"]).expect_ok().expect_output("proven for 22 of 22 tables");
    let partitions = "SELECT count(*) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                       WHERE p.partmethod = 'h' AND c.relname LIKE 'payment%'";
    assert_eq!(db.query_i64(partitions).await, 8, "payment and its seven partitions");
    let mut after_rows = db.row_checksums(&["public"], "tenant_id").await;
    assert!(after_rows.remove("public.tenants").is_some());
    assert_eq!(after_rows, before_rows);
    app_role_sees_only_its_tenant(&db, "public.payment").await;

    rolled_back_exactly(&db, &plan, &before_dump, &before_rows).await;
}

#[tokio::test]
async fn plan_distribute_refuses_a_database_without_citus_and_names_what_is_missing() {
    let (coordinator, _) = nodes();
    let name = coordinator.create_database("dist_none", None).await.unwrap();
    let db = db_handle(name);
    let client = db.connect().await;
    tenantize::sample::load(&client, 200).await.unwrap();
    let dir = scratch_dir();
    let out = dir.path().join("none.plan.toml");
    let run = db.tenantize(&["plan", "--out", out.to_str().unwrap(), "--distribute", "citus"]);
    run.expect_code(1).expect_output("citus-not-ready").expect_output("CREATE EXTENSION citus");
    assert!(!out.exists(), "nothing is written");
    let run = db.tenantize(&[
        "plan",
        "--out",
        out.to_str().unwrap(),
        "--distribute",
        "citus",
        "--scope-primary-keys",
        "natural",
    ]);
    run.expect_code(5).expect_output("--scope-primary-keys all");
}

#[tokio::test]
async fn a_kill_during_stage_9_resumes_forward_and_back() {
    let _serial = serial().await;
    let db = citus_sample_db("dist_kill", ROWS).await;
    let before_dump = db.schema_dump();
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("k.plan.toml"), &distribute_args());
    db.tenantize(&["apply", &plan, "--yes", "--through", "8"]).expect_ok();
    // Units of work of a stage-9 run: 1 the setting, 2..=1+keys the keys taken off, then the
    // two reference tables, then users: FORCE off, made a Citus local table (its identity kept
    // where it was), distributed online, FORCE back. Each kill comes right after a unit commits and before
    // the journal records it; each run resumes where the last one stopped.
    let keys = db
        .query_i64(
            "SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
              JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE c.contype = 'f' AND n.nspname = 'public' AND c.conparentid = 0",
        )
        .await;
    let first = 1 + keys / 2;
    // users: FORCE off for the online copy, then made a Citus local table.
    let citus_local = keys - keys / 2 + 2 + 2;
    for (point, what) in [
        (first, "half the keys taken off"),
        (citus_local, "users a Citus local table, its identity put back"),
        (1, "users distributed"),
    ] {
        let point = format!("after-commit:{point}");
        let run = run_tenantize(
            &["apply", &plan, "--yes"],
            &[("DATABASE_URL", db.url.as_str()), ("TENANTIZE_FAILPOINT", point.as_str())],
        );
        assert_eq!(run.signal, Some(9), "killed with {what} ({point}): {}", run.text());
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'public.users'::regclass AND partmethod = 'h'").await,
        1,
        "users was distributed before the last kill"
    );
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
    assert!(db.query_i64("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'").await >= 8);
    // And back, killed once on the way.
    let run = run_tenantize(
        &["rollback", &plan, "--all", "--yes"],
        // The 19 keys taken off, attachments undistributed, then issue_comments.
        &[("DATABASE_URL", db.url.as_str()), ("TENANTIZE_FAILPOINT", "after-commit:21")],
    );
    assert_eq!(run.signal, Some(9), "{}", run.text());
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    let after = db.schema_dump();
    assert!(after == before_dump, "schema differs after rollback:\n{}", text_diff(&before_dump, &after));
}

#[tokio::test]
async fn the_test_cluster_is_a_coordinator_with_two_workers() {
    let db = citus_db("dist_nodes").await;
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 AND isactive").await, 2);
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_dist_node WHERE groupid = 0").await, 1);
}
