//! `plans/sample.plan.toml` is the reviewed plan for the sample application. The planner must
//! still produce exactly that plan (row estimates and where/when it was built aside); any
//! difference is either a regression or an intended change to re-review.
//!
//! After an intended change: `TENANTIZE_BLESS=1 cargo test --test golden`, then review the diff.

mod common;
use common::*;

use std::path::Path;
use tenantize::plan::file::{canonical_text, load, read_unverified};

#[tokio::test(flavor = "multi_thread")]
async fn the_saved_sample_plan_is_what_the_planner_builds_today() {
    let db = sample_db("golden", 3000).await;
    let dir = scratch_dir();
    let fresh_path = dir.path().join("sample.plan.toml");
    db.tenantize(&["plan", "--exclude", "issue_statuses", "--out", fresh_path.to_str().unwrap()]).expect_ok();
    let fresh = load(&fresh_path).expect("a fresh plan verifies");
    let saved_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/sample.plan.toml");
    if std::env::var("TENANTIZE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::copy(&fresh_path, &saved_path).unwrap();
    }
    let saved = read_unverified(&saved_path).expect("plans/sample.plan.toml parses");
    tenantize::plan::file::verify_checksums(&saved, "plans/sample.plan.toml")
        .expect("the saved plan's checksums match its content");
    let (expected, actual) = (canonical_text(&saved), canonical_text(&fresh));
    if expected != actual {
        panic!(
            "the planner no longer produces plans/sample.plan.toml:\n{}\nIf intended: TENANTIZE_BLESS=1 cargo test --test golden",
            text_diff(&expected, &actual)
        );
    }
    assert_eq!(saved.plan_hash, fresh.plan_hash);
}
