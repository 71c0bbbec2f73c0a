//! Reading and writing plan files; their content and checksums are `plan::codec`.

use std::path::Path;

pub use super::codec::{
    PlanFileError, canonical_text, parse, plan_hash, seal, step_hash, to_toml, verify_checksums,
};
use super::model::Plan;

pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|source| PlanFileError::Write { path: path.display().to_string(), source })?;
    }
    std::fs::write(path, to_toml(plan))
        .map_err(|source| PlanFileError::Write { path: path.display().to_string(), source })
}

/// Read a plan and check its structure, without verifying checksums (for `plan seal` and for
/// showing a damaged plan).
pub fn read_unverified(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PlanFileError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

/// Read a plan, check its structure and verify every checksum: what `apply` runs.
pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let plan = read_unverified(path)?;
    verify_checksums(&plan, &path.display().to_string())?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StatementKind;
    use crate::plan::test_support::{PG15, plan_of, saas};

    #[test]
    fn loading_a_sealed_plan_with_a_batch_statement_but_no_backfill_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edited.plan.toml");
        let mut plan = plan_of(&saas(PG15).build());
        let at = plan.position("5.not-null:public.users").unwrap();
        crate::plan::test_support::forward_statement_mut(&mut plan.steps[at], 1).kind = StatementKind::Batch;
        seal(&mut plan);
        save(&plan, &path).unwrap();
        for result in [load(&path), read_unverified(&path)] {
            match result {
                Err(PlanFileError::Invalid { step_id, .. }) => assert_eq!(step_id, "5.not-null:public.users"),
                other => panic!("expected an invalid-plan error, got {other:?}"),
            }
        }
    }
}
