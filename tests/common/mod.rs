//! Shared test harness: one throwaway cluster per test binary, one fresh database per test.
//!
//! Tests that need the database fail loudly when the cluster cannot start; they never skip.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{LazyLock, OnceLock};

use tenantize::db::ConnSpec;
use tenantize::sandbox::{Cluster, ClusterOptions, client_tool};
use tokio_postgres::Client;

pub mod citus;

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static TEMPLATES: LazyLock<tokio::sync::Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| start(&ClusterOptions::default()))
}

/// For a test binary whose cluster needs server settings of its own: call before anything
/// else touches the cluster.
pub fn cluster_with_settings(settings: &[&str]) -> &'static Cluster {
    let options = ClusterOptions {
        extra_settings: settings.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    CLUSTER.get_or_init(|| start(&options))
}

/// For a test binary whose cluster needs options of its own (TCP, settings): call before
/// anything else touches the cluster.
pub fn cluster_with_options(options: &ClusterOptions) -> &'static Cluster {
    CLUSTER.get_or_init(|| start(options))
}

pub(crate) fn start(options: &ClusterOptions) -> Cluster {
    match Cluster::start(options) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the test PostgreSQL cluster could not be started: {e}"),
    }
}

pub struct TestDb {
    pub name: String,
    pub url: String,
    pub spec: ConnSpec,
}

impl TestDb {
    pub async fn connect(&self) -> Client {
        self.spec.connect("tenantize-test").await.expect("connect to the test database")
    }

    /// Run a SQL script as the superuser, with the public schema on the search path.
    pub async fn exec(&self, sql: &str) {
        let client = self.connect().await;
        client
            .batch_execute(&format!("SET search_path = public; {sql}"))
            .await
            .unwrap_or_else(|e| panic!("{}\n--- in ---\n{sql}", tenantize::db::describe_pg_error(&e)));
    }

    pub async fn query_i64(&self, sql: &str) -> i64 {
        let client = self.connect().await;
        client.batch_execute("SET row_security = off").await.unwrap();
        client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{}\n--- in ---\n{sql}", tenantize::db::describe_pg_error(&e)))
            .get(0)
    }

    /// `pg_dump --schema-only`, without tenantize's journal, with a fixed restrict key.
    pub fn schema_dump(&self) -> String {
        let out = Command::new(client_tool("pg_dump"))
            .args([
                "--schema-only",
                "--exclude-schema=tenantize",
                "--restrict-key=tenantize",
                "-d",
                &self.url,
            ])
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 dump")
    }

    /// Run the tenantize binary with this database as DATABASE_URL.
    pub fn tenantize(&self, args: &[&str]) -> Run {
        run_tenantize(args, &[("DATABASE_URL", self.url.as_str())])
    }

    /// Plan the sample application into `path` (its lookup table shared), with `extra`
    /// arguments; the path as a string for the commands that follow.
    pub fn plan_sample(&self, path: &Path, extra: &[&str]) -> String {
        let path = path.to_str().unwrap().to_string();
        let mut args = vec!["plan", "--out", path.as_str(), "--exclude", "issue_statuses"];
        args.extend_from_slice(extra);
        self.tenantize(&args).expect_ok();
        path
    }

    /// Per table (ordinary tables and partitions): row count and a checksum of every row's
    /// columns, excluding `skip_column`; independent of row order.
    pub async fn row_checksums(
        &self,
        schemas: &[&str],
        skip_column: &str,
    ) -> BTreeMap<String, (i64, String)> {
        let client = self.connect().await;
        client.batch_execute("SET row_security = off").await.unwrap();
        let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
        tenantize::checks::row_checksums(&client, &schemas, skip_column).await.expect("row checksums")
    }
}

/// A new, empty database.
pub async fn fresh_db(prefix: &str) -> TestDb {
    let cluster = cluster();
    let name = cluster.create_database(prefix, None).await.expect("create a test database");
    db_handle(name)
}

pub(crate) fn db_handle(name: String) -> TestDb {
    let cluster = cluster();
    TestDb { url: cluster.url(&name), spec: cluster.conn_spec(&name), name }
}

/// A copy of a template database, created once per test binary by `build`.
async fn from_template(prefix: &str, template: &str, build: impl AsyncFnOnce(&TestDb)) -> TestDb {
    {
        let mut built = TEMPLATES.lock().await;
        if !built.contains(template) {
            let cluster = cluster();
            let admin = cluster.conn_spec("postgres").connect("tenantize-test").await.unwrap();
            admin.batch_execute(&format!("CREATE DATABASE {template}")).await.unwrap();
            let db = db_handle(template.to_string());
            build(&db).await;
            built.insert(template.to_string());
        }
    }
    let name = cluster().create_database(prefix, Some(template)).await.expect("copy the template database");
    db_handle(name)
}

