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

use super::*;
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
struct Rows {
    what: &'static str,
    rows: Vec<Row>,
}

impl Rows {
    async fn query(
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

use read_column as get;

fn qn(value: &Value) -> QualifiedName {
    QualifiedName::new(value[0].as_str().unwrap_or_default(), value[1].as_str().unwrap_or_default())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn names(value: &Value) -> Vec<QualifiedName> {
    value.as_array().map(|a| a.iter().map(qn).collect()).unwrap_or_default()
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// Tables being read, by oid, so every later query can attach what it finds.
struct Tables {
    list: Vec<Table>,
    by_oid: HashMap<i64, usize>,
}

impl Tables {
    fn get_mut(&mut self, oid: i64) -> Option<&mut Table> {
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
    })
}

async fn server_and_role(client: &Client) -> Result<(ServerInfo, RoleInfo, bool), IntrospectError> {
    const WHAT: &str = "server and role";
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4 AS version_num, version() AS version,
                    current_database()::text AS database, current_user::text AS role_name,
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
    };
    let role = RoleInfo {
        name: get(WHAT, &row, "role_name")?,
        superuser: get(WHAT, &row, "superuser")?,
        bypass_rls: get(WHAT, &row, "bypass_rls")?,
        can_create_in_database: get(WHAT, &row, "can_create")?,
    };
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
                pg_total_relation_size(c.oid)::int8 AS total_bytes, c.relispartition AS is_partition
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
            policies: Vec::new(),
            row_estimate: get(what, row, "row_estimate")?,
            total_bytes: get(what, row, "total_bytes")?,
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
            generated,
        });
    }
    Ok(())
}

type UniqueConstraints = HashMap<(i64, String), UniqueConstraintInfo>;

/// Constraints on our tables, and foreign keys from elsewhere that point into them.
async fn read_constraints(
    client: &Client,
    schemas: &Vec<String>,
    version_num: i32,
    tables: &mut Tables,
) -> Result<(UniqueConstraints, Vec<ExternalForeignKey>), IntrospectError> {
    let delete_set_columns = if version_num >= 150000 {
        "coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.confdelsetcols) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.attnum), '[]')"
    } else {
        "'[]'::json"
    };
    let sql = format!(
        "SELECT con.conrelid::int8 AS relid, con.conname::text AS name, con.contype::text AS kind,
                pg_get_constraintdef(con.oid) AS definition, con.convalidated AS validated,
                con.condeferrable AS deferrable, con.condeferred AS deferred,
                con.conparentid <> 0 AS inherited,
                coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.conkey) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.attnum), '[]') AS columns,
                CASE WHEN con.contype = 'f' THEN json_build_array(fn.nspname, fc.relname) END AS referenced_table,
                coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.confkey) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = u.attnum), '[]') AS referenced_columns,
                con.confupdtype::text AS on_update, con.confdeltype::text AS on_delete,
                con.confmatchtype::text AS match_type, {delete_set_columns} AS on_delete_columns,
                json_build_array(n.nspname, c.relname) AS table_name, n.nspname = ANY($1) AS in_scope
           FROM pg_catalog.pg_constraint con
           JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
           LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
          WHERE con.contype IN ('p', 'u', 'f', 'c', 'x')
            AND (n.nspname = ANY($1) OR (con.contype = 'f' AND fn.nspname = ANY($1)))
          ORDER BY con.conrelid, con.conname"
    );
    let result = Rows::query(client, "constraints", &sql, &[schemas]).await?;
    let what = result.what;
    let mut unique_constraints = HashMap::new();
    let mut external_foreign_keys = Vec::new();
    for row in &result.rows {
        let relid: i64 = get(what, row, "relid")?;
        let name: String = get(what, row, "name")?;
        let kind: String = get(what, row, "kind")?;
        let definition: String = get(what, row, "definition")?;
        let columns = strings(&get::<Value>(what, row, "columns")?);
        if kind == "f" {
            let fk = ForeignKey {
                name,
                columns,
                referenced_table: qn(&get::<Value>(what, row, "referenced_table")?),
                referenced_columns: strings(&get::<Value>(what, row, "referenced_columns")?),
                definition,
                on_update: get(what, row, "on_update")?,
                on_delete: get(what, row, "on_delete")?,
                on_delete_columns: strings(&get::<Value>(what, row, "on_delete_columns")?),
                match_type: get(what, row, "match_type")?,
                deferrable: get(what, row, "deferrable")?,
                initially_deferred: get(what, row, "deferred")?,
                validated: get(what, row, "validated")?,
                inherited: get(what, row, "inherited")?,
            };
            let in_scope: bool = get(what, row, "in_scope")?;
            match tables.get_mut(relid) {
                Some(table) if in_scope => table.foreign_keys.push(fk),
                _ => external_foreign_keys.push(ExternalForeignKey {
                    table: qn(&get::<Value>(what, row, "table_name")?),
                    foreign_key: fk,
                }),
            }
            continue;
        }
        let Some(table) = tables.get_mut(relid) else { continue };
        match kind.as_str() {
            "p" => table.primary_key = Some(KeyConstraint { name, columns, definition }),
            "u" => {
                let info = UniqueConstraintInfo {
                    definition,
                    deferrable: get(what, row, "deferrable")?,
                    initially_deferred: get(what, row, "deferred")?,
                    inherited: get(what, row, "inherited")?,
                };
                unique_constraints.insert((relid, name), info);
            }
            "c" => table.check_constraints.push(NamedDefinition { name, definition }),
            "x" => table.exclusion_constraints.push(NamedDefinition { name, definition }),
            _ => {}
        }
    }
    Ok((unique_constraints, external_foreign_keys))
}

