//! As a managed database's admin role (RDS, Cloud SQL, Azure): the owner of every table, with
//! CREATEROLE and CREATEDB, but neither superuser nor BYPASSRLS. Under FORCE ROW LEVEL SECURITY
//! such a role sees one tenant at a time; verify counts tenant by tenant, a full rollback
//! counts the guards RLS hides once stage 8 is undone, and the probe says up front what it needs.

mod common;
use common::*;

use tenantize::db::{ConnSpec, ProcessEnv};

const ROLE: &str = "cloud_admin";

/// A database owned by `cloud_admin`, with the sample application created by that role.
async fn owned_db(prefix: &str) -> (TestDb, String) {
    owned_db_as(prefix, ROLE).await
}

/// A database owned by the admin role `role`, with the sample application created by it.
async fn owned_db_as(prefix: &str, role: &str) -> (TestDb, String) {
    let cluster = cluster();
    let admin = cluster.conn_spec("postgres").connect("tenantize-test").await.unwrap();
    admin
        .batch_execute(&format!(
            // The tests of this binary run at once: a second CREATE ROLE of the same name
            // waits for the first and then fails on the unique index, not on the IF NOT EXISTS.
            "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE CREATEDB; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .await
        .unwrap();
    let name = cluster.create_database(prefix, None).await.unwrap();
    admin.batch_execute(&format!("ALTER DATABASE {name} OWNER TO {role}")).await.unwrap();
    let url = cluster.url(&name).replacen("postgres@", &format!("{role}@"), 1);
    let spec = ConnSpec::resolve(Some(&url), &ProcessEnv).unwrap();
    let client = spec.connect("tenantize-test").await.unwrap();
    tenantize::sample::load(&client, 300).await.expect("the sample, created by the admin role");
    (db_named(&name), url)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_owner_without_bypassrls_converts_verifies_and_rolls_back_everything() {
    let (db, url) = owned_db("managed").await;
    let env = [("DATABASE_URL", url.as_str())];
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = plan_path.to_str().unwrap();
    let schema_before = db.schema_dump();
    let rows_before = db.row_checksums(&["public"], "tenant_id").await;
    run_tenantize(&["plan", "--out", plan], &env).expect_ok();
    run_tenantize(&["apply", plan, "--yes"], &env).expect_ok();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_class WHERE relname = 'issues' AND relforcerowsecurity").await,
        1
    );
    // A second apply re-reads every finished step's state, now under FORCE RLS, which hides
    // the tables' rows of pg_stats from this role: stage 5's statistics still read as taken.
    run_tenantize(&["apply", plan, "--yes"], &env).expect_ok();
    // Counted tenant by tenant: the same totals a superuser sees, and never the NO FORCE hint.
    let verified = run_tenantize(&["verify", plan, "--json"], &env);
    verified.expect_ok();
    assert!(!verified.text().contains("NO FORCE"), "{}", verified.text());
    let as_owner: serde_json::Value = serde_json::from_str(&verified.stdout).expect("verify --json");
    let as_superuser: serde_json::Value =
        serde_json::from_str(&db.tenantize(&["verify", plan, "--json"]).expect_ok().stdout).unwrap();
    let rows = |report: &serde_json::Value| -> Vec<(String, i64)> {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["table"].as_str().unwrap().to_string(), t["rows"].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(rows(&as_owner), rows(&as_superuser));
    assert!(rows(&as_owner).iter().any(|(_, n)| *n > 0));
    // A row of another tenant is counted too (the superuser adds it; the owner sees it only
    // as that tenant).
    db.exec(
        "INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-0000000000b2', 'other');
         INSERT INTO audit_events (tenant_id, occurred_at, action)
         SELECT '00000000-0000-0000-0000-0000000000b2', occurred_at, action FROM audit_events LIMIT 1;",
    )
    .await;
    let after: serde_json::Value =
        serde_json::from_str(&run_tenantize(&["verify", plan, "--json"], &env).expect_ok().stdout).unwrap();
    let audit = |report: &serde_json::Value| {
        rows(report)
            .into_iter()
            .filter(|(t, _)| t.starts_with("public.audit_events_"))
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    assert_eq!(audit(&after), audit(&as_owner) + 1);
    // The probe says what it needs, before it changes anything.
    run_tenantize(&["verify", plan, "--isolation"], &env).expect_code(1).expect_output("must be a superuser");
    // A full rollback refuses before changing anything while another tenant exists.
    run_tenantize(&["rollback", plan, "--all", "--yes"], &env)
        .expect_code(1)
        .expect_output("tenants other than the default");
    assert!(db.query_i64("SELECT count(*) FROM pg_policies").await > 0, "nothing was undone");
    db.exec(
        "DELETE FROM audit_events WHERE tenant_id = '00000000-0000-0000-0000-0000000000b2';
         DELETE FROM tenants WHERE id = '00000000-0000-0000-0000-0000000000b2';",
    )
    .await;
    // With it gone the rollback finishes; the guards FORCE RLS hides are counted once stage 8
    // is undone, in stage order.
    run_tenantize(&["rollback", plan, "--all", "--yes"], &env).expect_ok().expect_output(
        "before undoing 3.add-column:public.issues: rows of other tenants in public.issues = 0 (ok)",
    );
    let schema_after = db.schema_dump();
    assert!(schema_after == schema_before, "{}", text_diff(&schema_before, &schema_after));
    assert_eq!(db.row_checksums(&["public"], "tenant_id").await, rows_before);
}

/// The admin role may set a plain role's default tenant (CREATEROLE) but not a superuser's:
/// the plan names the role it cannot change, before anything changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_role_the_admin_role_may_not_alter_is_refused_at_plan_time() {
    let (db, url) = owned_db("managed_legacy").await;
    db.exec(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'managed_app') THEN \
         CREATE ROLE managed_app LOGIN; END IF; END $$",
    )
    .await;
    let env = [("DATABASE_URL", url.as_str())];
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = plan_path.to_str().unwrap();
    run_tenantize(&["plan", "--out", plan, "--legacy-role", "postgres"], &env)
        .expect_code(1)
        .expect_output("legacy-role-privilege")
        .expect_output("may not ALTER ROLE postgres");
    assert!(!plan_path.exists(), "nothing is written");
    run_tenantize(&["plan", "--out", plan, "--legacy-role", "managed_app"], &env).expect_ok();
}

/// The batched backfill as an admin role: the setting it asks of a superuser
/// (`wal_compression`) is refused and it goes on without it; every row gets its tenant,
/// no pre-existing column changes, and the rollback is exact.
#[tokio::test(flavor = "multi_thread")]
async fn the_batched_backfill_runs_as_the_admin_role_without_its_superuser_settings() {
    // Its own role: the grant below would change what the other tests' role may do.
    let role = "cloud_admin_batched";
    let (db, url) = owned_db_as("managed_batched", role).await;
    // What tenantize's own advice says a managed admin needs to keep triggers from firing.
    db.exec(&format!("GRANT SET ON PARAMETER session_replication_role TO {role}")).await;
    let env = [("DATABASE_URL", url.as_str())];
    let spec = ConnSpec::resolve(Some(&url), &ProcessEnv).unwrap();
    let as_admin = spec.connect("tenantize-test").await.unwrap();
    let refused = as_admin.batch_execute("SET wal_compression = lz4").await.unwrap_err();
    assert!(format!("{refused:?}").contains("permission denied"), "{refused:?}");
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = plan_path.to_str().unwrap();
    let schema_before = db.schema_dump();
    let rows_before = db.row_checksums(&["public"], "tenant_id").await;
    run_tenantize(&["plan", "--out", plan, "--backfill", "batched", "--batch-rows", "40"], &env).expect_ok();
    run_tenantize(&["apply", plan, "--yes"], &env).expect_ok();
    // As the superuser, whom RLS does not hide rows from.
    assert_eq!(db.query_i64("SELECT count(*) FROM public.issue_comments WHERE tenant_id IS NULL").await, 0);
    assert!(db.query_i64("SELECT count(*) FROM public.issue_comments").await > 40, "more than one batch");
    // Every pre-existing row, every column but the tenant's, unchanged (the tenant table is new).
    let mut rows_applied = db.row_checksums(&["public"], "tenant_id").await;
    assert!(rows_applied.remove("public.tenants").is_some());
    assert_eq!(rows_applied, rows_before);
    run_tenantize(&["rollback", plan, "--all", "--yes"], &env).expect_ok();
    let schema_after = db.schema_dump();
    assert!(schema_after == schema_before, "{}", text_diff(&schema_before, &schema_after));
    assert_eq!(db.row_checksums(&["public"], "tenant_id").await, rows_before);
}
