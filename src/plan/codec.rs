//! The plan file's content: TOML a reviewer can read in a diff, with checksums that catch any
//! edit. Pure (no I/O): `plan::file` reads and writes it.
//!
//! Step hashes cover the step's content with every SQL text normalized (see
//! `checksum::normalize_sql`); the plan hash covers the options, tenant, tables, views,
//! findings, catalog fingerprint and every step hash. Neither covers file paths, timestamps or
//! the tool version.

use serde::Serialize;

use std::collections::BTreeSet;

use super::model::*;
use super::statement::Part;
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
    for part in &mut step.parts {
        for statement in part.transitions.iter_mut().flat_map(|t| t.statements.iter_mut()) {
            statement.sql = normalize_sql(&statement.sql);
        }
        for state in &mut part.states {
            state.when = normalize_sql(&state.when);
        }
        for guard in &mut part.guards {
            guard.sql = normalize_sql(&guard.sql);
        }
    }
    for check in &mut step.checks {
        check.sql = normalize_sql(&check.sql);
    }
    step
}

/// 16 hex digits of SHA-256: a stable short name for something the plan keeps aside.
pub fn short_hash(text: &str) -> String {
    sha256_hex(text.as_bytes())[..16].to_string()
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
        system_identifier: None,
        database_oid: None,
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
    validate(&plan, path)?;
    Ok(plan)
}

// Structural checks of a parsed plan. A hand-edited plan can be sealed (`tenantize plan seal`
// recomputes its checksums), so matching checksums do not prove the engine can run it: these
// rules turn what would be a panic halfway through `apply` into an error before it starts.

/// Every step has a non-empty id of the form `<stage number>.<rest>`, no two steps share an
/// id, `batch` statements come with their step's `backfill` parameters and `concurrent-index`
/// statements name their index; every part's states, transitions and targets name states it
/// has, a statement that cannot run in a transaction is alone in its transition, and there is
/// a way from before the step to its done state and back.
pub fn validate(plan: &Plan, path: &str) -> Result<(), PlanFileError> {
    let mut seen = BTreeSet::new();
    for (position, step) in plan.steps.iter().enumerate() {
        let invalid =
            |detail: String| PlanFileError::Invalid { path: path.into(), step_id: step.id.clone(), detail };
        if step.id.is_empty() {
            return Err(invalid(format!("step number {} in the file has an empty id", position + 1)));
        }
        let prefix = format!("{}.", step.stage.number());
        if !step.id.starts_with(&prefix) {
            return Err(invalid(format!(
                "its id does not start with {prefix:?}, the number of its stage ({})",
                step.stage
            )));
        }
        if !seen.insert(step.id.as_str()) {
            return Err(PlanFileError::DuplicateStep { path: path.into(), step_id: step.id.clone() });
        }
        for part in &step.parts {
            if let Some(problem) = part_problem(step, part) {
                return Err(invalid(format!("part {:?} {problem}", part.name)));
            }
        }
    }
    Ok(())
}

fn part_problem(step: &Step, part: &Part) -> Option<String> {
    let mut names = BTreeSet::new();
    for state in &part.states {
        if !names.insert(state.name.as_str()) {
            return Some(format!("has two states named {:?}", state.name));
        }
    }
    let unknown = |name: &str| !names.contains(name);
    if let Some(bad) = part.done.iter().chain(&part.undone).chain(&part.rollback_from).find(|n| unknown(n)) {
        return Some(format!("names a state it does not have: {bad:?}"));
    }
    if part.done.is_empty() || part.undone.is_empty() {
        return Some("needs at least one done and one undone state".into());
    }
    for (index, t) in part.transitions.iter().enumerate() {
        if unknown(&t.from) || unknown(&t.to) {
            return Some(format!(
                "has a transition {:?} → {:?} between states it does not have",
                t.from, t.to
            ));
        }
        let alone = t.statements.len() == 1;
        for statement in &t.statements {
            if let Some(problem) = statement_problem(step, statement) {
                return Some(format!("transition {} {problem}", index + 1));
            }
            if statement.kind != StatementKind::Transaction && !alone {
                return Some(format!(
                    "transition {} runs a {:?} statement with others: it cannot run in a transaction",
                    index + 1,
                    statement.kind
                ));
            }
        }
        if t.statements.is_empty() {
            return Some(format!("transition {} has no statement", index + 1));
        }
    }
    if part.forward_path().is_empty() && part.undone[0] != part.done[0] && !part.is_done(&part.undone[0]) {
        return Some(format!("has no way from {:?} to {:?}", part.undone[0], part.done[0]));
    }
    let from = part.rollback_start().unwrap_or_default();
    if !part.is_undone(from) && part.path(from, &part.undone).is_none() {
        return Some(format!("has no way back from {from:?} to an undone state"));
    }
    None
}

