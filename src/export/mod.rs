//! Export a plan for other tools: up/down migration files for psql, sqlx, golang-migrate,
//! Flyway and dbmate, an Alembic revision chain, a Sqitch project (its verify scripts are the
//! plan's checks), and a pgTAP test file that keeps the converted schema's tenant invariants
//! tested.
//!
//! Every migration holds one unit (see `units`): a transaction's worth of SQL, or a single
//! statement that cannot run in a transaction, marked as the tool requires.

mod alembic;
mod assertions;
mod files;
mod pgtap;
mod sqitch;
mod units;

use std::path::Path;

pub use units::{DEFAULT_LOCK_TIMEOUT_MS, ExportedFile, Format};

use crate::plan::Plan;
use crate::sql::comment;

/// The files of `plan` in `format` (names may hold a subdirectory, `/`-separated).
pub fn export(plan: &Plan, format: Format, lock_timeout_ms: u64) -> Vec<ExportedFile> {
    if format == Format::Pgtap {
        return pgtap::export(plan);
    }
    let all = units::versions(plan, lock_timeout_ms);
    let mut files = Vec::new();
    for (i, version) in all.iter().enumerate() {
        let n = i + 1;
        // Step ids hold table names: a comment must never carry one's line break.
        let header = comment(&format!(
            "tenantize plan {:.12}, step {} (part {} of the export)",
            plan.plan_hash, version.step_id, n
        ));
        match format {
            Format::Alembic => files.push(alembic::revision(n, version, lock_timeout_ms, &header)),
            Format::Sqitch => files.extend(sqitch::change(plan, n, version, lock_timeout_ms, &header)),
            _ => files.extend(files::version_files(n, version, format, lock_timeout_ms, &header)),
        }
    }
    match format {
        Format::Alembic => files.extend(alembic::project()),
        Format::Sqitch => files.extend(sqitch::project(plan, &all)),
        _ => {}
    }
    files
}

pub fn write(dir: &Path, files: &[ExportedFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for file in files {
        let path = dir.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &file.content)?;
    }
    Ok(())
}
