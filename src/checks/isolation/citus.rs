//! The probe on Citus. Citus opens its own connections to the workers as the current role, so
//! a role created inside the probe's transaction does not exist for them, and a role cannot
//! read shards that another role wrote in the same transaction ("cannot perform query on
//! placements that were modified in this transaction by a different user"). So on Citus:
//! the probe role is created and granted before the transaction (committed, without a
//! password: only the server's trust, peer or certificate rules can let anyone log in as it)
//! and dropped after it, also when the probe fails; inside the transaction the session only
//! ever acts as the probe role, making its rows with their tenant set; the tool's own reads of
//! existing rows go through a second connection. Multi-shard work runs sequentially: Citus
//! refuses a write to a reference table after a parallel read of a table keyed to it.

use tokio_postgres::Client;

use super::{IsolationReport, Prober, Tenancy};
use crate::catalog::Catalog;
use crate::checks::{CheckError, db_error, query_error};
use crate::db::describe_pg_error;
use crate::sql::quote_literal;

/// Added to the report's notes on Citus.
pub(super) fn note(role: &str) -> String {
    format!(
        "Citus: the probe ran through the coordinator as a committed temporary role ({role}, no \
         password), dropped afterwards; a leak's reproduction script is written for a single node"
    )
}

/// Whether any tenant table is distributed on Citus.
pub(super) async fn distributed(client: &Client, tenancy: &Tenancy) -> Result<bool, CheckError> {
    let has_citus: bool = client
        .query_one("SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    if !has_citus {
        return Ok(false);
    }
    let tables: Vec<String> = tenancy.tables.iter().map(|t| t.to_string()).collect();
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                WHERE logicalrelid::pg_catalog.text = ANY($1::pg_catalog.text[]))";
    Ok(client.query_one(sql, &[&tables]).await.map_err(db_error)?.get(0))
}

async fn run(client: &Client, sql: &str) -> Result<(), CheckError> {
    client.batch_execute(sql).await.map_err(|e| {
        query_error(format!("the isolation probe's role on Citus: {sql}: {}", describe_pg_error(&e)))
    })
}

/// Create the probe role with its grants, committed (Citus propagates the role and the table
/// grants to the workers; the grant to set session_replication_role it does not, so it is run
/// on each worker). A role left by a killed probe is dropped first.
pub(super) async fn create_role(client: &Client, role: &str, schemas: &[String]) -> Result<(), CheckError> {
    drop_role(client, role).await?;
    run(client, &format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT")).await?;
    for grant in super::probes::grants(role, schemas) {
        run(client, &grant).await?;
    }
    let parameter = format!("GRANT SET ON PARAMETER session_replication_role TO {role}");
    run(client, &parameter).await?;
    let on_workers = format!(
        "SELECT nodename, nodeport, result FROM pg_catalog.run_command_on_workers({}) WHERE NOT success",
        quote_literal(&parameter)
    );
    let failed = client.query(on_workers.as_str(), &[]).await.map_err(db_error)?;
    if let Some(row) = failed.first() {
        let (host, port, result): (String, i32, String) = (row.get(0), row.get(1), row.get(2));
        drop_role(client, role).await?;
        return Err(query_error(format!("the isolation probe's role on worker {host}:{port}: {result}")));
    }
    Ok(())
}

/// Drop the probe role and everything granted to it, on every node (Citus propagates both).
pub(super) async fn drop_role(client: &Client, role: &str) -> Result<(), CheckError> {
    let exists: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", &[&role])
        .await
        .map_err(db_error)?
        .get(0);
    if exists {
        run(client, &format!("DROP OWNED BY {role}")).await?;
        run(client, &format!("DROP ROLE {role}")).await?;
    }
    Ok(())
}

/// The first commands of the probe's transaction on Citus.
pub(super) fn transaction_setup(p: &Prober<'_>) -> Vec<String> {
    vec![
        "SET LOCAL citus.multi_shard_modify_mode = 'sequential'".into(),
        "SET LOCAL row_security = on".into(),
        format!("SET LOCAL ROLE {}", p.role),
        p.tenants_insert(),
    ]
}

/// The probe on Citus: the committed role around the rolled-back probe transaction. The role
/// is per database, so a second probe of this database (or a run changing it) would drop it
/// from under this one, whose refused statements would then read as the policy's refusals:
/// the probe holds the run's lock, or stops before anything is created.
pub(super) async fn probe(
    client: &Client,
    reader: &Client,
    catalog: &Catalog,
    tenancy: &Tenancy,
    role: &str,
) -> Result<IsolationReport, CheckError> {
    crate::db::lock::acquire(client).await?;
    let report: Result<IsolationReport, CheckError> = async {
        let schemas = super::probe_schemas(client, tenancy).await?;
        create_role(client, role, &schemas).await?;
        reader.batch_execute("SET search_path = ''").await.map_err(db_error)?;
        let report = crate::db::tx::rolled_back(client, async || {
            super::run(client, reader, catalog, tenancy, true, role).await
        })
        .await;
        let dropped = drop_role(client, role).await;
        let mut report = report?;
        dropped?;
        report.notes.push(note(role));
        Ok(report)
    }
    .await;
    crate::db::lock::release(client).await;
    report
}
