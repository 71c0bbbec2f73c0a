//! What the coordinator says about Citus: read only for `plan --distribute citus`, in a few
//! queries, each sent only when the one before shows it can be answered (a server without the
//! extension has no `pg_dist_node`).

use tokio_postgres::Client;

use super::{Rows, get};
use crate::catalog::{CitusInfo, CitusWorker, IntrospectError};
use crate::sql::QualifiedName;

pub async fn read_citus(client: &Client) -> Result<CitusInfo, IntrospectError> {
    let server = Rows::query(
        client,
        "citus settings",
        "SELECT 'citus' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
                  AS preloaded,
                current_setting('wal_level') AS wal_level,
                current_setting('output_plugin_libraries', true) AS output_plugin_libraries,
                EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'citus') AS available,
                (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS extension_version,
                (SELECT substr(c, strpos(c, '=') + 1)
                   FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c
                  WHERE s.setrole = 0
                    AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d
                                          WHERE d.datname = pg_catalog.current_database())
                    AND split_part(c, '=', 1) = 'citus.propagate_set_commands'
                  LIMIT 1) AS database_propagate_set_commands",
        &[],
    )
    .await?;
    let row = &server.rows[0];
    let mut info = CitusInfo {
        preloaded: get(server.what, row, "preloaded")?,
        wal_level: get(server.what, row, "wal_level")?,
        output_plugin_libraries: get(server.what, row, "output_plugin_libraries")?,
        available: get(server.what, row, "available")?,
        extension_version: get(server.what, row, "extension_version")?,
        database_propagate_set_commands: get(server.what, row, "database_propagate_set_commands")?,
        shard_replication_factor: 1,
        ..CitusInfo::default()
    };
    if info.extension_version.is_none() || !info.preloaded {
        return Ok(info);
    }
    let nodes = Rows::query(
        client,
        "citus nodes",
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid = 0) AS coordinator_known,
                current_setting('citus.shard_replication_factor')::int AS shard_replication_factor",
        &[],
    )
    .await?;
    info.coordinator_known = get(nodes.what, &nodes.rows[0], "coordinator_known")?;
    info.shard_replication_factor = get(nodes.what, &nodes.rows[0], "shard_replication_factor")?;
    // run_command_on_workers connects to each active primary worker: its answer says whether
    // this database (with the extension) is there.
    let workers = Rows::query(
        client,
        "citus workers",
        "SELECT nodename::text AS name, nodeport AS port, success,
                result::text AS result
           FROM pg_catalog.run_command_on_workers(
                $$SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'citus'$$)
          ORDER BY nodename, nodeport",
        &[],
    )
    .await?;
    for row in &workers.rows {
        let success: bool = get(workers.what, row, "success")?;
        let result: String = get(workers.what, row, "result")?;
        let problem = match (success, result.as_str()) {
            (true, "1") => None,
            (true, _) => {
                Some("the extension is not created in this database there (CREATE EXTENSION citus)".into())
            }
            (false, _) => Some(result),
        };
        info.workers.push(CitusWorker {
            name: get(workers.what, row, "name")?,
            port: get(workers.what, row, "port")?,
            problem,
        });
    }
    let tables = Rows::query(
        client,
        "citus tables",
        "SELECT n.nspname::text AS schema, c.relname::text AS name, p.partmethod::text AS method
           FROM pg_catalog.pg_dist_partition p
           JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY 1, 2",
        &[],
    )
    .await?;
    for row in &tables.rows {
        let name = QualifiedName::new(
            get::<String>(tables.what, row, "schema")?,
            get::<String>(tables.what, row, "name")?,
        );
        info.citus_tables.push((name, get(tables.what, row, "method")?));
    }
    Ok(info)
}
