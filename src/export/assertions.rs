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

/// Which later step undoes or replaces an earlier one's work, so that the earlier one's
/// checks no longer describe the schema after the plan, as `(earlier, later)` id prefixes of
/// the same object: a unique's scoped copy (`7.unique-build`) is renamed into place by its
/// swap, and a legacy role's default tenant (`8.legacy-role`) is taken away by the cutover.
/// Nothing else overtakes: a rule as loose as "a later step of the same stage on the same
/// tables" let one legacy role's check pass on another's, and stage 6's on a cover step's.
const OVERTAKEN_BY: &[(&str, &str)] =
    &[("7.unique-build:", "7.unique-swap:"), ("8.legacy-role:", "10.legacy-role:")];

/// The step that overtakes `step`'s checks (see [`OVERTAKEN_BY`]), if the plan has it.
pub(super) fn overtaken_by<'a>(plan: &'a Plan, step: &Step) -> Option<&'a Step> {
    OVERTAKEN_BY.iter().find_map(|(earlier, later)| {
        let object = step.id.strip_prefix(earlier)?;
        plan.step(&format!("{later}{object}")).filter(|s| !s.checks.is_empty())
    })
}

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
    fn only_a_step_that_replaces_an_earlier_ones_work_overtakes_its_checks() {
        let catalog = with_tags(saas(PG15)).build();
        let plan = plan_with(&catalog, &PlanOptions { cover_indexes: true, ..PlanOptions::default() });
        assert!(plan.step("6.cover-indexes:public.tags").is_some());
        let built = step(&plan, "6.indexes:public.tags");
        assert!(overtaken_by(&plan, built).is_none());
        // A unique's scoped copy is overtaken by its swap.
        let copy = step(&plan, "7.unique-build:public.users");
        assert_eq!(overtaken_by(&plan, copy).map(|s| s.id.as_str()), Some("7.unique-swap:public.users"));
        // Every other step is judged by its own checks, whatever shares its stage and tables.
        for s in plan.steps.iter().filter(|s| !s.id.starts_with("7.unique-build:")) {
            assert!(overtaken_by(&plan, s).is_none(), "{} overtaken", s.id);
        }
    }

    #[test]
    fn a_legacy_roles_default_is_overtaken_by_its_own_cutover_not_by_another_role() {
        let mut catalog = saas(PG15).build();
        catalog.legacy_roles = ["app_a", "app_b"]
            .map(|name| crate::catalog::LegacyRole {
                name: name.into(),
                setting: None,
                superuser: false,
                bypass_rls: false,
                can_login: true,
                may_alter: true,
            })
            .to_vec();
        let options =
            PlanOptions { legacy_roles: vec!["app_a".into(), "app_b".into()], ..PlanOptions::default() };
        let plan = plan_with(&catalog, &options);
        let first = step(&plan, "8.legacy-role:app_a");
        assert_eq!(overtaken_by(&plan, first).map(|s| s.id.as_str()), Some("10.legacy-role:app_a"));
        let assertion = &of_step(&plan, first)[0];
        assert!(!assertion.condition.contains("app_b"), "{}", assertion.condition);
    }
}
