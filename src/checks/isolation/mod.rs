//! `verify --isolation`: prove tenant isolation the way an attacker would test it, as a role
//! that is neither owner, superuser nor BYPASSRLS, and leave nothing behind.
//!
//! Everything happens in one transaction that is always rolled back: a temporary role, three
//! temporary tenants A, B and C (C gets no rows), and rows cloned from existing ones, parents first (so every
//! child row points at a parent of its own tenant). Partitioned tables get a row per leaf
//! partition. B's rows are cloned before A's, so that every view (in any schema, reading a
//! tenant table directly or through other views) is read as tenant B before and after A's
//! rows exist: what B sees must not change.
//!
//! Then, as the temporary role with the database's normal `search_path` (the application's,
//! so that its triggers run as they do in production): reads see only the current tenant's
//! rows, with no tenant set nothing at all; inserting or moving a row into the other tenant is
//! refused by the policy (42501); for each foreign key, a row made for it that points at the
//! other tenant's parent is refused by that foreign key (23503); for each unique, a row made
//! for it (one that the unique's predicate covers, with non-null key values) is refused when
//! copied within the tenant, by that unique (23505), and accepted in the other tenant.
//! Deferrable constraints are made immediate (`SET CONSTRAINTS ALL IMMEDIATE`).
//!
//! Each probe ends `ok`, `leak` (the database let a cross-tenant read or write through), or
//! `not_proven`: it could not be made, or was refused for another reason than the one it
//! tests (a CHECK constraint, a trigger, another constraint first). A table is proven when
//! all its probes are `ok`. A leak carries a script that reproduces it (`BEGIN` … `ROLLBACK`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Client;

use super::{CheckError, db_error};
mod citus;
mod columns;
mod order;
mod probes;
mod rows;
mod uniques;
mod views;

use crate::catalog::{Catalog, Table};
use crate::plan::KeyType;
use crate::sql::{QualifiedName, quote_ident, quote_literal};

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
    /// Materialized views the plan acknowledges (`--acknowledge materialized-view:NAME`): RLS
    /// cannot cover them and the operator accepted that; they are named, not probed.
    pub acknowledged_views: Vec<QualifiedName>,
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
            acknowledged_views: plan
                .options
                .acknowledge
                .iter()
                .filter_map(|a| a.strip_prefix("materialized-view:"))
                .map(|name| QualifiedName::parse_plain(name, "public"))
                .collect(),
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
            acknowledged_views: Vec::new(),
        }
    }
}

/// How one probe ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Refused (or allowed) exactly as isolation requires.
    Ok,
    /// The database let a cross-tenant read or write through.
    Leak,
    /// The probe could not be made, or was refused for another reason than the one it tests.
    NotProven,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub outcome: Outcome,
    /// `outcome == Ok`.
    pub passed: bool,
    pub detail: String,
    /// For a leak: a script a superuser can run to see it (it ends in ROLLBACK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ObjectReport {
    pub object: String,
    /// Every probe of this object is `ok` (and there is at least one).
    pub proven: bool,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct IsolationReport {
    pub tables: Vec<ObjectReport>,
    pub views: Vec<ObjectReport>,
    /// Remarks that do not change the outcome.
    pub notes: Vec<String>,
    /// `object: probe: detail`, one per leak.
    pub leaks: Vec<String>,
    /// `object: probe: reason`, one per probe that could not prove its rule.
    pub not_proven: Vec<String>,
    pub tables_proven: usize,
    pub tables_total: usize,
    pub views_proven: usize,
    pub views_total: usize,
    /// No leak, and every table and view proven.
    pub ok: bool,
}

/// The probe role's name without its suffix (the database's OID, so that probes of two
/// databases of one cluster neither wait for nor drop each other's role).
const PROBE_ROLE_PREFIX: &str = "tenantize_isolation_probe_";
/// A reproduction whose statement runs as the tool's own role.
pub(super) const ADMIN: char = ' ';

