//! The wizard's runtime: [`Runtime`] runs the commands `update` returns on tasks, never inside
//! a key handler, and hands their results back as messages. It owns every task it starts.
//! [`run`] is the thin terminal shell around it: keys and ticks in, frames out; the terminal is
//! restored on quit, on error, on panic and on Ctrl-C.

use std::any::Any;
use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::keys::{self, Context};
use super::state::{Model, Overlay};
use super::update::{Command, Msg, update};
use super::view;
use crate::checks;
use crate::conn::ConnSpec;
use crate::engine::{self, Control, RunSettings};
use crate::event::{self, EventSender};

/// How often live counts are refreshed while the wizard is open.
const COUNTS_INTERVAL: Duration = Duration::from_millis(1000);
/// How often the live preflight (long transactions, locks) is read.
const LIVE_INTERVAL: Duration = Duration::from_secs(5);
const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// How long a shutdown waits for a cancelled job to stop at a safe point (its statement
/// cancelled, its transaction rolled back) before leaving it to the process's exit.
const JOB_STOP_LIMIT: Duration = Duration::from_secs(15);
/// How long a shutdown waits for one-shot work that cannot be aborted (file writes).
const BACKGROUND_STOP_LIMIT: Duration = Duration::from_secs(5);
/// The engine's thread, by name: the panic hook tells its panics (which end the job) from the
/// wizard's own (which restore the terminal first).
const ENGINE_THREAD: &str = "tenantize engine";

fn context(model: &Model) -> Context {
    match model.overlay {
        None => Context::Normal,
        Some(Overlay::Help) => Context::Help,
        Some(Overlay::WritePlan { .. }) => Context::Prompt,
        Some(_) => Context::Confirm,
    }
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
    keep_the_terminal_on_engine_panics();
    let mut runtime = Runtime::new(spec, settings);
    let result = event_loop(&mut terminal, &mut runtime, &mut model).await;
    ratatui::restore();
    runtime.shutdown().await;
    result
}

/// ratatui's panic hook restores the terminal; an engine panic ends only the job (its message
/// is the job's error), so the wizard keeps its screen and the hook stays quiet for it.
fn keep_the_terminal_on_engine_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(ENGINE_THREAD) {
            hook(info);
        }
    }));
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    runtime: &mut Runtime,
    model: &mut Model,
) -> Result<(), String> {
    runtime.start(model);
    let mut input = EventStream::new();
    let mut ticker = tokio::time::interval(TICK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
            msg = runtime.recv() => Some(msg),
            _ = ticker.tick() => Some(Msg::Tick(Instant::now())),
        };
        let Some(msg) = msg else { continue };
        runtime.handle(model, msg);
        // Take whatever else has arrived, so a burst of engine events costs one redraw.
        while let Some(more) = runtime.try_recv() {
            runtime.handle(model, more);
        }
        terminal.draw(|f| view::draw(f, model)).map_err(|e| e.to_string())?;
        if runtime.finished() {
            return Ok(());
        }
    }
}

/// A job body: gets the engine's event sender and its controls, ends with a summary or an error.
pub type JobBody =
    Box<dyn FnOnce(EventSender, Control) -> LocalBoxFuture<'static, Result<String, String>> + Send>;

/// What a job runs on the engine's thread.
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
            EngineJob::Rollback(request) => engine::rollback(&request, &events, &control)
                .await
                .map(|o| format!("{} steps rolled back", o.steps_rolled_back))
                .map_err(|e| e.to_string()),
            EngineJob::Custom(body) => body(events, control).await,
        }
    }
}

/// The counts loop of one plan.
struct CountsLoop {
    plan_hash: String,
    task: JoinHandle<()>,
    /// `true` asks for a full count.
    poke: mpsc::UnboundedSender<bool>,
    /// Its reports on a channel of its own: replacing the loop drops what it sent and nobody
    /// read, so a stale plan's counts never reach the model.
    reports: mpsc::UnboundedReceiver<Msg>,
}

