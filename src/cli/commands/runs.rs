//! `tenantize apply` and `tenantize rollback`: confirm, open a run log, run the engine while
//! printing its events; Ctrl-C cancels the running step safely.

use std::io::IsTerminal;
use std::path::Path;

use crate::app::{Failure, resume};
use crate::cli::args::{ApplyArgs, RollbackArgs, RunArgs};
use crate::cli::printer::{Printer, print_events};
use crate::engine::{self, Control, EngineError};
use crate::event;
use crate::plan::Plan;
use crate::runlog::{self, RunLogWriter};

fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!("{question}: refusing without confirmation; pass --yes")));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Failure::usage(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::usage("not confirmed; nothing was changed"))
    }
}

fn run_log(
    run: &RunArgs,
    plan_file: Option<&Path>,
    command: &str,
    plan: &Plan,
) -> Result<RunLogWriter, Failure> {
    let path = run.log.clone().unwrap_or_else(|| runlog::default_path(plan_file, command));
    let writer = RunLogWriter::create(&path, command, plan, plan_file)
        .map_err(|e| Failure::usage(format!("cannot write the run log {}: {e}", path.display())))?;
    eprintln!("run log: {}", path.display());
    Ok(writer)
}

/// Run an engine future while printing its events (and writing them to `log`); Ctrl-C
/// cancels the running step safely.
async fn with_printer<T>(
    log: Option<RunLogWriter>,
    work: impl AsyncFnOnce(&event::EventSender, &Control) -> Result<T, EngineError>,
) -> Result<T, Failure> {
    let (tx, rx) = event::channel();
    let rx = match log {
        Some(writer) => runlog::tee(rx, writer),
        None => rx,
    };
    let (control, _pause) = Control::detached();
    let terminal = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let printer = tokio::spawn(print_events(rx, Printer::new(std::io::stdout(), terminal)));
    let cancel = control.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let result = work(&tx, &control).await;
    drop(tx);
    let _ = printer.await;
    ctrl_c.abort();
    Ok(result?)
}

pub async fn apply(args: ApplyArgs) -> Result<(), Failure> {
    let (plan, spec) = resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        eprintln!("{notice}");
    }
    if !args.dry_run {
        confirm(&format!("Apply {} to {}?", plan.name(), spec.redacted()), args.run.yes)?;
    }
    let file = plan.file;
    let request = engine::ApplyRequest {
        plan: plan.plan,
        spec,
        stop_after: args.through.map(engine::StopAfter::Stage).unwrap_or(engine::StopAfter::All),
        dry_run: args.dry_run,
        settings: args.run.settings("apply"),
    };
    let log =
        if args.dry_run { None } else { Some(run_log(&args.run, file.as_deref(), "apply", &request.plan)?) };
    let outcome = with_printer(log, async |tx, control| resume::apply(&request, tx, control).await).await?;
    if args.dry_run {
        for id in &outcome.steps_to_run {
            let step = request.plan.step(id).expect("pending steps come from the plan");
            println!("would run {id}: {} ({})", step.title, step.strongest_lock().label());
        }
    }
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> Result<(), Failure> {
    let (plan, spec) = resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        eprintln!("{notice}");
    }
    let target = match (args.to, args.all) {
        (Some(stage), false) => engine::RollbackTarget::ToStage(stage),
        _ => engine::RollbackTarget::All,
    };
    confirm(&format!("Roll back {} on {}?", plan.name(), spec.redacted()), args.run.yes)?;
    let file = plan.file;
    let request = engine::RollbackRequest {
        plan: plan.plan,
        spec,
        target,
        force: args.force,
        settings: args.run.settings("rollback"),
    };
    let log = run_log(&args.run, file.as_deref(), "rollback", &request.plan)?;
    with_printer(Some(log), async |tx, control| resume::rollback(&request, tx, control).await).await?;
    Ok(())
}