/// The sample application with `rows` in its largest table.
pub async fn sample_db(prefix: &str, rows: u64) -> TestDb {
    from_template(prefix, &format!("tpl_sample_{rows}"), async |db| {
        let client = db.connect().await;
        tenantize::sample::load(&client, rows).await.expect("load the sample application");
    })
    .await
}

/// Copies of `../shared/fixtures` (with their licences), so a clean clone has them.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Pagila's materialized view `rental_by_category` holds every tenant's rows and its SECURITY
/// DEFINER `rewards_report` reads customers and payments past RLS: the plan is refused until
/// the operator accepts them, as a test that converts pagila does.
pub const PAGILA_ACKNOWLEDGE: [&str; 4] = [
    "--acknowledge",
    "materialized-view:public.rental_by_category",
    "--acknowledge",
    "security-definer:public.rewards_report(min_monthly_purchases integer, min_dollar_amount_purchased numeric)",
];

pub async fn pagila_db(prefix: &str) -> TestDb {
    from_template(prefix, "tpl_pagila", async |db| {
        let dir = fixtures_dir().join("pagila");
        cluster().run_sql_file(&db.name, &dir.join("pagila-schema.sql")).expect("load pagila schema");
        cluster().run_sql_file(&db.name, &dir.join("pagila-data.sql")).expect("load pagila data");
        db.exec("ANALYZE").await;
    })
    .await
}

pub async fn chinook_db(prefix: &str) -> TestDb {
    from_template(prefix, "tpl_chinook", async |db| {
        cluster().run_sql_file(&db.name, &fixtures_dir().join("chinook/chinook.sql")).expect("load chinook");
        db.exec("ANALYZE").await;
    })
    .await
}

/// The outcome of one tenantize invocation.
pub struct Run {
    pub code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        format!("exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.text());
        self
    }

    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        self.expect_code(0)
    }

    #[track_caller]
    pub fn expect_output(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output lacks {needle:?}\n{}",
            self.text()
        );
        self
    }
}

pub fn run_tenantize(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantize"));
    command.args(args);
    for key in ["DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"] {
        command.env_remove(key);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out: Output = command.output().expect("run the tenantize binary");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code().unwrap_or(-1),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory for plan files.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tenantize-test-").tempdir().expect("temp dir")
}

/// The whole cycle every schema must survive: plan → apply all → verify → rows unchanged →
/// rollback --all → schema dump and data identical to before.
pub async fn full_cycle(db: &TestDb, plan_args: &[&str], schemas: &[&str]) -> String {
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = plan_path.to_str().unwrap();
    let dump_before = db.schema_dump();
    let rows_before = db.row_checksums(schemas, "tenant_id").await;

    let mut args = vec!["plan", "--out", plan];
    args.extend_from_slice(plan_args);
    db.tenantize(&args).expect_ok();
    db.tenantize(&["apply", plan, "--yes"]).expect_ok();
    db.tenantize(&["verify", plan]).expect_ok().expect_output("(applied through stage 8): ok");
    let mut rows_after = db.row_checksums(schemas, "tenant_id").await;
    // Compare the tables that existed before (the tenant table is new).
    rows_after.retain(|table, _| rows_before.contains_key(table));
    assert_eq!(rows_before, rows_after, "a pre-existing row changed during the conversion");
    let applied_dump = db.schema_dump();
    assert_ne!(dump_before, applied_dump, "apply changed nothing in the schema");

    db.tenantize(&["rollback", plan, "--all", "--yes"]).expect_ok();
    let dump_after = db.schema_dump();
    if dump_before != dump_after {
        let diff = text_diff(&dump_before, &dump_after);
        panic!("schema after rollback differs from before:\n{diff}");
    }
    let rows_rolled_back = db.row_checksums(schemas, "tenant_id").await;
    assert_eq!(rows_before, rows_rolled_back, "data after rollback differs from before");
    std::fs::read_to_string(&plan_path).unwrap()
}

/// Lines only in `a` (-) or only in `b` (+), for readable failures.
pub fn text_diff(a: &str, b: &str) -> String {
    let left: BTreeSet<&str> = a.lines().collect();
    let right: BTreeSet<&str> = b.lines().collect();
    let mut out = String::new();
    for l in left.difference(&right).take(40) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in right.difference(&left).take(40) {
        out.push_str(&format!("+ {l}\n"));
    }
    if out.is_empty() {
        out.push_str("(same lines, different order)\n");
    }
    out
}

/// A handle on an existing database of the test cluster.
pub fn db_named(name: &str) -> TestDb {
    db_handle(name.to_string())
}

impl TestDb {
    /// Drop this database (its sessions are ended first).
    pub async fn drop(&self) {
        let admin = cluster().conn_spec("postgres").connect("tenantize-test").await.expect("connect");
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                tenantize::sql::quote_ident(&self.name)
            ))
            .await
            .unwrap_or_else(|e| panic!("drop {}: {}", self.name, tenantize::db::describe_pg_error(&e)));
    }
}

