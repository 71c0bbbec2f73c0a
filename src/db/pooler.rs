//! Refuse a transaction or statement pooler before anything else. Through one, the tool's
//! session settings and its advisory lock would stay on server sessions that other clients
//! then share, and its prepared statements would vanish between transactions (seen through
//! PgBouncer's `pool_mode = transaction`: `prepared statement "s2" does not exist`, and the
//! application's queries failing under the tool's empty `search_path`).
//!
//! The test runs on two fresh connections that have set nothing, with the simple protocol
//! only (no prepared statement to lose): in a session of its own, a connection keeps one
//! server backend, and two connections never share one.

use tokio_postgres::{Client, SimpleQueryMessage};

/// Why the connections look pooled per transaction or per statement, or `Ok`.
pub async fn check(first: &Client, second: &Client) -> Result<(), String> {
    let first_pid = backend_pid(first).await?;
    if let Err(e) = second.simple_query("BEGIN").await {
        return Err(format!("the server refused a transaction block ({})", super::describe_pg_error(&e)));
    }
    let second_pid = backend_pid(second).await;
    // `first` asks again while `second` holds its server session inside a transaction.
    let first_again = backend_pid(first).await;
    let _ = second.simple_query("COMMIT").await;
    let (second_pid, first_again) = (second_pid?, first_again?);
    if second_pid == first_pid {
        return Err(format!(
            "two of its connections were served by the same server session (pid {first_pid}) one after the other"
        ));
    }
    if first_again != first_pid {
        return Err(format!(
            "one of its connections was served by two server sessions in turn (pids {first_pid} and {first_again})"
        ));
    }
    Ok(())
}

async fn backend_pid(client: &Client) -> Result<i32, String> {
    let messages =
        client.simple_query("SELECT pg_backend_pid()").await.map_err(|e| super::describe_pg_error(&e))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .ok_or_else(|| "pg_backend_pid() returned no row".to_string())
}
