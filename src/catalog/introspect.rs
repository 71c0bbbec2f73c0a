//! Set-based reads of `pg_catalog`: one query per kind of object, never one per table.
//!
//! Every query runs on a session whose `search_path` is empty (see `ConnSpec::connect`), so the
//! `pg_get_*def()` and `format_type()` texts qualify every name and do not depend on the caller.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::Client;

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

fn qn(value: &Value) -> QualifiedName {
    QualifiedName::new(value[0].as_str().unwrap_or_default(), value[1].as_str().unwrap_or_default())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// Read the catalog of `schemas`. `name_schemas` lists further schemas whose relation names
/// must be known (the tenant table's schema when it is not one of `schemas`).
pub async fn introspect(
    client: &Client,
    schemas: &[String],
    name_schemas: &[String],
) -> Result<Catalog, IntrospectError> {
    let schemas_param: Vec<String> = schemas.to_vec();
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4, version(), current_database()::text,
                    current_user::text, r.rolsuper, r.rolbypassrls,
                    has_database_privilege(current_database(), 'CREATE'),
                    EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'tenantize')
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(fail("server and role"))?;
    let version_num: i32 = row.get(0);
    let server = ServerInfo { version_num, version: row.get(1), database: row.get(2) };
    let role = RoleInfo {
        name: row.get(3),
        superuser: row.get(4),
        bypass_rls: row.get(5),
        can_create_in_database: row.get(6),
    };
    let journal_exists: bool = row.get(7);

    // Tables and partitioned tables, with partition parents and old-style inheritance.
    let rows = client
        .query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
                    parent.names, pg_get_expr(c.relpartbound, c.oid),
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                    pg_get_userbyid(c.relowner)::text, pg_has_role(c.relowner, 'USAGE'),
                    c.relpersistence = 'u', c.relrowsecurity, c.relforcerowsecurity,
                    c.reltuples::int8, pg_total_relation_size(c.oid)::int8, c.relispartition
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
            &[&schemas_param],
        )
        .await
        .map_err(fail("tables"))?;
    let mut tables = Vec::with_capacity(rows.len());
    let mut by_oid: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        let oid: i64 = row.get(0);
        let parents: Vec<QualifiedName> =
            row.get::<_, Value>(4).as_array().map(|a| a.iter().map(qn).collect()).unwrap_or_default();
        let is_partition: bool = row.get(14);
        let (partition_of, inherits_from) =
            if is_partition { (parents.first().cloned(), Vec::new()) } else { (None, parents) };
        by_oid.insert(oid, tables.len());
        tables.push(Table {
            name: QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
            kind: if row.get::<_, String>(3) == "p" { TableKind::Partitioned } else { TableKind::Ordinary },
            partition_of,
            partition_bound: row.get(5),
            partition_key: row.get(6),
            inherits_from,
            owner: row.get(7),
            owned_by_current_role: row.get(8),
            unlogged: row.get(9),
            columns: Vec::new(),
            primary_key: None,
            uniques: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            check_constraints: Vec::new(),
            exclusion_constraints: Vec::new(),
            triggers: Vec::new(),
            rls_enabled: row.get(10),
            rls_forced: row.get(11),
            policies: Vec::new(),
            row_estimate: row.get(12),
            total_bytes: row.get(13),
        });
    }

    let rows = client
        .query(
            "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
                    a.attgenerated::text
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
                AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attrelid, a.attnum",
            &[&schemas_param],
        )
        .await
        .map_err(fail("columns"))?;
    for row in rows {
        if let Some(&i) = by_oid.get(&row.get::<_, i64>(0)) {
            let generated = non_empty(row.get(6));
            tables[i].columns.push(Column {
                name: row.get(1),
                data_type: row.get(2),
                not_null: row.get(3),
                // A generated column's expression lives in pg_attrdef too; it is not a default.
                default: if generated.is_some() { None } else { row.get(4) },
                identity: non_empty(row.get(5)),
                generated,
            });
        }
    }

    // Constraints on our tables, and foreign keys from elsewhere that point into them.
    let delete_set_columns = if version_num >= 150000 {
        "coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.confdelsetcols) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.attnum), '[]')"
    } else {
        "'[]'::json"
    };
    let sql = format!(
        "SELECT con.conrelid::int8, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
                con.convalidated, con.condeferrable, con.condeferred, con.conparentid <> 0,
                coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.conkey) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.attnum), '[]'),
                CASE WHEN con.contype = 'f' THEN json_build_array(fn.nspname, fc.relname) END,
                coalesce((SELECT json_agg(a.attname ORDER BY u.ord) FROM unnest(con.confkey) WITH ORDINALITY u(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = u.attnum), '[]'),
                con.confupdtype::text, con.confdeltype::text, con.confmatchtype::text,
                {delete_set_columns},
                json_build_array(n.nspname, c.relname), n.nspname = ANY($1)
           FROM pg_catalog.pg_constraint con
           JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
           LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
          WHERE con.contype IN ('p', 'u', 'f', 'c', 'x')
            AND (n.nspname = ANY($1) OR (con.contype = 'f' AND fn.nspname = ANY($1)))
          ORDER BY con.conrelid, con.conname"
    );
    let rows = client.query(&sql, &[&schemas_param]).await.map_err(fail("constraints"))?;
    let mut unique_constraints: HashMap<(i64, String), UniqueConstraintInfo> = HashMap::new();
    let mut external_foreign_keys = Vec::new();
    for row in rows {
        let relid: i64 = row.get(0);
        let name: String = row.get(1);
        let kind: String = row.get(2);
        let definition: String = row.get(3);
        let columns = strings(&row.get::<_, Value>(8));
        let in_scope: bool = row.get(16);
        if kind == "f" {
            let fk = ForeignKey {
                name,
                columns,
                referenced_table: qn(&row.get::<_, Value>(9)),
                referenced_columns: strings(&row.get::<_, Value>(10)),
                definition,
                on_update: row.get(11),
                on_delete: row.get(12),
                on_delete_columns: strings(&row.get::<_, Value>(14)),
                match_type: row.get(13),
                deferrable: row.get(5),
                initially_deferred: row.get(6),
                validated: row.get(4),
                inherited: row.get(7),
            };
            match by_oid.get(&relid) {
                Some(&i) if in_scope => tables[i].foreign_keys.push(fk),
                _ => external_foreign_keys
                    .push(ExternalForeignKey { table: qn(&row.get::<_, Value>(15)), foreign_key: fk }),
            }
            continue;
        }
        let Some(&i) = by_oid.get(&relid) else { continue };
        match kind.as_str() {
            "p" => {
                tables[i].primary_key = Some(KeyConstraint { name, columns, definition });
            }
            "u" => {
                unique_constraints.insert(
                    (relid, name),
                    UniqueConstraintInfo {
                        definition,
                        deferrable: row.get(5),
                        initially_deferred: row.get(6),
                        inherited: row.get(7),
                    },
                );
            }
            "c" => tables[i].check_constraints.push(NamedDefinition { name, definition }),
            "x" => tables[i].exclusion_constraints.push(NamedDefinition { name, definition }),
            _ => {}
        }
    }

    let nulls_not_distinct = if version_num >= 150000 { "i.indnullsnotdistinct" } else { "false" };
    let sql = format!(
        "SELECT i.indrelid::int8, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique,
                i.indisprimary, i.indisvalid AND i.indisready, am.amname::text,
                pg_get_expr(i.indpred, i.indrelid),
                (SELECT json_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
                   FROM generate_series(1, i.indnkeyatts) k),
                (SELECT json_agg(a.attname ORDER BY u.ord)
                   FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(attnum, ord)
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                  WHERE u.ord <= i.indnkeyatts),
                {nulls_not_distinct}, ic.relispartition,
                (SELECT con.conname::text FROM pg_catalog.pg_constraint con
                  WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                    AND con.contype IN ('p', 'u', 'x'))
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_am am ON am.oid = ic.relam
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
          ORDER BY i.indrelid, ic.relname"
    );
    let rows = client.query(&sql, &[&schemas_param]).await.map_err(fail("indexes"))?;
    for row in rows {
        let relid: i64 = row.get(0);
        let Some(&i) = by_oid.get(&relid) else { continue };
        let index_name: String = row.get(1);
        let definition: String = row.get(2);
        let unique: bool = row.get(3);
        let primary: bool = row.get(4);
        let constraint_name: Option<String> = row.get(12);
        let key_columns = strings(&row.get::<_, Value>(8));
        let names_value: Value = row.get(9);
        let key_column_names = names_value.as_array().and_then(|items| {
            items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()
        });
        let is_partition_child: bool = row.get(11);
        if primary {
            continue;
        }
        if unique {
            let constraint =
                constraint_name.as_ref().and_then(|c| unique_constraints.remove(&(relid, c.clone())));
            // An exclusion constraint's index is not a unique index.
            if constraint_name.is_some() && constraint.is_none() {
                continue;
            }
            tables[i].uniques.push(UniqueIndex {
                index_name,
                constraint,
                index_definition: definition,
                key_columns,
                key_column_names,
                predicate: row.get(7),
                access_method: row.get(6),
                nulls_not_distinct: row.get(10),
                valid: row.get(5),
                is_partition_child,
            });
        } else if constraint_name.is_none() {
            tables[i].indexes.push(Index {
                name: index_name,
                definition,
                key_columns,
                valid: row.get(5),
                is_partition_child,
            });
        }
    }

    let inherited_trigger = if version_num >= 130000 { "t.tgparentid <> 0" } else { "false" };
    let sql = format!(
        "SELECT t.tgrelid::int8, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text,
                t.tgtype::int4, {inherited_trigger}
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
          ORDER BY t.tgrelid, t.tgname"
    );
    let rows = client.query(&sql, &[&schemas_param]).await.map_err(fail("triggers"))?;
    for row in rows {
        let Some(&i) = by_oid.get(&row.get::<_, i64>(0)) else { continue };
        let tgtype: i32 = row.get(4);
        tables[i].triggers.push(Trigger {
            name: row.get(1),
            definition: row.get(2),
            enabled: row.get(3),
            row_level: tgtype & 1 != 0,
            fires_on_insert: tgtype & 4 != 0,
            fires_on_update: tgtype & 16 != 0,
            inherited: row.get(5),
        });
    }

    let rows = client
        .query(
            "SELECT p.polrelid::int8, p.polname::text,
                    format('%s FOR %s USING (%s) WITH CHECK (%s)',
                           CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                           p.polcmd, pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
               FROM pg_catalog.pg_policy p
               JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = ANY($1)
              ORDER BY p.polrelid, p.polname",
            &[&schemas_param],
        )
        .await
        .map_err(fail("policies"))?;
    for row in rows {
        let Some(&i) = by_oid.get(&row.get::<_, i64>(0)) else { continue };
        tables[i].policies.push(NamedDefinition { name: row.get(1), definition: row.get(2) });
    }

    let security_invoker = if version_num >= 150000 {
        "(SELECT option_value FROM pg_options_to_table(v.reloptions) WHERE option_name = 'security_invoker')"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname::text, v.relname::text, v.relkind = 'm', pg_get_userbyid(v.relowner)::text,
                coalesce((SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.oid = v.relowner), false),
                {security_invoker},
                coalesce((SELECT json_agg(DISTINCT jsonb_build_array(tn.nspname, t.relname))
                   FROM pg_catalog.pg_rewrite rw
                   JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
                        AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE rw.ev_class = v.oid AND t.oid <> v.oid), '[]')
           FROM pg_catalog.pg_class v
           JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
          WHERE v.relkind IN ('v', 'm') AND n.nspname = ANY($1)
          ORDER BY n.nspname, v.relname"
    );
    let rows = client.query(&sql, &[&schemas_param]).await.map_err(fail("views"))?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let mut reads_tables: Vec<QualifiedName> =
            row.get::<_, Value>(6).as_array().map(|a| a.iter().map(qn).collect()).unwrap_or_default();
        reads_tables.sort();
        let invoker: Option<String> = row.get(5);
        views.push(View {
            name: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            materialized: row.get(2),
            owner: row.get(3),
            owner_bypasses_rls: row.get(4),
            security_invoker: invoker.map(|v| matches!(v.as_str(), "true" | "on" | "1" | "yes")),
            reads_tables,
        });
    }

    let rows = client
        .query(
            "SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
                    pg_get_userbyid(p.proowner)::text
               FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE p.prosecdef AND n.nspname = ANY($1)
              ORDER BY 1, 2, 3",
            &[&schemas_param],
        )
        .await
        .map_err(fail("functions"))?;
    let security_definer_functions = rows
        .into_iter()
        .map(|row| FunctionRef {
            name: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
            arguments: row.get(2),
            owner: row.get(3),
        })
        .collect();

    let mut all_schemas = schemas_param.clone();
    all_schemas.extend(name_schemas.iter().cloned());
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, NULL::bool
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = ANY($1)
             UNION ALL
             SELECT n.nspname::text, NULL, has_schema_privilege(n.oid, 'CREATE')
               FROM pg_catalog.pg_namespace n
              WHERE n.nspname = ANY($1)",
            &[&all_schemas],
        )
        .await
        .map_err(fail("relation names"))?;
    let mut relation_names = Vec::new();
    let mut creatable_schemas = Vec::new();
    for row in rows {
        let schema: String = row.get(0);
        match row.get::<_, Option<String>>(1) {
            Some(name) => relation_names.push(QualifiedName::new(schema, name)),
            None => {
                if row.get::<_, Option<bool>>(2) == Some(true) {
                    creatable_schemas.push(schema);
                }
            }
        }
    }
    relation_names.sort();
    relation_names.dedup();
    creatable_schemas.sort();

    for table in &mut tables {
        table.uniques.sort_by(|a, b| a.index_name.cmp(&b.index_name));
        table.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
    }
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
