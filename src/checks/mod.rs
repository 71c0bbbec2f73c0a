//! Validation counts, on their own connection with `row_security = off`: a query that RLS would
//! filter then fails loudly instead of returning a smaller number.
//!
//! `verify` judges the counts against what the journal says is applied: after stage 4 no row
//! may lack a tenant, after stage 7 no unique may be global, after stage 8 every table and
//! partition must have RLS enabled, forced and the policy.

use std::collections::BTreeMap;

pub mod distribution;
pub mod isolation;
mod live;
mod under_rls;

pub use distribution::DistributionReport;
pub use live::{Activity, LivePreflight, live_preflight};

use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::{Catalog, Table, introspect};
use crate::db::journal::{self, StepState};
use crate::db::{ConnSpec, DbError, describe_pg_error};
use crate::plan::{Plan, Stage};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// Why a count or a probe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The probe cannot run here (this role, this database); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// There is nothing to check (no tenant-scoped table, say).
    #[error("{0}")]
    Nothing(String),
}

impl From<tokio_postgres::Error> for CheckError {
    fn from(e: tokio_postgres::Error) -> Self {
        CheckError::Db(DbError::from(e))
    }
}

fn db_error(e: tokio_postgres::Error) -> CheckError {
    CheckError::from(e)
}

fn query_error(what: String) -> CheckError {
    CheckError::Db(DbError::Query(what))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableCounts {
    pub table: String,
    pub scoped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    pub rows: i64,
    pub tenant_column: bool,
    pub tenant_not_null: bool,
    pub null_tenant: i64,
    /// Rows whose tenant id is not in the tenant table.
    pub unknown_tenant: i64,
    /// Rows per tenant id (text), largest first.
    pub rows_per_tenant: Vec<(String, i64)>,
    /// Child rows whose tenant differs from their parent's, per foreign key.
    pub cross_tenant: i64,
    pub invalid_indexes: Vec<String>,
    pub unscoped_uniques: Vec<String>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub has_policy: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Quick reports (the wizard's once-a-second refresh) leave out rows per tenant and
    /// cross-tenant references, which need a scan per foreign key.
    #[serde(skip)]
    pub full: bool,
    pub database: String,
    pub plan_hash: String,
    /// The last stage whose steps are all done, per the journal (0: none).
    pub applied_through: u8,
    pub tenant_table_exists: bool,
    pub default_tenant_exists: bool,
    pub tables: Vec<TableCounts>,
    /// Stage 10, per the journal: pending is a state, not a problem.
    pub cutover: crate::plan::CutoverState,
    /// Where Citus put the tables, when the plan has stage 9 and the database has Citus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionReport>,
    pub problems: Vec<String>,
    pub ok: bool,
}

/// Open a connection for counts (never the one running DDL).
pub async fn connect(spec: &ConnSpec, application: &str) -> Result<Client, CheckError> {
    Ok(spec.connect_for_counts(application).await.map_err(DbError::from)?)
}

/// The plan's journal entries (none when there is no journal yet).
async fn journal_entries(
    client: &Client,
    plan: &Plan,
) -> Result<BTreeMap<String, journal::JournalStep>, CheckError> {
    if !journal::journal_exists(client).await? {
        return Ok(BTreeMap::new());
    }
    Ok(journal::load(client, &plan.plan_hash).await?)
}

/// The stage through which every step of the plan is done in the journal.
fn applied_through(plan: &Plan, entries: &BTreeMap<String, journal::JournalStep>) -> u8 {
    let mut through = 0;
    for stage in Stage::ALL {
        if stage == Stage::Distribute && plan.steps_in(stage).next().is_none() {
            continue;
        }
        let all_done =
            plan.steps_in(stage).all(|s| entries.get(&s.id).is_some_and(|e| e.state == StepState::Done));
        if !all_done {
            break;
        }
        through = stage.number();
    }
    through
}

pub async fn verify(spec: &ConnSpec, plan: &Plan) -> Result<VerifyReport, CheckError> {
    let client = connect(spec, "tenantize verify").await?;
    let catalog = introspect(&client, &plan.options.schemas, std::slice::from_ref(&plan.tenant.table.schema))
        .await
        .map_err(|e| query_error(e.to_string()))?;
    let entries = journal_entries(&client, plan).await?;
    let through = applied_through(plan, &entries);
    let mut report = count_all(&client, plan, &catalog, true).await?;
    report.applied_through = through;
    report.cutover = plan.cutover_state(|id| entries.get(id).is_some_and(|e| e.state == StepState::Done));
    judge(plan, &mut report, through);
    let unfinished = unfinished_steps(plan, &entries);
    if !unfinished.is_empty() {
        report.problems.extend(unfinished);
        report.ok = false;
    }
    Ok(report)
}

/// Steps the journal holds as failed or interrupted: the database is between two states, so
/// verify must not say ok whatever the counts show.
fn unfinished_steps(plan: &Plan, entries: &BTreeMap<String, journal::JournalStep>) -> Vec<String> {
    let mut problems = Vec::new();
    for step in &plan.steps {
        let Some(entry) = entries.get(&step.id) else { continue };
        let what = match entry.state {
            StepState::Failed => "failed",
            StepState::Running => "is running or was interrupted",
            _ => continue,
        };
        let why = entry.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        problems
            .push(format!("step {} {what}{why}: run apply to finish it, or rollback to undo it", step.id));
    }
    problems
}

/// Every count, whatever the stage (the TUI shows these live). `full: false` skips rows per
/// tenant and cross-tenant references.
pub async fn count_all(
    client: &Client,
    plan: &Plan,
    catalog: &Catalog,
    full: bool,
) -> Result<VerifyReport, CheckError> {
    let tenant_table = &plan.tenant.table;
    let col = &plan.tenant.column;
    let qcol = quote_ident(col);
    let key = quote_ident(&plan.tenant.key_column);
    let tenant_table_exists = catalog.table(tenant_table).is_some();
    let default_tenant_exists = if tenant_table_exists {
        let sql = format!(
            "SELECT count(*) FROM {tenant_table} WHERE {key}::text = {}",
            quote_literal(&plan.tenant.default_id)
        );
        client.query_one(sql.as_str(), &[]).await.map_err(db_error)?.get::<_, i64>(0) > 0
    } else {
        false
    };
    let visibility =
        under_rls::visibility(client, plan, catalog, tenant_table_exists).await.map_err(query_error)?;
    let owned = plan.owned_name_set();
    let mut tables = Vec::new();
    let mut by_name: BTreeMap<QualifiedName, usize> = BTreeMap::new();
    for planned in &plan.tables {
        let Some(table) = catalog.table(&planned.name) else {
            continue;
        };
        let mut counts = TableCounts {
            table: planned.name.display_plain(),
            scoped: planned.scoped,
            partition_of: table.partition_of.as_ref().map(|p| p.display_plain()),
            rls_enabled: table.rls_enabled,
            rls_forced: table.rls_forced,
            has_policy: table.policies.iter().any(|p| owned.contains(&p.name)),
            ..TableCounts::default()
        };
        let column = table.column(col);
        counts.tenant_column = planned.scoped && column.is_some();
        counts.tenant_not_null = column.is_some_and(|c| c.not_null);
        counts.invalid_indexes = table
            .uniques
            .iter()
            .filter(|u| !u.valid)
            .map(|u| u.index_name.clone())
            .chain(table.indexes.iter().filter(|i| !i.valid).map(|i| i.name.clone()))
            .collect();
        if planned.scoped {
            counts.unscoped_uniques = table
                .uniques
                .iter()
                .filter(|u| !u.is_partition_child && u.key_columns.first().map(String::as_str) != Some(&qcol))
                .filter(|u| u.key_columns.first() != Some(col))
                .map(|u| u.index_name.clone())
                .collect();
        }
        // Partitioned parents hold no rows: their counts are the sum of their partitions'.
        if table.kind == crate::catalog::TableKind::Ordinary {
            if visibility.filtered(table) {
                count_rows_per_tenant(client, plan, table, &visibility, full, &mut counts).await?;
            } else {
                count_rows(client, plan, &planned.name, tenant_table_exists, full, &mut counts).await?;
            }
        }
        by_name.insert(planned.name.clone(), tables.len());
        tables.push(counts);
    }
    if full {
        count_cross_tenant(client, plan, catalog, &visibility, &mut tables, &by_name).await?;
    }
    sum_partitions(catalog, &mut tables, &by_name);
    // Quick refreshes read it too: a few catalog queries and one size query per node, next
    // to a count(*) of every table that on Citus reaches every shard anyway; the Counts
    // screen then follows stage 9 and shard moves as they happen.
    let distribution = distribution::read(client, plan).await?;
    Ok(VerifyReport {
        full,
        database: catalog.server.database.clone(),
        plan_hash: plan.plan_hash.clone(),
        applied_through: 0,
        tenant_table_exists,
        default_tenant_exists,
        tables,
        cutover: Default::default(),
        distribution,
        problems: Vec::new(),
        ok: true,
    })
}

/// Rows, NULL and unknown tenants (and, when `full`, rows per tenant) of one ordinary table.
async fn count_rows(
    client: &Client,
    plan: &Plan,
    name: &QualifiedName,
    tenant_table_exists: bool,
    full: bool,
    counts: &mut TableCounts,
) -> Result<(), CheckError> {
    let tenant_table = &plan.tenant.table;
    let qcol = quote_ident(&plan.tenant.column);
    let key = quote_ident(&plan.tenant.key_column);
    let sql = if counts.tenant_column && tenant_table_exists {
        format!(
            "SELECT count(*), count(*) FILTER (WHERE t.{qcol} IS NULL),
                    count(*) FILTER (WHERE t.{qcol} IS NOT NULL AND x.{key} IS NULL)
               FROM {} t LEFT JOIN {tenant_table} x ON x.{key} = t.{qcol}",
            name
        )
    } else if counts.tenant_column {
        format!(
            "SELECT count(*), count(*) FILTER (WHERE {qcol} IS NULL), count(*) FILTER (WHERE {qcol} IS NOT NULL) FROM {}",
            name
        )
    } else {
        format!("SELECT count(*), 0::int8, 0::int8 FROM {}", name)
    };
    let row = client
        .query_one(sql.as_str(), &[])
        .await
        .map_err(|e| query_error(format!("counting {}: {}", name.display_plain(), describe_pg_error(&e))))?;
    counts.rows = row.get(0);
    counts.null_tenant = row.get(1);
    counts.unknown_tenant = row.get(2);
    if counts.tenant_column && full {
        let sql = format!(
            "SELECT coalesce({qcol}::text, 'NULL'), count(*) FROM {} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
            name
        );
        let rows = client.query(sql.as_str(), &[]).await.map_err(db_error)?;
        counts.rows_per_tenant = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    }
    Ok(())
}

/// [`count_rows`] for a table whose rows this role sees one tenant at a time (see
/// `under_rls`): the counts are summed over the tenants, and rows no tenant sees are proven
/// absent by the table's constraints, or the count is refused.
async fn count_rows_per_tenant(
    client: &Client,
    plan: &Plan,
    table: &Table,
    visibility: &under_rls::Visibility,
    full: bool,
    counts: &mut TableCounts,
) -> Result<(), CheckError> {
    let name = table.name.display_plain();
    under_rls::no_hidden_rows(plan, table, visibility).map_err(|why| {
        query_error(format!(
            "counting {name}: this role cannot bypass row-level security, so rows without a known tenant \
             would be invisible to it, and {why}; count as a role with BYPASSRLS"
        ))
    })?;
    let sql = format!("SELECT count(*) FROM {}", table.name);
    let rows = under_rls::per_tenant(client, &plan.tenant.setting, &visibility.tenants, &sql)
        .await
        .map_err(|e| query_error(format!("counting {name} tenant by tenant: {}", describe_pg_error(&e))))?;
    counts.rows = under_rls::total(&rows, 0);
    counts.null_tenant = 0;
    counts.unknown_tenant = 0;
    if full {
        let mut per: Vec<(String, i64)> = visibility
            .tenants
            .iter()
            .cloned()
            .zip(rows.iter().map(|r| r[0]))
            .filter(|(_, n)| *n > 0)
            .collect();
        per.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        per.truncate(5);
        counts.rows_per_tenant = per;
    }
    Ok(())
}

/// Cross-tenant references: each FK between scoped tables, compared on its own columns.
async fn count_cross_tenant(
    client: &Client,
    plan: &Plan,
    catalog: &Catalog,
    visibility: &under_rls::Visibility,
    tables: &mut [TableCounts],
    by_name: &BTreeMap<QualifiedName, usize>,
) -> Result<(), CheckError> {
    let col = plan.tenant.column.as_str();
    let qcol = quote_ident(col);
    for table in &catalog.tables {
        let Some(&child_index) = by_name.get(&table.name) else { continue };
        if !tables[child_index].tenant_column {
            continue;
        }
        for fk in table.foreign_keys.iter().filter(|f| !f.inherited) {
            let Some(&parent_index) = by_name.get(&fk.referenced_table) else { continue };
            if !tables[parent_index].tenant_column {
                continue;
            }
            let pairs: Vec<(String, String)> = fk
                .columns
                .iter()
                .zip(fk.referenced_columns.iter())
                .filter(|(c, _)| *c != col)
                .map(|(c, p)| (c.clone(), p.clone()))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            // Rows whose parent is not in their own tenant (a join on the key alone would
            // count a same-key parent of another tenant as a cross reference). Rows without a
            // tenant yet are counted as NULL tenants, not here.
            let same_key: Vec<String> =
                pairs.iter().map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c))).collect();
            let mut present: Vec<String> =
                pairs.iter().map(|(c, _)| format!("c.{} IS NOT NULL", quote_ident(c))).collect();
            present.push(format!("c.{qcol} IS NOT NULL"));
            let sql = format!(
                "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS \
                 (SELECT 1 FROM {} p WHERE {} AND p.{qcol} = c.{qcol})",
                table.name,
                present.join(" AND "),
                fk.referenced_table,
                same_key.join(" AND ")
            );
            // Seen one tenant at a time, a child and its parents are both that tenant's rows:
            // a parent of another tenant is invisible, so the child still counts.
            let n: i64 = if visibility.filtered(table) {
                let rows = under_rls::per_tenant(client, &plan.tenant.setting, &visibility.tenants, &sql)
                    .await
                    .map_err(db_error)?;
                under_rls::total(&rows, 0)
            } else {
                client.query_one(sql.as_str(), &[]).await.map_err(db_error)?.get(0)
            };
            tables[child_index].cross_tenant += n;
        }
    }
    Ok(())
}