/// Apply migration files with psql as each tool would run them.
pub fn run_files(url: &str, dir: &Path, format: &str, direction: &str) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            match (format, direction) {
                ("flyway", "up") => name.starts_with('V') && name.ends_with(".sql"),
                ("flyway", _) => name.starts_with('U') && name.ends_with(".sql"),
                (_, "up") => name.ends_with(".up.sql"),
                _ => name.ends_with(".down.sql"),
            }
        })
        .collect();
    let version = |p: &PathBuf| -> u64 {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let digits: String =
            name.trim_start_matches(['V', 'U']).chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().unwrap()
    };
    files.sort_by_key(version);
    if direction == "down" {
        files.reverse();
    }
    assert!(!files.is_empty(), "no {direction} files for {format}");
    for file in files {
        let content = std::fs::read_to_string(&file).unwrap();
        // sqlx and Flyway wrap each file in a transaction unless told not to.
        let own_transaction = match format {
            "sqlx" => !content.starts_with("-- no-transaction"),
            "flyway" => !Path::new(&format!("{}.conf", file.display())).exists(),
            _ => false,
        };
        let mut command = Command::new(client_tool("psql"));
        command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
        if own_transaction {
            command.arg("--single-transaction");
        }
        let out = command.arg("-f").arg(&file).output().unwrap();
        assert!(out.status.success(), "{} failed: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
}

/// `plan` made this database's: a copy next to it, re-targeted with `plan retarget`. Tests that
/// copy a template database run one plan on many databases, which the tool refuses otherwise
/// (a plan is for the database it was built on). Made once per database.
pub fn retargeted(plan: &Path, db: &TestDb) -> String {
    let copy = plan.with_file_name(format!("{}.plan.toml", db.name));
    if !copy.exists() {
        let staged = plan.with_file_name(format!("{}.plan.toml.new", db.name));
        std::fs::copy(plan, &staged).expect("copy the plan");
        db.tenantize(&["plan", "retarget", staged.to_str().unwrap()]).expect_ok();
        std::fs::rename(&staged, &copy).expect("rename the re-targeted plan");
    }
    copy.to_str().unwrap().to_string()
}

/// Start the binary on `db` without waiting for it, stdout and stderr piped (the same libpq
/// variables cleared as `run_tenantize`).
pub fn spawn_tenantize(args: &[&str], db: &TestDb) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantize"));
    command.args(args);
    for key in ["DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"] {
        command.env_remove(key);
    }
    command
        .env("DATABASE_URL", &db.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tenantize")
}

/// Wait for a spawned run to end, at most `limit` (then kill it and fail).
pub fn finish(mut child: std::process::Child, limit: std::time::Duration) -> Run {
    use std::io::Read;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut stdout, mut stderr) = (String::new(), String::new());
            child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            use std::os::unix::process::ExitStatusExt;
            return Run { code: status.code().unwrap_or(-1), signal: status.signal(), stdout, stderr };
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("tenantize did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Poll `condition_sql` (a count) until it is non-zero, failing after `limit`.
pub async fn wait_for(db: &TestDb, condition_sql: &str, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    while db.query_i64(condition_sql).await == 0 {
        assert!(started.elapsed() < limit, "timed out waiting for: {condition_sql}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The run lock's `pg_advisory_lock` call (`src/db/lock.rs`: class "tent", the database's
/// OID folded into an int4); `unlock` gives its `pg_advisory_unlock`.
fn run_lock_sql(unlock: bool) -> String {
    let function = if unlock { "pg_advisory_unlock" } else { "pg_advisory_lock" };
    format!(
        "SELECT {function}(1952804468, (SELECT (oid::int8 % 2147483647)::int4 FROM pg_database \
         WHERE datname = current_database()))"
    )
}

/// Hold tenantize's run lock on `client`'s session, as another run would.
pub async fn hold_run_lock(client: &Client) {
    client.batch_execute(&run_lock_sql(false)).await.unwrap();
}

/// Release what `hold_run_lock` took.
pub async fn release_run_lock(client: &Client) {
    client.batch_execute(&run_lock_sql(true)).await.unwrap();
}
