//! The command line itself, against the real binary and a real server: help text for every
//! argument, SIGTERM and SIGHUP handled like Ctrl-C, a closed pipe, errors as JSON, refusals
//! printed once, step kinds for --through, a sealed plan kept, a missing schema named, flags a
//! command would ignore refused.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn every_argument_of_every_subcommand_has_help_text() {
    use clap::CommandFactory;
    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            if sub.get_about().is_none() {
                missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&tenantize::cli::Cli::command(), "tenantize", &mut missing);
    assert!(missing.is_empty(), "arguments without help text:\n{}", missing.join("\n"));
}

/// A session holding ACCESS SHARE on public.users in an open transaction.
async fn hold_users(db: &TestDb) -> tokio_postgres::Client {
    let client = db.connect().await;
    client
        .batch_execute("SET application_name = 'long-job'; BEGIN; SELECT count(*) FROM public.users")
        .await
        .unwrap();
    client
}

fn step_state(db: &TestDb, plan: &str, step: &str) -> String {
    let status = db.tenantize(&["status", plan, "--json"]);
    status.expect_ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let found = json["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == step).cloned();
    found.map(|s| s["state"].as_str().unwrap().to_string()).unwrap_or_else(|| "pending".into())
}

const TENANTIZE_BACKENDS: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                                  AND application_name LIKE 'tenantize %'";

/// Send `signal` to a run waiting on a lock another session holds; the run must cancel its
/// statement, journal the step as failed, leave no backend behind, and say how to resume.
async fn signalled(db: &TestDb, args: &[&str], application: &str, signal: i32) -> Run {
    let child = spawn_tenantize(args, db);
    wait_for(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
              AND application_name = '{application}' AND wait_event_type = 'Lock'"
        ),
        Duration::from_secs(30),
    )
    .await;
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let run = finish(child, Duration::from_secs(30));
    assert_eq!(db.query_i64(TENANTIZE_BACKENDS).await, 0, "a tenantize backend outlived the run");
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_cancel_the_running_step_like_ctrl_c() {
    let db = sample_db("signals", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.tenantize(&["apply", &plan, "--through", "2", "--yes"]).expect_ok();
    let blocker = hold_users(&db).await;
    let run = signalled(
        &db,
        &["apply", &plan, "--yes", "--lock-timeout-ms", "20000"],
        "tenantize apply",
        libc::SIGTERM,
    )
    .await;
    run.expect_code(2)
        .expect_output("SIGTERM received")
        .expect_output("cancelled during step 3.add-column:public.users; what is done is journaled, run apply again to resume");
    assert_eq!(run.signal, None);
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(step_state(&db, &plan, "3.add-column:public.users"), "failed");
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'tenant_id'").await, 0);

    // A rollback interrupted by SIGHUP says to run rollback again, with its own exit code.
    db.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    let blocker = hold_users(&db).await;
    let run = signalled(
        &db,
        &["rollback", &plan, "--to", "2", "--yes", "--lock-timeout-ms", "20000"],
        "tenantize rollback",
        libc::SIGHUP,
    )
    .await;
    run.expect_code(4).expect_output("SIGHUP received").expect_output("run rollback again to resume");
    assert!(!run.text().contains("run apply again"), "{}", run.text());
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(step_state(&db, &plan, "3.add-column:public.users"), "failed");
    db.tenantize(&["rollback", &plan, "--to", "2", "--yes"]).expect_ok();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn output_to_a_closed_pipe_ends_quietly() {
    let db = sample_db("pipe", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    for args in [
        vec!["status", plan.as_str()],
        vec!["status", plan.as_str(), "--json"],
        vec!["verify", plan.as_str()],
    ] {
        // The reader is gone before the command writes a byte: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_tenantize"))
            .args(&args)
            .env("DATABASE_URL", &db.url)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // And as an operator types it.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' status '{plan}' | head -1; exit ${{PIPESTATUS:-0}}",
            env!("CARGO_BIN_EXE_tenantize")
        ))
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_positions_count_from_one_and_errors_are_json_too() {
    let db = sample_db("json", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    let log = dir.path().join("apply.jsonl");
    let log_arg = log.to_str().unwrap();
    db.tenantize(&["apply", &plan, "--through", "1", "--yes", "--log", log_arg]).expect_ok();
    // The run log's events count steps from 1 too, as the text output does ("[  1/59]").
    let text = std::fs::read_to_string(&log).unwrap();
    let started: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r.get("event").filter(|e| e["event"] == "step_started").cloned())
        .collect();
    assert_eq!(started.len(), 1, "{text}");
    assert_eq!(started[0]["position"], 1, "{text}");
    let status = db.tenantize(&["status", &plan, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.expect_ok().stdout).unwrap();
    assert_eq!(json["steps"][0]["step_id"], "1.tenant-table");
    assert_eq!(json["steps"][0]["position"], 1);
    for args in [
        vec!["status", "/nonexistent/plan.toml", "--json"],
        vec!["verify", "--json", "/nonexistent/plan.toml"],
        // Without a file, status resumes the run in progress; verify needs one.
        vec!["verify", "--json"],
    ] {
        let run = db.tenantize(&args);
        run.expect_code(5);
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})\n{}", run.text()));
        assert_eq!(json["exit_code"], 5, "{args:?}");
        assert!(!json["error"].as_str().unwrap().is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_printed_once_and_counts_are_singular() {
    let db = sample_db("refused_once", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.exec("ALTER TABLE public.users ADD COLUMN extra int").await;
    let run = db.tenantize(&["apply", &plan, "--yes"]);
    run.expect_code(5).expect_output("the database has drifted from the plan");
    assert_eq!(run.text().matches("the database has drifted from the plan").count(), 1, "{}", run.text());
    db.exec("ALTER TABLE public.users DROP COLUMN extra").await;
    // One problem, one row (stage 2 inserts the default tenant).
    db.tenantize(&["apply", &plan, "--through", "4", "--yes"]).expect_ok();
    db.exec("SET session_replication_role = replica; UPDATE public.users SET tenant_id = NULL WHERE id = (SELECT min(id) FROM public.users)").await;
    let run = db.tenantize(&["verify", &plan]);
    run.expect_code(3);
    assert!(!run.text().contains("1 problems"), "{}", run.text());
    let status = db.tenantize(&["status", &plan]);
    assert!(!status.expect_ok().stdout.contains(" 1 rows"), "{}", status.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn step_kinds_sealed_plans_missing_schemas_and_ignored_flags() {
    let db = sample_db("cli_small", 300).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.tenantize(&["apply", &plan, "--through", "foreign-keys", "--yes"])
        .expect_code(5)
        .expect_output("\"foreign-keys\" names a kind of step in stage 7 (unique), not a stage")
        .expect_output("use 7 (or unique) to include it, 6 to stop before it");
    db.tenantize(&["apply", &plan, "--through", "unique", "--dry-run"]).expect_ok();

    // A sealed plan is a reviewed hand edit: `plan --out` keeps it unless --force.
    let text = std::fs::read_to_string(&plan).unwrap().replace("Default tenant", "Default tenant (edited)");
    std::fs::write(&plan, text).unwrap();
    db.tenantize(&["plan", "seal", &plan]).expect_ok();
    let sealed = std::fs::read_to_string(&plan).unwrap();
    db.tenantize(&["plan", "--out", &plan, "--exclude", "issue_statuses"])
        .expect_code(5)
        .expect_output("sealed after review")
        .expect_output("--force");
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), sealed);
    db.tenantize(&["plan", "--out", &plan, "--exclude", "issue_statuses", "--force"]).expect_ok();
    assert_ne!(std::fs::read_to_string(&plan).unwrap(), sealed);

    let out = dir.path().join("other.toml");
    db.tenantize(&["plan", "--out", out.to_str().unwrap(), "--schema", "nosuchschema"])
        .expect_code(5)
        .expect_output("no such schema \"nosuchschema\"");
    assert!(!out.exists());

    for args in [
        vec!["wizard", "--log", "x.jsonl"],
        vec!["wizard", "--yes"],
        vec!["demo", "--log", "x.jsonl"],
        vec!["rehearse", "--dump", "x", "--yes"],
    ] {
        run_tenantize(&args, &[]).expect_code(5).expect_output("unexpected argument");
    }
    // `plan --check` compares with the plan's own options: an option flag beside it is refused.
    run_tenantize(&["plan", "--check", &plan, "--schema", "other"], &[])
        .expect_code(5)
        .expect_output("'--check <FILE>' cannot be used with");
    // The synopsis in the README is what the parser accepts: no positional connection.
    run_tenantize(&["status", &plan, &db.url], &[]).expect_code(5).expect_output("unexpected argument");
}
