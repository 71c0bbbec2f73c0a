//! Exported migrations run with the real tools (sqlx-cli, dbmate, Alembic, Sqitch): up gives
//! the schema `tenantize apply` gives, down gives the original back. And the pgTAP export,
//! run with pg_prove: it passes right after apply, fails on the original database and fails
//! when a table without the tenant column is added later.
//!
//! A test whose tool is missing fails, naming the package to install; none is skipped.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use tenantize::sandbox::client_tool;

/// The tool on PATH (or in ~/.cargo/bin), else a panic naming the package that ships it.
fn need(tool: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{tool}` is not installed: install {package} (.ci/run does)"))
}

#[track_caller]
fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// The server's socket directory (or TCP host) and port.
fn host_port() -> (String, u16) {
    let c = cluster();
    let host = if c.url("x").contains("@127.0.0.1:") {
        "127.0.0.1".to_string()
    } else {
        c.socket_dir().display().to_string()
    };
    (host, c.port())
}

/// `pg_dump --schema-only` as `TestDb::schema_dump`, leaving out a tool's own bookkeeping.
fn dump(db: &TestDb, tool_tables: &[&str], tool_schemas: &[&str]) -> String {
    let mut command = Command::new(client_tool("pg_dump"));
    command.args(["--schema-only", "--exclude-schema=tenantize", "--restrict-key=tenantize", "-d", &db.url]);
    for t in tool_tables {
        command.arg(format!("--exclude-table={t}"));
    }
    for s in tool_schemas {
        command.arg(format!("--exclude-schema={s}"));
    }
    run(&mut command)
}

/// A migration tool: how it migrates a database up and all the way down.
struct Tool {
    format: &'static str,
    tables: &'static [&'static str],
    schemas: &'static [&'static str],
    up: fn(&TestDb, &Path),
    down: fn(&TestDb, &Path),
}

/// For the fast and the batched plan of the sample (the batched one also with
/// `--cover-indexes`: its swaps carry a DO block): export for `tool`, migrate a copy up
/// (schema as `tenantize apply` makes it), then down (schema as before).
async fn round_trip(tool: &Tool, after_up: impl Fn(&TestDb, &Path)) {
    let reference = sample_db(&format!("{}_ref", tool.format), 300).await;
    let dir = scratch_dir();
    let original = dump(&reference, &[], &[]);
    for (backfill, extra) in [("fast", None), ("batched", Some("--cover-indexes"))] {
        let mut args = vec!["--backfill", backfill];
        args.extend(extra);
        let plan = reference.plan_sample(&dir.path().join(format!("{backfill}.toml")), &args);
        reference.tenantize(&["apply", &plan, "--yes"]).expect_ok();
        let applied = dump(&reference, &[], &[]);
        reference.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
        let out = dir.path().join(format!("{}-{backfill}", tool.format));
        run_tenantize(&["export", &plan, "--format", tool.format, "--out", out.to_str().unwrap()], &[])
            .expect_ok();
        let copy = sample_db(&format!("{}_{backfill}", tool.format), 300).await;
        (tool.up)(&copy, &out);
        let up = dump(&copy, tool.tables, tool.schemas);
        if up != applied {
            panic!(
                "{} ({backfill}): migrated up differs from tenantize apply:\n{}",
                tool.format,
                text_diff(&applied, &up)
            );
        }
        assert_eq!(copy.query_i64("SELECT count(*) FROM public.issues WHERE tenant_id IS NULL").await, 0);
        after_up(&copy, &out);
        (tool.down)(&copy, &out);
        let down = dump(&copy, tool.tables, tool.schemas);
        if down != original {
            panic!(
                "{} ({backfill}): migrated down differs from the original:\n{}",
                tool.format,
                text_diff(&original, &down)
            );
        }
    }
}

fn migrations_in(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .count()
}

fn sqlx_url(db: &TestDb) -> String {
    let (host, port) = host_port();
    format!("postgres://postgres@localhost:{port}/{}?host={host}&sslmode=disable", db.name)
}

fn sqlx_up(db: &TestDb, dir: &Path) {
    let sqlx = need(
        "sqlx",
        "sqlx-cli (cargo install --locked sqlx-cli --no-default-features --features postgres,rustls)",
    );
    run(Command::new(sqlx)
        .args(["migrate", "run", "--source"])
        .arg(dir)
        .args(["--database-url", &sqlx_url(db)]));
}

fn sqlx_down(db: &TestDb, dir: &Path) {
    let sqlx = need("sqlx", "sqlx-cli");
    // `revert` undoes the latest migration: once per migration.
    for _ in 0..migrations_in(dir, ".down.sql") {
        run(Command::new(&sqlx)
            .args(["migrate", "revert", "--source"])
            .arg(dir)
            .args(["--database-url", &sqlx_url(db)]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlx_cli_runs_and_reverts_the_export() {
    let tool = Tool {
        format: "sqlx",
        tables: &["public._sqlx_migrations"],
        schemas: &[],
        up: sqlx_up,
        down: sqlx_down,
    };
    round_trip(&tool, |_, _| {}).await;
}

fn dbmate(db: &TestDb, dir: &Path, command: &str) {
    let dbmate = need("dbmate", "the npm package dbmate (npm install -g dbmate)");
    let (host, port) = host_port();
    let url = format!("postgres://postgres@localhost:{port}/{}?socket={host}&sslmode=disable", db.name);
    run(Command::new(dbmate)
        .args(["--url", &url, "--no-dump-schema", "--migrations-dir"])
        .arg(dir)
        .arg(command));
}

fn dbmate_up(db: &TestDb, dir: &Path) {
    dbmate(db, dir, "migrate");
}

fn dbmate_down(db: &TestDb, dir: &Path) {
    for _ in 0..migrations_in(dir, ".sql") {
        dbmate(db, dir, "rollback");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dbmate_migrates_and_rolls_back_the_export() {
    let tool = Tool {
        format: "dbmate",
        tables: &["public.schema_migrations"],
        schemas: &[],
        up: dbmate_up,
        down: dbmate_down,
    };
    round_trip(&tool, |_, _| {}).await;
}

fn alembic(db: &TestDb, dir: &Path, args: &[&str]) {
    let alembic = need(
        "alembic",
        "the PyPI packages alembic and psycopg2-binary (pip install alembic psycopg2-binary)",
    );
    let (host, port) = host_port();
    let url = format!("postgresql://postgres@/{}?host={host}&port={port}", db.name);
    run(Command::new(alembic).arg("-c").arg(dir.join("alembic.ini")).args(args).env("DATABASE_URL", url));
}

#[tokio::test(flavor = "multi_thread")]
async fn alembic_upgrades_and_downgrades_the_export() {
    let tool = Tool {
        format: "alembic",
        tables: &["public.alembic_version"],
        schemas: &[],
        up: |db, dir| alembic(db, dir, &["upgrade", "head"]),
        down: |db, dir| alembic(db, dir, &["downgrade", "base"]),
    };
    round_trip(&tool, |_, _| {}).await;
}

fn sqitch(db: &TestDb, dir: &Path, args: &[&str]) -> Command {
    let sqitch = need("sqitch", "the Debian packages sqitch and libdbd-pg-perl");
    let (host, port) = host_port();
    let mut command = Command::new(sqitch);
    command
        .current_dir(dir)
        .args(args)
        .arg(format!("db:pg:{}", db.name))
        .env("PGHOST", host)
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("SQITCH_FULLNAME", "tenantize test")
        .env("SQITCH_EMAIL", "test@localhost");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn sqitch_deploys_verifies_and_reverts_the_export() {
    let tool = Tool {
        format: "sqitch",
        tables: &[],
        schemas: &["sqitch"],
        up: |db, dir| {
            run(&mut sqitch(db, dir, &["deploy", "--verify"]));
        },
        down: |db, dir| {
            run(&mut sqitch(db, dir, &["revert", "-y"]));
        },
    };
    round_trip(&tool, |db, dir| {
        run(&mut sqitch(db, dir, &["verify"]));
        // A verify script fails when its check does not hold.
        let psql = |sql: &str| {
            run(Command::new(client_tool("psql")).args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &db.url,
                "-c",
                sql,
            ]));
        };
        psql("ALTER TABLE public.users ALTER COLUMN tenant_id DROP NOT NULL");
        let out = sqitch(db, dir, &["verify"]).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "sqitch verify passed with a nullable tenant column:\n{text}");
        assert!(text.contains("tenantize check failed: public.users.tenant_id is NOT NULL"), "{text}");
        psql("ALTER TABLE public.users ALTER COLUMN tenant_id SET NOT NULL");
    })
    .await;
}

/// pg_prove on `file`: whether it passed, and what it said.
fn pg_prove(db: &TestDb, file: &Path) -> (bool, String) {
    let pg_prove = need("pg_prove", "the Debian package postgresql-15-pgtap");
    let (host, port) = host_port();
    let out = Command::new(pg_prove)
        .args(["-v", "-h", &host, "-p", &port.to_string(), "-U", "postgres", "-d", &db.name])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pgtap_export_holds_after_apply_only() {
    let db = sample_db("pgtap", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    let out = dir.path().join("pgtap");
    run_tenantize(&["export", &plan, "--format", "pgtap", "--out", out.to_str().unwrap()], &[]).expect_ok();
    let file = out.join("tenantize_invariants.sql");
    let (ok, text) = pg_prove(&db, &file);
    assert!(!ok, "the invariants hold on the original database:\n{text}");
    assert!(text.contains("not ok") && text.contains("public.issues.tenant_id is NOT NULL"), "{text}");
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    let (ok, text) = pg_prove(&db, &file);
    assert!(ok, "the invariants fail right after apply:\n{text}");
    assert!(!text.contains("not ok"), "{text}");
    // The file leaves nothing behind (pgTAP is installed and dropped in its transaction).
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_extension WHERE extname = 'pgtap'").await, 0);
    // A migration tool's bookkeeping table, created after the plan, is shared like any.
    db.exec("CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY)").await;
    let (ok, text) = pg_prove(&db, &file);
    assert!(ok, "a migration tool's table failed the invariants:\n{text}");
    db.exec("CREATE TABLE public.added_later (id int)").await;
    let (ok, text) = pg_prove(&db, &file);
    assert!(!ok, "a table without the tenant column went unnoticed:\n{text}");
    assert!(text.contains("public.added_later"), "the failure names the table:\n{text}");
}
