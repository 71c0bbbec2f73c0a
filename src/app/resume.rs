//! Resuming without the plan file. When a run starts, the journal keeps the plan itself: its
//! sealed file text, exactly as the plan codec writes it, with the text's SHA-256
//! (`tenantize.plan_texts`, journal migration 2). `status`, `apply`, `rollback` and the wizard,
//! given no plan file on a database with a run in progress, take that copy back, and only after
//! it passes every check a plan file passes: the text against its own checksum, the plan's step
//! and plan hashes, and the hash it is stored under.

use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use super::exit::Failure;
use crate::db::journal::{self, StoredPlan};
use crate::db::{ConnSpec, lock};
use crate::engine::{self, Control, EngineError, RollbackOutcome, RollbackRequest};
use crate::event::EventSender;
use crate::plan::file::PlanFileError;
use crate::plan::{self, Plan};

/// The plan a command runs, and where it came from.
pub struct RunPlan {
    pub plan: Plan,
    /// The plan file, or `None` for the journal's copy.
    pub file: Option<PathBuf>,
}

impl RunPlan {
    /// What the operator is told when the plan is the journal's copy.
    pub fn notice(&self) -> Option<String> {
        match self.file {
            Some(_) => None,
            None => Some(from_journal(&self.plan.plan_hash)),
        }
    }

    /// The plan as a confirmation names it: its file, or the journal's copy.
    pub fn name(&self) -> String {
        match &self.file {
            Some(path) => path.display().to_string(),
            None => format!("the plan stored in the journal ({:.12})", self.plan.plan_hash),
        }
    }
}

/// "using the plan stored in the journal (hash …)".
pub fn from_journal(plan_hash: &str) -> String {
    format!("using the plan stored in the journal (hash {plan_hash:.12})")
}

/// The plan of a headless command: `file`, read and verified; without one, the plan in progress
/// in the journal of the database `spec` names (a usage error, exit 5, when there is none). The
/// file is read before the connection settings are looked at, so a bad file is the error shown.
pub async fn plan_for_run(
    file: Option<&Path>,
    spec: Result<ConnSpec, Failure>,
) -> Result<(RunPlan, ConnSpec), Failure> {
    if let Some(path) = file {
        let plan = plan::file::load(path)?;
        return Ok((RunPlan { plan, file: Some(path.to_path_buf()) }, spec?));
    }
    let spec = spec?;
    match plan_in_progress(&spec).await? {
        Some(plan) => Ok((RunPlan { plan, file: None }, spec)),
        None => Err(Failure::usage(format!(
            "no plan file given, and the journal of {} holds no run in progress to resume: \
             pass the plan file",
            spec.redacted()
        ))),
    }
}

/// The plan whose steps have changed the database (running, done or failed), from the journal's
/// copy, verified; `None` when no plan is in progress. Refused (exit 5) when several are, when
/// the one in progress has no copy (its run was started by an older tenantize), or when the
/// copy fails a check.
pub async fn plan_in_progress(spec: &ConnSpec) -> Result<Option<Plan>, Failure> {
    let client = spec.connect("tenantize resume").await?;
    let active = journal::plans_in_progress(&client).await?;
    let (plan_hash, steps) = match active.as_slice() {
        [] => return Ok(None),
        [one] => one.clone(),
        several => {
            let list: Vec<String> =
                several.iter().map(|(hash, n)| format!("{hash:.12} ({n} steps applied)")).collect();
            return Err(Failure::usage(format!(
                "the journal holds {} plans in progress ({}): pass the plan file of the one to use",
                several.len(),
                list.join(", ")
            )));
        }
    };
    match journal::stored_plan_text(&client, &plan_hash).await? {
        Some(stored) => verified(&stored).map(Some),
        None => Err(Failure::usage(format!(
            "the journal holds plan {plan_hash:.12} in progress ({steps} steps applied) but no copy \
             of it (its run was started by an older tenantize): pass its plan file"
        ))),
    }
}

/// The journal's copy as a plan, once it passes every check; else why not, as a usage error.
pub fn verified(stored: &StoredPlan) -> Result<Plan, Failure> {
    let name = format!("the plan stored in the journal (hash {:.12})", stored.plan_hash);
    let refuse = |why: String| {
        Failure::usage(format!(
            "{name} is refused: {why}. It was changed in the database after it was stored; \
             nothing was changed: run with the plan file instead"
        ))
    };
    if !stored.text_intact() {
        return Err(refuse("its text does not match the checksum stored with it".into()));
    }
    let plan = plan::file::parse(&stored.text, &name).map_err(|e| refuse(e.to_string()))?;
    plan::file::verify_checksums(&plan, &name).map_err(|e| match e {
        PlanFileError::StepTampered { step_id, .. } => {
            refuse(format!("step {step_id} does not match its checksum"))
        }
        PlanFileError::PlanTampered { .. } => refuse("it does not match its plan checksum".into()),
        other => refuse(other.to_string()),
    })?;
    if plan.plan_hash != stored.plan_hash {
        return Err(refuse(format!("it holds plan {:.12}, not the plan it is stored as", plan.plan_hash)));
    }
    Ok(plan)
}