impl CountsLoop {
    fn start(spec: &ConnSpec, plan: &crate::plan::Plan) -> CountsLoop {
        let (poke, pokes) = mpsc::unbounded_channel();
        let (tx, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(counts_loop(spec.clone(), plan.clone(), pokes, tx));
        CountsLoop { plan_hash: plan.plan_hash.clone(), task, poke, reports }
    }
}

impl Drop for CountsLoop {
    fn drop(&mut self) {
        // Its connection closes with the task.
        self.task.abort();
    }
}

/// The job running in the background and how to steer it.
struct RunningJob {
    cancel: CancellationToken,
    pause: watch::Sender<bool>,
    engine: std::thread::JoinHandle<()>,
    /// Forwards the engine's events, then its end (JobDone).
    reporter: JoinHandle<()>,
}

/// Everything the wizard runs besides drawing: the counts loop, the running job and one-shot
/// background work, with the channel they all report on.
pub struct Runtime {
    /// Where the engine and the counts connect; `None` in a replay (nothing runs).
    spec: Option<ConnSpec>,
    settings: RunSettings,
    msg_tx: mpsc::UnboundedSender<Msg>,
    msg_rx: mpsc::UnboundedReceiver<Msg>,
    /// At most one, counting the model's current plan.
    counts: Option<CountsLoop>,
    job: Option<RunningJob>,
    /// One-shot work: guard counts, joining a finished engine thread.
    background: JoinSet<()>,
    quitting: bool,
}

impl Runtime {
    pub fn new(spec: Option<ConnSpec>, settings: RunSettings) -> Runtime {
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        Runtime {
            spec,
            settings,
            msg_tx,
            msg_rx,
            counts: None,
            job: None,
            background: JoinSet::new(),
            quitting: false,
        }
    }

    /// Start counting against `model`'s plan.
    pub fn start(&mut self, model: &Model) {
        self.follow_plan(model);
    }

    /// The next message from a task.
    pub async fn recv(&mut self) -> Msg {
        loop {
            tokio::select! {
                msg = self.msg_rx.recv() => match msg {
                    Some(msg) => return msg,
                    // The runtime holds a sender itself: the channel never closes.
                    None => continue,
                },
                Some(msg) = recv_report(&mut self.counts) => return msg,
                Some(Err(e)) = self.background.join_next(), if !self.background.is_empty() => {
                    if e.is_panic() {
                        return Msg::Notice(format!("a background task failed: {e}"));
                    }
                }
            }
        }
    }

    /// A message that has already arrived, if any.
    pub fn try_recv(&mut self) -> Option<Msg> {
        if let Ok(msg) = self.msg_rx.try_recv() {
            return Some(msg);
        }
        self.counts.as_mut().and_then(|c| c.reports.try_recv().ok())
    }

    /// Give `msg` to `update` and run the commands it returns.
    pub fn handle(&mut self, model: &mut Model, msg: Msg) {
        let job_done = matches!(msg, Msg::JobDone(_));
        for command in update(model, msg) {
            self.execute(model, command);
        }
        if job_done && let Some(job) = self.job.take() {
            // The thread has sent its result and is ending: join it off the event loop.
            self.background.spawn_blocking(move || drop(job.engine.join()));
        }
        self.follow_plan(model);
    }

    /// Count against the model's plan: a rebuilt plan (a table toggled) replaces the loop.
    fn follow_plan(&mut self, model: &Model) {
        let Some(spec) = &self.spec else { return };
        if self.counts.as_ref().is_some_and(|c| c.plan_hash == model.plan.plan_hash) {
            return;
        }
        // Dropping the old loop aborts it before the new one connects.
        self.counts = None;
        self.counts = Some(CountsLoop::start(spec, &model.plan));
    }

    /// The user asked to quit and no job is left running.
    pub fn finished(&self) -> bool {
        self.quitting && self.job.as_ref().is_none_or(|j| j.reporter.is_finished())
    }

    /// A job is running (its end not yet handled).
    pub fn job_running(&self) -> bool {
        self.job.is_some()
    }

