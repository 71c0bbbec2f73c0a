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

pub fn read_unverified(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PlanFileError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

/// Read a plan and verify every checksum.
pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let plan = read_unverified(path)?;
    verify_checksums(&plan, &path.display().to_string())?;
    Ok(plan)
}
