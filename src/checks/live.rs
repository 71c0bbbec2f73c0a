//! What other sessions are doing right now that a conversion would trip over: the wizard's
//! live preflight (long transactions, locks on the plan's tables).

use serde::Serialize;
use tokio_postgres::Client;

use super::{CheckError, db_error};
use crate::plan::Plan;

/// A session of someone else's, as the overview and the lock panel show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub pid: i32,
    pub application: String,
    pub state: String,
    pub query: String,
    pub transaction_ms: u64,
}

/// What others are doing right now that a conversion would trip over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LivePreflight {
    /// Transactions open for more than 5 s (they block DDL and CONCURRENTLY builds).
    pub long_transactions: Vec<Activity>,
    /// Locks other sessions hold on the plan's tables: (session, mode, table).
    pub locks: Vec<(Activity, String, String)>,
}

/// Read the live preflight picture, skipping tenantize's own sessions (named `tenantize …`, or
/// by the operator's `application_name`, which this session carries too).
pub async fn live_preflight(client: &Client, plan: &Plan) -> Result<LivePreflight, CheckError> {
    let activity = |r: &tokio_postgres::Row| Activity {
        pid: r.get(0),
        application: r.get(1),
        state: r.get(2),
        query: r.get(3),
        transaction_ms: r.get::<_, i64>(4).max(0) as u64,
    };
    let columns =
        "a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), left(coalesce(a.query, ''), 200),
                   coalesce((extract(epoch FROM now() - a.xact_start) * 1000)::int8, 0)";
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM pg_catalog.pg_stat_activity a
                  WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                    AND a.xact_start < now() - interval '5 seconds'
                    AND coalesce(a.application_name, '') NOT LIKE 'tenantize%'
                    AND coalesce(a.application_name, '') <> current_setting('application_name')
                  ORDER BY a.xact_start LIMIT 20"
            ),
            &[],
        )
        .await
        .map_err(db_error)?;
    let long_transactions = rows.iter().map(activity).collect();
    let tables: Vec<String> = plan.tables.iter().map(|t| t.name.to_string()).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {columns}, l.mode, format('%I.%I', n.nspname, c.relname)
                   FROM pg_catalog.pg_locks l
                   JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                   JOIN pg_catalog.pg_class c ON c.oid = l.relation
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE l.locktype = 'relation' AND l.granted AND a.pid <> pg_backend_pid()
                    AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
                    AND coalesce(a.application_name, '') NOT LIKE 'tenantize%'
                    AND coalesce(a.application_name, '') <> current_setting('application_name')
                    AND format('%I.%I', n.nspname, c.relname) = ANY ($1)
                  ORDER BY a.pid, 7 LIMIT 50"
            ),
            &[&tables],
        )
        .await
        .map_err(db_error)?;
    let locks = rows.iter().map(|r| (activity(r), r.get(5), r.get(6))).collect();
    Ok(LivePreflight { long_transactions, locks })
}
