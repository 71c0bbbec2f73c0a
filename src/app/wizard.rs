//! What the wizard opens on: the plan (checked, resumed from the journal, or built from the
//! live catalog), the catalog, the journal's view, and what checking the plan against the
//! database found.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::db::ConnSpec;
use crate::db::journal::{JournalStep, StepState};
use crate::engine;
use crate::plan::{self, Plan, PlanOptions, Severity};
use crate::sql::QualifiedName;

use super::exit::Failure;

/// Everything the wizard needs before it takes the terminal.
pub struct Opening {
    pub plan: Plan,
    pub plan_path: Option<PathBuf>,
    pub options: PlanOptions,
    pub catalog: Catalog,
    pub connection: String,
    pub journal: Vec<JournalStep>,
    /// Checksums, drift and journal findings, with their severity.
    pub plan_check: Vec<(Severity, String)>,
    /// Set when the plan cannot be run (its checksums do not match): the wizard opens read-only.
    pub read_only_reason: Option<String>,
    /// The connected role owns every tenant-scoped table.
    pub owns_all_tables: bool,
}

/// Check or build the plan and read the journal. Without a plan file, a plan in progress in
/// the journal is resumed from the journal's copy (refused, exit 5, when the copy fails its
/// checks); only with none in progress is a plan built from the live catalog.
pub async fn prepare(
    spec: &ConnSpec,
    plan_file: Option<&Path>,
    options: PlanOptions,
) -> Result<Opening, Failure> {
    let mut plan_check = Vec::new();
    let mut read_only_reason = None;
    let (plan, options) = match plan_file {
        Some(path) => {
            let plan = plan::file::read_unverified(path)?;
            match plan::file::verify_checksums(&plan, &path.display().to_string()) {
                Ok(()) => plan_check.push((Severity::Info, format!("{}: checksums match", path.display()))),
                Err(e) => {
                    plan_check.push((Severity::Error, e.to_string()));
                    read_only_reason = Some(e.to_string());
                }
            }
            let options = plan.options.clone();
            (plan, options)
        }
        None => match super::resume::plan_in_progress(spec).await? {
            // A run of a plan is in progress here: resume it, whatever the options say.
            Some(plan) => {
                plan_check.push((
                    Severity::Info,
                    format!(
                        "resumed the plan stored in the journal (hash {:.12}): a run of it is in \
                         progress here (the plan options given now are not used)",
                        plan.plan_hash
                    ),
                ));
                let options = plan.options.clone();
                (plan, options)
            }
            None => {
                let plan = super::live::build_plan(spec, &options).await?;
                plan_check.push((Severity::Info, "plan built from the live catalog just now".to_string()));
                (plan, options)
            }
        },
    };
    let client = spec.connect("tenantize wizard").await?;
    if let Some(reason) = super::identity::foreign(&plan, &super::identity::read(&client).await?) {
        plan_check.push((Severity::Error, reason.clone()));
        read_only_reason.get_or_insert(reason);
    }
    let catalog = super::live::read_catalog(&client, &plan.options).await?;
    let status = engine::status(spec, &plan).await?;
    plan_check.extend(journal_findings(&plan, &catalog, &status));
    let owns_all_tables = plan
        .tables
        .iter()
        .filter(|t| t.scoped)
        .all(|t| catalog.table(&t.name).is_none_or(|t| t.owned_by_current_role));
    Ok(Opening {
        plan,
        plan_path: plan_file.map(Path::to_path_buf),
        options,
        catalog,
        connection: spec.redacted(),
        journal: status.steps,
        plan_check,
        read_only_reason,
        owns_all_tables,
    })
}

/// Drift of the tables the remaining steps touch, other plans in progress, where the journal
/// stands.
fn journal_findings(
    plan: &Plan,
    catalog: &Catalog,
    status: &crate::db::journal::Status,
) -> Vec<(Severity, String)> {
    let mut out = Vec::new();
    let done: BTreeSet<&str> =
        status.steps.iter().filter(|s| s.state == StepState::Done).map(|s| s.step_id.as_str()).collect();
    let pending: Vec<&plan::Step> = plan.steps.iter().filter(|s| !done.contains(s.id.as_str())).collect();
    let tables: BTreeSet<QualifiedName> = pending.iter().flat_map(|s| s.tables.iter().cloned()).collect();
    let drift = engine::drift(plan, catalog, Some(&tables));
    if pending.is_empty() {
        out.push((Severity::Info, "every step is applied".to_string()));
    } else if drift.is_empty() {
        out.push((Severity::Info, "no drift: the database still matches the plan".to_string()));
    } else {
        for line in drift.lines() {
            out.push((Severity::Error, format!("drift: {line}; apply will refuse")));
        }
    }
    for (hash, count) in &status.other_active_plans {
        out.push((Severity::Error, format!("another plan {hash:.12} has {count} applied steps here")));
    }
    if !done.is_empty() {
        out.push((
            Severity::Info,
            format!("resuming: the journal shows {} of {} steps done", done.len(), plan.steps.len()),
        ));
    }
    out
}
