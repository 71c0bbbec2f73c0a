//! `tenantize status`: the journal's view of a plan.

use crate::app::Failure;
use crate::cli::args::StatusArgs;
use crate::db::journal::JournalStep;
use crate::engine;

pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let (plan, spec) = crate::app::resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        errln!("{notice}");
    }
    let plan = plan.plan;
    crate::app::identity::check(&spec, &plan, "tenantize status").await?;
    let status = engine::status(&spec, &plan).await?;
    let cutover = plan.cutover_state(|id| {
        status.steps.iter().any(|s| s.step_id == id && s.state == crate::db::journal::StepState::Done)
    });
    if args.json {
        let mut value = json(&status);
        value["cutover"] = serde_json::to_value(cutover).expect("a state serializes");
        outln!("{}", serde_json::to_string_pretty(&value).expect("status serializes"));
        return Ok(());
    }
    outln!("plan {:.12} on database {}", status.plan_hash, status.database);
    if !status.journal_present {
        outln!("no journal in this database: nothing has been applied");
        return Ok(());
    }
    for (hash, done) in &status.other_active_plans {
        outln!("another plan {hash:.12} has {done} applied steps in this database");
    }
    let by_id: std::collections::BTreeMap<&str, &JournalStep> =
        status.steps.iter().map(|s| (s.step_id.as_str(), s)).collect();
    for step in &plan.steps {
        match by_id.get(step.id.as_str()) {
            Some(j) => {
                let duration = j.duration_ms.map(|d| format!("{d} ms")).unwrap_or_else(|| "-".into());
                let error = j.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
                outln!(
                    "  {:<11} {:<52} {:>9} {:>14}{}",
                    j.state.as_str(),
                    step.id,
                    duration,
                    crate::event::describe::count(j.rows_affected.max(0) as u64, "row", "rows"),
                    error
                );
            }
            None => outln!("  {:<11} {}", "pending", step.id),
        }
    }
    if cutover != crate::plan::CutoverState::NotPlanned {
        outln!("cutover (stage 10): {}", cutover.describe());
    }
    Ok(())
}

/// The journal as JSON, with each step's `position` counted from 1, as the text and the
/// progress lines count (the journal itself counts from 0).
fn json(status: &crate::db::journal::Status) -> serde_json::Value {
    let mut value = serde_json::to_value(status).expect("status serializes");
    if let Some(steps) = value.get_mut("steps").and_then(|s| s.as_array_mut()) {
        for step in steps {
            if let Some(position) = step.get("position").and_then(|p| p.as_i64()) {
                step["position"] = serde_json::json!(position + 1);
            }
        }
    }
    value
}
