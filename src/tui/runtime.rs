//! The terminal and the event loop. Keys, engine events, counts and ticks all become messages
//! for `update`; the commands it returns run on tasks, never inside a key handler, and report
//! back as messages. The terminal is restored on quit, on error, on panic and on Ctrl-C.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::keys::{self, Context};
use super::state::{Model, Overlay};
use super::update::{Command, Msg, update};
use super::view;
use crate::checks;
use crate::conn::ConnSpec;
use crate::engine::{self, Control, RunSettings};
use crate::event;

/// How often live counts are refreshed while the wizard is open.
const COUNTS_INTERVAL: Duration = Duration::from_millis(1000);
/// How often the live preflight (long transactions, locks) is read.
const LIVE_INTERVAL: Duration = Duration::from_secs(5);
const TICK_INTERVAL: Duration = Duration::from_millis(250);

fn context(model: &Model) -> Context {
    match model.overlay {
        None => Context::Normal,
        Some(Overlay::Help) => Context::Help,
        Some(Overlay::WritePlan { .. }) => Context::Prompt,
        Some(_) => Context::Confirm,
    }
}

/// The job running in the background and how to steer it.
struct Running {
    cancel: CancellationToken,
    pause: watch::Sender<bool>,
    handle: std::thread::JoinHandle<()>,
}

/// Open the wizard on `model` until the user quits. `spec` is where the engine and the counts
/// connect; `None` makes a read-only wizard (replay).
pub async fn run(spec: Option<ConnSpec>, mut model: Model, settings: RunSettings) -> Result<(), String> {
    if !std::io::stdout().is_terminal() {
        return Err(
            "the wizard needs a terminal; use the headless commands (plan, apply, rollback) instead".into()
        );
    }
    model.theme.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(&mut terminal, spec, &mut model, settings).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    spec: Option<ConnSpec>,
    model: &mut Model,
    settings: RunSettings,
) -> Result<(), String> {
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Msg>();
    let (counts_poke, counts_rx) = mpsc::unbounded_channel::<bool>();
    let counts_task = spec
        .as_ref()
        .map(|spec| tokio::spawn(counts_loop(spec.clone(), model.plan.clone(), counts_rx, msg_tx.clone())));
    let _ = counts_poke.send(true);
    let mut input = EventStream::new();
    let mut ticker = tokio::time::interval(TICK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut running: Option<Running> = None;
    let mut quitting = false;
    terminal.draw(|f| view::draw(f, model)).map_err(|e| e.to_string())?;
    loop {
        let msg = tokio::select! {
            key = input.next() => match key {
                Some(Ok(TermEvent::Key(key))) => keys::resolve(&key, context(model)).map(Msg::Action),
                Some(Ok(TermEvent::Resize(_, _))) => Some(Msg::Tick(Instant::now())),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(format!("reading the terminal failed: {e}")),
                None => return Ok(()),
            },
            msg = msg_rx.recv() => msg,
            _ = ticker.tick() => Some(Msg::Tick(Instant::now())),
        };
        let Some(msg) = msg else { continue };
        let job_done = matches!(msg, Msg::JobDone(_));
        let mut pending = vec![msg];
        // Take whatever else has arrived, so a burst of engine events costs one redraw.
        while let Ok(more) = msg_rx.try_recv() {
            pending.push(more);
        }
        for msg in pending {
            let plan_before = model.plan.plan_hash.clone();
            for command in update(model, msg) {
                execute(
                    command,
                    model,
                    spec.as_ref(),
                    &settings,
                    &msg_tx,
                    &counts_poke,
                    &mut running,
                    &mut quitting,
                );
            }
            if model.plan.plan_hash != plan_before {
                // The plan was rebuilt (a table toggled): count against the new one.
                if let (Some(spec), Some(task)) = (spec.as_ref(), &counts_task) {
                    task.abort();
                    let (poke, rx) = mpsc::unbounded_channel();
                    tokio::spawn(counts_loop(spec.clone(), model.plan.clone(), rx, msg_tx.clone()));
                    let _ = poke.send(true);
                    std::mem::forget(poke);
                }
            }
        }
        if job_done {
            running = None;
        }
        terminal.draw(|f| view::draw(f, model)).map_err(|e| e.to_string())?;
        if quitting && running.as_ref().is_none_or(|r| r.handle.is_finished()) {
            break;
        }
    }
    if let Some(task) = counts_task {
        task.abort();
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn execute(
    command: Command,
    model: &Model,
    spec: Option<&ConnSpec>,
    settings: &RunSettings,
    msg_tx: &mpsc::UnboundedSender<Msg>,
    counts_poke: &mpsc::UnboundedSender<bool>,
    running: &mut Option<Running>,
    quitting: &mut bool,
) {
    match command {
        Command::Apply(stop_after) => {
            let Some(spec) = spec else { return };
            let request = engine::ApplyRequest {
                plan: model.plan.clone(),
                spec: spec.clone(),
                stop_after,
                dry_run: false,
                settings: RunSettings { application_name: "tenantize wizard".into(), ..settings.clone() },
            };
            let log = open_run_log(model, "apply", msg_tx);
            *running = Some(spawn_job(msg_tx.clone(), Job::Apply(request), log));
        }
        Command::Rollback { target, force } => {
            let Some(spec) = spec else { return };
            let request = engine::RollbackRequest {
                plan: model.plan.clone(),
                spec: spec.clone(),
                target,
                force,
                settings: RunSettings { application_name: "tenantize wizard".into(), ..settings.clone() },
            };
            let log = open_run_log(model, "rollback", msg_tx);
            *running = Some(spawn_job(msg_tx.clone(), Job::Rollback(request), log));
        }
        Command::CountGuards(step_ids) => {
            let Some(spec) = spec.cloned() else { return };
            let plan = model.plan.clone();
            let tx = msg_tx.clone();
            tokio::spawn(async move {
                let steps: Vec<&crate::plan::Step> = step_ids.iter().filter_map(|id| plan.step(id)).collect();
                let result = engine::guard_counts(&spec, &steps).await.map_err(|e| e.to_string());
                let _ = tx.send(Msg::Guards(result));
            });
        }
        Command::RefreshCounts { full } => {
            let _ = counts_poke.send(full);
        }
        Command::SetPaused(paused) => {
            if let Some(job) = running {
                let _ = job.pause.send(paused);
            }
        }
        Command::Cancel => {
            if let Some(job) = running {
                job.cancel.cancel();
            }
        }
        Command::WritePlan(path) => {
            let result = crate::plan::file::save(&model.plan, &path).map(|_| path).map_err(|e| e.to_string());
            let _ = msg_tx.send(Msg::Wrote(result));
        }
        Command::Quit => *quitting = true,
    }
}

/// The run log of a wizard job: next to the plan file, or in the temp directory for a plan
/// built in the wizard. Where it went (or why it could not) is reported in the log pane.
fn open_run_log(
    model: &Model,
    command: &str,
    msg_tx: &mpsc::UnboundedSender<Msg>,
) -> Option<crate::runlog::RunLogWriter> {
    let path = crate::runlog::default_path(model.plan_path.as_deref(), command);
    match crate::runlog::RunLogWriter::create(&path, command, &model.plan, model.plan_path.as_deref()) {
        Ok(writer) => {
            let _ = msg_tx.send(Msg::Notice(format!("run log: {}", path.display())));
            Some(writer)
        }
        Err(e) => {
            let _ = msg_tx.send(Msg::Notice(format!("cannot write the run log {}: {e}", path.display())));
            None
        }
    }
}

enum Job {
    Apply(engine::ApplyRequest),
    Rollback(engine::RollbackRequest),
}

/// Run an engine job on its own task; its events and its end come back as messages.
fn spawn_job(
    msg_tx: mpsc::UnboundedSender<Msg>,
    job: Job,
    mut log: Option<crate::runlog::RunLogWriter>,
) -> Running {
    let (events_tx, mut events_rx) = event::channel();
    let (control, pause) = Control::detached();
    let cancel = control.cancel.clone();
    let forward = msg_tx.clone();
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            // The run log is written before the screen hears of the event.
            if let Some(writer) = &mut log {
                let _ = writer.event(&event);
            }
            if forward.send(Msg::Engine(event, Instant::now())).is_err() {
                break;
            }
        }
    });
    // The engine runs on a thread of its own with a single-threaded runtime: nothing it does
    // can stall the UI loop, and its futures need not be Send.
    let handle = std::thread::spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(async {
                match job {
                    Job::Apply(request) => engine::apply(&request, &events_tx, &control)
                        .await
                        .map(|o| format!("{} steps applied", o.steps_run))
                        .map_err(|e| e.to_string()),
                    Job::Rollback(request) => engine::rollback(&request, &events_tx, &control)
                        .await
                        .map(|o| format!("{} steps rolled back", o.steps_rolled_back))
                        .map_err(|e| e.to_string()),
                }
            }),
            Err(e) => Err(format!("cannot start the engine's runtime: {e}")),
        };
        drop(events_tx);
        // Let the forwarder deliver the last events before the job's end.
        std::thread::sleep(Duration::from_millis(50));
        let _ = msg_tx.send(Msg::JobDone(result));
    });
    Running { cancel, pause, handle }
}