/// A statement that failed: its SQLSTATE, the constraint it names, and the server's text.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub code: String,
    pub constraint: Option<String>,
    pub message: String,
}

impl Refusal {
    fn from_error(e: &tokio_postgres::Error) -> Refusal {
        Refusal {
            code: e.code().map(|c| c.code().to_string()).unwrap_or_default(),
            constraint: e.as_db_error().and_then(|d| d.constraint()).map(str::to_string),
            message: crate::db::describe_pg_error(e),
        }
    }

    fn other(message: impl Into<String>) -> Refusal {
        Refusal { code: String::new(), constraint: None, message: message.into() }
    }
}

pub(super) const RLS_VIOLATION: &str = "42501";
pub(super) const FK_VIOLATION: &str = "23503";
pub(super) const UNIQUE_VIOLATION: &str = "23505";
pub(super) const CHECK_VIOLATION: &str = "23514";

struct Prober<'a> {
    client: &'a Client,
    /// Reads of existing rows as the tool's own role: `client` itself, except on Citus (see
    /// `citus.rs`), where a second connection reads what is committed.
    reader: &'a Client,
    /// The tenant tables are distributed on Citus: the probe role is committed for the
    /// probe's duration and, once inside the transaction, the session never acts as the tool.
    citus: bool,
    catalog: &'a Catalog,
    tenancy: &'a Tenancy,
    qcol: String,
    /// Per relation and tenant ('a'/'b'): a cloned row as JSON. A partitioned table's entry
    /// is its first leaf's row.
    clones: BTreeMap<(QualifiedName, char), Value>,
    /// A second cloned row per relation and tenant, made only for a row that needs two
    /// different parents in one table (`CHECK (user_id <> follower_id)`).
    second_parents: BTreeMap<(QualifiedName, char), Value>,
    /// Every statement that built the rows, in order, with the root table it wrote to (the
    /// reproduction scripts replay those they need).
    script: Vec<(QualifiedName, String)>,
    report: IsolationReport,
    savepoints: u32,
    /// Numbers fresh key values apart.
    counter: u32,
    /// Whether new rows get fresh values in the columns CHECKs read too (a unique probe's
    /// second try).
    fresh_checked: bool,
    /// The temporary tenants' ids, as text: A and B get rows; C none (a unique's value
    /// repeated in C can collide with another tenant's row only).
    a: String,
    b: String,
    c: String,
    /// The application's search_path (the database's default), as a literal.
    app_path: String,
    /// The schemas the probe role is granted access to.
    schemas: Vec<String>,
    /// The last row-making statement (for a reproduction when it was refused).
    last_sql: Option<String>,
    /// The temporary role the probe acts as (`probe_role`), an identifier as is.
    role: String,
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
        list.push(ObjectReport { object: name.to_string(), proven: false, probes: Vec::new() });
        list.last_mut().expect("just pushed")
    }

    fn record(&mut self, object: &str, views: bool, name: &str, outcome: Outcome, detail: String) {
        self.record_sql(object, views, name, outcome, detail, None);
    }

    /// Record a probe; a leak keeps `statement` (run as the probe role with `tenant` set)
    /// wrapped in a script that rebuilds the rows it needs.
    fn record_sql(
        &mut self,
        object: &str,
        views: bool,
        name: &str,
        outcome: Outcome,
        detail: String,
        repro: Option<(char, &str)>,
    ) {
        let line = format!("{object}: {name}: {detail}");
        match outcome {
            Outcome::Leak => self.report.leaks.push(line),
            Outcome::NotProven => self.report.not_proven.push(line),
            Outcome::Ok => {}
        }
        let sql = match (outcome, repro) {
            (Outcome::Leak, Some((tenant, statement))) => {
                Some(self.reproduction(tenant, statement, (!views).then_some(object)))
            }
            _ => None,
        };
        let passed = outcome == Outcome::Ok;
        self.object(object, views).probes.push(Probe {
            name: name.to_string(),
            outcome,
            passed,
            detail,
            sql,
        });
    }

    /// The root tables a probe on `object` needs rows in: its own and, recursively, those
    /// its foreign keys point at. None: every table (a view, or an unknown object).
    fn needed_roots(&self, object: Option<&str>) -> Option<Vec<QualifiedName>> {
        let table = self.catalog.tables.iter().find(|t| Some(t.name.display_plain().as_str()) == object)?;
        let mut needed = vec![self.catalog.partition_root(&table.name).clone()];
        let mut i = 0;
        while i < needed.len() {
            let root = needed[i].clone();
            let mut tree: Vec<&Table> = self.catalog.table(&root).into_iter().collect();
            tree.extend(self.catalog.partition_descendants(&root));
            for fk in tree.iter().flat_map(|t| t.foreign_keys.iter()) {
                let parent = self.catalog.partition_root(&fk.referenced_table);
                if self.is_scoped(parent) && !needed.contains(parent) {
                    needed.push(parent.clone());
                }
            }
            i += 1;
        }
        Some(needed)
    }

    /// A script a superuser can run to see a leak: the role, the tenants and the rows it needs,
    /// then `statement` as the role, then ROLLBACK.
    fn reproduction(&self, tenant: char, statement: &str, object: Option<&str>) -> String {
        let mut out = String::from("BEGIN;\n");
        out.push_str(&self.setup_sql());
        let needed = self.needed_roots(object);
        for (root, line) in &self.script {
            if needed.as_ref().is_some_and(|n| !n.contains(root)) {
                continue;
            }
            out.push_str(line);
            out.push_str(";\n");
        }
        if tenant != ADMIN {
            out.push_str(&self.probe_context(Some(tenant)));
            out.push('\n');
        }
        out.push_str(statement);
        out.push_str(";\nROLLBACK;");
        out
    }

    fn table(&self, name: &QualifiedName) -> &'a Table {
        self.catalog.table(name).expect("probed tables are catalogued")
    }

    fn is_scoped(&self, name: &QualifiedName) -> bool {
        self.tenancy.tables.contains(name)
    }

    fn tenant_id(&self, tenant: char) -> &str {
        match tenant {
            'a' => &self.a,
            'b' => &self.b,
            _ => &self.c,
        }
    }

    /// The tenant id as a typed SQL literal.
    fn tenant_literal(&self, tenant: char) -> String {
        format!("{}::{}", quote_literal(self.tenant_id(tenant)), self.tenancy.key_type.sql())
    }

    /// Run `sql` in a savepoint, constraints immediate: the error (if any) is returned and the
    /// transaction goes on.
    async fn attempt(&mut self, sql: &str) -> Result<u64, Refusal> {
        self.savepoints += 1;
        let sp = format!("probe_{}", self.savepoints);
        let fail = |e: tokio_postgres::Error| Refusal::from_error(&e);
        self.client
            .batch_execute(&format!("SAVEPOINT {sp}; SET CONSTRAINTS ALL IMMEDIATE"))
            .await
            .map_err(fail)?;
        match self.client.execute(sql, &[]).await {
            Ok(n) => {
                self.client.batch_execute(&format!("RELEASE SAVEPOINT {sp}")).await.map_err(fail)?;
                Ok(n)
            }
            Err(e) => {
                self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {sp}")).await.map_err(fail)?;
                Err(Refusal::from_error(&e))
            }
        }
    }

    /// One row of `sql`, read in a savepoint: a read the server refuses (Citus cannot run
    /// every query through the coordinator) is an answer, and the transaction goes on.
    async fn read_one(&self, sql: &str) -> Result<Result<tokio_postgres::Row, Refusal>, CheckError> {
        self.client.batch_execute("SAVEPOINT probe_read").await.map_err(db_error)?;
        let read = self.client.query_one(sql, &[]).await;
        let end = if read.is_ok() { "RELEASE" } else { "ROLLBACK TO" };
        self.client.batch_execute(&format!("{end} SAVEPOINT probe_read")).await.map_err(db_error)?;
        Ok(read.map_err(|e| Refusal::from_error(&e)))
    }

    /// The statements that make the session the application: the probe role, the tenant
    /// setting (empty for none) and the application's search_path.
    fn probe_context(&self, tenant: Option<char>) -> String {
        let value = tenant.map(|t| quote_literal(self.tenant_id(t))).unwrap_or_else(|| "''".into());
        // SET LOCAL, not set_config(): on Citus only SET LOCAL reaches the workers
        // (citus.propagate_set_commands = 'local'), where the policies run.
        format!(
            "SET LOCAL ROLE {}; SET LOCAL {} = {value}; SELECT set_config('search_path', {}, true);",
            self.role,
            self.setting_name(),
            self.app_path
        )
    }

    /// The tenant setting as SET names it (each part quoted: without a plan it comes from
    /// the command line unchecked).
    pub(super) fn setting_name(&self) -> String {
        self.tenancy.setting.split('.').map(quote_ident).collect::<Vec<_>>().join(".")
    }

    async fn as_probe(&self, tenant: Option<char>) -> Result<(), CheckError> {
        self.client.batch_execute(&self.probe_context(tenant)).await.map_err(db_error)
    }

    /// Back to the tool's own role. `cloning`: for making the probe's own rows of that tenant,
    /// with the application's search_path (defaults and generated columns may name functions
    /// without schema) and no user trigger firing (a trigger that writes another table would
    /// write it for the default tenant; the rows are the probe's setup, not what it tests).
    /// Otherwise the tool's empty search_path and triggers as usual. On Citus the rows are made
    /// as the probe role with their tenant set, because Citus refuses a role reading what
    /// another role wrote in the same transaction.
    async fn as_admin(&self, cloning: Option<char>) -> Result<(), CheckError> {
        let path = if cloning.is_some() { self.app_path.as_str() } else { "''" };
        let replication = if cloning.is_some() { "replica" } else { "origin" };
        let (role, tenant) = match (self.citus, cloning) {
            (true, Some(t)) => (format!("SET LOCAL ROLE {}", self.role), quote_literal(self.tenant_id(t))),
            (true, None) => (format!("SET LOCAL ROLE {}", self.role), "''".into()),
            (false, _) => ("RESET ROLE".into(), "''".into()),
        };
        self.client
            .batch_execute(&format!(
                "{role}; SET LOCAL {} = {tenant}; SELECT set_config('search_path', {path}, true); \
                 SET LOCAL session_replication_role = {replication};",
                self.setting_name()
            ))
            .await
            .map_err(db_error)
    }
}