async fn read_indexes(
    client: &Client,
    schemas: &Vec<String>,
    version_num: i32,
    mut unique_constraints: UniqueConstraints,
    tables: &mut Tables,
) -> Result<(), IntrospectError> {
    let nulls_not_distinct = if version_num >= 150000 { "i.indnullsnotdistinct" } else { "false" };
    let sql = format!(
        "SELECT i.indrelid::int8 AS relid, ic.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition,
                i.indisunique AS is_unique, i.indisprimary AS is_primary,
                i.indisvalid AND i.indisready AS valid, am.amname::text AS access_method,
                pg_get_expr(i.indpred, i.indrelid) AS predicate,
                (SELECT json_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
                   FROM generate_series(1, i.indnkeyatts) k) AS key_columns,
                (SELECT json_agg(a.attname ORDER BY u.ord)
                   FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(attnum, ord)
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                  WHERE u.ord <= i.indnkeyatts) AS key_column_names,
                {nulls_not_distinct} AS nulls_not_distinct, ic.relispartition AS is_partition_child,
                (SELECT con.conname::text FROM pg_catalog.pg_constraint con
                  WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                    AND con.contype IN ('p', 'u', 'x')) AS constraint_name
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_am am ON am.oid = ic.relam
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
          ORDER BY i.indrelid, ic.relname"
    );
    let result = Rows::query(client, "indexes", &sql, &[schemas]).await?;
    let what = result.what;
    for row in &result.rows {
        let relid: i64 = get(what, row, "relid")?;
        let Some(table) = tables.get_mut(relid) else { continue };
        if get::<bool>(what, row, "is_primary")? {
            continue;
        }
        let index_name: String = get(what, row, "name")?;
        let definition: String = get(what, row, "definition")?;
        let constraint_name: Option<String> = get(what, row, "constraint_name")?;
        let key_columns = strings(&get::<Value>(what, row, "key_columns")?);
        let names_value: Value = get(what, row, "key_column_names")?;
        let key_column_names = names_value.as_array().and_then(|items| {
            items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()
        });
        let is_partition_child: bool = get(what, row, "is_partition_child")?;
        let valid: bool = get(what, row, "valid")?;
        if get::<bool>(what, row, "is_unique")? {
            let constraint =
                constraint_name.as_ref().and_then(|c| unique_constraints.remove(&(relid, c.clone())));
            // An exclusion constraint's index is not a unique index.
            if constraint_name.is_some() && constraint.is_none() {
                continue;
            }
            table.uniques.push(UniqueIndex {
                index_name,
                constraint,
                index_definition: definition,
                key_columns,
                key_column_names,
                predicate: get(what, row, "predicate")?,
                access_method: get(what, row, "access_method")?,
                nulls_not_distinct: get(what, row, "nulls_not_distinct")?,
                valid,
                is_partition_child,
            });
        } else if constraint_name.is_none() {
            table.indexes.push(Index {
                name: index_name,
                definition,
                key_columns,
                valid,
                is_partition_child,
            });
        }
    }
    Ok(())
}

async fn read_triggers(
    client: &Client,
    schemas: &Vec<String>,
    version_num: i32,
    tables: &mut Tables,
) -> Result<(), IntrospectError> {
    let inherited_trigger = if version_num >= 130000 { "t.tgparentid <> 0" } else { "false" };
    let sql = format!(
        "SELECT t.tgrelid::int8 AS relid, t.tgname::text AS name, pg_get_triggerdef(t.oid) AS definition,
                t.tgenabled::text AS enabled, t.tgtype::int4 AS trigger_type, {inherited_trigger} AS inherited
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
          ORDER BY t.tgrelid, t.tgname"
    );
    let result = Rows::query(client, "triggers", &sql, &[schemas]).await?;
    let what = result.what;
    for row in &result.rows {
        let Some(table) = tables.get_mut(get(what, row, "relid")?) else { continue };
        let tgtype: i32 = get(what, row, "trigger_type")?;
        table.triggers.push(Trigger {
            name: get(what, row, "name")?,
            definition: get(what, row, "definition")?,
            enabled: get(what, row, "enabled")?,
            row_level: tgtype & 1 != 0,
            fires_on_insert: tgtype & 4 != 0,
            fires_on_update: tgtype & 16 != 0,
            inherited: get(what, row, "inherited")?,
        });
    }
    Ok(())
}

