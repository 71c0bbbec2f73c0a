//! What Citus says about the plan's tables, read through the coordinator after (or during)
//! stage 9: how each table is distributed, and where the shards live. `verify` judges it once
//! the journal says stage 9 is applied; the wizard's Counts screen draws the shards per worker.
//!
//! Every query names `pg_catalog` (the counts connection has an empty search_path; Citus puts
//! `pg_dist_*` and the `citus_shards` view there).

use std::collections::BTreeSet;

use serde::Serialize;
use tokio_postgres::Client;

use super::{CheckError, db_error};
use crate::event::describe::count;
use crate::plan::{Plan, Stage};
use crate::sql::QualifiedName;

/// What the plan makes of a table on Citus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAs {
    /// A tenant table: hash-distributed by the tenant column, colocated with the others.
    Distributed,
    /// The tenant table and the shared tables stage 9 replicates to every node.
    Reference,
    /// A shared table stage 9 leaves alone.
    #[default]
    Unchanged,
}

/// What Citus says a table is (`pg_dist_partition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CitusKind {
    /// Hash-distributed (`partmethod` 'h').
    Distributed,
    /// A copy on every node (`partmethod` 'n', `repmodel` 't').
    Reference,
    /// Known to Citus, on the coordinator only (`partmethod` 'n', otherwise).
    CitusLocal,
    /// Append- or range-distributed.
    Other,
    /// Not in `pg_dist_partition` (or not there at all).
    #[default]
    NotCitus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDistribution {
    pub table: String,
    pub planned_as: PlannedAs,
    pub citus: CitusKind,
    /// The distribution column, for a hash-distributed table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `pg_dist_partition.colocationid` (0 when not colocated, or not Citus's).
    pub colocation_id: i32,
    pub shards: i64,
    /// The workers (`host:port`) holding a placement of it.
    pub workers: Vec<String>,
}

/// One node that holds or should hold shards (an active primary worker, or the coordinator
/// when it is told to hold shards).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerShards {
    /// `host:port`, as `pg_dist_node` names it.
    pub node: String,
    /// `pg_dist_node.shouldhaveshards`: false while the node is being drained.
    pub should_have_shards: bool,
    /// Placements of shards of the plan's hash-distributed tables (partitions included).
    pub shards: i64,
    /// Placements of the plan's reference tables.
    pub reference_shards: i64,
    /// Size of all those placements (`citus_shards.shard_size`).
    pub size_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DistributionReport {
    pub tenant_column: String,
    /// The plan's tables (the tenant table first when the plan does not list it).
    pub tables: Vec<TableDistribution>,
    pub workers: Vec<WorkerShards>,
    /// The facts stage 9 promises that do not hold, set only once it is applied.
    pub problems: Vec<String>,
}

/// The nodes shards go to. A coordinator added with `citus_set_coordinator_host` holds only
/// reference placements unless told to hold shards.
const WORKER: &str = "d.isactive AND d.noderole = 'primary' AND (d.groupid <> 0 OR d.shouldhaveshards)";

