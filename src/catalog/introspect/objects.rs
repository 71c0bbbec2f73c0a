//! Triggers, policies, views, SECURITY DEFINER functions and every relation name.

use serde_json::Value;
use tokio_postgres::Client;

use super::{Rows, Tables, get};
use crate::catalog::*;

pub(super) async fn read_triggers(
    client: &Client,
    schemas: &Vec<String>,
    version_num: i32,
    tables: &mut Tables,
) -> Result<(), IntrospectError> {
    let inherited_trigger = if version_num >= 130000 { "t.tgparentid <> 0" } else { "false" };
    let sql = format!(
        r#"SELECT t.tgrelid::int8 AS relid, t.tgname::text AS name, pg_get_triggerdef(t.oid) AS definition,
                t.tgenabled::text AS enabled, t.tgtype::int4 AS trigger_type, {inherited_trigger} AS inherited,
                coalesce((SELECT json_agg(json_build_array(wn.nspname, w.relname) ORDER BY wn.nspname, w.relname)
                   FROM pg_catalog.pg_proc p, pg_catalog.pg_class w
                   JOIN pg_catalog.pg_namespace wn ON wn.oid = w.relnamespace
                  WHERE p.oid = t.tgfoid AND w.relkind IN ('r', 'p') AND wn.nspname = ANY($1)
                    AND p.prosrc ~* ('\m(insert\s+into|update|delete\s+from)\s+(\S+\.)?"?'
                                     || regexp_replace(w.relname, '([^a-zA-Z0-9_])', '\\\1', 'g') || '\M')),
                  '[]') AS writes_tables
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
          ORDER BY t.tgrelid, t.tgname"#
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
            writes_tables: super::names(&get::<Value>(what, row, "writes_tables")?),
        });
    }
    Ok(())
}

pub(super) async fn read_policies(
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

/// Every view and materialized view that reads a table of `schemas`, directly or through
/// other views, in whatever schema it lives (a view in a reporting schema over converted
/// tables leaks like one beside them).
pub(super) async fn read_views(
    client: &Client,
    schemas: &[String],
    version_num: i32,
) -> Result<Vec<View>, IntrospectError> {
    let security_invoker = if version_num >= 150000 {
        "(SELECT option_value FROM pg_options_to_table(v.reloptions) WHERE option_name = 'security_invoker')"
    } else {
        "NULL::text"
    };
    // Every user view with the relations its rules read directly: tables, and views (whose
    // own reads are followed below).
    let sql = format!(
        "SELECT n.nspname::text AS schema, v.relname::text AS name, v.relkind = 'm' AS materialized,
                pg_get_userbyid(v.relowner)::text AS owner,
                coalesce((SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.oid = v.relowner), false)
                    AS owner_bypasses_rls,
                {security_invoker} AS security_invoker,
                coalesce((SELECT json_agg(DISTINCT jsonb_build_array(tn.nspname, t.relname, t.relkind IN ('v', 'm')))
                   FROM pg_catalog.pg_rewrite rw
                   JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
                        AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p', 'v', 'm')
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE rw.ev_class = v.oid AND t.oid <> v.oid), '[]') AS reads
           FROM pg_catalog.pg_class v
           JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
          WHERE v.relkind IN ('v', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantize')
            AND n.nspname !~ '^pg_(toast|temp)'
            -- An extension's views (Citus puts citus_tables in public) are the extension's.
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = v.oid
                               AND d.deptype = 'e')
          ORDER BY n.nspname, v.relname"
    );
    let result = Rows::query(client, "views", &sql, &[]).await?;
    let what = result.what;
    let mut views = Vec::with_capacity(result.rows.len());
    // Per view, the views it reads directly.
    let mut reads_views: Vec<Vec<QualifiedName>> = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        let reads: Value = get(what, row, "reads")?;
        let (mut tables, mut via) = (Vec::new(), Vec::new());
        for item in reads.as_array().into_iter().flatten() {
            let name = super::qn(item);
            if item[2].as_bool() == Some(true) { via.push(name) } else { tables.push(name) }
        }
        tables.sort();
        reads_views.push(via);
        let invoker: Option<String> = get(what, row, "security_invoker")?;
        views.push(View {
            name: QualifiedName::new(get::<String>(what, row, "schema")?, get::<String>(what, row, "name")?),
            materialized: get(what, row, "materialized")?,
            owner: get(what, row, "owner")?,
            owner_bypasses_rls: get(what, row, "owner_bypasses_rls")?,
            security_invoker: invoker.map(|v| matches!(v.as_str(), "true" | "on" | "1" | "yes")),
            reads_tables: tables,
            reads_via_views: Vec::new(),
        });
    }
    follow_views(&mut views, &reads_views);
    Ok(views
        .into_iter()
        .filter(|v| schemas.contains(&v.name.schema) || v.reads().any(|t| schemas.contains(&t.schema)))
        .collect())
}

/// Fill each view's `reads_via_views`: the tables of the views it reads, recursively (a
/// worklist over the view graph; cycles cannot occur in PostgreSQL, but a visited set keeps
/// it finite anyway).
fn follow_views(views: &mut [View], reads_views: &[Vec<QualifiedName>]) {
    let index: std::collections::HashMap<QualifiedName, usize> =
        views.iter().enumerate().map(|(i, v)| (v.name.clone(), i)).collect();
    for start in 0..views.len() {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<usize> = reads_views[start].iter().filter_map(|n| index.get(n).copied()).collect();
        let mut via = std::collections::BTreeSet::new();
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            via.extend(views[i].reads_tables.iter().cloned());
            todo.extend(reads_views[i].iter().filter_map(|n| index.get(n).copied()));
        }
        for direct in &views[start].reads_tables {
            via.remove(direct);
        }
        views[start].reads_via_views = via.into_iter().collect();
    }
}

pub(super) async fn read_security_definer_functions(
    client: &Client,
    schemas: &Vec<String>,
) -> Result<Vec<FunctionRef>, IntrospectError> {
    let result = Rows::query(
        client,
        "functions",
        r"SELECT n.nspname::text AS schema, p.proname::text AS name,
                pg_get_function_identity_arguments(p.oid) AS arguments, pg_get_userbyid(p.proowner)::text AS owner,
                coalesce((SELECT json_agg(json_build_array(tn.nspname, t.relname) ORDER BY tn.nspname, t.relname)
                   FROM pg_catalog.pg_class t
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE t.relkind IN ('r', 'p') AND tn.nspname = ANY($1)
                    AND p.prosrc ~* ('\m' || regexp_replace(t.relname, '([^a-zA-Z0-9_])', '\\\1', 'g') || '\M')),
                  '[]') AS names_tables
           FROM pg_catalog.pg_proc p
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE p.prosecdef AND n.nspname = ANY($1)
            -- An extension's functions are the extension's business, not the schema's.
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                               AND d.deptype = 'e')
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
                names_tables: super::names(&get::<Value>(what, row, "names_tables")?),
            })
        })
        .collect()
}

/// Every relation name in `schemas` (generated names must not collide), and the schemas the
/// role may create in.
pub(super) async fn read_relation_names(
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