/// Counts about once a second on a connection of their own; the latest result wins. A poke
/// with `true` asks for a full count (rows per tenant, cross-tenant references) at once.
async fn counts_loop(
    spec: ConnSpec,
    plan: crate::plan::Plan,
    mut pokes: mpsc::UnboundedReceiver<bool>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut client = None;
    let mut last_live: Option<Instant> = None;
    let mut last_full: Option<Instant> = None;
    let mut want_full = true;
    loop {
        if client.is_none() {
            match checks::connect(&spec, "tenantize wizard counts").await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    let _ = tx.send(Msg::Counts(Err(e.to_string()), Instant::now()));
                }
            }
        }
        if let Some(c) = &client {
            // A full count every 15 s keeps rows per tenant and cross-tenant counts fresh.
            let full = want_full || last_full.is_none_or(|t| t.elapsed() > Duration::from_secs(15));
            let result = async {
                let catalog = crate::catalog::introspect(
                    c,
                    &plan.options.schemas,
                    std::slice::from_ref(&plan.tenant.table.schema),
                )
                .await
                .map_err(|e| e.to_string())?;
                checks::count_all(c, &plan, &catalog, full).await.map_err(|e| e.to_string())
            }
            .await;
            if result.is_ok() && full {
                last_full = Some(Instant::now());
                want_full = false;
            }
            if let Err(e) = &result
                && (e.contains("connection") || e.contains("closed"))
            {
                client = None;
            }
            if tx.send(Msg::Counts(result, Instant::now())).is_err() {
                return;
            }
            if last_live.is_none_or(|t| t.elapsed() > LIVE_INTERVAL)
                && let Some(c) = &client
                && let Ok(live) = checks::live_preflight(c, &plan).await
            {
                last_live = Some(Instant::now());
                if tx.send(Msg::Live(live)).is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            poke = pokes.recv() => match poke {
                Some(full) => want_full |= full,
                None => return,
            },
            _ = tokio::time::sleep(COUNTS_INTERVAL) => {}
        }
    }
}
