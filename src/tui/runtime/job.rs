//! A job: the engine on a thread of its own, and a reporter that writes the run log, forwards
//! the events and then reports the job's end, in that order by construction.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Instant;

use futures_util::future::LocalBoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::resume;
use crate::engine::{self, Control};
use crate::event::{self, EventSender};
use crate::tui::update::Msg;

/// The engine's thread, by name: the panic hook tells its panics (which end the job) from the
/// wizard's own (which restore the terminal first).
pub(super) const ENGINE_THREAD: &str = "tenantize engine";

/// A job body: gets the engine's event sender and its controls, ends with a summary or an error.
pub type JobBody =
    Box<dyn FnOnce(EventSender, Control) -> LocalBoxFuture<'static, Result<String, String>> + Send>;

/// What a job runs on the engine's thread. An apply or a rollback keeps its plan in the
/// journal first (`app::resume`), so that the wizard can resume it without a file.
pub enum EngineJob {
    Apply(engine::ApplyRequest),
    Rollback(engine::RollbackRequest),
    /// Any body on the job path (events, run log, end of job), e.g. a test's engine stand-in.
    Custom(JobBody),
}

impl EngineJob {
    async fn run(self, events: EventSender, control: Control) -> Result<String, String> {
        match self {
            EngineJob::Apply(request) => engine::apply(&request, &events, &control)
                .await
                .map(|o| format!("{} steps applied", o.steps_run))
                .map_err(|e| e.to_string()),
            EngineJob::Rollback(request) => resume::rollback(&request, &events, &control)
                .await
                .map(|o| format!("{} steps rolled back", o.steps_rolled_back))
                .map_err(|e| e.to_string()),
            EngineJob::Custom(body) => body(events, control).await,
        }
    }
}

/// The job running in the background and how to steer it.
pub(super) struct RunningJob {
    pub(super) cancel: CancellationToken,
    pub(super) pause: watch::Sender<bool>,
    pub(super) engine: std::thread::JoinHandle<()>,
    /// Forwards the engine's events, then its end (JobDone).
    pub(super) reporter: JoinHandle<()>,
}

impl RunningJob {
    /// Start `job` on the engine's thread and its reporter; `Err` when no thread could start.
    pub(super) fn start(
        job: EngineJob,
        run_log: RunLogOf,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Result<RunningJob, String> {
        let (events_tx, events_rx) = event::channel();
        let (control, pause) = Control::detached();
        let cancel = control.cancel.clone();
        let (result_tx, result_rx) = oneshot::channel();
        // The engine runs on a thread of its own with a single-threaded runtime: nothing it does
        // can stall the UI loop, and its futures need not be Send.
        let engine = std::thread::Builder::new()
            .name(ENGINE_THREAD.into())
            .spawn(move || drop(result_tx.send(run_engine(job, events_tx, control))))
            .map_err(|e| format!("cannot start the engine's thread: {e}"))?;
        // The reporter writes files, so it runs where blocking is allowed.
        let reporter = tokio::task::spawn_blocking(move || report(run_log, events_rx, result_rx, tx));
        Ok(RunningJob { cancel, pause, engine, reporter })
    }
}

/// Run `job` to its end on the current thread. A panic ends it too, as its error: the job must
/// end in the model whatever the engine does.
fn run_engine(job: EngineJob, events: EventSender, control: Control) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the engine's runtime: {e}"))?;
    // Unwinding drops the job's future, and with it the event sender.
    std::panic::catch_unwind(AssertUnwindSafe(move || runtime.block_on(job.run(events, control))))
        .unwrap_or_else(|panic| Err(format!("the engine stopped unexpectedly: {}", panic_message(&*panic))))
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text,
        (_, Some(text)) => text,
        _ => "a panic without a message",
    }
}

/// What a job's run log is named after and starts with.
pub(super) struct RunLogOf {
    pub(super) command: String,
    pub(super) plan: crate::plan::Plan,
    pub(super) plan_file: Option<PathBuf>,
}

/// A job's reporter (blocking): each event goes to the run log, then to the screen, so the log
/// is written before the screen hears of the event; once the engine has dropped its sender
/// (every event is here) comes the job's end, JobDone.
fn report(
    run_log: RunLogOf,
    mut events: event::EventReceiver,
    result: oneshot::Receiver<Result<String, String>>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut log = open_run_log(&run_log, &tx);
    while let Some(event) = events.blocking_recv() {
        if let Some(writer) = &mut log {
            // A full disk must not stop the job; the screen still gets every event.
            let _ = writer.event(&event);
        }
        if tx.send(Msg::Engine(event, Instant::now())).is_err() {
            return;
        }
    }
    let result =
        result.blocking_recv().unwrap_or_else(|_| Err("the engine stopped unexpectedly".to_string()));
    let _ = tx.send(Msg::JobDone(result));
}

/// The run log of a wizard job: next to the plan file, or in the temp directory for a plan
/// built in the wizard. Where it went (or why it could not) is reported in the log pane.
fn open_run_log(run_log: &RunLogOf, tx: &mpsc::UnboundedSender<Msg>) -> Option<crate::runlog::RunLogWriter> {
    let RunLogOf { command, plan, plan_file } = run_log;
    let path = crate::runlog::default_path(plan_file.as_deref(), command);
    match crate::runlog::RunLogWriter::create(&path, command, plan, plan_file.as_deref()) {
        Ok(writer) => {
            let _ = tx.send(Msg::Notice(format!("run log: {}", path.display())));
            Some(writer)
        }
        Err(e) => {
            let _ = tx.send(Msg::Notice(format!("cannot write the run log {}: {e}", path.display())));
            None
        }
    }
}
