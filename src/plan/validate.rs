//! Structural checks of a parsed plan. A hand-edited plan can be sealed (`tenantize plan seal`
//! recomputes its checksums), so matching checksums do not prove the engine can run it: these
//! rules turn what would be a panic halfway through `apply` into an error before it starts.

use std::collections::BTreeSet;

use super::codec::PlanFileError;
use super::model::{Plan, Statement, StatementKind, Step};

/// Every step has a non-empty id of the form `<stage number>.<rest>`, no two steps share an
/// id, `batch` statements come with their step's `backfill` parameters and `concurrent-index`
/// statements name their index.
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
        for (direction, statements) in [("forward", &step.forward), ("rollback", &step.rollback)] {
            for (index, statement) in statements.iter().enumerate() {
                if let Some(problem) = statement_problem(step, statement) {
                    return Err(invalid(format!("{direction} statement {} {problem}", index + 1)));
                }
            }
        }
    }
    Ok(())
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
    use super::*;
    use crate::plan::codec::{parse, seal, to_toml};
    use crate::plan::test_support::{PG15, plan_of, saas};

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
        plan.steps[at].forward[0].kind = StatementKind::Batch;
        assert!(plan.steps[at].backfill.is_none());
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "6.indexes:public.users");
        assert!(detail.contains("forward statement 1") && detail.contains("batch"), "{detail}");
        let message =
            PlanFileError::Invalid { path: "p".into(), step_id, detail: detail.clone() }.to_string();
        assert!(message.contains("6.indexes:public.users"), "{message}");
    }

    #[test]
    fn a_concurrent_index_statement_must_name_its_index() {
        let mut plan = sample();
        let at = plan.position("6.indexes:public.users").unwrap();
        assert_eq!(plan.steps[at].forward[0].kind, StatementKind::ConcurrentIndex);
        plan.steps[at].forward[0].index = None;
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "6.indexes:public.users");
        assert!(detail.contains("concurrent-index"), "{detail}");
    }

    #[test]
    fn a_rollback_statement_is_checked_too() {
        let mut plan = sample();
        let at = plan.position("7.unique-swap:public.users").unwrap();
        let rollback = &mut plan.steps[at].rollback;
        let index = rollback.iter().position(|s| s.kind == StatementKind::ConcurrentIndex).unwrap();
        rollback[index].index = None;
        let (step_id, detail) = invalid_step(sealed_and_reread(plan));
        assert_eq!(step_id, "7.unique-swap:public.users");
        assert!(detail.starts_with(&format!("rollback statement {}", index + 1)), "{detail}");
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
