//! `verify --isolation`: finds no leak in a correct conversion, finds each kind of leak when one
//! is planted, and leaves nothing behind either way.

mod common;
use common::*;

async fn converted_sample(prefix: &str, dir: &tempfile::TempDir) -> (TestDb, String) {
    let db = sample_db(prefix, 800).await;
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    (db, plan)
}

async fn leftovers(db: &TestDb) -> (i64, i64) {
    (
        db.query_i64("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenantize%'").await,
        db.query_i64("SELECT count(*) FROM public.tenants").await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correct_conversion_isolates_and_the_probe_leaves_nothing_behind() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_ok", &dir).await;
    let schema = db.schema_dump();
    let rows = db.row_checksums(&["public"], "none").await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_ok()
        .expect_output("no leak")
        .expect_output("ok   public.issues")
        .expect_output("ok   public.audit_events_2024_02")
        .expect_output("ok   public.open_issues");
    let json = db.tenantize(&["verify", "--isolation", &plan, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let issues =
        report["tables"].as_array().unwrap().iter().find(|t| t["object"] == "public.issues").unwrap();
    let names: Vec<&str> =
        issues["probes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for expected in [
        "tenant A reads only its rows",
        "no tenant set reads nothing",
        "inserting a row of another tenant is refused",
        "moving a row to another tenant is refused",
        "a row pointing at another tenant's public.projects is refused",
        "a unique value may repeat in another tenant",
        "a unique value cannot repeat within a tenant",
    ] {
        assert!(names.contains(&expected), "public.issues lacks probe {expected:?}: {names:?}");
    }
    // Without a plan, the tenancy is read from the database.
    db.tenantize(&["verify", "--isolation"]).expect_ok().expect_output("no leak");
    assert_eq!(leftovers(&db).await, (0, 1), "a probe role or probe tenants were left behind");
    assert_eq!(schema, db.schema_dump());
    assert_eq!(rows, db.row_checksums(&["public"], "none").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_without_its_policy_leaks_and_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_partition", &dir).await;
    db.exec("ALTER TABLE public.audit_events_2024_01 DISABLE ROW LEVEL SECURITY").await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.audit_events_2024_01")
        .expect_output("no tenant set reads nothing");
    assert_eq!(leftovers(&db).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_foreign_key_lets_a_child_point_across_tenants_and_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_fk", &dir).await;
    db.exec(
        "ALTER TABLE public.issue_comments DROP CONSTRAINT issue_comments_issue_id_fkey;
         ALTER TABLE public.issue_comments ADD CONSTRAINT issue_comments_issue_id_fkey
               FOREIGN KEY (issue_id) REFERENCES public.issues (id) ON DELETE CASCADE;",
    )
    .await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.issue_comments")
        .expect_output("a row pointing at another tenant's public.issues is refused: was allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_unique_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_unique", &dir).await;
    db.exec(
        "ALTER TABLE public.projects DROP CONSTRAINT projects_key_key CASCADE;
         ALTER TABLE public.projects ADD CONSTRAINT projects_key_key UNIQUE (key);",
    )
    .await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.projects")
        .expect_output("a unique value may repeat in another tenant: refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_that_bypasses_rls_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_view", &dir).await;
    db.exec("ALTER VIEW public.open_issues RESET (security_invoker)").await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.open_issues")
        .expect_output("reading through the view shows only the tenant's rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_converted_isolates() {
    let db = pagila_db("iso_pagila").await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml").to_str().unwrap().to_string();
    db.tenantize(&["plan", "--out", &plan]).expect_ok();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", "--isolation", &plan]).expect_ok().expect_output("no leak");
}
