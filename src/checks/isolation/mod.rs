//! `verify --isolation`: prove tenant isolation the way an attacker would test it, as a role
//! that is neither owner, superuser nor BYPASSRLS, and leave nothing behind.
//!
//! Everything happens in one transaction that is always rolled back: a temporary role, two
//! temporary tenants A and B, and one row per table for each, cloned from existing rows with
//! parents first (so every child row points at a parent of its own tenant). Then, as the
//! temporary role: reads see only the current tenant's rows, with no tenant set nothing at all;
//! inserting or updating a row into the other tenant is refused; a child row pointing at the
//! other tenant's parent is refused; a unique value may repeat across tenants but not within
//! one; partitions read directly and views read through obey the same rules.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::{CheckError, db_error};
mod probes;

use crate::catalog::{Catalog, Table};
use crate::db::describe_pg_error;
use crate::plan::KeyType;
use crate::sql::{QualifiedName, ident_list, quote_ident, quote_literal};

/// What the probe needs to know about the tenancy.
#[derive(Debug, Clone)]
pub struct Tenancy {
    pub tenant_table: QualifiedName,
    pub key_column: String,
    pub key_type: KeyType,
    pub column: String,
    pub setting: String,
    /// Tenant-scoped tables, partitions included.
    pub tables: Vec<QualifiedName>,
}

impl Tenancy {
    pub fn from_plan(plan: &crate::plan::Plan) -> Tenancy {
        Tenancy {
            tenant_table: plan.tenant.table.clone(),
            key_column: plan.tenant.key_column.clone(),
            key_type: plan.tenant.key_type,
            column: plan.tenant.column.clone(),
            setting: plan.tenant.setting.clone(),
            tables: plan.scoped_tables().map(|t| t.name.clone()).collect(),
        }
    }

