//! One run per database: a session-level advisory lock keyed on the database.
//!
//! Session level (not transaction level) so that it is held on an idle connection between
//! statements and never inside a transaction that a concurrent index build would wait for.

use std::fmt;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::DbError;

/// First half of the two-key advisory lock: "tent" in ASCII.
const LOCK_CLASS: i32 = 0x7465_6E74;

/// Second half: the database's oid, folded into an int4.
const DATABASE_KEY_SQL: &str =
    "(SELECT (oid::int8 % 2147483647)::int4 FROM pg_catalog.pg_database WHERE datname = current_database())";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    pub pid: i32,
    pub application: String,
    pub user: String,
    pub client: String,
    pub since: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} ({:?}, user {}, from {}, connected since {})",
            self.pid, self.application, self.user, self.client, self.since
        )
    }
}

/// How long a held lock is retried before the run is refused. A run killed a moment ago
/// (SIGKILL, a closed terminal) holds it until its server backend notices the closed socket
/// and exits, which under load takes a few hundred milliseconds: running it again at once must
/// resume, not be refused. A live run holds the lock for its whole duration, so this only
/// delays that refusal.
const HELD_LOCK_GRACE: Duration = Duration::from_secs(3);
const HELD_LOCK_POLL: Duration = Duration::from_millis(100);

/// Take the lock, or fail naming who holds it once [`HELD_LOCK_GRACE`] has passed.
pub async fn acquire(client: &Client) -> Result<(), DbError> {
    let started = Instant::now();
    loop {
        let got: bool = client
            .query_one(&format!("SELECT pg_try_advisory_lock($1, {DATABASE_KEY_SQL})"), &[&LOCK_CLASS])
            .await?
            .get(0);
        if got {
            return Ok(());
        }
        if started.elapsed() >= HELD_LOCK_GRACE {
            break;
        }
        tokio::time::sleep(HELD_LOCK_POLL).await;
    }
    let holder = client
        .query_opt(
            &format!(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
                        coalesce(a.client_addr::text, 'local socket'),
                        to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                   FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                    AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
                    AND l.classid = $1::int8::oid AND l.objid = ({DATABASE_KEY_SQL})::int8::oid
                  LIMIT 1"
            ),
            &[&(LOCK_CLASS as i64)],
        )
        .await?;
    let holder = match holder {
        Some(row) => LockHolder {
            pid: row.get(0),
            application: row.get(1),
            user: row.get(2),
            client: row.get(3),
            since: row.get(4),
        },
        None => LockHolder {
            pid: 0,
            application: "unknown (it ended while we looked)".into(),
            user: String::new(),
            client: String::new(),
            since: String::new(),
        },
    };
    Err(DbError::Locked(holder))
}

pub async fn release(client: &Client) {
    let _ =
        client.query_one(&format!("SELECT pg_advisory_unlock($1, {DATABASE_KEY_SQL})"), &[&LOCK_CLASS]).await;
}