fn statement_problem(step: &Step, statement: &Statement) -> Option<&'static str> {
    match statement.kind {
        StatementKind::Batch if step.backfill.is_none() => {
            Some("is of kind batch, but the step has no backfill section with its batch parameters")
        }
        StatementKind::ConcurrentIndex if statement.index.is_none() => {
            Some("is of kind concurrent-index, but names no index (its `index` field)")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::catalog::{Catalog, Column};
    use crate::plan::test_support::*;
    use crate::plan::{Plan, PlanOptions, build};

    fn checksum_fixture() -> Catalog {
        with_events(saas(PG15))
            .table("public", "audit_trail", |t| {
                t.col("happened_at", "timestamp with time zone").col("what", "text")
            })
            .view("public", "user_directory", |v| v.owned_by_superuser().reads("public", "users"))
            .build()
    }

    #[test]
    fn every_step_is_hashed_and_the_plan_verifies() {
        for options in [PlanOptions::default(), batched()] {
            let plan = plan_with(&checksum_fixture(), &options);
            assert!(!plan.plan_hash.is_empty());
            for step in &plan.steps {
                assert_eq!(step.hash.len(), 64, "step {} hash {:?}", step.id, step.hash);
            }
            let unique: BTreeSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(unique.len(), plan.steps.len(), "duplicate step ids");
            verify_checksums(&plan, "x").expect("a fresh plan verifies");
            // And it survives the plan file.
            let reread = parse(&to_toml(&plan), "x").expect("the plan file parses");
            assert_eq!(reread, plan);
            verify_checksums(&reread, "x").expect("a re-read plan verifies");
        }
    }

    /// Change one token: the first word gets a letter.
    fn edit_one_token(sql: &mut String) {
        let at = sql.find(char::is_whitespace).unwrap_or(sql.len());
        sql.insert(at, 'X');
    }

    #[test]
    fn editing_one_token_of_any_statement_breaks_its_step_checksum() {
        for options in [PlanOptions::default(), batched()] {
            let plan = plan_with(&checksum_fixture(), &options);
            let mut edits = 0;
            for (i, step) in plan.steps.iter().enumerate() {
                let expect_tampered = |edited: &Plan, what: &str| match verify_checksums(edited, "x") {
                    Err(PlanFileError::StepTampered { step_id, .. }) => {
                        assert_eq!(step_id, step.id, "{what}")
                    }
                    other => panic!("editing {what} of {} gave {other:?}", step.id),
                };
                for j in 0..step.all_statements().count() {
                    let mut edited = plan.clone();
                    let statement = all_statements_mut(&mut edited.steps[i]).nth(j).expect("statement j");
                    edit_one_token(&mut statement.sql);
                    expect_tampered(&edited, &format!("statement {j}"));
                    edits += 1;
                }
                for j in 0..step.checks.len() {
                    let mut edited = plan.clone();
                    edit_one_token(&mut edited.steps[i].checks[j].sql);
                    expect_tampered(&edited, &format!("check {j}"));
                }
                for (p, part) in step.parts.iter().enumerate() {
                    for j in 0..part.guards.len() {
                        let mut edited = plan.clone();
                        edit_one_token(&mut edited.steps[i].parts[p].guards[j].sql);
                        expect_tampered(&edited, &format!("guard {j}"));
                    }
                    for j in 0..part.states.len() {
                        let mut edited = plan.clone();
                        edit_one_token(&mut edited.steps[i].parts[p].states[j].when);
                        expect_tampered(&edited, &format!("state {j}"));
                    }
                }
                if step.backfill.is_some() {
                    let mut edited = plan.clone();
                    edited.steps[i].backfill.as_mut().unwrap().value_sql = "'2'::uuid".into();
                    expect_tampered(&edited, "the backfill value");
                }
            }
            assert!(edits > 50, "the fixture has statements to edit ({edits})");
        }
    }

    #[test]
    fn whitespace_only_edits_keep_checksums() {
        let plan = plan_of(&checksum_fixture());
        let mut edited = plan.clone();
        for step in &mut edited.steps {
            for statement in all_statements_mut(step) {
                statement.sql = format!("\r\n{}  \r\n\r\n", statement.sql.replace('\n', "   \r\n"));
            }
            for check in &mut step.checks {
                check.sql = format!("{} \t", check.sql);
            }
        }
        assert_ne!(edited, plan, "the edit changed the text");
        verify_checksums(&edited, "x").expect("layout changes keep every checksum");
    }

    #[test]
    fn plan_hash_is_deterministic_and_ignores_row_estimates() {
        let catalog = checksum_fixture();
        let first = plan_of(&catalog);
        let again = build(&catalog, &PlanOptions::default(), "2030-12-31T23:59:59Z").unwrap();
        assert_eq!(first.plan_hash, again.plan_hash);
        assert_eq!(first.steps, again.steps);
        assert_eq!(canonical_text(&first), canonical_text(&again));

        let mut grown = catalog.clone();
        for (n, table) in grown.tables.iter_mut().enumerate() {
            table.row_estimate = 7_000_000 + n as i64;
            table.total_bytes = 9_000_000_000 + n as i64;
        }
        let later = plan_of(&grown);
        assert_ne!(later.tables, first.tables, "row estimates are recorded in the plan");
        assert_ne!(to_toml(&later), to_toml(&first));
        assert_eq!(later.plan_hash, first.plan_hash, "row estimates changed the plan hash");
        assert_eq!(canonical_text(&later), canonical_text(&first));
        verify_checksums(&later, "x").unwrap();

        // A change of schema, on the other hand, is a different plan.
        let mut changed = catalog.clone();
        changed.tables.iter_mut().find(|t| t.name == qn("public", "users")).unwrap().columns.push(Column {
            name: "nickname".into(),
            data_type: "text".into(),
            not_null: false,
            default: None,
            identity: None,
            generated: None,
        });
        assert_ne!(plan_of(&changed).plan_hash, first.plan_hash);
    }
}

#[cfg(test)]
mod structure_tests {
    use super::*;
    use crate::plan::test_support::{PG15, all_statements_mut, forward_statement_mut, plan_of, saas};

    fn sample() -> Plan {
        plan_of(&saas(PG15).build())
    }

    /// Seal `plan` as `tenantize plan seal` would, write it out and read it back.
    fn sealed_and_reread(mut plan: Plan) -> Result<Plan, PlanFileError> {
        seal(&mut plan);
        parse(&to_toml(&plan), "edited.plan.toml")
    }

    fn invalid_step(result: Result<Plan, PlanFileError>) -> (String, String) {
        match result {
            Err(PlanFileError::Invalid { path, step_id, detail }) => {
                assert_eq!(path, "edited.plan.toml");
                (step_id, detail)
            }
            other => panic!("expected an invalid-plan error, got {other:?}"),
        }
    }

    #[test]
    fn a_generated_plan_is_valid() {
        let plan = sample();
        validate(&plan, "x").expect("a fresh plan is valid");
        sealed_and_reread(plan).expect("and stays valid through the file");
    }

    #[test]
    fn a_sealed_batch_statement_without_backfill_parameters_is_refused_naming_the_step() {
        let mut plan = sample();
        let at = plan.position("6.indexes:public.users").unwrap();
        forward_statement_mut(&mut plan.steps[at], 0).kind = StatementKind::Batch;
        assert!(plan.steps[at].backfill.is_none());
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "6.indexes:public.users");
        assert!(detail.contains("transition 1") && detail.contains("batch"), "{detail}");
        let message =
            PlanFileError::Invalid { path: "p".into(), step_id, detail: detail.clone() }.to_string();
        assert!(message.contains("6.indexes:public.users"), "{message}");
    }

    #[test]
    fn a_concurrent_index_statement_must_name_its_index() {
        let mut plan = sample();
        let at = plan.position("6.indexes:public.users").unwrap();
        assert_eq!(plan.steps[at].forward()[0].kind, StatementKind::ConcurrentIndex);
        forward_statement_mut(&mut plan.steps[at], 0).index = None;
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "6.indexes:public.users");
        assert!(detail.contains("concurrent-index"), "{detail}");
    }

    #[test]
    fn a_rollback_statement_is_checked_too() {
        let mut plan = sample();
        let at = plan.position("7.unique-swap:public.users").unwrap();
        let rebuild = all_statements_mut(&mut plan.steps[at])
            .find(|s| s.kind == StatementKind::ConcurrentIndex)
            .expect("the swap's rollback rebuilds the global index concurrently");
        rebuild.index = None;
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "7.unique-swap:public.users");
        assert!(detail.contains("concurrent-index"), "{detail}");
    }

    #[test]
    fn a_step_id_must_start_with_its_stage_number() {
        let mut plan = sample();
        plan.steps[2].id = "4.add-column:public.users".into();
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "4.add-column:public.users");
        assert!(detail.contains("\"3.\""), "{detail}");
        let mut plan = sample();
        plan.steps[0].id = "add-column".into();
        assert_eq!(invalid_step(sealed_and_reread(plan)).0, "add-column");
    }

    #[test]
    fn a_step_id_must_not_be_empty() {
        let mut plan = sample();
        plan.steps[3].id = String::new();
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "");
        assert!(detail.contains("step number 4"), "{detail}");
    }

    #[test]
    fn step_ids_must_be_unique() {
        let mut plan = sample();
        plan.steps[3].id = plan.steps[2].id.clone();
        match sealed_and_reread(plan) {
            Err(PlanFileError::DuplicateStep { step_id, .. }) => {
                assert_eq!(step_id, "3.add-column:public.users")
            }
            other => panic!("expected a duplicate step error, got {other:?}"),
        }
    }
}