/// The report, when the plan has stage 9 and the database has the citus extension; `None`
/// otherwise (there is nothing to read, and nothing is wrong).
pub async fn read(client: &Client, plan: &Plan) -> Result<Option<DistributionReport>, CheckError> {
    if plan.steps_in(Stage::Distribute).next().is_none() {
        return Ok(None);
    }
    let citus = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')", &[])
        .await
        .map_err(db_error)?
        .get::<_, bool>(0);
    if !citus {
        return Ok(None);
    }
    let planned = planned_tables(plan);
    let schemas: Vec<&str> = planned.iter().map(|(n, _)| n.schema.as_str()).collect();
    let names: Vec<&str> = planned.iter().map(|(n, _)| n.name.as_str()).collect();
    let rows = client
        .query(
            &format!(
                "SELECT p.partmethod::text, p.repmodel::text,
                        CASE WHEN p.partkey IS NOT NULL
                             THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END,
                        coalesce(p.colocationid, 0),
                        (SELECT count(*) FROM pg_catalog.pg_dist_shard s WHERE s.logicalrelid = c.oid),
                        ARRAY(SELECT DISTINCT pg_catalog.format('%s:%s', d.nodename, d.nodeport)
                                FROM pg_catalog.pg_dist_shard s
                                JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid
                                JOIN pg_catalog.pg_dist_node d ON d.groupid = pl.groupid
                               WHERE s.logicalrelid = c.oid AND pl.shardstate = 1 AND {WORKER}
                               ORDER BY 1)
                   FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema, name, i)
                   LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
                   LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
                   LEFT JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = c.oid
                  ORDER BY t.i"
            ),
            &[&schemas, &names],
        )
        .await
        .map_err(db_error)?;
    let mut tables = Vec::new();
    for ((name, planned_as), row) in planned.iter().zip(&rows) {
        let method: Option<String> = row.get(0);
        let repmodel: Option<String> = row.get(1);
        tables.push(TableDistribution {
            table: name.display_plain(),
            planned_as: *planned_as,
            citus: kind(method.as_deref(), repmodel.as_deref()),
            column: row.get(2),
            colocation_id: row.get(3),
            shards: row.get(4),
            workers: row.get(5),
        });
    }
    let workers = read_workers(client, &schemas, &names).await?;
    Ok(Some(DistributionReport {
        tenant_column: plan.tenant.column.clone(),
        tables,
        workers,
        problems: Vec::new(),
    }))
}

/// Per worker, the placements of the plan's tables and their size. `citus_shards` asks every
/// node for its shards' sizes (`citus_shard_sizes()`): one query per node.
async fn read_workers(
    client: &Client,
    schemas: &[&str],
    names: &[&str],
) -> Result<Vec<WorkerShards>, CheckError> {
    let rows = client
        .query(
            &format!(
                "WITH mine AS (
                     SELECT c.oid FROM unnest($1::text[], $2::text[]) AS t(schema, name)
                       JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
                       JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.name),
                 placed AS (
                     SELECT cs.nodename, cs.nodeport, cs.citus_table_type, cs.shard_size
                       FROM pg_catalog.citus_shards cs
                      WHERE cs.table_name::pg_catalog.oid IN (SELECT oid FROM mine))
                 SELECT pg_catalog.format('%s:%s', d.nodename, d.nodeport), d.shouldhaveshards,
                        count(s.nodename) FILTER (WHERE s.citus_table_type = 'distributed'),
                        count(s.nodename) FILTER (WHERE s.citus_table_type = 'reference'),
                        coalesce(sum(s.shard_size), 0)::int8
                   FROM pg_catalog.pg_dist_node d
                   LEFT JOIN placed s ON s.nodename = d.nodename AND s.nodeport = d.nodeport
                  WHERE {WORKER}
                  GROUP BY d.nodename, d.nodeport, d.shouldhaveshards
                  ORDER BY d.nodename, d.nodeport"
            ),
            &[&schemas, &names],
        )
        .await
        .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| WorkerShards {
            node: r.get(0),
            should_have_shards: r.get(1),
            shards: r.get(2),
            reference_shards: r.get(3),
            size_bytes: r.get(4),
        })
        .collect())
}

/// The plan's tables with what stage 9 makes of each; the tenant table (which stage 1 creates,
/// so a plan may not list it) first when missing.
fn planned_tables(plan: &Plan) -> Vec<(QualifiedName, PlannedAs)> {
    let reference: BTreeSet<&QualifiedName> = crate::plan::reference_tables(plan).into_iter().collect();
    let mut planned: Vec<(QualifiedName, PlannedAs)> = plan
        .tables
        .iter()
        .map(|t| {
            let how = if t.scoped {
                PlannedAs::Distributed
            } else if reference.contains(&t.name) {
                PlannedAs::Reference
            } else {
                PlannedAs::Unchanged
            };
            (t.name.clone(), how)
        })
        .collect();
    if !planned.iter().any(|(n, _)| *n == plan.tenant.table) {
        planned.insert(0, (plan.tenant.table.clone(), PlannedAs::Reference));
    }
    planned
}

