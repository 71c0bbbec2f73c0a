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
    read_rollback_facts(client, &mut info).await?;
    Ok(info)
}

/// What `undistribute_table` does not give back: sequence types, functions on row types.
async fn read_rollback_facts(client: &Client, info: &mut CitusInfo) -> Result<(), IntrospectError> {
    let sequences = Rows::query(
        client,
        "sequence types",
        "SELECT DISTINCT tn.nspname::text AS schema, t.relname::text AS name, sn.nspname::text AS seq_schema,
                sc.relname::text AS seq_name, pg_catalog.format_type(s.seqtypid, NULL) AS data_type
           FROM pg_catalog.pg_attrdef d
           JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
           JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           JOIN pg_catalog.pg_sequence s ON s.seqrelid = dep.refobjid
           JOIN pg_catalog.pg_class sc ON sc.oid = s.seqrelid
           JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
           JOIN pg_catalog.pg_class t ON t.oid = d.adrelid
           JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
          WHERE s.seqtypid <> a.atttypid AND a.attidentity = ''
          ORDER BY 1, 2, 3, 4",
        &[],
    )
    .await?;
    for row in &sequences.rows {
        let w = sequences.what;
        info.sequence_types.push(crate::catalog::SequenceType {
            table: QualifiedName::new(get::<String>(w, row, "schema")?, get::<String>(w, row, "name")?),
            sequence: QualifiedName::new(
                get::<String>(w, row, "seq_schema")?,
                get::<String>(w, row, "seq_name")?,
            ),
            data_type: get(w, row, "data_type")?,
        });
    }
    let functions = Rows::query(
        client,
        "functions on row types",
        "SELECT DISTINCT n.nspname::text AS schema, c.relname::text AS name, p.oid::pg_catalog.regprocedure::text AS signature,
                pg_catalog.pg_get_functiondef(p.oid) AS definition, pg_catalog.pg_get_userbyid(p.proowner)::text AS owner,
                pg_catalog.obj_description(p.oid, 'pg_proc') AS comment, p.proacl IS NOT NULL AS has_grants
           FROM pg_catalog.pg_depend d
           JOIN pg_catalog.pg_proc p ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
           JOIN pg_catalog.pg_type ty ON d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.refobjid = ty.oid
           JOIN pg_catalog.pg_class c ON c.oid = ty.typrelid AND c.relkind IN ('r', 'p')
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE d.deptype = 'n' AND p.prokind IN ('f', 'p')
          ORDER BY 1, 2, 3",
        &[],
    )
    .await?;
    for row in &functions.rows {
        let w = functions.what;
        info.rowtype_functions.push(crate::catalog::RowtypeFunction {
            table: QualifiedName::new(get::<String>(w, row, "schema")?, get::<String>(w, row, "name")?),
            signature: get(w, row, "signature")?,
            definition: get(w, row, "definition")?,
            owner: get(w, row, "owner")?,
            comment: get(w, row, "comment")?,
            has_grants: get(w, row, "has_grants")?,
        });
    }
    Ok(())
}
