//! Session settings for the statements that write a table's worth of pages (a batched
//! backfill, a concurrent index build), so that the application's commits, which wait for
//! whatever WAL and dirty pages are queued ahead of them, do not pay for ours.
//!
//! Each setting is the tool's own session's; a platform or role that refuses one just goes
//! without it (`wal_compression` is superuser-only), and every one is put back afterwards.

use tokio_postgres::Client;

/// Set before a write-heavy statement: the first `SET` that fails is followed by its fallback.
const SETTINGS: &[(&str, Option<&str>)] = &[
    // Push our dirty pages to disk as they are written (sync_file_range every 256 kB). Left to
    // the kernel they stay dirty for ~30 s (vm.dirty_expire_centisecs) and are then written
    // back in one burst, during which every commit waits on its WAL fsync: the benchmark
    // measured the longest application write at 335 ms without this and 145 ms with it.
    ("SET backend_flush_after = '256kB'", None),
    // The first change to a page after a checkpoint logs the whole page, and these statements
    // change (or write) every page of a table: most of their WAL is those images, and every
    // application commit waits for the WAL ahead of it. Compressed they take a fraction of it.
    ("SET wal_compression = lz4", Some("SET wal_compression = pglz")),
];

/// The settings above, on `client`'s session.
pub(super) async fn write_heavy_begin(client: &Client) {
    for (set, fallback) in SETTINGS {
        if client.batch_execute(set).await.is_err()
            && let Some(fallback) = fallback
        {
            let _ = client.batch_execute(fallback).await;
        }
    }
}

/// Back to the session's own values of the settings above.
pub(super) async fn write_heavy_end(client: &Client) {
    // One at a time: a role that may not set one may not reset it either.
    for reset in ["RESET backend_flush_after", "RESET wal_compression"] {
        let _ = client.batch_execute(reset).await;
    }
}