async fn read_policies(
    client: &Client,
    schemas: &Vec<String>,
    tables: &mut Tables,
) -> Result<(), IntrospectError> {
    let result = Rows::query(
        client,
        "policies",
        "SELECT p.polrelid::int8 AS relid, p.polname::text AS name,
                format('%s FOR %s USING (%s) WITH CHECK (%s)',
                       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       p.polcmd, pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)) AS definition
           FROM pg_catalog.pg_policy p
           JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = ANY($1)
          ORDER BY p.polrelid, p.polname",
        &[schemas],
    )
    .await?;
    let what = result.what;
    for row in &result.rows {
        let Some(table) = tables.get_mut(get(what, row, "relid")?) else { continue };
        table.policies.push(NamedDefinition {
            name: get(what, row, "name")?,
            definition: get(what, row, "definition")?,
        });
    }
    Ok(())
}

async fn read_views(
    client: &Client,
    schemas: &Vec<String>,
    version_num: i32,
) -> Result<Vec<View>, IntrospectError> {
    let security_invoker = if version_num >= 150000 {
        "(SELECT option_value FROM pg_options_to_table(v.reloptions) WHERE option_name = 'security_invoker')"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname::text AS schema, v.relname::text AS name, v.relkind = 'm' AS materialized,
                pg_get_userbyid(v.relowner)::text AS owner,
                coalesce((SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.oid = v.relowner), false)
                    AS owner_bypasses_rls,
                {security_invoker} AS security_invoker,
                coalesce((SELECT json_agg(DISTINCT jsonb_build_array(tn.nspname, t.relname))
                   FROM pg_catalog.pg_rewrite rw
                   JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
                        AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE rw.ev_class = v.oid AND t.oid <> v.oid), '[]') AS reads_tables
           FROM pg_catalog.pg_class v
           JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
          WHERE v.relkind IN ('v', 'm') AND n.nspname = ANY($1)
          ORDER BY n.nspname, v.relname"
    );
    let result = Rows::query(client, "views", &sql, &[schemas]).await?;
    let what = result.what;
    let mut views = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        let mut reads_tables = names(&get::<Value>(what, row, "reads_tables")?);
        reads_tables.sort();
        let invoker: Option<String> = get(what, row, "security_invoker")?;
        views.push(View {
            name: QualifiedName::new(get::<String>(what, row, "schema")?, get::<String>(what, row, "name")?),
            materialized: get(what, row, "materialized")?,
            owner: get(what, row, "owner")?,
            owner_bypasses_rls: get(what, row, "owner_bypasses_rls")?,
            security_invoker: invoker.map(|v| matches!(v.as_str(), "true" | "on" | "1" | "yes")),
            reads_tables,
        });
    }
    Ok(views)
}

async fn read_security_definer_functions(
    client: &Client,
    schemas: &Vec<String>,
) -> Result<Vec<FunctionRef>, IntrospectError> {
    let result = Rows::query(
        client,
        "functions",
        "SELECT n.nspname::text AS schema, p.proname::text AS name,
                pg_get_function_identity_arguments(p.oid) AS arguments, pg_get_userbyid(p.proowner)::text AS owner
           FROM pg_catalog.pg_proc p
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE p.prosecdef AND n.nspname = ANY($1)
          ORDER BY 1, 2, 3",
        &[schemas],
    )
    .await?;
    let what = result.what;
    result
        .rows
        .iter()
        .map(|row| {
            Ok(FunctionRef {
                name: QualifiedName::new(
                    get::<String>(what, row, "schema")?,
                    get::<String>(what, row, "name")?,
                ),
                arguments: get(what, row, "arguments")?,
                owner: get(what, row, "owner")?,
            })
        })
        .collect()
}

/// Every relation name in `schemas` (generated names must not collide), and the schemas the
/// role may create in.
async fn read_relation_names(
    client: &Client,
    schemas: &Vec<String>,
) -> Result<(Vec<QualifiedName>, Vec<String>), IntrospectError> {
    let result = Rows::query(
        client,
        "relation names",
        "SELECT n.nspname::text AS schema, c.relname::text AS name, NULL::bool AS may_create
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = ANY($1)
         UNION ALL
         SELECT n.nspname::text, NULL, has_schema_privilege(n.oid, 'CREATE')
           FROM pg_catalog.pg_namespace n
          WHERE n.nspname = ANY($1)",
        &[schemas],
    )
    .await?;
    let what = result.what;
    let mut relation_names = Vec::new();
    let mut creatable_schemas = Vec::new();
    for row in &result.rows {
        let schema: String = get(what, row, "schema")?;
        match get::<Option<String>>(what, row, "name")? {
            Some(name) => relation_names.push(QualifiedName::new(schema, name)),
            None => {
                if get::<Option<bool>>(what, row, "may_create")? == Some(true) {
                    creatable_schemas.push(schema);
                }
            }
        }
    }
    relation_names.sort();
    relation_names.dedup();
    creatable_schemas.sort();
    Ok((relation_names, creatable_schemas))
}
