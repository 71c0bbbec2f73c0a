//! Bad input gets a clear message, the documented exit code, and changes nothing.

mod common;
use common::*;

async fn planned(db: &TestDb, dir: &tempfile::TempDir, extra: &[&str]) -> String {
    db.plan_sample(&dir.path().join("plan.toml"), extra)
}

async fn journal_exists(db: &TestDb) -> bool {
    db.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_plan_is_refused_and_nothing_changes() {
    let db = sample_db("tamper", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let text = std::fs::read_to_string(&plan).unwrap();
    let edited = text.replacen(
        "DROP TABLE IF EXISTS public.tenants;",
        "DROP TABLE IF EXISTS public.tenants CASCADE;",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&plan, edited).unwrap();
    let before = db.schema_dump();
    db.tenantize(&["apply", &plan, "--yes"])
        .expect_code(5)
        .expect_output("step 1.tenant-table")
        .expect_output("does not match its checksum")
        .expect_output("tenantize plan seal");
    assert_eq!(before, db.schema_dump());
    assert!(!journal_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_or_garbled_plan_is_refused() {
    let db = sample_db("garbled", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, &text[..text.len() / 2]).unwrap();
    db.tenantize(&["apply", &plan, "--yes"]).expect_code(5).expect_output("not a readable tenantize plan");
    std::fs::write(&plan, "this is not toml at all [[[").unwrap();
    db.tenantize(&["apply", &plan, "--yes"]).expect_code(5).expect_output("not a readable tenantize plan");
    db.tenantize(&["apply", "/nonexistent/plan.toml", "--yes"])
        .expect_code(5)
        .expect_output("cannot read plan");
    assert!(!journal_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_after_planning_is_refused() {
    let db = sample_db("drift", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.exec("ALTER TABLE public.users ADD COLUMN nickname text").await;
    let before = db.schema_dump();
    db.tenantize(&["apply", &plan, "--yes"])
        .expect_code(5)
        .expect_output("table public.users changed")
        .expect_output("tenantize plan");
    assert_eq!(before, db.schema_dump());
    assert!(!journal_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_in_the_middle_of_a_conversion_is_refused_for_the_steps_still_to_run() {
    let db = sample_db("drift_mid", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--through", "not-null", "--yes"]).expect_ok();
    // Resuming with no change works even though the tables now carry the tenant column.
    db.tenantize(&["apply", &plan, "--through", "indexes", "--yes"]).expect_ok();
    db.exec("CREATE UNIQUE INDEX sprints_dates_key ON public.sprints (project_id, starts_on)").await;
    let before = db.schema_dump();
    db.tenantize(&["apply", &plan, "--yes"]).expect_code(5).expect_output("table public.sprints changed");
    assert_eq!(before, db.schema_dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_the_plan_creates_made_by_hand_after_planning_is_refused() {
    let db = sample_db("taken_name", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    // The name of stage 7's scoped copy of users_email_key, on the global key: the build would
    // take it for its copy, and the swap would put a global unique back under the name.
    let copy = "CREATE UNIQUE INDEX users_email_key_tenant_id ON public.users (lower(email)) \
                WHERE deleted_at IS NULL";
    db.exec(copy).await;
    let before = db.schema_dump();
    let refusal = "public.users_email_key_tenant_id exists, but the plan creates it in step \
                   7.unique-build:public.users, which has not started";
    db.tenantize(&["apply", &plan, "--yes"]).expect_code(5).expect_output(refusal);
    assert_eq!(before, db.schema_dump());
    assert!(!journal_exists(&db).await);
    // Mid-run alike: the steps that ran are the plan's own, the one still to start is not.
    db.exec("DROP INDEX public.users_email_key_tenant_id").await;
    db.tenantize(&["apply", &plan, "--through", "indexes", "--yes"]).expect_ok();
    db.exec(copy).await;
    let before = db.schema_dump();
    db.tenantize(&["apply", &plan, "--yes"]).expect_code(5).expect_output(refusal);
    assert_eq!(before, db.schema_dump());
    db.exec("DROP INDEX public.users_email_key_tenant_id").await;
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", &plan]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_fails_at_once_naming_the_holder() {
    let db = sample_db("second_run", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let holder = db.connect().await;
    holder.batch_execute("SET application_name = 'the other tenantize'").await.unwrap();
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    hold_run_lock(&holder).await;
    let started = std::time::Instant::now();
    db.tenantize(&["apply", &plan, "--yes"])
        .expect_code(5)
        .expect_output("another tenantize run holds the lock")
        .expect_output(&format!("pid {pid}"))
        .expect_output("the other tenantize");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "a second run must not queue");
    assert!(!journal_exists(&db).await);
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_code(5).expect_output(&format!("pid {pid}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_ownership_is_refused_before_anything_changes() {
    let db = sample_db("privileges", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    let role = format!("dev_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CONNECT, CREATE ON DATABASE {db} TO {role};
         GRANT USAGE, CREATE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
        db = db.name
    ))
    .await;
    let before = db.schema_dump();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    run_tenantize(&["apply", &plan, "--yes"], &[("DATABASE_URL", url.as_str())])
        .expect_code(1)
        .expect_output("preflight refused")
        .expect_output(&format!("role {role} does not own public.users (owner: postgres)"));
    assert_eq!(before, db.schema_dump());
    assert!(!journal_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_stops_where_it_would_erase_tenant_assignments_unless_forced() {
    let db = sample_db("no_return", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.exec(
        "INSERT INTO public.tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000002', 'Second');
         INSERT INTO public.users (email, display_name, password_hash, tenant_id)
         VALUES ('new@example.com', 'New', 'x', '00000000-0000-0000-0000-000000000002');",
    )
    .await;
    let before = db.schema_dump();
    db.tenantize(&["rollback", &plan, "--all", "--yes"])
        .expect_code(1)
        .expect_output(
            "3.add-column:public.users: 1 rows of public.users belong to a tenant other than the default one",
        )
        .expect_output("--force")
        .expect_output("1.tenant-table: 1 tenants other than the default one exist");
    assert_eq!(before, db.schema_dump(), "a refused rollback must change nothing");
    db.tenantize(&["verify", &plan]).expect_ok();
    // Rolling back only the later stages loses nothing and is allowed.
    db.tenantize(&["rollback", &plan, "--to", "5", "--yes"]).expect_ok();
    db.tenantize(&["rollback", &plan, "--all", "--force", "--yes"]).expect_ok();
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id' AND NOT attisdropped").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_back_a_unique_stops_when_values_now_repeat_across_tenants() {
    let db = sample_db("repeats", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    db.exec(
        "INSERT INTO public.tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000002', 'Second');
         INSERT INTO public.users (id, email, display_name, password_hash, tenant_id)
         VALUES (900001, 'owner@example.com', 'Owner', 'x', '00000000-0000-0000-0000-000000000002');
         INSERT INTO public.projects (key, name, owner_id, tenant_id)
         VALUES ('P1', 'Same key, other tenant', 900001, '00000000-0000-0000-0000-000000000002');",
    )
    .await;
    let before = db.schema_dump();
    db.tenantize(&["rollback", &plan, "--to", "6", "--force", "--yes"])
        .expect_code(1)
        .expect_output("7.unique-swap:public.projects: 1 values that projects_key_key once kept unique now repeat across tenants");
    assert_eq!(before, db.schema_dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_plan_in_progress_is_refused() {
    let db = sample_db("other_plan", 500).await;
    let dir_a = scratch_dir();
    let dir_b = scratch_dir();
    let plan_a = planned(&db, &dir_a, &[]).await;
    db.tenantize(&["apply", &plan_a, "--through", "3", "--yes"]).expect_ok();
    // A second plan (other column and tenant table) must not start on top of the first.
    let plan_b = dir_b.path().join("b.toml");
    db.tenantize(&[
        "plan",
        "--out",
        plan_b.to_str().unwrap(),
        "--tenant-column",
        "org_id",
        "--tenant-table",
        "orgs",
    ])
    .expect_ok();
    db.tenantize(&["apply", plan_b.to_str().unwrap(), "--yes"])
        .expect_code(5)
        .expect_output("different plan in progress");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_errors_are_clear_and_never_show_the_password() {
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    let run = run_tenantize(
        &[
            "plan",
            "--out",
            plan.to_str().unwrap(),
            "--database-url",
            "postgresql://alice:s3cret@127.0.0.1:1/nowhere",
        ],
        &[],
    );
    run.expect_code(5).expect_output("could not connect to postgresql://alice@127.0.0.1:1/nowhere");
    assert!(!run.text().contains("s3cret"), "{}", run.text());
    assert!(!plan.exists());
    run_tenantize(&["apply", "plan.toml", "--through", "nine", "--yes"], &[])
        .expect_code(5)
        .expect_output("unknown stage");
    run_tenantize(&["rollback", "plan.toml", "--yes"], &[]).expect_code(5).expect_output("--to <STAGE>");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_without_confirmation_off_a_terminal_is_refused() {
    let db = sample_db("confirm", 500).await;
    let dir = scratch_dir();
    let plan = planned(&db, &dir, &[]).await;
    db.tenantize(&["apply", &plan]).expect_code(5).expect_output("pass --yes");
    assert!(!journal_exists(&db).await);
}
