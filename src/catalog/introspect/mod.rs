//! Set-based reads of `pg_catalog`: one query per kind of object, never one per table.
//!
//! Every query runs on a session whose `search_path` is empty (see `ConnSpec::connect`), so the
//! `pg_get_*def()` and `format_type()` texts qualify every name and do not depend on the caller.
//! Columns are read by name: a column another server version types or fills differently
//! becomes an error that names the query and the column, never a panic.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Row};

mod citus;
mod constraints;
mod objects;

pub use citus::read_citus;

use constraints::{read_constraints, read_indexes};
use objects::{
    read_policies, read_relation_names, read_security_definer_functions, read_triggers, read_views,
};

use crate::catalog::*;
use crate::db::describe_pg_error;

/// How many queries [`introspect`] sends, whatever the number of tables.
pub const INTROSPECTION_QUERY_COUNT: usize = 10;

#[derive(Debug, thiserror::Error)]
#[error("reading the catalog failed ({what}): {detail}")]
pub struct IntrospectError {
    what: &'static str,
    detail: String,
}

fn fail(what: &'static str) -> impl Fn(tokio_postgres::Error) -> IntrospectError {
    move |e| IntrospectError { what, detail: describe_pg_error(&e) }
}

/// One query's rows, read by column name.
pub(super) struct Rows {
    pub what: &'static str,
    pub rows: Vec<Row>,
}

impl Rows {
    pub async fn query(
        client: &Client,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Rows, IntrospectError> {
        let rows = client.query(sql, params).await.map_err(fail(what))?;
        Ok(Rows { what, rows })
    }
}

/// Column `name` of `row` of the query `what`, or an error naming both (a type or NULL this
/// code does not expect, or a column another server version lacks).
pub fn read_column<'a, T: FromSql<'a>>(
    what: &'static str,
    row: &'a Row,
    name: &str,
) -> Result<T, IntrospectError> {
    row.try_get(name).map_err(|e| IntrospectError { what, detail: format!("column {name}: {e}") })
}

pub(super) use read_column as get;

pub(super) fn qn(value: &Value) -> QualifiedName {
    QualifiedName::new(value[0].as_str().unwrap_or_default(), value[1].as_str().unwrap_or_default())
}

pub(super) fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub(super) fn names(value: &Value) -> Vec<QualifiedName> {
    value.as_array().map(|a| a.iter().map(qn).collect()).unwrap_or_default()
}

pub(super) fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// Tables being read, by oid, so every later query can attach what it finds.
pub(super) struct Tables {
    pub list: Vec<Table>,
    pub by_oid: HashMap<i64, usize>,
}

impl Tables {
    pub fn get_mut(&mut self, oid: i64) -> Option<&mut Table> {
        self.by_oid.get(&oid).map(|&i| &mut self.list[i])
    }
}

/// Read the catalog of `schemas`. `name_schemas` lists further schemas whose relation names
/// must be known (the tenant table's schema when it is not one of `schemas`).
pub async fn introspect(
    client: &Client,
    schemas: &[String],
    name_schemas: &[String],
) -> Result<Catalog, IntrospectError> {
    let schemas_param: Vec<String> = schemas.to_vec();
    let (server, role, journal_exists) = server_and_role(client).await?;
    let mut tables = read_tables(client, &schemas_param).await?;
    read_columns(client, &schemas_param, &mut tables).await?;
    let (unique_constraints, external_foreign_keys) =
        read_constraints(client, &schemas_param, server.version_num, &mut tables).await?;
    read_indexes(client, &schemas_param, server.version_num, unique_constraints, &mut tables).await?;
    read_triggers(client, &schemas_param, server.version_num, &mut tables).await?;
    read_policies(client, &schemas_param, &mut tables).await?;
    let views = read_views(client, &schemas_param, server.version_num).await?;
    let security_definer_functions = read_security_definer_functions(client, &schemas_param).await?;
    let mut all_schemas = schemas_param.clone();
    all_schemas.extend(name_schemas.iter().cloned());
    let (relation_names, creatable_schemas) = read_relation_names(client, &all_schemas).await?;
    let mut tables = tables.list;
    for table in &mut tables {
        table.uniques.sort_by(|a, b| a.index_name.cmp(&b.index_name));
        table.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut external_foreign_keys = external_foreign_keys;
    external_foreign_keys.sort_by(|a: &ExternalForeignKey, b| {
        (&a.table, &a.foreign_key.name).cmp(&(&b.table, &b.foreign_key.name))
    });
    Ok(Catalog {
        server,
        role,
        schemas: schemas.to_vec(),
        tables,
        views,
        security_definer_functions,
        relation_names,
        creatable_schemas,
        journal_exists,
        external_foreign_keys,
        legacy_roles: Vec::new(),
        citus: None,
    })
}

/// The roles among `names` that exist, each with its `setting` for this database (one query,
/// sent only when there are names: `--legacy-role`).
pub async fn read_legacy_roles(
    client: &Client,
    names: &[String],
    setting: &str,
) -> Result<Vec<LegacyRole>, IntrospectError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let result = Rows::query(
        client,
        "legacy roles",
        "SELECT r.rolname::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
                r.rolcanlogin AS can_login,
                (SELECT me.rolsuper OR me.rolname = r.rolname
                        OR (me.rolcreaterole AND NOT r.rolsuper
                            AND (pg_catalog.current_setting('server_version_num')::int < 160000
                                 OR pg_catalog.pg_has_role(r.oid, 'MEMBER WITH ADMIN OPTION')))
                   FROM pg_catalog.pg_roles me WHERE me.rolname = current_user) AS may_alter,
                (SELECT substr(c, strpos(c, '=') + 1)
                   FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c
                  WHERE s.setrole = r.oid
                    AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d
                                          WHERE d.datname = pg_catalog.current_database())
                    AND split_part(c, '=', 1) = $2
                  LIMIT 1) AS setting
           FROM unnest($1::text[]) WITH ORDINALITY AS u(name, n)
           JOIN pg_catalog.pg_roles r ON r.rolname = u.name
          ORDER BY u.n",
        &[&names, &setting],
    )
    .await?;
    let mut roles = Vec::new();
    for row in &result.rows {
        roles.push(LegacyRole {
            name: get(result.what, row, "name")?,
            setting: get(result.what, row, "setting")?,
            superuser: get(result.what, row, "superuser")?,
            bypass_rls: get(result.what, row, "bypass_rls")?,
            can_login: get(result.what, row, "can_login")?,
            may_alter: get(result.what, row, "may_alter")?,
        });
    }
    Ok(roles)
}

