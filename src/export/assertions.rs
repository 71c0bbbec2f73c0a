//! A step's checks as assertions that hold after the whole plan, not only right after the
//! step: Sqitch's verify scripts (`sqitch verify` judges every deployed change against the
//! database as it is now) and the pgTAP file.
//!
//! Some checks are overtaken by a later step: a stage 7 unique build checks its scoped copy of
//! an index, which the swap of the same table renames to the original name. Such a check
//! passes when it holds, or when the last later step of the same stage on the same tables
//! (the one that overtakes it) holds all its checks.

use crate::plan::{Check, Plan, Step};
use crate::sql::quote_literal;

/// `(check) = expect` as a SQL boolean.
pub(super) fn holds(check: &Check) -> String {
    format!("({}) = {}", check.sql.trim().trim_end_matches(';'), check.expect)
}

/// The step that overtakes `step`'s checks, if a later one does. A `--cover-indexes` step
/// never does: it swaps only the application's own indexes, none an earlier step built, and
/// taking it for one would make stage 6's index checks always pass.
pub(super) fn overtaken_by<'a>(plan: &'a Plan, step: &Step) -> Option<&'a Step> {
    let at = plan.position(&step.id)?;
    plan.steps[at + 1..].iter().rev().find(|s| {
        s.stage == step.stage
            && s.tables == step.tables
            && !s.checks.is_empty()
            && !s.id.starts_with(COVER_INDEXES)
    })
}

const COVER_INDEXES: &str = "6.cover-indexes:";

/// A check and the SQL condition under which it is judged to hold after the plan.
pub(super) struct Assertion {
    pub(super) name: String,
    pub(super) condition: String,
}

/// The assertions of `step`: each check holds, or the step that overtakes it holds.
pub(super) fn of_step(plan: &Plan, step: &Step) -> Vec<Assertion> {
    let later = overtaken_by(plan, step);
    step.checks
        .iter()
        .map(|check| match later {
            None => Assertion { name: check.name.clone(), condition: holds(check) },
            Some(later) => {
                let all: Vec<String> = later.checks.iter().map(holds).collect();
                Assertion {
                    name: format!("{} (or {} has run)", check.name, later.id),
                    condition: format!("{} OR ({})", holds(check), all.join(" AND ")),
                }
            }
        })
        .collect()
}

/// A PL/pgSQL block that raises unless every assertion holds.
pub(super) fn raising_block(assertions: &[Assertion]) -> String {
    let mut body = String::from("\nBEGIN\n");
    for a in assertions {
        body.push_str(&format!(
            "    IF NOT coalesce({}, false) THEN\n        RAISE EXCEPTION 'tenantize check failed: %', {};\n    END IF;\n",
            a.condition,
            quote_literal(&a.name)
        ));
    }
    body.push_str("END\n");
    format!("DO {};", crate::sql::dollar_quote(&body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::plan::test_support::*;

    #[test]
    fn a_cover_indexes_step_overtakes_no_check_of_stage_6() {
        let catalog = with_tags(saas(PG15)).build();
        let plan = plan_with(&catalog, &PlanOptions { cover_indexes: true, ..PlanOptions::default() });
        assert!(plan.step("6.cover-indexes:public.tags").is_some());
        let built = step(&plan, "6.indexes:public.tags");
        assert!(overtaken_by(&plan, built).is_none());
        // A unique's scoped copy is still overtaken by its swap.
        let copy = step(&plan, "7.unique-build:public.users");
        assert_eq!(overtaken_by(&plan, copy).map(|s| s.id.as_str()), Some("7.unique-swap:public.users"));
    }
}
