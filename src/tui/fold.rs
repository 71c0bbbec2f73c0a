//! The fold of engine events into the model: `engine_event(model, event, at)` is the one place
//! an event changes what the wizard shows. `update` calls it for live events and `replay` for
//! recorded ones, so a replay shows exactly what the live run showed.

use std::collections::VecDeque;
use std::time::Instant;

use super::state::{CheckView, LockWaitView, LogKind, Model, ProgressView, Row, UiStepState};
use crate::event::describe::{Tone, describe};
use crate::event::{Blocker, CheckPhase, Direction, Event, ProgressUnit};

/// Fold one engine event, which arrived (or was recorded) at `at`, into the model: what it
/// changes, then its line in the log (the event's own words, `event::describe`).
pub fn engine_event(model: &mut Model, event: Event, at: Instant) {
    log_line(model, &event);
    match event {
        Event::StepStarted { step_id, .. } => step_started(model, &step_id, at),
        Event::StatementStarted { step_id, index, attempt, .. } => {
            if let Some(i) = model.step_index(&step_id) {
                model.steps[i].statement = Some(index);
                if attempt == 0 {
                    model.steps[i].lock_wait = None;
                }
            }
        }
        Event::StatementFinished { step_id, .. } => {
            if let Some(i) = model.step_index(&step_id) {
                model.steps[i].lock_wait = None;
            }
        }
        Event::LockWait { step_id, waited_ms, blockers, .. } => {
            lock_wait(model, &step_id, waited_ms, blockers)
        }
        Event::Retry { step_id, attempt, max_attempts, blockers, .. } => {
            retry(model, &step_id, attempt, max_attempts, blockers)
        }
        Event::Progress { step_id, done, total, unit, phase } => {
            if let Some(i) = model.step_index(&step_id) {
                let step = &mut model.steps[i];
                step.progress = Some(progress(step.progress.take(), done, total, unit, phase, at));
            }
        }
        Event::Paused { paused, .. } => {
            if let Some(job) = &mut model.job {
                job.paused = paused;
            }
        }
        Event::CheckResult { step_id, name, value, expected, ok, phase: CheckPhase::After } => {
            if let Some(i) = model.step_index(&step_id) {
                model.steps[i].checks.push(CheckView { name, value, expected, ok });
            }
        }
        Event::StepSkipped { step_id, .. } => {
            if let Some(i) = model.step_index(&step_id) {
                model.steps[i].state = UiStepState::Skipped;
            }
        }
        Event::StepFinished { step_id, direction, duration_ms, rows } => {
            step_finished(model, &step_id, direction, duration_ms, rows)
        }
        Event::StepFailed { step_id, error, .. } => {
            if let Some(i) = model.step_index(&step_id) {
                let step = &mut model.steps[i];
                step.state = UiStepState::Failed;
                step.error = Some(error);
                step.progress = None;
            }
        }
        Event::RunStarted { .. }
        | Event::Findings { .. }
        | Event::AutovacuumCancelled { .. }
        | Event::GuardResult { .. }
        | Event::CheckResult { .. }
        | Event::RunFinished { .. } => {}
    }
}

/// The event's line in the log. Progress and lock waits change the live panel instead;
/// checks counted before a step or after an undo are for the run log only.
fn log_line(model: &mut Model, event: &Event) {
    match event {
        Event::Progress { .. } | Event::LockWait { .. } => return,
        Event::CheckResult { phase, .. } if *phase != CheckPhase::After => return,
        _ => {}
    }
    let described = describe(event);
    let kind = match described.tone {
        Tone::Info => LogKind::Info,
        Tone::Statement => LogKind::Statement,
        Tone::Done => LogKind::Done,
        Tone::Warning => LogKind::Warning,
        Tone::Failure => LogKind::Failure,
    };
    for line in described.text.lines() {
        // The log mixes steps: a line that does not name its step gets the step id in front.
        let text = match &described.step_id {
            Some(step_id) if !line.contains(step_id.as_str()) => format!("{step_id} {line}"),
            _ => line.to_string(),
        };
        model.log(kind, text);
    }
}