async fn server_and_role(client: &Client) -> Result<(ServerInfo, RoleInfo, bool), IntrospectError> {
    const WHAT: &str = "server and role";
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4 AS version_num, version() AS version,
                    current_database()::text AS database, current_user::text AS role_name,
                    coalesce(current_setting('wal_init_zero', true), 'off')::bool AS wal_init_zero,
                    r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
                    has_database_privilege(current_database(), 'CREATE') AS can_create,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'tenantize') AS journal_exists
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(fail(WHAT))?;
    let server = ServerInfo {
        version_num: get(WHAT, &row, "version_num")?,
        version: get(WHAT, &row, "version")?,
        database: get(WHAT, &row, "database")?,
        wal_init_zero: get(WHAT, &row, "wal_init_zero")?,
    };
    let role = RoleInfo {
        name: get(WHAT, &row, "role_name")?,
        superuser: get(WHAT, &row, "superuser")?,
        bypass_rls: get(WHAT, &row, "bypass_rls")?,
        can_create_in_database: get(WHAT, &row, "can_create")?,
        can_set_replication_role: false,
    };
    let mut role = role;
    role.can_set_replication_role = role.superuser;
    if !role.superuser && server.version_num >= 150000 {
        // GRANT SET ON PARAMETER (PostgreSQL 15+), as managed services grant their admin roles.
        let row = client
            .query_one("SELECT has_parameter_privilege('session_replication_role', 'SET') AS may_set", &[])
            .await
            .map_err(fail(WHAT))?;
        role.can_set_replication_role = get(WHAT, &row, "may_set")?;
    }
    Ok((server, role, get(WHAT, &row, "journal_exists")?))
}