/// Run the probe. `client` must be a superuser (refused otherwise): it creates
/// the temporary role and clones rows; everything is rolled back. `reader` is a second
/// connection of the same role, used on Citus only.
pub async fn probe(
    client: &Client,
    reader: &Client,
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
    let role = probe_role(client).await?;
    if !citus::distributed(client, tenancy).await? {
        return crate::db::tx::rolled_back(client, async || {
            run(client, client, catalog, tenancy, false, &role).await
        })
        .await;
    }
    citus::probe(client, reader, catalog, tenancy, &role).await
}

/// `tenantize_isolation_probe_<database OID>`: one name per database, the same on every run,
/// so a role a killed probe left on Citus is found and dropped by the next probe of it.
async fn probe_role(client: &Client) -> Result<String, CheckError> {
    let sql = "SELECT oid::pg_catalog.int8 FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()";
    let oid: i64 = client.query_one(sql, &[]).await.map_err(db_error)?.get(0);
    Ok(format!("{PROBE_ROLE_PREFIX}{oid}"))
}

/// The schemas the probe role needs: the tenant tables', the tenant table's and those of
/// every view reading them.
async fn probe_schemas(client: &Client, tenancy: &Tenancy) -> Result<Vec<String>, CheckError> {
    let views = views::reading_views(client, tenancy).await?;
    let mut schemas: Vec<String> = tenancy.tables.iter().map(|t| t.schema.clone()).collect();
    schemas.push(tenancy.tenant_table.schema.clone());
    schemas.extend(views.iter().map(|(v, _)| v.schema.clone()));
    schemas.sort();
    schemas.dedup();
    Ok(schemas)
}