    /// Without a plan: every table of the catalog that has the tenant column.
    pub fn discover(catalog: &Catalog, tenant_table: QualifiedName, column: &str, setting: &str) -> Tenancy {
        let key_type = catalog
            .table(&tenant_table)
            .and_then(|t| t.column("id"))
            .map(|c| match c.data_type.as_str() {
                "uuid" => KeyType::Uuid,
                "bigint" | "integer" => KeyType::Bigint,
                _ => KeyType::Text,
            })
            .unwrap_or(KeyType::Uuid);
        Tenancy {
            tables: catalog
                .tables
                .iter()
                .filter(|t| t.name != tenant_table && t.column(column).is_some())
                .map(|t| t.name.clone())
                .collect(),
            tenant_table,
            key_column: "id".into(),
            key_type,
            column: column.to_string(),
            setting: setting.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ObjectReport {
    pub object: String,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct IsolationReport {
    pub tables: Vec<ObjectReport>,
    pub views: Vec<ObjectReport>,
    /// Tables not probed for some rules, and why.
    pub notes: Vec<String>,
    pub leaks: Vec<String>,
    pub ok: bool,
}

const PROBE_ROLE: &str = "tenantize_isolation_probe";

struct Prober<'a> {
    client: &'a Client,
    catalog: &'a Catalog,
    tenancy: &'a Tenancy,
    qcol: String,
    /// Per table and tenant ("a"/"b"): the cloned row as JSON.
    clones: BTreeMap<(QualifiedName, char), Value>,
    report: IsolationReport,
    savepoints: u32,
    /// The two temporary tenants' ids, as text.
    a: String,
    b: String,
}

fn literal_for(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(s) => quote_literal(s),
        other => quote_literal(&other.to_string()),
    }
}

impl<'a> Prober<'a> {
    fn object(&mut self, name: &str, views: bool) -> &mut ObjectReport {
        let list = if views { &mut self.report.views } else { &mut self.report.tables };
        if let Some(i) = list.iter().position(|o| o.object == name) {
            return &mut list[i];
        }
        list.push(ObjectReport { object: name.to_string(), probes: Vec::new() });
        list.last_mut().expect("just pushed")
    }

    fn record(&mut self, object: &str, views: bool, name: &str, passed: bool, detail: String) {
        if !passed {
            self.report.leaks.push(format!("{object}: {name}: {detail}"));
        }
        self.object(object, views).probes.push(Probe { name: name.to_string(), passed, detail });
    }

    fn table(&self, name: &QualifiedName) -> &'a Table {
        self.catalog.table(name).expect("probed tables are catalogued")
    }

    fn is_scoped(&self, name: &QualifiedName) -> bool {
        self.tenancy.tables.contains(name)
    }

    /// Run `sql` in a savepoint: the error (if any) is returned and the transaction goes on.
    async fn attempt(&mut self, sql: &str) -> Result<u64, tokio_postgres::Error> {
        self.savepoints += 1;
        let sp = format!("probe_{}", self.savepoints);
        self.client.batch_execute(&format!("SAVEPOINT {sp}")).await?;
        match self.client.execute(sql, &[]).await {
            Ok(n) => {
                self.client.batch_execute(&format!("RELEASE SAVEPOINT {sp}")).await?;
                Ok(n)
            }
            Err(e) => {
                self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {sp}")).await?;
                Err(e)
            }
        }
    }

    async fn as_probe(&self, tenant: Option<&str>) -> Result<(), CheckError> {
        let value = tenant.map(quote_literal).unwrap_or_else(|| "''".into());
        self.client
            .batch_execute(&format!(
                "SET LOCAL ROLE {PROBE_ROLE}; SELECT set_config({}, {value}, true);",
                quote_literal(&self.tenancy.setting)
            ))
            .await
            .map_err(db_error)
    }

    async fn as_admin(&self) -> Result<(), CheckError> {
        self.client.batch_execute("RESET ROLE").await.map_err(db_error)
    }

    /// A new key value for `column` as a literal, computed as the admin (under RLS a `max()`
    /// would see one tenant's rows only and could collide with another's), or None: the column
    /// has a default.
    async fn fresh_value(&self, table: &Table, column: &str, n: u32) -> Result<Option<String>, String> {
        let Some(col) = table.column(column) else { return Ok(None) };
        if col.default.is_some() || col.identity.is_some() {
            return Ok(None);
        }
        let q = quote_ident(column);
        let name = &table.name;
        let sql = match col.data_type.as_str() {
            "smallint" | "integer" | "bigint" | "numeric" => {
                format!("SELECT (coalesce(max({q}), 0) + {})::text FROM {name}", 1000 + n)
            }
            "uuid" => "SELECT gen_random_uuid()::text".into(),
            _ => "SELECT 'probe-' || md5(random()::text)".into(),
        };
        let value: String =
            self.client.query_one(sql.as_str(), &[]).await.map_err(|e| describe_pg_error(&e))?.get(0);
        Ok(Some(format!("{}::{}", quote_literal(&value), col.data_type)))
    }

    /// An INSERT that clones one existing row of `table` into `tenant`. Foreign keys point at
    /// the clones of their parents in `parents` ('a' or 'b'), except `cross`: that foreign key
    /// points at the other tenant's parent. `source` narrows which row is copied.
    async fn clone_sql(
        &self,
        table: &Table,
        tenant: &str,
        parents: char,
        cross: Option<&str>,
        source: Option<String>,
        n: u32,
    ) -> Result<String, String> {
        let name = &table.name;
        let pk: Vec<String> = table.primary_key.as_ref().map(|p| p.columns.clone()).unwrap_or_default();
        let mut columns = Vec::new();
        let mut values = Vec::new();
        let mut conditions = vec![format!("src.{} IS NOT NULL", self.qcol)];
        conditions.extend(source);
        // Keys declared on partitions (rather than on their parent) apply to rows routed there.
        let mut tree = vec![table];
        tree.extend(self.catalog.partition_descendants(&table.name));
        let mut fk_columns: BTreeMap<&String, (&crate::catalog::ForeignKey, usize)> = BTreeMap::new();
        for fk in
            tree.iter().flat_map(|t| t.foreign_keys.iter()).filter(|f| self.is_scoped(&f.referenced_table))
        {
            for (i, c) in fk.columns.iter().enumerate() {
                fk_columns.entry(c).or_insert((fk, i));
            }
        }
        // Copy a row that every partial unique covers, so the unique rules are really tested.
        for unique in &table.uniques {
            if let Some(predicate) = &unique.predicate {
                conditions.push(format!("({predicate})"));
            }
        }
        let other = if parents == 'a' { 'b' } else { 'a' };
        for col in &table.columns {
            if col.generated.is_some() || col.identity.as_deref() == Some("a") {
                continue;
            }
            let q = quote_ident(&col.name);
            let value = if col.name == self.tenancy.column {
                format!("{}::{}", quote_literal(tenant), self.tenancy.key_type.sql())
            } else if let Some((fk, i)) = fk_columns.get(&col.name) {
                let from = if cross == Some(fk.name.as_str()) { other } else { parents };
                match self.clones.get(&(fk.referenced_table.clone(), from)) {
                    Some(parent) => {
                        format!("{}::{}", literal_for(&parent[&fk.referenced_columns[*i]]), col.data_type)
                    }
                    None if !col.not_null => "NULL".into(),
                    None => {
                        return Err(format!(
                            "needs a parent in {} first ({} is NOT NULL)",
                            fk.referenced_table.display_plain(),
                            col.name
                        ));
                    }
                }
            } else if pk.contains(&col.name) {
                // One new key column is enough: one with a default (sequence, identity), else
                // the first one; the others (a partition key, say) are copied.
                let has_default =
                    |c: &String| table.column(c).is_some_and(|c| c.default.is_some() || c.identity.is_some());
                let fresh_one = pk.iter().find(|c| has_default(c)).or(pk.first());
                if fresh_one == Some(&col.name) {
                    match self.fresh_value(table, &col.name, n).await? {
                        Some(v) => v,
                        None => continue,
                    }
                } else {
                    format!("src.{q}")
                }
            } else {
                format!("src.{q}")
            };
            columns.push(col.name.clone());
            values.push(value);
        }
        Ok(format!(
            "INSERT INTO {name} ({}) SELECT {} FROM {name} src WHERE {} LIMIT 1",
            ident_list(&columns),
            values.join(", "),
            conditions.join(" AND ")
        ))
    }

    async fn clone_into(&mut self, table: &Table, tenant: &str, key: char) -> Result<(), String> {
        let sql = self.clone_sql(table, tenant, key, None, None, 1).await?;
        let sql = format!("{sql} RETURNING to_jsonb({}.*)", quote_ident(&table.name.name));
        self.savepoints += 1;
        let sp = format!("clone_{}", self.savepoints);
        self.client.batch_execute(&format!("SAVEPOINT {sp}")).await.map_err(|e| describe_pg_error(&e))?;
        match self.client.query_opt(sql.as_str(), &[]).await {
            Ok(Some(row)) => {
                self.client
                    .batch_execute(&format!("RELEASE SAVEPOINT {sp}"))
                    .await
                    .map_err(|e| describe_pg_error(&e))?;
                self.clones.insert((table.name.clone(), key), row.get(0));
                Ok(())
            }
            Ok(None) => {
                self.client
                    .batch_execute(&format!("RELEASE SAVEPOINT {sp}"))
                    .await
                    .map_err(|e| describe_pg_error(&e))?;
                Err("no row to clone".into())
            }
            Err(e) => {
                let _ = self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {sp}")).await;
                Err(describe_pg_error(&e))
            }
        }
    }

    /// `prefix.pk = value AND …` for the row `row` (None without a primary key).
    fn where_key(&self, table: &Table, row: &Value, prefix: &str) -> Option<String> {
        let pk = table.primary_key.as_ref()?;
        let parts: Vec<String> = pk
            .columns
            .iter()
            .map(|c| {
                let ty = table.column(c).map(|c| c.data_type.as_str()).unwrap_or("text");
                format!("{prefix}{} = {}::{ty}", quote_ident(c), literal_for(&row[c]))
            })
            .collect();
        Some(parts.join(" AND "))
    }
}

/// Run the probe. `client` must be a superuser (or have CREATEROLE and BYPASSRLS): it creates
/// the temporary role and clones rows; everything is rolled back.
pub async fn probe(
    client: &Client,
    catalog: &Catalog,
    tenancy: &Tenancy,
) -> Result<IsolationReport, CheckError> {
    if !catalog.role.superuser {
        return Err(CheckError::Refused(format!(
            "the isolation probe creates a temporary role and clones rows inside a transaction it \
             rolls back; role {} must be a superuser",
            catalog.role.name
        )));
    }
    if tenancy.tables.is_empty() {
        return Err(CheckError::Nothing(
            "no tenant-scoped tables to probe (is the conversion applied?)".into(),
        ));
    }
    crate::db::tx::rolled_back(client, async || run(client, catalog, tenancy).await).await
}

async fn run(client: &Client, catalog: &Catalog, tenancy: &Tenancy) -> Result<IsolationReport, CheckError> {
    let (a, b) = match tenancy.key_type {
        KeyType::Uuid => {
            let row = client
                .query_one("SELECT gen_random_uuid()::text, gen_random_uuid()::text", &[])
                .await
                .map_err(db_error)?;
            (row.get::<_, String>(0), row.get::<_, String>(1))
        }
        KeyType::Bigint => {
            let sql = format!(
                "SELECT (coalesce(max({k}), 0) + 1000001)::text, (coalesce(max({k}), 0) + 1000002)::text FROM {t}",
                k = quote_ident(&tenancy.key_column),
                t = tenancy.tenant_table
            );
            let row = client.query_one(sql.as_str(), &[]).await.map_err(db_error)?;
            (row.get::<_, String>(0), row.get::<_, String>(1))
        }
        KeyType::Text => ("tenantize-probe-a".to_string(), "tenantize-probe-b".to_string()),
    };
    let mut p = Prober {
        client,
        catalog,
        tenancy,
        qcol: quote_ident(&tenancy.column),
        clones: BTreeMap::new(),
        report: IsolationReport::default(),
        savepoints: 0,
        a,
        b,
    };
    p.setup().await?;
    let roots = ordered_roots(catalog, tenancy);
    let refused = p.clone_rows(&roots).await;
    p.probe_reads().await?;
    for name in &roots {
        p.probe_writes(name, refused.get(name)).await?;
    }
    p.probe_views().await?;
    p.report.ok = p.report.leaks.is_empty();
    Ok(p.report)
}

fn refused_by(outcome: Result<u64, tokio_postgres::Error>, expected: &SqlState) -> (bool, String) {
    match outcome {
        Ok(n) => (false, format!("was allowed ({n} rows)")),
        Err(e) if e.code() == Some(expected) => (true, format!("refused: {}", describe_pg_error(&e))),
        Err(e) => (false, format!("failed for another reason: {}", describe_pg_error(&e))),
    }
}

/// Tenant-scoped roots (not partitions), parents before children.
fn ordered_roots(catalog: &Catalog, tenancy: &Tenancy) -> Vec<QualifiedName> {
    let roots: Vec<&Table> =
        catalog.tables.iter().filter(|t| tenancy.tables.contains(&t.name) && !t.is_partition()).collect();
    let mut done: Vec<QualifiedName> = Vec::new();
    while done.len() < roots.len() {
        let ready = roots.iter().find(|t| {
            let mut tree = vec![**t];
            tree.extend(catalog.partition_descendants(&t.name));
            !done.contains(&t.name)
                && tree.iter().flat_map(|t| t.foreign_keys.iter()).all(|f| {
                    let parent = catalog.partition_root(&f.referenced_table);
                    parent == &t.name || done.contains(parent) || !tenancy.tables.contains(parent)
                })
        });
        let next = ready.or_else(|| roots.iter().find(|t| !done.contains(&t.name))).expect("a root is left");
        done.push(next.name.clone());
    }
    done
}
