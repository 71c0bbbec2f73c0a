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

use super::{CheckError, db_error, query_error};
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
    let mut p = Prober {
        client,
        catalog,
        tenancy,
        qcol: quote_ident(&tenancy.column),
        clones: BTreeMap::new(),
        report: IsolationReport::default(),
        savepoints: 0,
    };
    let ty = tenancy.key_type.sql();
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
    let schemas: std::collections::BTreeSet<&str> = tenancy
        .tables
        .iter()
        .map(|t| t.schema.as_str())
        .chain(std::iter::once(tenancy.tenant_table.schema.as_str()))
        .chain(catalog.views.iter().map(|v| v.name.schema.as_str()))
        .collect();
    let mut setup = format!(
        "SET LOCAL row_security = on; CREATE ROLE {PROBE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;\n\
         INSERT INTO {t} ({k}, name) VALUES ({}::{ty}, 'isolation probe A'), ({}::{ty}, 'isolation probe B');\n",
        quote_literal(&a),
        quote_literal(&b),
        t = tenancy.tenant_table,
        k = quote_ident(&tenancy.key_column),
    );
    for schema in schemas {
        let s = quote_ident(schema);
        setup.push_str(&format!(
            "GRANT USAGE ON SCHEMA {s} TO {PROBE_ROLE};\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {PROBE_ROLE};\n\
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {PROBE_ROLE};\n"
        ));
    }
    client
        .batch_execute(&setup)
        .await
        .map_err(|e| query_error(format!("setting up the isolation probe: {}", describe_pg_error(&e))))?;

    // One row per table for A and for B, parents first (the plan's order: stage 3's).
    let roots = ordered_roots(catalog, tenancy);
    // Clones refused by a unique: (table → the error).
    let mut b_refused: BTreeMap<QualifiedName, String> = BTreeMap::new();
    for (tenant, key) in [(a.as_str(), 'a'), (b.as_str(), 'b')] {
        for name in &roots {
            let table = p.table(name);
            match p.clone_into(table, tenant, key).await {
                Ok(()) => {}
                // A copies a value the existing tenant holds: refused means a unique is global.
                Err(why) if why.contains("duplicate key") => {
                    b_refused.entry(name.clone()).or_insert(why);
                }
                Err(why) if key == 'a' => {
                    p.report
                        .notes
                        .push(format!("{}: not probed with its own rows ({why})", name.display_plain()));
                }
                Err(_) => {}
            }
        }
    }

    // Reads: each tenant sees exactly its own rows; no tenant, nothing.
    for name in &tenancy.tables {
        let object = name.display_plain();
        for (tenant, key) in [(a.as_str(), 'a'), (b.as_str(), 'b')] {
            p.as_probe(Some(tenant)).await?;
            let sql = format!(
                "SELECT count(*), count(*) FILTER (WHERE {c} IS DISTINCT FROM {}::{ty}) FROM {name}",
                quote_literal(tenant),
                c = p.qcol
            );
            let read = client.query_one(sql.as_str(), &[]).await;
            p.as_admin().await?;
            match read {
                Ok(row) => {
                    let (seen, foreign): (i64, i64) = (row.get(0), row.get(1));
                    let partition = p.table(name).is_partition();
                    let own = p.clones.contains_key(&(name.clone(), key)) as i64;
                    let passed = foreign == 0 && (partition || seen == own);
                    p.record(
                        &object,
                        false,
                        &format!("tenant {} reads only its rows", key.to_ascii_uppercase()),
                        passed,
                        format!("saw {seen} rows, {foreign} of other tenants"),
                    );
                }
                Err(e) => p.record(&object, false, "reads", false, describe_pg_error(&e)),
            }
        }
        p.as_probe(None).await?;
        let read = client.query_one(format!("SELECT count(*) FROM {name}").as_str(), &[]).await;
        p.as_admin().await?;
        match read {
            Ok(row) => {
                let seen: i64 = row.get(0);
                p.record(
                    &object,
                    false,
                    "no tenant set reads nothing",
                    seen == 0,
                    format!("saw {seen} rows"),
                );
            }
            Err(e) => p.record(&object, false, "no tenant set reads nothing", false, describe_pg_error(&e)),
        }
    }

    // Writes into the other tenant, cross-tenant references, unique values.
    for name in &roots {
        let table = p.table(name);
        let object = name.display_plain();
        if let Some(why) = b_refused.get(name) {
            // A new tenant copied another tenant's unique values and was refused: a unique is
            // still global (tenant A's insert fails on tenant B's value).
            p.record(
                &object,
                false,
                "a unique value may repeat in another tenant",
                false,
                format!("refused: {why}"),
            );
        }
        let Some(row_a) = p.clones.get(&(name.clone(), 'a')).cloned() else { continue };
        // A inserts a row labelled B.
        if let Ok(sql) = p.clone_sql(table, &b, 'b', None, None, 7).await {
            p.as_probe(Some(&a)).await?;
            let outcome = p.attempt(&sql).await;
            p.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::INSUFFICIENT_PRIVILEGE);
            p.record(&object, false, "inserting a row of another tenant is refused", passed, detail);
        }
        // A moves its row to B.
        if let Some(key) = p.where_key(table, &row_a, "") {
            p.as_probe(Some(&a)).await?;
            let sql = format!("UPDATE {name} SET {} = {}::{ty} WHERE {key}", p.qcol, quote_literal(&b));
            let outcome = p.attempt(&sql).await;
            p.as_admin().await?;
            let (passed, detail) = match outcome {
                Ok(0) => (false, "the row to move was not visible (nothing to test)".to_string()),
                other => refused_by(other, &SqlState::INSUFFICIENT_PRIVILEGE),
            };
            p.record(&object, false, "moving a row to another tenant is refused", passed, detail);
        }
        // A inserts a child pointing at B's parent.
        let mut tree = vec![table];
        tree.extend(catalog.partition_descendants(name));
        let mut foreign_keys: Vec<crate::catalog::ForeignKey> = Vec::new();
        for fk in tree.iter().flat_map(|t| t.foreign_keys.iter()) {
            if !fk.inherited
                && p.is_scoped(&fk.referenced_table)
                && !foreign_keys.iter().any(|f| f.columns == fk.columns)
            {
                foreign_keys.push(fk.clone());
            }
        }
        for fk in foreign_keys {
            if fk.referenced_table == *name || !p.clones.contains_key(&(fk.referenced_table.clone(), 'b')) {
                continue;
            }
            // A's own row, updated to point at a parent of another tenant (an INSERT could trip
            // over a unique before the foreign key is even checked). The parent's key must not
            // exist in A: a scoped unique lets B repeat A's value, and pointing at that value
            // would land on A's own parent.
            let Some(key) = p.where_key(table, &row_a, "") else { continue };
            let pairs: Vec<(&String, &String)> = fk
                .columns
                .iter()
                .zip(fk.referenced_columns.iter())
                .filter(|(c, _)| **c != tenancy.column)
                .collect();
            let parent = &fk.referenced_table;
            let in_a: Vec<String> =
                pairs.iter().map(|(_, r)| format!("q.{r} = o.{r}", r = quote_ident(r))).collect();
            let find = format!(
                "SELECT to_jsonb(o.*) FROM {parent} o WHERE o.{c} <> {a}::{ty} AND NOT EXISTS \
                 (SELECT 1 FROM {parent} q WHERE q.{c} = {a}::{ty} AND {}) LIMIT 1",
                in_a.join(" AND "),
                c = p.qcol,
                a = quote_literal(&a),
            );
            let Ok(Some(other)) = client.query_opt(find.as_str(), &[]).await else {
                p.report.notes.push(format!(
                    "{object}: no parent in {} outside tenant A to point at",
                    parent.display_plain()
                ));
                continue;
            };
            let other: Value = other.get(0);
            let sets: Vec<String> = pairs
                .iter()
                .map(|(c, r)| {
                    let ty = table.column(c).map(|c| c.data_type.clone()).unwrap_or_default();
                    format!("{} = {}::{ty}", quote_ident(c), literal_for(&other[r.as_str()]))
                })
                .collect();
            let cross = format!("UPDATE {name} SET {} WHERE {key}", sets.join(", "));
            p.as_probe(Some(&a)).await?;
            let outcome = p.attempt(&cross).await;
            p.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::FOREIGN_KEY_VIOLATION);
            p.record(
                &object,
                false,
                &format!(
                    "a row pointing at another tenant's {} is refused",
                    fk.referenced_table.display_plain()
                ),
                passed,
                detail,
            );
        }
        // Uniques: B's clone repeated A's values (it exists, so that worked); a second copy in A
        // with the same values must be refused.
        // Tenant-scoped versions of the table's own uniques (not the (tenant, primary key) ones
        // added for foreign keys: a fresh key never repeats those).
        let pk_columns: Vec<String> =
            table.primary_key.as_ref().map(|k| k.columns.clone()).unwrap_or_default();
        let scoped_uniques: Vec<String> = table
            .uniques
            .iter()
            .filter(|u| !u.is_partition_child)
            .filter(|u| u.key_columns.first().is_some_and(|c| *c == tenancy.column || *c == p.qcol))
            .filter(|u| {
                let rest: Vec<String> = u.key_columns.iter().skip(1).cloned().collect();
                let mut rest_sorted = rest.clone();
                rest_sorted.sort();
                let mut pk_sorted = pk_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
                pk_sorted.sort();
                rest_sorted != pk_sorted
            })
            .map(|u| u.index_name.clone())
            .collect();
        if scoped_uniques.is_empty() {
            continue;
        }
        if p.clones.contains_key(&(name.clone(), 'b')) {
            p.record(
                &object,
                false,
                "a unique value may repeat in another tenant",
                true,
                format!("tenants A and B hold the same {}", scoped_uniques.join(", ")),
            );
        }
        // A second copy of A's own row (same unique values, fresh key) in A.
        let own_row = p.where_key(table, &row_a, "src.");
        if let Ok(sql) = p.clone_sql(table, &a, 'a', None, own_row, 13).await {
            p.as_probe(Some(&a)).await?;
            let outcome = p.attempt(&sql).await;
            p.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::UNIQUE_VIOLATION);
            p.record(&object, false, "a unique value cannot repeat within a tenant", passed, detail);
        }
    }

    // Views: a view that shows the same rows whatever the tenant reads across tenants.
    for view in catalog.views.iter().filter(|v| !v.materialized) {
        if !view.reads_tables.iter().any(|t| p.is_scoped(t)) {
            continue;
        }
        let object = view.name.display_plain();
        let mut counts = Vec::new();
        for tenant in [a.as_str(), b.as_str()] {
            p.as_probe(Some(tenant)).await?;
            let read = client.query_one(format!("SELECT count(*) FROM {}", view.name).as_str(), &[]).await;
            p.as_admin().await?;
            counts.push(read.map(|r| r.get::<_, i64>(0)));
        }
        let all = client
            .query_one(format!("SELECT count(*) FROM {}", view.name).as_str(), &[])
            .await
            .map(|r| r.get::<_, i64>(0));
        match (&counts[0], &counts[1], all) {
            (Ok(ca), Ok(cb), Ok(all)) => {
                let leaks = all > 2 && (*ca == all || *cb == all);
                p.record(
                    &object,
                    true,
                    "reading through the view shows only the tenant's rows",
                    !leaks,
                    format!("tenant A sees {ca} rows, B {cb}, all tenants together {all}"),
                );
            }
            (Err(e), _, _) | (_, Err(e), _) => {
                p.record(&object, true, "reading through the view", false, describe_pg_error(e));
            }
            (_, _, Err(e)) => p.report.notes.push(format!("{object}: {}", describe_pg_error(&e))),
        }
    }
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
