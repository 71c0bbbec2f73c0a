//! The SQL tenantize generates passes squawk (`pip install squawk-cli`) with no finding.
//!
//! Linted: the forward SQL of the plans for the sample, chinook and pagila, exported as plain
//! SQL migrations (which carry the lock and statement timeouts the engine sets). Statements
//! that knowingly break a rule say why on the line above their `-- squawk-ignore` (see the
//! README). Rollback SQL is not linted: undoing the conversion is dropping what it added,
//! which is exactly what squawk's ban-drop-* rules exist to stop.

mod common;
use common::*;

use std::process::Command;

fn lint(db: &TestDb, plan_args: &[&str], name: &str) {
    let dir = scratch_dir();
    let plan = dir.path().join(format!("{name}.plan.toml"));
    let mut args = vec!["plan", "--out", plan.to_str().unwrap()];
    args.extend_from_slice(plan_args);
    db.tenantize(&args).expect_ok();
    let out = dir.path().join("sql");
    run_tenantize(
        &["export", plan.to_str().unwrap(), "--format", "sql", "--out", out.to_str().unwrap()],
        &[],
    )
    .expect_ok();
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".up.sql"))
        .collect();
    assert!(files.len() > 10, "{name}: too few files to lint");
    let result = Command::new("squawk")
        .args(["--reporter", "gcc", "--pg-version", "15"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("squawk is not installed ({e}): pip install squawk-cli"));
    let findings = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success() && findings.trim().is_empty(),
        "{name}: squawk findings:\n{findings}{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_plan_passes_squawk() {
    let db = sample_db("lint_sample", 500).await;
    lint(&db, &["--exclude", "issue_statuses"], "sample");
    lint(&db, &["--exclude", "issue_statuses", "--backfill", "batched"], "sample_batched");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chinook_plan_passes_squawk() {
    let db = chinook_db("lint_chinook").await;
    lint(&db, &[], "chinook");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pagila_plan_passes_squawk() {
    let db = pagila_db("lint_pagila").await;
    lint(&db, &PAGILA_ACKNOWLEDGE, "pagila");
    let batched: Vec<&str> = ["--backfill", "batched"].into_iter().chain(PAGILA_ACKNOWLEDGE).collect();
    lint(&db, &batched, "pagila_batched");
}