/// Keep `plan` in the journal: on a connection of its own, under the run's advisory lock (so
/// refused like the run itself while another run holds it), after the journal's migrations
/// (which create the journal when there is none).
async fn store(spec: &ConnSpec, plan: &Plan, application: &str) -> Result<(), EngineError> {
    let client = spec.connect(application).await.map_err(|e| EngineError::Connection(e.to_string()))?;
    lock::acquire(&client).await?;
    let stored = store_locked(&client, plan).await;
    lock::release(&client).await;
    stored
}

async fn store_locked(client: &Client, plan: &Plan) -> Result<(), EngineError> {
    journal::migrate(client).await?;
    journal::store_plan_text(client, &plan.plan_hash, &plan::file::to_toml(plan)).await?;
    Ok(())
}

/// `engine::rollback`; a plan in progress whose journal has no copy of it yet (its run was
/// started by an older tenantize) gets one first, at best: a rollback never fails for it.
pub async fn rollback(
    request: &RollbackRequest,
    events: &EventSender,
    control: &Control,
) -> Result<RollbackOutcome, EngineError> {
    let _ = keep_missing_copy(&request.spec, &request.plan, &request.settings.application_name).await;
    engine::rollback(request, events, control).await
}

async fn keep_missing_copy(spec: &ConnSpec, plan: &Plan, application: &str) -> Result<(), EngineError> {
    let client = spec.connect(application).await.map_err(|e| EngineError::Connection(e.to_string()))?;
    let in_progress = journal::plans_in_progress(&client).await?.iter().any(|(h, _)| *h == plan.plan_hash);
    if in_progress && journal::stored_plan_text(&client, &plan.plan_hash).await?.is_none() {
        drop(client);
        store(spec, plan, application).await?;
    }
    Ok(())
}

/// Where the wizard writes a plan built in it when a run of it starts:
/// `DIR/tenantize-<database>-<first 12 of the hash>.plan.toml` (the name kept to letters,
/// digits, `-` and `_`).
pub fn default_plan_path(dir: &Path, database: &str, plan_hash: &str) -> PathBuf {
    let name: String = database
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    dir.join(format!("tenantize-{name}-{plan_hash:.12}.plan.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden plan: a sealed plan as `tenantize plan` writes it.
    fn golden() -> Plan {
        let text = include_str!("../../plans/sample.plan.toml");
        plan::file::parse(text, "plans/sample.plan.toml").expect("the golden plan parses")
    }

    fn stored(plan: &Plan) -> StoredPlan {
        let text = plan::file::to_toml(plan);
        StoredPlan {
            plan_hash: plan.plan_hash.clone(),
            text_sha256: crate::checksum::sha256_hex(text.as_bytes()),
            text,
            stored_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_journal_copy_round_trips_and_every_tampering_is_refused() {
        let plan = golden();
        plan::file::verify_checksums(&plan, "golden").expect("the golden plan is sealed");
        let good = stored(&plan);
        assert_eq!(verified(&good).unwrap().plan_hash, plan.plan_hash);

        // The text changed, its checksum not.
        let mut edited = good.clone();
        edited.text = edited.text.replacen("ALTER TABLE", "ALTER  TABLE", 1);
        let refused = verified(&edited).unwrap_err();
        assert_eq!(refused.code, super::super::exit::USAGE);
        assert!(refused.message.contains("checksum stored with it"), "{refused}");

        // The text and its checksum changed together: the plan's own checksums still refuse it.
        let mut sql_edit = plan.clone();
        sql_edit.steps[0].title.push_str(" (edited)");
        let mut forged = stored(&sql_edit);
        forged.plan_hash = plan.plan_hash.clone();
        let refused = verified(&forged).unwrap_err();
        assert!(refused.message.contains("does not match its checksum"), "{refused}");

        // A genuine plan stored under another plan's hash.
        let mut moved = good.clone();
        moved.plan_hash = "f".repeat(64);
        assert!(verified(&moved).unwrap_err().message.contains("not the plan it is stored as"));

        // Not a plan at all.
        let mut garbage = good;
        garbage.text = "not = [a plan".into();
        garbage.text_sha256 = crate::checksum::sha256_hex(garbage.text.as_bytes());
        assert!(verified(&garbage).unwrap_err().message.contains("is refused"));
    }

    #[test]
    fn the_default_plan_path_names_the_database_and_the_hash() {
        let path = default_plan_path(Path::new("."), "app/db 1", &"ab".repeat(32));
        assert_eq!(path, Path::new("./tenantize-app_db_1-abababababab.plan.toml"));
    }
}
