//! The application's side of the conversion, with a real legacy role: a LOGIN role that is
//! neither owner, superuser nor BYPASSRLS, granted DML, connecting with psql and never setting
//! the tenant. It keeps reading and writing its rows through stage 8 (`--legacy-role` gives it
//! the default tenant), fails closed after `tenantize cutover`, works again once stage 10 is
//! rolled back, and `rollback --all` leaves the schema and its role settings as they were.

mod common;
use common::*;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A legacy application role for `db`: LOGIN, no BYPASSRLS, DML on every table.
async fn legacy_role(db: &TestDb, name: &str) {
    db.exec(&format!(
        "CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS;
         GRANT USAGE ON SCHEMA public TO {name};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name};"
    ))
    .await;
}

/// psql as `role`, as the legacy application runs it: no SET LOCAL, one statement.
fn psql_as(db: &TestDb, role: &str, sql: &str) -> (bool, String) {
    let cluster = cluster();
    let out = Command::new(tenantize::sandbox::client_tool("psql"))
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(cluster.socket_dir())
        .args(["-p", &cluster.port().to_string(), "-U", role, "-d", &db.name, "-c", sql])
        .env_remove("PGOPTIONS")
        .output()
        .expect("run psql");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

fn count_as(db: &TestDb, role: &str, sql: &str) -> i64 {
    let (ok, text) = psql_as(db, role, sql);
    assert!(ok, "{role}: {sql}: {text}");
    text.lines().last().unwrap_or_default().parse().unwrap_or_else(|_| panic!("{role}: {sql}: {text}"))
}

fn insert_user(db: &TestDb, role: &str, email: &str) -> (bool, String) {
    psql_as(
        db,
        role,
        &format!("INSERT INTO users (email, display_name, password_hash) VALUES ('{email}', 'legacy', 'x')"),
    )
}

/// The roles' settings in this database, as `pg_db_role_setting` holds them.
async fn role_settings(db: &TestDb, roles: &[&str]) -> String {
    let client = db.connect().await;
    let list: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let row = client
        .query_one(
            "SELECT coalesce(string_agg(r.rolname || ': ' || array_to_string(s.setconfig, ', '), '; ' ORDER BY r.rolname), '')
               FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
              WHERE r.rolname = ANY ($1) AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&list],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_role_works_through_stage_8_fails_closed_after_the_cutover_and_rollbacks_restore_it() {
    let db = sample_db("cutover", 300).await;
    let (fresh, kept) = (format!("{}_fresh", db.name), format!("{}_kept", db.name));
    legacy_role(&db, &fresh).await;
    legacy_role(&db, &kept).await;
    // One role had settings here already: an unrelated one and a tenant the rollback restores.
    db.exec(&format!(
        "ALTER ROLE {kept} IN DATABASE {} SET work_mem = '8MB';
         ALTER ROLE {kept} IN DATABASE {} SET app.tenant_id = 'before';",
        db.name, db.name
    ))
    .await;
    let settings_before = role_settings(&db, &[&fresh, &kept]).await;
    assert!(settings_before.contains("app.tenant_id=before"), "{settings_before}");
    let schema_before = db.schema_dump();
    let users = count_as(&db, &fresh, "SELECT count(*) FROM users");
    assert!(users > 0);

    let dir = scratch_dir();
    let plan =
        db.plan_sample(&dir.path().join("plan.toml"), &["--legacy-role", &fresh, "--legacy-role", &kept]);
    db.tenantize(&["apply", &plan, "--yes"])
        .expect_ok()
        .expect_output(&format!("cutover pending: run `tenantize cutover {plan}`"));
    // Through stage 8 the legacy application, which sets no tenant, sees and writes its rows.
    for role in [&fresh, &kept] {
        assert_eq!(count_as(&db, role, "SELECT count(*) FROM users"), users, "{role} after stage 8");
    }
    let (ok, text) = insert_user(&db, &fresh, "legacy-1@example.com");
    assert!(ok, "an insert without SET LOCAL after stage 8: {text}");
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM public.users WHERE email = 'legacy-1@example.com' \
             AND tenant_id = '00000000-0000-0000-0000-000000000001'"
        )
        .await,
        1,
        "written for the default tenant"
    );
    db.tenantize(&["verify", &plan]).expect_ok().expect_output("cutover (stage 10): pending");
    db.tenantize(&["status", &plan]).expect_ok().expect_output("cutover (stage 10): pending");

    db.tenantize(&["cutover", &plan, "--yes"]).expect_ok();
    // Fails closed: no tenant, no rows, no insert; SET LOCAL still works.
    assert_eq!(count_as(&db, &fresh, "SELECT count(*) FROM users"), 0, "reads nothing after the cutover");
    let (ok, text) = insert_user(&db, &fresh, "legacy-2@example.com");
    assert!(!ok, "an insert without a tenant must be refused after the cutover: {text}");
    assert_eq!(count_as(&db, &kept, "SELECT count(*) FROM users"), 0);
    let with_tenant = "BEGIN; SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000001'; \
                       INSERT INTO users (email, display_name, password_hash) VALUES ('new-1@example.com', 'new', 'x'); \
                       SELECT count(*) FROM users; COMMIT;";
    let (ok, text) = psql_as(&db, &fresh, with_tenant);
    assert!(ok && text.contains(&(users + 2).to_string()), "SET LOCAL after the cutover: {text}");
    db.tenantize(&["verify", &plan]).expect_ok().expect_output("cutover (stage 10): done");

    // Rolling back stage 10 gives the legacy application its default tenant back.
    db.tenantize(&["rollback", &plan, "--to", "8", "--yes"]).expect_ok();
    assert_eq!(count_as(&db, &fresh, "SELECT count(*) FROM users"), users + 2);
    let (ok, text) = insert_user(&db, &fresh, "legacy-3@example.com");
    assert!(ok, "an insert without SET LOCAL after rolling back the cutover: {text}");
    db.tenantize(&["verify", &plan]).expect_ok().expect_output("cutover (stage 10): pending");

    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    let schema_after = db.schema_dump();
    assert!(schema_after == schema_before, "{}", text_diff(&schema_before, &schema_after));
    assert_eq!(role_settings(&db, &[&fresh, &kept]).await, settings_before);
    assert_eq!(count_as(&db, &fresh, "SELECT count(*) FROM users"), users + 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_of_a_legacy_role_open_during_the_cutover_is_named_and_keeps_its_tenant() {
    let db = sample_db("cutover_open", 300).await;
    let role = format!("{}_app", db.name);
    legacy_role(&db, &role).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &["--legacy-role", &role]);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    let cluster = cluster();
    let mut session = Command::new(tenantize::sandbox::client_tool("psql"))
        .args(["-X", "-At", "-h"])
        .arg(cluster.socket_dir())
        .args(["-p", &cluster.port().to_string(), "-U", &role, "-d", &db.name])
        .env("PGAPPNAME", "legacy-billing")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start psql");
    wait_for(
        &db,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' AND application_name = 'legacy-billing'"),
        Duration::from_secs(20),
    )
    .await;
    let run = db.tenantize(&["cutover", &plan, "--yes"]);
    run.expect_ok()
        .expect_output("legacy-sessions")
        .expect_output(&format!("1 session(s) of role {role} (legacy-billing)"))
        .expect_output("still rely on the legacy default tenant");
    // The open session started with the default tenant and keeps it until it reconnects.
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"SELECT count(*) > 0 FROM users;\n\\q\n").unwrap();
    drop(stdin);
    let out = session.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{}", String::from_utf8_lossy(&out.stderr));
    // A new session of the role has no tenant.
    assert_eq!(count_as(&db, &role, "SELECT count(*) FROM users"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_legacy_role_is_refused_and_nothing_is_written() {
    let db = sample_db("cutover_unknown", 300).await;
    let dir = scratch_dir();
    let path = dir.path().join("plan.toml");
    let run = db.tenantize(&["plan", "--out", path.to_str().unwrap(), "--legacy-role", "no_such_role_here"]);
    run.expect_code(5).expect_output("--legacy-role \"no_such_role_here\": no such role");
    assert!(!path.exists(), "no plan written");
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
}
