//! The plan file's content: TOML a reviewer can read in a diff, with checksums that catch any
//! edit. Pure (no I/O): `plan::file` reads and writes it.
//!
//! Step hashes cover the step's content with every SQL text normalized (see
//! `checksum::normalize_sql`); the plan hash covers the options, tenant, tables, views,
//! findings, catalog fingerprint and every step hash. Neither covers file paths, timestamps or
//! the tool version.

use serde::Serialize;

use super::model::*;
use crate::checksum::{normalize_sql, sha256_hex};

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write plan {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path} is not a readable tenantize plan (truncated or damaged?): {detail}")]
    Parse { path: String, detail: String },
    #[error("{path} has plan format {found}; this tenantize reads format {expected}")]
    Format { path: String, found: u32, expected: u32 },
    #[error(
        "step {step_id} in {path} does not match its checksum: it was edited after the plan was \
         generated. If the edit is intended, review it and run `tenantize plan seal {path}`"
    )]
    StepTampered { path: String, step_id: String },
    #[error(
        "{path} does not match its plan checksum: steps, options or tables were changed, added \
         or removed after generation. If intended, review and run `tenantize plan seal {path}`"
    )]
    PlanTampered { path: String },
    #[error("{path} has two steps with the id {step_id}")]
    DuplicateStep { path: String, step_id: String },
    /// Structurally unusable although its checksums may match (a sealed hand edit).
    #[error("{path}: step {step_id:?} cannot be run as written: {detail}")]
    Invalid { path: String, step_id: String, detail: String },
}

fn normalized(mut step: Step) -> Step {
    step.hash = String::new();
    // Row estimates follow the table statistics, not the plan's content.
    step.rows_estimate = 0;
    for statement in step.forward.iter_mut().chain(step.rollback.iter_mut()) {
        statement.sql = normalize_sql(&statement.sql);
    }
    for check in &mut step.checks {
        check.sql = normalize_sql(&check.sql);
    }
    for guard in &mut step.rollback_guards {
        guard.sql = normalize_sql(&guard.sql);
    }
    step
}

pub fn step_hash(step: &Step) -> String {
    let json = serde_json::to_string(&normalized(step.clone())).expect("a step serializes");
    sha256_hex(json.as_bytes())
}

#[derive(Serialize)]
struct HashedPlan<'a> {
    format_version: u32,
    catalog_fingerprint: &'a str,
    edited: bool,
    options: &'a PlanOptions,
    tenant: &'a TenantSpec,
    owned_names: &'a [String],
    tables: &'a [PlanTable],
    views: &'a [PlanView],
    findings: &'a [Finding],
    steps: Vec<(&'a str, &'a str)>,
}

pub fn plan_hash(plan: &Plan) -> String {
    let tables: Vec<PlanTable> =
        plan.tables.iter().map(|t| PlanTable { row_estimate: 0, total_bytes: 0, ..t.clone() }).collect();
    let hashed = HashedPlan {
        format_version: plan.format_version,
        catalog_fingerprint: &plan.drift.catalog_fingerprint,
        edited: plan.edited,
        options: &plan.options,
        tenant: &plan.tenant,
        owned_names: &plan.drift.owned_names,
        tables: &tables,
        views: &plan.views,
        findings: &plan.findings,
        steps: plan.steps.iter().map(|s| (s.id.as_str(), s.hash.as_str())).collect(),
    };
    sha256_hex(serde_json::to_string(&hashed).expect("a plan serializes").as_bytes())
}

/// Recompute every checksum after a reviewed hand edit, and record that the plan was edited.
pub fn seal(plan: &mut Plan) {
    for step in &mut plan.steps {
        step.hash = step_hash(step);
    }
    plan.edited = true;
    plan.plan_hash = plan_hash(plan);
}

pub fn verify_checksums(plan: &Plan, path: &str) -> Result<(), PlanFileError> {
    let mut seen = std::collections::BTreeSet::new();
    for step in &plan.steps {
        if !seen.insert(step.id.as_str()) {
            return Err(PlanFileError::DuplicateStep { path: path.into(), step_id: step.id.clone() });
        }
        if step_hash(step) != step.hash {
            return Err(PlanFileError::StepTampered { path: path.into(), step_id: step.id.clone() });
        }
    }
    if plan_hash(plan) != plan.plan_hash {
        return Err(PlanFileError::PlanTampered { path: path.into() });
    }
    Ok(())
}

pub fn to_toml(plan: &Plan) -> String {
    let body = toml::to_string_pretty(plan).expect("a plan serializes to TOML");
    format!(
        "# tenantize plan ({} steps). Review the SQL below. Any edit breaks its checksum:\n\
         # `tenantize apply` refuses an edited plan until `tenantize plan seal FILE` records\n\
         # that it was reviewed.\n\n{body}",
        plan.steps.len()
    )
}

/// The plan as TOML without what changes from one run to the next on the same schema (where
/// and when it was generated, row estimates): two plans with the same canonical text do the
/// same thing.
pub fn canonical_text(plan: &Plan) -> String {
    let mut copy = plan.clone();
    copy.source = PlanSource {
        database: String::new(),
        server_version: String::new(),
        server_version_num: 0,
        role: String::new(),
        generated_at: String::new(),
        tool_version: String::new(),
    };
    for table in &mut copy.tables {
        table.row_estimate = 0;
        table.total_bytes = 0;
    }
    for step in &mut copy.steps {
        step.rows_estimate = 0;
    }
    to_toml(&copy)
}

/// Parse and check the plan's structure (see `plan::validate`), without verifying checksums
/// (for `plan seal` and for showing a damaged plan).
pub fn parse(text: &str, path: &str) -> Result<Plan, PlanFileError> {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        format_version: Option<u32>,
    }
    if let Ok(VersionOnly { format_version: Some(found) }) = toml::from_str::<VersionOnly>(text)
        && found != PLAN_FORMAT_VERSION
    {
        return Err(PlanFileError::Format { path: path.into(), found, expected: PLAN_FORMAT_VERSION });
    }
    let plan: Plan = toml::from_str(text)
        .map_err(|e| PlanFileError::Parse { path: path.into(), detail: e.to_string().trim().to_string() })?;
    super::validate::validate(&plan, path)?;
    Ok(plan)
}
