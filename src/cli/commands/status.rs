//! `tenantize status`: the journal's view of a plan.

use crate::app::Failure;
use crate::cli::args::StatusArgs;
use crate::db::journal::JournalStep;
use crate::engine;

pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let (plan, spec) = crate::app::resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        eprintln!("{notice}");
    }
    let plan = plan.plan;
    let status = engine::status(&spec, &plan).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status).expect("status serializes"));
        return Ok(());
    }
    println!("plan {:.12} on database {}", status.plan_hash, status.database);
    if !status.journal_present {
        println!("no journal in this database: nothing has been applied");
        return Ok(());
    }
    for (hash, done) in &status.other_active_plans {
        println!("another plan {hash:.12} has {done} applied steps in this database");
    }
    let by_id: std::collections::BTreeMap<&str, &JournalStep> =
        status.steps.iter().map(|s| (s.step_id.as_str(), s)).collect();
    for step in &plan.steps {
        match by_id.get(step.id.as_str()) {
            Some(j) => {
                let duration = j.duration_ms.map(|d| format!("{d} ms")).unwrap_or_else(|| "-".into());
                let error = j.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
                println!(
                    "  {:<11} {:<52} {:>9} {:>9} rows{}",
                    j.state.as_str(),
                    step.id,
                    duration,
                    j.rows_affected,
                    error
                );
            }
            None => println!("  {:<11} {}", "pending", step.id),
        }
    }
    Ok(())
}
