//! The wizard's runtime: [`Runtime`] runs the commands `update` returns on tasks, never inside
//! a key handler, and hands their results back as messages. It owns every task it starts: the
//! counts loop (`counts`), the running job (`job`: the engine's thread and its reporter) and
//! one-shot background work. [`run`] (`terminal`) is the thin terminal shell around it.

mod counts;
mod job;
mod terminal;

pub use job::{EngineJob, JobBody};
pub use terminal::run;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::state::Model;
use super::update::{Command, Msg, update};
use crate::db::ConnSpec;
use crate::engine::{self, RunSettings};
use counts::{CountsLoop, recv_report};
use job::{RunLogOf, RunningJob};

/// How long a shutdown waits for a cancelled job to stop at a safe point (its statement
/// cancelled, its transaction rolled back) before leaving it to the process's exit.
const JOB_STOP_LIMIT: Duration = Duration::from_secs(15);
/// How long a shutdown waits for one-shot work that cannot be aborted (file writes).
const BACKGROUND_STOP_LIMIT: Duration = Duration::from_secs(5);

/// Everything the wizard runs besides drawing: the counts loop, the running job and one-shot
/// background work, with the channels they report on.
pub struct Runtime {
    /// Where the engine and the counts connect; `None` in a replay (nothing runs).
    spec: Option<ConnSpec>,
    settings: RunSettings,
    msg_tx: mpsc::UnboundedSender<Msg>,
    msg_rx: mpsc::UnboundedReceiver<Msg>,
    /// At most one, counting the model's current plan.
    counts: Option<CountsLoop>,
    job: Option<RunningJob>,
    /// One-shot work: guard counts, plan writes, joining a finished engine thread.
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
        if self.job.is_some() {
            // `update` never asks for two; a second would lose the first one's handles.
            let _ = self.msg_tx.send(Msg::Notice(format!("not starting {command}: a job is running")));
            return;
        }
        let run_log = RunLogOf {
            command: command.to_string(),
            plan: model.plan.clone(),
            plan_file: model.plan_path.clone(),
        };
        match RunningJob::start(job, run_log, self.msg_tx.clone()) {
            Ok(job) => self.job = Some(job),
            Err(error) => {
                let _ = self.msg_tx.send(Msg::JobDone(Err(error)));
            }
        }
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
