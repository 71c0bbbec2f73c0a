//! Constraints and indexes: keys, uniques, checks, exclusions, foreign keys (ours and those
//! pointing in from elsewhere), and indexes with their key columns and predicates.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::Client;

use super::{Rows, Tables, get, qn, strings};
use crate::catalog::*;

pub(super) type UniqueConstraints = HashMap<(i64, String), UniqueConstraintInfo>;

/// Constraints on our tables, and foreign keys from elsewhere that point into them.
pub(super) async fn read_constraints(
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
                coalesce((SELECT i.indisclustered FROM pg_catalog.pg_index i WHERE i.indexrelid = con.conindid), false)
                    AS clustered,
                CASE WHEN con.contype = 'p' THEN pg_get_indexdef(con.conindid) END AS index_definition,
                (SELECT t.spcname::text FROM pg_catalog.pg_class ic
                   JOIN pg_catalog.pg_tablespace t ON t.oid = ic.reltablespace
                  WHERE ic.oid = con.conindid AND con.contype = 'p') AS tablespace,
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
            "p" => {
                let clustered = get(what, row, "clustered")?;
                table.primary_key = Some(KeyConstraint {
                    name,
                    columns,
                    definition,
                    clustered,
                    index_definition: get(what, row, "index_definition")?,
                    tablespace: get(what, row, "tablespace")?,
                })
            }
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

pub(super) async fn read_indexes(
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
                (SELECT t.spcname::text FROM pg_catalog.pg_tablespace t WHERE t.oid = ic.reltablespace) AS tablespace,
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
                tablespace: get(what, row, "tablespace")?,
            });
        } else if constraint_name.is_none() {
            table.indexes.push(Index {
                name: index_name,
                definition,
                key_columns,
                key_column_names,
                valid,
                is_partition_child,
                tablespace: get(what, row, "tablespace")?,
            });
        }
    }
    Ok(())
}
