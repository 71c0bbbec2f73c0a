//! The one way tenantize wraps work in a transaction: `BEGIN` (with the caller's settings),
//! the work, `COMMIT`; any error rolls back and is returned as it was.

use tokio_postgres::Client;

/// Run `body` between `begin` (e.g. `BEGIN; SET LOCAL lock_timeout = '100ms'`) and `COMMIT`.
/// On an error from `body` or from `COMMIT` the transaction is rolled back (best effort: a
/// lost connection rolls back by itself) and the error returned.
pub async fn transaction<T, E>(
    client: &Client,
    begin: &str,
    body: impl AsyncFnOnce() -> Result<T, E>,
) -> Result<T, E>
where
    E: From<tokio_postgres::Error>,
{
    client.batch_execute(begin).await?;
    let result = match body().await {
        Ok(value) => client.batch_execute("COMMIT").await.map(|_| value).map_err(E::from),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Run `body` in a transaction that is always rolled back (probes that leave nothing behind).
pub async fn rolled_back<T, E>(client: &Client, body: impl AsyncFnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: From<tokio_postgres::Error>,
{
    client.batch_execute("BEGIN").await?;
    let result = body().await;
    let _ = client.batch_execute("ROLLBACK").await;
    result
}
