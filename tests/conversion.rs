//! The full cycle on the sample application and on the real schemas in ../shared/fixtures:
//! plan → apply → verify → every row unchanged → rollback --all → schema and data as before.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn sample_application_fast_path_round_trips() {
    let db = sample_db("sample_fast", 3000).await;
    let plan = full_cycle(&db, &["--exclude", "issue_statuses"], &["public"]).await;
    // The fast path writes no row: stage 4 only proves it with counts.
    assert!(plan.contains("ADD COLUMN tenant_id uuid DEFAULT '00000000-0000-0000-0000-000000000001'::uuid"));
    assert!(!plan.contains("kind = \"batch\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_application_batched_backfill_round_trips_without_firing_triggers() {
    let db = sample_db("sample_batched", 3000).await;
    // Row checksums include updated_at, which the sample's touch triggers would rewrite.
    let plan = full_cycle(
        &db,
        &["--exclude", "issue_statuses", "--backfill", "batched", "--batch-rows", "700"],
        &["public"],
    )
    .await;
    assert!(plan.contains("kind = \"batch\""));
    assert!(plan.contains("session_replication_role"), "the plan must say triggers are kept from firing");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_round_trips() {
    let db = pagila_db("pagila_fast").await;
    let plan = full_cycle(&db, &PAGILA_ACKNOWLEDGE, &["public"]).await;
    // The partitioned payment table and its partitions are covered.
    assert!(plan.contains("8.rls:public.payment"));
    assert!(plan.contains("CREATE POLICY tenant_isolation ON public.payment_p2022_03"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_batched_with_shared_lookups_round_trips() {
    let db = pagila_db("pagila_batched").await;
    full_cycle(
        &db,
        &[
            "--backfill",
            "batched",
            "--batch-rows",
            "500",
            "--exclude",
            "language",
            "--exclude",
            "country",
            "--exclude",
            "category",
            PAGILA_ACKNOWLEDGE[0],
            PAGILA_ACKNOWLEDGE[1],
            PAGILA_ACKNOWLEDGE[2],
            PAGILA_ACKNOWLEDGE[3],
        ],
        &["public"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chinook_round_trips_with_bigint_tenants() {
    let db = chinook_db("chinook").await;
    let plan = full_cycle(
        &db,
        &["--tenant-key-type", "bigint", "--exclude", "media_type", "--exclude", "genre"],
        &["public"],
    )
    .await;
    // The self-reference employee.reports_to becomes tenant-consistent.
    assert!(
        plan.contains(
            "FOREIGN KEY (tenant_id, reports_to) REFERENCES public.employee (tenant_id, employee_id)"
        )
    );
}