    /// Run one command of `update`'s; its results come back as messages.
    pub fn execute(&mut self, model: &Model, command: Command) {
        match command {
            Command::Apply(stop_after) => {
                let Some(spec) = self.spec.clone() else { return };
                let request = engine::ApplyRequest {
                    plan: model.plan.clone(),
                    spec,
                    stop_after,
                    dry_run: false,
                    settings: self.wizard_settings(),
                };
                self.start_job(model, "apply", EngineJob::Apply(request));
            }
            Command::Rollback { target, force } => {
                let Some(spec) = self.spec.clone() else { return };
                let request = engine::RollbackRequest {
                    plan: model.plan.clone(),
                    spec,
                    target,
                    force,
                    settings: self.wizard_settings(),
                };
                self.start_job(model, "rollback", EngineJob::Rollback(request));
            }
            Command::CountGuards(step_ids) => {
                let Some(spec) = self.spec.clone() else { return };
                let plan = model.plan.clone();
                let tx = self.msg_tx.clone();
                self.background.spawn(async move {
                    let steps: Vec<&crate::plan::Step> =
                        step_ids.iter().filter_map(|id| plan.step(id)).collect();
                    let result = engine::guard_counts(&spec, &steps).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Guards(result));
                });
            }
            Command::RefreshCounts { full } => {
                if let Some(counts) = &self.counts {
                    let _ = counts.poke.send(full);
                }
            }
            Command::SetPaused(paused) => {
                if let Some(job) = &self.job {
                    let _ = job.pause.send(paused);
                }
            }
            Command::Cancel => {
                if let Some(job) = &self.job {
                    job.cancel.cancel();
                }
            }
            Command::WritePlan(path) => {
                let plan = model.plan.clone();
                let tx = self.msg_tx.clone();
                // A file write can block (a slow disk, a FIFO): never on the event loop.
                self.background.spawn_blocking(move || {
                    let result =
                        crate::plan::file::save(&plan, &path).map(|_| path).map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Wrote(result));
                });
            }
            Command::Quit => self.quitting = true,
        }
    }

    fn wizard_settings(&self) -> RunSettings {
        RunSettings { application_name: "tenantize wizard".into(), ..self.settings.clone() }
    }

    /// Run `job` on the engine's thread, with a run log named after `command`; its events and
    /// its end come back as messages.
    pub fn start_job(&mut self, model: &Model, command: &str, job: EngineJob) {
        let (events_tx, events_rx) = event::channel();
        let (control, pause) = Control::detached();
        let cancel = control.cancel.clone();
        let (result_tx, result_rx) = oneshot::channel();
        // The engine runs on a thread of its own with a single-threaded runtime: nothing it does
        // can stall the UI loop, and its futures need not be Send.
        let engine = std::thread::Builder::new()
            .name(ENGINE_THREAD.into())
            .spawn(move || drop(result_tx.send(run_engine(job, events_tx, control))));
        let engine = match engine {
            Ok(engine) => engine,
            Err(e) => {
                let _ = self.msg_tx.send(Msg::JobDone(Err(format!("cannot start the engine's thread: {e}"))));
                return;
            }
        };
        let run_log = RunLogOf {
            command: command.to_string(),
            plan: model.plan.clone(),
            plan_file: model.plan_path.clone(),
        };
        let tx = self.msg_tx.clone();
        // The reporter writes files, so it runs where blocking is allowed.
        let reporter = tokio::task::spawn_blocking(move || report(run_log, events_rx, result_rx, tx));
        self.job = Some(RunningJob { cancel, pause, engine, reporter });
    }

    /// Stop everything this runtime started: the counts loop and background work are aborted,
    /// a running job is cancelled and waited for (up to [`JOB_STOP_LIMIT`]).
    pub async fn shutdown(mut self) {
        self.quitting = true;
        if let Some(mut counts) = self.counts.take() {
            counts.task.abort();
            // Wait for it to stop, so its connection is closed when this returns.
            let _ = (&mut counts.task).await;
        }
        self.background.abort_all();
        if let Some(job) = self.job.take() {
            job.cancel.cancel();
            if tokio::time::timeout(JOB_STOP_LIMIT, job.reporter).await.is_ok() {
                // The reporter ends after the engine sent its result: the thread is ending.
                self.background.spawn_blocking(move || drop(job.engine.join()));
            }
        }
        let drained = async { while self.background.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(BACKGROUND_STOP_LIMIT, drained).await;
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropped without a shutdown (an error on the way out): at least stop the engine at its
        // next safe point; the counts loop and the background tasks abort as they drop.
        if let Some(job) = &self.job {
            job.cancel.cancel();
        }
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

/// The counts loop's next report; pending forever without a loop.
async fn recv_report(counts: &mut Option<CountsLoop>) -> Option<Msg> {
    match counts {
        Some(counts) => counts.reports.recv().await,
        None => std::future::pending().await,
    }
}

/// What a job's run log is named after and starts with.
struct RunLogOf {
    command: String,
    plan: crate::plan::Plan,
    plan_file: Option<PathBuf>,
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
