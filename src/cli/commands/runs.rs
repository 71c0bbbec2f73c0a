//! `tenantize apply` and `tenantize rollback`: confirm, open a run log, run the engine while
//! printing its events; Ctrl-C, SIGTERM and SIGHUP cancel the running step safely.

use std::io::IsTerminal;
use std::path::Path;

use crate::app::{Failure, identity, resume};
use crate::cli::args::{ApplyArgs, RollbackArgs, RunArgs};
use crate::cli::printer::{Printer, print_events};
use crate::engine::{self, Control, EngineError};
use crate::event;
use crate::plan::{Plan, Stage};
use crate::runlog::{self, RunLogWriter};
use tokio_util::sync::CancellationToken;

fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!("{question}: refusing without confirmation; pass --yes")));
    }
    err!("{question} [y/N] ");
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
    errln!("run log: {}", path.display());
    Ok(writer)
}

/// Run an engine future while printing its events (and writing them to `log`); a signal
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
    let signals = cancel_on_signals(control.cancel.clone());
    let result = work(&tx, &control).await;
    drop(tx);
    let _ = printer.await;
    signals.abort();
    Ok(result?)
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP all cancel the running step safely: the engine cancels
/// its statement on the server and journals the step as failed. A second signal ends the
/// process at once, for a cancellation that cannot finish (the journal may then say running).
/// The handlers are installed before this returns, so no signal is missed once work starts.
fn cancel_on_signals(cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()));
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = streams else {
        errln!("warning: cannot handle SIGINT, SIGTERM and SIGHUP; a signal stops the run without cleanup");
        return tokio::spawn(async {});
    };
    tokio::spawn(async move {
        for received in 0.. {
            let (name, raw) = tokio::select! {
                _ = int.recv() => ("SIGINT", libc::SIGINT),
                _ = term.recv() => ("SIGTERM", libc::SIGTERM),
                _ = hup.recv() => ("SIGHUP", libc::SIGHUP),
            };
            if received == 0 {
                errln!("{name} received: cancelling the running step safely (a second signal stops at once)");
                cancel.cancel();
            } else {
                errln!("{name} received again: stopping now; the journal may still say 'running'");
                std::process::exit(128 + raw);
            }
        }
    })
}

pub async fn apply(args: ApplyArgs) -> Result<(), Failure> {
    let (plan, spec) = resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        errln!("{notice}");
    }
    identity::check(&spec, &plan.plan, "tenantize apply").await?;
    let cutover = args.through.is_some_and(|s| s >= Stage::Cutover);
    if !args.dry_run {
        let question = if cutover {
            format!(
                "Cut over {} on {}? Sessions that set no tenant then fail closed (read nothing, \
                 cannot insert)",
                plan.name(),
                spec.redacted()
            )
        } else {
            format!("Apply {} to {}?", plan.name(), spec.redacted())
        };
        confirm(&question, args.run.yes)?;
    }
    let file = plan.file;
    let request = engine::ApplyRequest {
        plan: plan.plan,
        spec,
        stop_after: args.through.map(engine::StopAfter::Stage).unwrap_or(engine::StopAfter::Conversion),
        dry_run: args.dry_run,
        settings: args.run.settings("apply"),
    };
    let log =
        if args.dry_run { None } else { Some(run_log(&args.run, file.as_deref(), "apply", &request.plan)?) };
    let outcome = with_printer(log, async |tx, control| engine::apply(&request, tx, control).await).await?;
    if args.dry_run {
        for id in &outcome.steps_to_run {
            let step = request.plan.step(id).expect("pending steps come from the plan");
            outln!("would run {id}: {} ({})", step.title, step.strongest_lock().label());
        }
    }
    if !cutover && !args.dry_run && args.through.is_none_or(|s| s >= Stage::Rls) {
        cutover_pending(&request, file.as_deref()).await?;
    }
    Ok(())
}

/// After an `apply` that stopped before the cutover: say what is left, if it is.
async fn cutover_pending(request: &engine::ApplyRequest, file: Option<&Path>) -> Result<(), Failure> {
    let plan = &request.plan;
    if plan.steps_in(Stage::Cutover).next().is_none() {
        return Ok(());
    }
    let status = engine::status(&request.spec, plan).await?;
    let done = |id: &str| status.steps.iter().any(|s| s.step_id == id && s.state == engine::StepState::Done);
    if plan.steps_in(Stage::Cutover).all(|s| done(&s.id)) {
        return Ok(());
    }
    let name = file.map(|f| f.display().to_string()).unwrap_or_else(|| "PLAN".to_string());
    outln!(
        "cutover pending: run `tenantize cutover {name}` once the application sets the tenant per transaction"
    );
    outln!(
        "  in every transaction: {}",
        crate::plan::set_local_snippet(&plan.tenant.setting, plan.options.distribute.is_some())
    );
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> Result<(), Failure> {
    let (plan, spec) = resume::plan_for_run(args.file.as_deref(), args.conn.spec()).await?;
    if let Some(notice) = plan.notice() {
        errln!("{notice}");
    }
    identity::check(&spec, &plan.plan, "tenantize rollback").await?;
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