/// Tables and partitioned tables, with partition parents and old-style inheritance.
async fn read_tables(client: &Client, schemas: &Vec<String>) -> Result<Tables, IntrospectError> {
    let result = Rows::query(
        client,
        "tables",
        "SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
                c.relkind::text AS kind, parent.names AS parents,
                pg_get_expr(c.relpartbound, c.oid) AS partition_bound,
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
                pg_get_userbyid(c.relowner)::text AS owner, pg_has_role(c.relowner, 'USAGE') AS owned,
                c.relpersistence = 'u' AS unlogged, c.relrowsecurity AS rls_enabled,
                c.relforcerowsecurity AS rls_forced, c.reltuples::int8 AS row_estimate,
                c.relreplident::text AS replica_identity,
                pg_total_relation_size(c.oid)::int8 AS total_bytes, c.relispartition AS is_partition,
                (SELECT e.extname::text FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
                  LIMIT 1) AS extension
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN LATERAL (
                SELECT coalesce(json_agg(json_build_array(pn.nspname, p.relname) ORDER BY i.inhseqno), '[]') AS names
                  FROM pg_catalog.pg_inherits i
                  JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                 WHERE i.inhrelid = c.oid) parent ON true
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
          ORDER BY n.nspname, c.relname",
        &[schemas],
    )
    .await?;
    let what = result.what;
    let mut tables = Tables { list: Vec::with_capacity(result.rows.len()), by_oid: HashMap::new() };
    for row in &result.rows {
        let parents = names(&get::<Value>(what, row, "parents")?);
        let (partition_of, inherits_from) = if get(what, row, "is_partition")? {
            (parents.first().cloned(), Vec::new())
        } else {
            (None, parents)
        };
        tables.by_oid.insert(get(what, row, "oid")?, tables.list.len());
        let kind: String = get(what, row, "kind")?;
        tables.list.push(Table {
            name: QualifiedName::new(get::<String>(what, row, "schema")?, get::<String>(what, row, "name")?),
            kind: if kind == "p" { TableKind::Partitioned } else { TableKind::Ordinary },
            partition_of,
            partition_bound: get(what, row, "partition_bound")?,
            partition_key: get(what, row, "partition_key")?,
            inherits_from,
            owner: get(what, row, "owner")?,
            owned_by_current_role: get(what, row, "owned")?,
            unlogged: get(what, row, "unlogged")?,
            columns: Vec::new(),
            primary_key: None,
            uniques: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            check_constraints: Vec::new(),
            exclusion_constraints: Vec::new(),
            triggers: Vec::new(),
            rls_enabled: get(what, row, "rls_enabled")?,
            rls_forced: get(what, row, "rls_forced")?,
            replica_identity: get(what, row, "replica_identity")?,
            policies: Vec::new(),
            row_estimate: get(what, row, "row_estimate")?,
            total_bytes: get(what, row, "total_bytes")?,
            extension: get(what, row, "extension")?,
        });
    }
    Ok(tables)
}

async fn read_columns(
    client: &Client,
    schemas: &Vec<String>,
    tables: &mut Tables,
) -> Result<(), IntrospectError> {
    let result = Rows::query(
        client,
        "columns",
        "SELECT a.attrelid::int8 AS relid, a.attname::text AS name,
                format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null,
                pg_get_expr(d.adbin, d.adrelid) AS default_expr, a.attidentity::text AS identity,
                a.attgenerated::text AS generated
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
            AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attrelid, a.attnum",
        &[schemas],
    )
    .await?;
    let what = result.what;
    for row in &result.rows {
        let Some(table) = tables.get_mut(get(what, row, "relid")?) else { continue };
        let generated = non_empty(get(what, row, "generated")?);
        table.columns.push(Column {
            name: get(what, row, "name")?,
            data_type: get(what, row, "data_type")?,
            not_null: get(what, row, "not_null")?,
            // A generated column's expression lives in pg_attrdef too; it is not a default.
            default: if generated.is_some() { None } else { get(what, row, "default_expr")? },
            identity: non_empty(get(what, row, "identity")?),
            generated: if generated.is_some() { get(what, row, "default_expr")? } else { None },
        });
    }
    Ok(())
}