fn kind(method: Option<&str>, repmodel: Option<&str>) -> CitusKind {
    match (method, repmodel) {
        (None, _) => CitusKind::NotCitus,
        (Some("h"), _) => CitusKind::Distributed,
        (Some("n"), Some("t")) => CitusKind::Reference,
        (Some("n"), _) => CitusKind::CitusLocal,
        _ => CitusKind::Other,
    }
}

impl TableDistribution {
    fn distributed_by(&self, column: &str) -> bool {
        self.citus == CitusKind::Distributed && self.column.as_deref() == Some(column)
    }

    /// What Citus makes of it, in words.
    pub fn describe(&self) -> String {
        match self.citus {
            CitusKind::Distributed => {
                format!("distributed by {}", self.column.as_deref().unwrap_or("an unknown column"))
            }
            CitusKind::Reference => "a reference table".into(),
            CitusKind::CitusLocal => "a Citus local table".into(),
            CitusKind::Other => "append- or range-distributed".into(),
            CitusKind::NotCitus => "not known to Citus".into(),
        }
    }
}

impl DistributionReport {
    fn planned(&self, how: PlannedAs) -> impl Iterator<Item = &TableDistribution> {
        self.tables.iter().filter(move |t| t.planned_as == how)
    }

    /// The colocation groups of the tenant tables distributed by the tenant column.
    fn colocation_groups(&self) -> BTreeSet<i32> {
        self.planned(PlannedAs::Distributed)
            .filter(|t| t.distributed_by(&self.tenant_column))
            .map(|t| t.colocation_id)
            .collect()
    }