fn step_started(model: &mut Model, step_id: &str, at: Instant) {
    let Some(i) = model.step_index(step_id) else { return };
    let step = &mut model.steps[i];
    step.state = UiStepState::Running;
    step.started = Some(at);
    step.error = None;
    step.checks.clear();
    step.progress = None;
    step.lock_wait = None;
    step.statement = None;
    // Follow the running step in the tree.
    let stage = step.stage;
    model.expanded.insert(stage);
    if let Some(row) = model.rows().iter().position(|r| *r == Row::Step(i)) {
        model.cursor = row;
    }
}

fn step_finished(model: &mut Model, step_id: &str, direction: Direction, duration_ms: u64, rows: u64) {
    let Some(i) = model.step_index(step_id) else { return };
    let step = &mut model.steps[i];
    step.state = if direction == Direction::Forward { UiStepState::Done } else { UiStepState::RolledBack };
    step.duration_ms = Some(duration_ms);
    step.rows = rows;
    step.progress = None;
    step.lock_wait = None;
    step.statement = None;
}

fn lock_wait(model: &mut Model, step_id: &str, waited_ms: u64, blockers: Vec<Blocker>) {
    let Some(i) = model.step_index(step_id) else { return };
    let previous = model.steps[i].lock_wait.take();
    model.steps[i].lock_wait = Some(LockWaitView {
        blockers,
        waited_ms,
        retries: previous.as_ref().map(|p| p.retries).unwrap_or(0),
        max_attempts: previous.map(|p| p.max_attempts).unwrap_or(0),
    });
}

fn retry(model: &mut Model, step_id: &str, attempt: u32, max_attempts: u32, blockers: Vec<Blocker>) {
    let Some(i) = model.step_index(step_id) else { return };
    let previous = model.steps[i].lock_wait.take();
    // A retry that names no blockers keeps the ones the last lock wait saw.
    let blockers =
        if blockers.is_empty() { previous.map(|p| p.blockers).unwrap_or_default() } else { blockers };
    model.steps[i].lock_wait = Some(LockWaitView { blockers, waited_ms: 0, retries: attempt, max_attempts });
}

/// A step's progress after a progress event: a smoothed rate from samples at least 0.2 s apart,
/// and the time left at that rate.
fn progress(
    previous: Option<ProgressView>,
    done: u64,
    total: Option<u64>,
    unit: ProgressUnit,
    phase: Option<String>,
    at: Instant,
) -> ProgressView {
    let mut view = previous.unwrap_or(ProgressView {
        done: 0,
        total,
        unit,
        phase: phase.clone(),
        rate_per_s: 0.0,
        eta_s: None,
        rate_samples: VecDeque::new(),
        last_sample: None,
    });
    if view.unit != unit || view.phase != phase {
        // A new phase of an index build: rates do not carry over.
        view.rate_per_s = 0.0;
        view.rate_samples.clear();
        view.last_sample = None;
    }
    if let Some((then, then_done)) = view.last_sample {
        let seconds = at.saturating_duration_since(then).as_secs_f64();
        if seconds >= 0.2 && done >= then_done {
            let rate = (done - then_done) as f64 / seconds;
            view.rate_per_s = if view.rate_per_s > 0.0 { 0.7 * view.rate_per_s + 0.3 * rate } else { rate };
            view.rate_samples.push_back(rate as u64);
            while view.rate_samples.len() > 60 {
                view.rate_samples.pop_front();
            }
            view.last_sample = Some((at, done));
        }
    } else {
        view.last_sample = Some((at, done));
    }
    view.done = done;
    view.total = total;
    view.unit = unit;
    view.phase = phase;
    view.eta_s = match (view.total, view.rate_per_s > 0.0) {
        (Some(total), true) => Some(((total.saturating_sub(done)) as f64 / view.rate_per_s).ceil() as u64),
        _ => None,
    };
    view
}
