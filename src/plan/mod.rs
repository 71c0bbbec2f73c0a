//! Pure planning: `build(&Catalog, &PlanOptions) -> Plan`, the plan file and its checksums.
//! Nothing here touches a database or the clock; only `file` touches the filesystem.
//!
//! The SQL follows `shared/notes/postgres-facts.md`: metadata-only column defaults, NOT VALID
//! then VALIDATE, CONCURRENTLY for index builds, swaps under the original names in short
//! transactions, and policies that fail closed.

mod analysis;
mod backfill_sql;
pub mod codec;
mod ddl;
pub mod file;
mod job_queues;
pub mod machine;
mod migration_tables;
mod model;
mod options;
mod probe;
mod stages;
mod statement;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use backfill_sql::{BackfillSql, backfill_sql};
pub use job_queues::job_queue;
pub use migration_tables::{migration_table_names, migration_tool};
pub use model::*;
pub use options::{PlanError, set_local_snippet};
pub use stages::distribute::reference_tables;

use crate::catalog::{
    Catalog, FingerprintIgnore, catalog_fingerprint, table_fingerprint, table_shape, view_fingerprint,
};
use analysis::Analysis;

pub fn build(catalog: &Catalog, options: &PlanOptions, generated_at: &str) -> Result<Plan, PlanError> {
    options::validate(options)?;
    options::validate_legacy_roles(catalog, options)?;
    let mut analysis = analysis::analyse(catalog, options);
    let legacy_findings = stages::legacy_role::findings(&analysis);
    analysis.findings.extend(legacy_findings);
    let a = &analysis;
    let steps = [
        stages::tenant_table::steps(a),
        stages::default_tenant::steps(a),
        stages::add_column::steps(a),
        stages::backfill::steps(a),
        stages::not_null::steps(a),
        stages::indexes::steps(a),
        stages::covers::steps(a),
        stages::uniques::build_steps(a),
        stages::foreign_keys::steps(a),
        stages::uniques::swap_steps(a),
        stages::legacy_role::steps(a),
        stages::rls::steps(a),
        stages::views::steps(a),
        stages::distribute::steps(a),
        // Last, so that adding it renumbers no earlier step.
        stages::cutover::steps(a),
    ]
    .concat();
    Ok(assemble(catalog, options, analysis, steps, generated_at))
}

/// The plan around its steps: what it was built from, the tables and views it knows (with the
/// fingerprints drift is measured against), and every checksum.
fn assemble(
    catalog: &Catalog,
    options: &PlanOptions,
    analysis: Analysis,
    mut steps: Vec<Step>,
    generated_at: &str,
) -> Plan {
    let Analysis { scope, findings, owned, .. } = analysis;
    let tenant = scope.tenant;
    let ignore = FingerprintIgnore {
        tenant_column: &tenant.column,
        tenant_table: &tenant.table,
        owned_names: &owned,
        foreign_keys: options.distribute.is_none(),
    };
    let tables = catalog
        .tables
        .iter()
        .filter(|t| t.name != tenant.table)
        .map(|t| PlanTable {
            name: t.name.clone(),
            scoped: scope.scoped.contains(&t.name),
            partition_of: t.partition_of.clone(),
            row_estimate: t.row_estimate.max(0),
            total_bytes: t.total_bytes,
            fingerprint: table_fingerprint(t, &ignore),
            shape: table_shape(t, &ignore),
        })
        .collect();
    let views = catalog
        .views
        .iter()
        .map(|v| PlanView {
            name: v.name.clone(),
            materialized: v.materialized,
            fingerprint: view_fingerprint(v),
        })
        .collect();
    for step in &mut steps {
        step.hash = codec::step_hash(step);
    }
    let drift = DriftBasis {
        catalog_fingerprint: catalog_fingerprint(catalog, &ignore),
        owned_names: owned.iter().cloned().collect(),
    };
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        plan_hash: String::new(),
        edited: false,
        source: PlanSource {
            database: catalog.server.database.clone(),
            server_version: catalog.server.version.clone(),
            server_version_num: catalog.server.version_num,
            role: catalog.role.name.clone(),
            generated_at: generated_at.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            system_identifier: None,
            database_oid: None,
        },
        options: options.clone(),
        tenant,
        findings,
        steps,
        tables,
        views,
        drift,
    };
    plan.plan_hash = codec::plan_hash(&plan);
    plan
}
