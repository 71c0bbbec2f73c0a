//! What every stage reads: which tables get the tenant column and in what order, the names of
//! what the plan creates, and which indexes, uniques and foreign keys stages 6 and 7 change.
//! Decided once, in one pass and in a fixed order (generated names depend on what was named
//! before them, findings are reported in that order), so every stage is a plain function of it.

mod classify;
mod coverage;
mod covers;
mod distribution;
mod foreign_keys;
mod indexes;
mod names;
mod preconditions;
mod tenant_keys;
mod uniques;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(in crate::plan) use covers::CoveredIndex;
pub(in crate::plan) use distribution::{CitusTable, Distribution, KeyKind, LinkedKey};
pub(in crate::plan) use foreign_keys::{ForeignKeyGroup, ScopedForeignKey};
pub(in crate::plan) use indexes::PlannedIndex;
pub(in crate::plan) use names::{TableNames, tenant_table_pkey};
pub(in crate::plan) use uniques::ScopedUnique;

use super::model::{Finding, PlanOptions, Severity, TenantSpec};
use crate::catalog::{Catalog, Table, TableKind};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// PostgreSQL 15 brought `security_invoker` views and column lists for `ON DELETE SET NULL`.
const PG15_SERVER_VERSION_NUM: i32 = 150000;

/// The catalog and options, with the tables classified: what every decision reads.
pub(in crate::plan) struct Scope<'a> {
    pub catalog: &'a Catalog,
    pub options: &'a PlanOptions,
    pub tenant: TenantSpec,
    pub pg15: bool,
    /// Every table that gets the tenant column, partitions included.
    pub scoped: BTreeSet<QualifiedName>,
    /// Scoped tables that are not partitions, parents before children (FK order).
    pub roots: Vec<QualifiedName>,
}

/// Everything the stages need, decided before any step is written.
pub(in crate::plan) struct Analysis<'a> {
    pub scope: Scope<'a>,
    /// Per root: the names of its tenant FK, NOT NULL check and policy.
    pub names: HashMap<QualifiedName, TableNames>,
    /// Stage 6: the indexes built per table.
    pub indexes: BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    /// Stage 6 (`--cover-indexes`): the application's indexes rebuilt with the tenant column
    /// included, per table.
    pub covers: BTreeMap<QualifiedName, Vec<CoveredIndex>>,
    /// Stage 7: the uniques made tenant-scoped per table.
    pub uniques: BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    /// Stage 7: foreign keys between scoped tables, per child, children in root order.
    pub foreign_keys: Vec<ForeignKeyGroup<'a>>,
    /// Roots without a tenant foreign key of their own: a stage-7 key implies it.
    pub implied_tenant_keys: BTreeMap<QualifiedName, String>,
    /// Stage 9 (`--distribute citus`).
    pub distribution: Option<Distribution<'a>>,
    pub findings: Vec<Finding>,
    /// Names of the indexes, constraints and policies the plan creates.
    pub owned: BTreeSet<String>,
}

/// The order of these calls is part of the plan's output: see the module comment.
pub(in crate::plan) fn analyse<'a>(catalog: &'a Catalog, options: &'a PlanOptions) -> Analysis<'a> {
    let tenant = super::options::tenant_spec(catalog, options);
    let pg15 = catalog.server.version_num >= PG15_SERVER_VERSION_NUM;
    let mut findings = Findings::default();
    let scope = classify::classify(catalog, options, tenant, pg15, &mut findings);
    preconditions::check(&scope, &mut findings);
    let mut book = names::NameBook::reserving_existing(catalog);
    let names = names::decide(&scope, &mut book, &mut findings);
    let mut indexes = indexes::decide(&scope, &mut book, &mut findings);
    let mut uniques = uniques::decide(&scope, &mut book, &mut findings);
    uniques::decide_builds(&scope, &mut uniques, &mut findings);
    indexes::drop_redundant(&scope, &uniques, &mut indexes, &mut findings);
    indexes::order_for_planning(&scope, &uniques, &mut indexes, &mut book);
    indexes::add_leading_indexes(&scope, &uniques, &mut indexes, &mut book);
    coverage::report(&scope, &mut findings);
    indexes::name_partition_indexes(&scope, &mut indexes, &mut book);
    indexes::report_count(&scope, &indexes, &mut findings);
    let covers = covers::decide(&scope, &mut book, &mut findings);
    let foreign_keys = foreign_keys::decide(&scope, &indexes, &uniques, &mut book, &mut findings);
    let implied_tenant_keys = tenant_keys::implied(&scope, &foreign_keys, &mut findings);
    let distribution =
        distribution::decide(&scope, &names, &uniques, &foreign_keys, &implied_tenant_keys, &mut findings);
    Analysis {
        scope,
        names,
        indexes,
        covers,
        uniques,
        foreign_keys,
        implied_tenant_keys,
        distribution,
        findings: findings.0,
        owned: book.into_owned(),
    }
}