async fn tenant_ids(client: &Client, tenancy: &Tenancy) -> Result<[String; 3], CheckError> {
    let sql = match tenancy.key_type {
        KeyType::Uuid => {
            "SELECT gen_random_uuid()::text, gen_random_uuid()::text, gen_random_uuid()::text".to_string()
        }
        KeyType::Bigint => format!(
            "SELECT (coalesce(max({k}), 0) + 1000001)::text, (coalesce(max({k}), 0) + 1000002)::text, \
             (coalesce(max({k}), 0) + 1000003)::text FROM {t}",
            k = quote_ident(&tenancy.key_column),
            t = tenancy.tenant_table
        ),
        KeyType::Text => "SELECT 'tenantize-probe-a', 'tenantize-probe-b', 'tenantize-probe-c'".to_string(),
    };
    let row = client.query_one(sql.as_str(), &[]).await.map_err(db_error)?;
    Ok([row.get(0), row.get(1), row.get(2)])
}

async fn run(
    client: &Client,
    reader: &Client,
    catalog: &Catalog,
    tenancy: &Tenancy,
    citus: bool,
    role: &str,
) -> Result<IsolationReport, CheckError> {
    let [a, b, c] = tenant_ids(client, tenancy).await?;
    let app_path = quote_literal(&views::application_search_path(client).await?);
    let mut p = Prober {
        client,
        reader,
        citus,
        catalog,
        tenancy,
        qcol: quote_ident(&tenancy.column),
        clones: BTreeMap::new(),
        second_parents: BTreeMap::new(),
        script: Vec::new(),
        report: IsolationReport::default(),
        savepoints: 0,
        counter: 0,
        fresh_checked: false,
        a,
        b,
        c,
        app_path,
        schemas: Vec::new(),
        last_sql: None,
        role: role.to_string(),
    };
    let mut views = views::reading_views(client, tenancy).await?;
    views.retain(|(view, materialized)| {
        let accepted = *materialized && tenancy.acknowledged_views.contains(view);
        if accepted {
            p.report.notes.push(format!(
                "{}: a materialized view holds every tenant's rows (RLS cannot cover it); the plan \
                 acknowledges it, so it is not probed: the application's roles must not read it",
                view.display_plain()
            ));
        }
        !accepted
    });
    p.schemas = probe_schemas(client, tenancy).await?;
    p.setup().await?;
    let roots = order::ordered_roots(catalog, tenancy);
    p.clone_rows(&roots, 'b').await?;
    let before = p.view_contents(&views).await?;
    p.clone_rows(&roots, 'a').await?;
    p.probe_reads().await?;
    for name in &roots {
        p.probe_writes(name).await?;
    }
    p.probe_views(&views, before).await?;
    p.finish();
    Ok(p.report)
}

impl Prober<'_> {
    /// Every table gets an entry; proven counts and the overall verdict.
    fn finish(&mut self) {
        for name in self.tenancy.tables.clone() {
            self.object(&name.display_plain(), false);
        }
        for object in self.report.tables.iter_mut().chain(self.report.views.iter_mut()) {
            object.proven = !object.probes.is_empty() && object.probes.iter().all(|p| p.passed);
            if object.probes.is_empty() {
                self.report.not_proven.push(format!("{}: no probe could be made", object.object));
            }
        }
        let report = &mut self.report;
        report.tables_total = report.tables.len();
        report.tables_proven = report.tables.iter().filter(|o| o.proven).count();
        report.views_total = report.views.len();
        report.views_proven = report.views.iter().filter(|o| o.proven).count();
        report.ok = report.leaks.is_empty()
            && report.tables_proven == report.tables_total
            && report.views_proven == report.views_total;
    }
}
