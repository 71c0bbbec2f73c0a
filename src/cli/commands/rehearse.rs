//! `tenantize rehearse`: a whole round trip on a throwaway copy, with a report.

use crate::app::Failure;
use crate::app::rehearse::{RehearseRequest, Source, rehearse};
use crate::cli::args::RehearseArgs;
use crate::db::{ConnSpec, ProcessEnv};

pub async fn run(args: RehearseArgs) -> Result<(), Failure> {
    let source = match (&args.source, &args.dump) {
        (Some(url), _) => Source::Database(Box::new(ConnSpec::resolve(Some(url), &ProcessEnv)?)),
        (None, Some(path)) => Source::Dump(path.clone()),
        (None, None) => return Err(Failure::usage("give --source URL or --dump FILE")),
    };
    let request = RehearseRequest {
        source,
        plan_file: args.plan.clone(),
        options: args.options.to_options(),
        out_dir: args.out_dir.clone(),
        settings: args.run.settings("rehearse"),
    };
    let say = |line: String| errln!("rehearse: {line}");
    let outcome = rehearse(&request, &say).await.map_err(|e| Failure::usage(e.to_string()))?;
    outln!("report: {}", outcome.markdown.display());
    outln!("timeline: {}", outcome.html.display());
    for log in &outcome.run_logs {
        outln!("run log: {}", log.display());
    }
    if outcome.problems.is_empty() {
        outln!("rehearsal ok: applied, verified, rolled back, schema and data as before");
        Ok(())
    } else {
        for p in &outcome.problems {
            outln!("problem: {p}");
        }
        Err(Failure::new(
            outcome.exit_code,
            format!(
                "{} in the rehearsal",
                crate::event::describe::count(outcome.problems.len() as u64, "problem", "problems")
            ),
        ))
    }
}