/// Findings in the order they are noticed.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, severity: Severity, code: &str, object: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            severity,
            code: code.to_string(),
            object: object.into(),
            message: message.into(),
        });
    }
}

impl<'a> Scope<'a> {
    pub fn table(&self, name: &QualifiedName) -> &'a Table {
        self.catalog.table(name).expect("planner only asks for catalogued tables")
    }

    pub fn is_scoped(&self, name: &QualifiedName) -> bool {
        self.scoped.contains(name)
    }

    /// The ordinary (data-holding) partitions under a partitioned `root`, at any depth.
    pub fn leaves_of(&self, root: &QualifiedName) -> Vec<&'a Table> {
        self.catalog
            .partition_descendants(root)
            .into_iter()
            .filter(|t| t.kind == TableKind::Ordinary)
            .collect()
    }

    /// The tenant column, quoted.
    pub fn col(&self) -> String {
        quote_ident(&self.tenant.column)
    }

    /// The default tenant's key as a typed literal.
    pub fn tenant_value(&self) -> String {
        format!("{}::{}", quote_literal(&self.tenant.default_id), self.tenant.key_type.sql())
    }

    /// Rows whose tenant is the one the session's setting names; none while it is unset.
    /// The whole typed value is one scalar subquery, so PostgreSQL computes it once per
    /// query (an InitPlan) and compares each row with a ready key: `current_setting()` with
    /// the cast outside the subquery runs per row wherever the policy filters instead of
    /// leading an index (a join's hashed side: 0.19 → 0.11 ms on the sample, see README).
    ///
    /// Citus refuses a policy with a subquery on a distributed table (`unexpected non-SELECT
    /// command in SubLink`), so a plan that distributes uses the plain form, which is still an
    /// index condition (current_setting() is STABLE) but is computed per filtered row.
    pub fn policy_expression(&self) -> String {
        if self.options.distribute.is_some() {
            return format!("{} = {}", self.col(), self.setting_expression());
        }
        format!(
            "{} = (SELECT nullif(current_setting({}, true), '')::{})",
            self.col(),
            quote_literal(&self.tenant.setting),
            self.tenant.key_type.sql()
        )
    }

    /// The tenant the session's setting names, typed; NULL while it is unset or empty. What
    /// the cutover makes the tenant column's default (kept apart from the policy's
    /// expression, which may take another form).
    pub fn setting_expression(&self) -> String {
        format!(
            "nullif(current_setting({}, true), '')::{}",
            quote_literal(&self.tenant.setting),
            self.tenant.key_type.sql()
        )
    }

    /// Rows of `name` and, for a partitioned table, of all its leaves (estimates).
    pub fn table_rows(&self, name: &QualifiedName) -> i64 {
        let own = self.catalog.table(name).map(|t| t.row_estimate.max(0)).unwrap_or(0);
        own + self.leaves_of(name).iter().map(|t| t.row_estimate.max(0)).sum::<i64>()
    }
}

/// Column lists compared as sets (a key's column order does not matter to a match).
fn sorted(columns: &[String]) -> Vec<String> {
    let mut copy = columns.to_vec();
    copy.sort();
    copy
}