fn sum_partitions(catalog: &Catalog, tables: &mut [TableCounts], by_name: &BTreeMap<QualifiedName, usize>) {
    let partitioned: Vec<&Table> =
        catalog.tables.iter().filter(|t| t.kind == crate::catalog::TableKind::Partitioned).collect();
    for parent in partitioned {
        let Some(&parent_index) = by_name.get(&parent.name) else { continue };
        let (mut rows, mut nulls, mut unknown) = (0, 0, 0);
        for leaf in catalog.partition_descendants(&parent.name) {
            if leaf.kind != crate::catalog::TableKind::Ordinary {
                continue;
            }
            if let Some(&i) = by_name.get(&leaf.name) {
                rows += tables[i].rows;
                nulls += tables[i].null_tenant;
                unknown += tables[i].unknown_tenant;
            }
        }
        let parent = &mut tables[parent_index];
        parent.rows = rows;
        parent.null_tenant = nulls;
        parent.unknown_tenant = unknown;
    }
}

/// Turn counts into problems, given what the journal says is applied.
pub fn judge(plan: &Plan, report: &mut VerifyReport, through: u8) {
    let kept_global: Vec<&str> = plan
        .findings
        .iter()
        .filter(|f| f.code == "unique-kept-global" || f.code == "unique-invalid")
        .map(|f| f.object.as_str())
        .collect();
    let owned = plan.owned_name_set();
    let mut problems = Vec::new();
    if through >= 1 && !report.tenant_table_exists {
        problems.push(format!("tenant table {} is missing", plan.tenant.table.display_plain()));
    }
    if through >= 2 && !report.default_tenant_exists {
        problems.push(format!("default tenant {} is missing", plan.tenant.default_id));
    }
    for t in &mut report.tables {
        if !t.scoped {
            continue;
        }
        let mut mine = Vec::new();
        if through >= 3 && !t.tenant_column {
            mine.push(format!("has no {} column", plan.tenant.column));
        }
        if through >= 4 && t.null_tenant > 0 {
            mine.push(format!("{} rows without a tenant", t.null_tenant));
        }
        if through >= 3 && t.unknown_tenant > 0 {
            mine.push(format!("{} rows whose tenant does not exist", t.unknown_tenant));
        }
        if through >= 5 && !t.tenant_not_null {
            mine.push(format!("{} is not NOT NULL", plan.tenant.column));
        }
        if t.cross_tenant > 0 {
            mine.push(format!("{} rows reference a parent of another tenant", t.cross_tenant));
        }
        // Invalid indexes of ours (an interrupted concurrent build) fail; others are listed only.
        let ours_invalid: Vec<&String> = t.invalid_indexes.iter().filter(|i| owned.contains(*i)).collect();
        if !ours_invalid.is_empty() {
            mine.push(format!(
                "invalid indexes: {}",
                ours_invalid.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if through >= 7 {
            let table = t.table.clone();
            let unscoped: Vec<&String> = t
                .unscoped_uniques
                .iter()
                .filter(|u| !kept_global.iter().any(|k| *k == format!("{u} on {table}")))
                .collect();
            if !unscoped.is_empty() {
                mine.push(format!(
                    "uniques not scoped to the tenant: {}",
                    unscoped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if through >= 8 && !(t.rls_enabled && t.rls_forced && t.has_policy) {
            mine.push(format!(
                "row-level security incomplete (enabled: {}, forced: {}, policy: {})",
                t.rls_enabled, t.rls_forced, t.has_policy
            ));
        }
        for p in &mine {
            problems.push(format!("{}: {p}", t.table));
        }
        t.problems = mine;
    }
    if let Some(d) = &mut report.distribution {
        // Before stage 9 is applied the tables are still local: a picture, not a verdict.
        d.problems = if through >= Stage::Distribute.number() { d.violations() } else { Vec::new() };
        problems.extend(d.problems.iter().cloned());
    }
    report.ok = problems.is_empty();
    report.problems = problems;
}

/// Per table (ordinary tables and partitions in `schemas`): row count and a checksum of every
/// row's columns except `skip_column`, independent of row order. Equal before and after means
/// no row was lost or changed.
pub async fn row_checksums(
    client: &Client,
    schemas: &[String],
    skip_column: &str,
) -> Result<BTreeMap<String, (i64, String)>, CheckError> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum)
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relkind = 'r' AND n.nspname = ANY($1) AND a.attname <> $2
              GROUP BY 1 ORDER BY 1",
            &[&schemas, &skip_column],
        )
        .await
        .map_err(db_error)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let table: String = row.get(0);
        let columns: String = row.get(1);
        let sql = format!(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '')
               FROM (SELECT md5(ROW({columns})::text) AS h FROM {table}) t"
        );
        let r = client.query_one(sql.as_str(), &[]).await.map_err(db_error)?;
        out.insert(table, (r.get(0), r.get(1)));
    }
    Ok(out)
}