    /// Every fact stage 9 promises that does not hold: each tenant table hash-distributed by
    /// the tenant column, all in one colocation group, shards on every worker, and each
    /// reference table with a placement on every worker.
    pub fn violations(&self) -> Vec<String> {
        let column = &self.tenant_column;
        let mut problems = Vec::new();
        for t in self.planned(PlannedAs::Distributed).filter(|t| !t.distributed_by(column)) {
            problems.push(format!("{}: not hash-distributed by {column} ({})", t.table, t.describe()));
        }
        let groups = self.colocation_groups();
        if groups.len() > 1 {
            let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            problems.push(format!(
                "the tenant tables are in {} colocation groups ({}), not one: a tenant's rows of \
                 different tables can live on different workers",
                groups.len(),
                ids.join(", ")
            ));
        }
        if self.workers.is_empty() {
            problems.push("Citus has no active worker".into());
        }
        if self.planned(PlannedAs::Distributed).next().is_some() {
            for w in self.workers.iter().filter(|w| w.should_have_shards && w.shards == 0) {
                problems.push(format!("worker {} holds no shard of the tenant tables", w.node));
            }
        }
        for t in self.planned(PlannedAs::Reference) {
            if t.citus != CitusKind::Reference {
                problems.push(format!("{}: not a reference table ({})", t.table, t.describe()));
                continue;
            }
            let missing: Vec<&str> = self
                .workers
                .iter()
                .map(|w| w.node.as_str())
                .filter(|n| !t.workers.iter().any(|p| p == n))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{}: reference table with no placement on {}",
                    t.table,
                    missing.join(", ")
                ));
            }
        }
        problems
    }

    /// One line: "11 tables distributed by tenant_id in 1 colocation group, 2 reference tables
    /// on 2 workers".
    pub fn summary(&self) -> String {
        let column = &self.tenant_column;
        let tenant_tables = self.planned(PlannedAs::Distributed).count();
        let distributed = self.planned(PlannedAs::Distributed).filter(|t| t.distributed_by(column)).count();
        let groups = self.colocation_groups().len();
        let mut text = if distributed == tenant_tables {
            format!("{} distributed by {column}", count(distributed as u64, "table", "tables"))
        } else {
            format!("{distributed} of {tenant_tables} tenant tables distributed by {column}")
        };
        if distributed > 0 {
            text.push_str(&format!(" in {}", count(groups as u64, "colocation group", "colocation groups")));
        }
        let reference: Vec<&TableDistribution> =
            self.planned(PlannedAs::Reference).filter(|t| t.citus == CitusKind::Reference).collect();
        let workers = self.workers.len();
        let everywhere = reference.iter().all(|t| t.workers.len() >= workers);
        let tables = count(reference.len() as u64, "reference table", "reference tables");
        text.push_str(&if everywhere {
            format!(", {tables} on {}", count(workers as u64, "worker", "workers"))
        } else {
            format!(", {tables}, not all on every one of the {workers} workers")
        });
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(
        name: &str,
        planned_as: PlannedAs,
        citus: CitusKind,
        colocation_id: i32,
        workers: &[&str],
    ) -> TableDistribution {
        TableDistribution {
            table: name.into(),
            planned_as,
            citus,
            column: (citus == CitusKind::Distributed).then(|| "tenant_id".to_string()),
            colocation_id,
            shards: 4,
            workers: workers.iter().map(|w| w.to_string()).collect(),
        }
    }

    fn worker(node: &str, shards: i64) -> WorkerShards {
        WorkerShards {
            node: node.into(),
            should_have_shards: true,
            shards,
            reference_shards: 2,
            size_bytes: 8192,
        }
    }

    const BOTH: [&str; 2] = ["w1:5432", "w2:5432"];

    /// What stage 9 leaves: two tenant tables colocated, the tenant table replicated.
    fn distributed() -> DistributionReport {
        use {CitusKind as C, PlannedAs as P};
        DistributionReport {
            tenant_column: "tenant_id".into(),
            tables: vec![
                table("public.tenants", P::Reference, C::Reference, 1, &BOTH),
                table("public.users", P::Distributed, C::Distributed, 2, &BOTH),
                table("public.issues", P::Distributed, C::Distributed, 2, &BOTH),
                table("public.countries", P::Unchanged, C::NotCitus, 0, &[]),
            ],
            workers: vec![worker("w1:5432", 4), worker("w2:5432", 4)],
            problems: Vec::new(),
        }
    }

    #[test]
    fn a_distributed_database_has_no_violation_and_reads_in_one_line() {
        let report = distributed();
        assert_eq!(report.violations(), Vec::<String>::new());
        assert_eq!(
            report.summary(),
            "2 tables distributed by tenant_id in 1 colocation group, 1 reference table on 2 workers"
        );
    }

    #[test]
    fn each_broken_fact_is_named() {
        let mut report = distributed();
        report.tables[1].colocation_id = 7;
        report.tables[2] = TableDistribution { column: Some("id".into()), ..report.tables[2].clone() };
        report.tables[0].workers.pop();
        report.workers[1].shards = 0;
        report.tables.push(table("public.events", PlannedAs::Distributed, CitusKind::CitusLocal, 0, &[]));
        let problems = report.violations();
        assert_eq!(
            problems,
            [
                "public.issues: not hash-distributed by tenant_id (distributed by id)",
                "public.events: not hash-distributed by tenant_id (a Citus local table)",
                "worker w2:5432 holds no shard of the tenant tables",
                "public.tenants: reference table with no placement on w2:5432",
            ],
            "{problems:#?}"
        );
        report.tables[2].column = Some("tenant_id".into());
        assert!(report.violations().iter().any(|p| p.contains("2 colocation groups (2, 7)")));
        assert_eq!(
            report.summary(),
            "2 of 3 tenant tables distributed by tenant_id in 2 colocation groups, 1 reference table, \
             not all on every one of the 2 workers"
        );
        // A drained worker may hold nothing.
        report.workers[1].should_have_shards = false;
        assert!(!report.violations().iter().any(|p| p.contains("holds no shard")));
    }

    #[test]
    fn a_reference_table_that_citus_does_not_know_is_named() {
        let mut report = distributed();
        report.tables[0].citus = CitusKind::NotCitus;
        report.workers.clear();
        assert_eq!(
            report.violations(),
            ["Citus has no active worker", "public.tenants: not a reference table (not known to Citus)"]
        );
    }
}
