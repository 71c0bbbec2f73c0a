//! `update(&mut Model, Msg) -> Vec<Command>`: every change to the model happens here, and
//! nothing here waits on the database. Work the user asks for comes back as [`Command`]s that
//! the runtime runs on tasks; their results come back as messages.

use std::path::PathBuf;
use std::time::Instant;

use super::keys::Action;
use super::state::*;
use super::{fold, replay};
use crate::checks::{LivePreflight, VerifyReport};
use crate::engine::{GuardCount, RollbackTarget, StopAfter};
use crate::event::Event;
use crate::plan::Severity;

#[derive(Debug, Clone)]
pub enum Msg {
    Action(Action),
    /// An engine event, with the time it arrived.
    Engine(Event, Instant),
    /// A background apply or rollback ended (Ok: summary, Err: what failed).
    JobDone(Result<String, String>),
    Counts(Result<VerifyReport, String>, Instant),
    Guards(Result<Vec<GuardCount>, String>),
    Live(LivePreflight),
    /// The result of writing the plan file.
    Wrote(Result<PathBuf, String>),
    /// A line for the log pane from the runtime (where the run log goes, …).
    Notice(String),
    Tick(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Apply(StopAfter),
    Rollback { target: RollbackTarget, force: bool },
    CountGuards(Vec<String>),
    RefreshCounts { full: bool },
    SetPaused(bool),
    Cancel,
    WritePlan(PathBuf),
    Quit,
}

pub fn update(model: &mut Model, msg: Msg) -> Vec<Command> {
    match msg {
        Msg::Action(action) => on_action(model, action),
        Msg::Engine(event, at) => {
            fold::engine_event(model, event, at);
            Vec::new()
        }
        Msg::JobDone(result) => {
            model.job = None;
            // The engine's RunFinished event already put the outcome in the log.
            match result {
                Ok(summary) => model.message = Some((Severity::Info, summary)),
                Err(error) => model.message = Some((Severity::Error, error)),
            }
            // Steps the engine left "running" (a lost connection) are not running any more.
            for step in &mut model.steps {
                if step.state == UiStepState::Running {
                    step.state = UiStepState::Failed;
                    step.error.get_or_insert_with(|| "interrupted; apply resumes it".to_string());
                }
            }
            vec![Command::RefreshCounts { full: true }]
        }
        Msg::Counts(result, at) => {
            match result {
                Ok(mut report) => {
                    if !report.full
                        && let Some(previous) = &model.counts
                    {
                        // A quick refresh keeps the last full counts it does not take itself.
                        for table in &mut report.tables {
                            if let Some(old) = previous.tables.iter().find(|t| t.table == table.table) {
                                table.rows_per_tenant = old.rows_per_tenant.clone();
                                table.cross_tenant = old.cross_tenant;
                            }
                        }
                    }
                    model.counts = Some(report);
                    model.counts_at = Some(at);
                    model.counts_error = None;
                }
                Err(error) => counts_failed(model, error),
            }
            Vec::new()
        }
        Msg::Guards(result) => {
            if let Some(Overlay::ConfirmRollback { step_ids, guards, .. }) = &mut model.overlay {
                // Counts for other steps (a dialog closed and another opened meanwhile) are stale.
                let stale =
                    matches!(&result, Ok(counts) if counts.iter().any(|g| !step_ids.contains(&g.step_id)));
                if !stale {
                    *guards = Some(result);
                }
            }
            Vec::new()
        }
        Msg::Live(live) => {
            model.live = Some(live);
            Vec::new()
        }
        Msg::Wrote(result) => {
            match result {
                Ok(path) => {
                    let text = format!("wrote the plan to {}", path.display());
                    model.log(LogKind::Info, text.clone());
                    model.message = Some((Severity::Info, text));
                    model.plan_path = Some(path);
                }
                Err(e) => model.message = Some((Severity::Error, e)),
            }
            Vec::new()
        }
        Msg::Tick(now) => {
            model.clock = now;
            Vec::new()
        }
        Msg::Notice(text) => {
            model.log(LogKind::Info, text);
            Vec::new()
        }
    }
}

fn busy(model: &mut Model) -> bool {
    if let Some(job) = &model.job {
        model.message = Some((
            Severity::Warning,
            format!("{} is running: wait, or press c to cancel it", job.description),
        ));
        return true;
    }
    false
}

fn on_action(model: &mut Model, action: Action) -> Vec<Command> {
    match &model.overlay {
        Some(Overlay::Help) => {
            if matches!(action, Action::Dismiss | Action::Help | Action::Quit) {
                model.overlay = None;
            }
            return Vec::new();
        }
        Some(Overlay::ConfirmApply { .. })
        | Some(Overlay::ConfirmRollback { .. })
        | Some(Overlay::ConfirmQuit) => {
            return on_confirm(model, action);
        }
        Some(Overlay::WritePlan { .. }) => return on_prompt(model, action),
        None => {}
    }
    match action {
        Action::Up | Action::Down | Action::PageUp | Action::PageDown => move_cursor(model, action),
        Action::Open => open(model),
        Action::NextScreen | Action::PrevScreen => {
            let at = Screen::ALL.iter().position(|s| *s == model.screen).unwrap_or(0);
            let n = Screen::ALL.len();
            let next = if action == Action::NextScreen { (at + 1) % n } else { (at + n - 1) % n };
            model.screen = Screen::ALL[next];
        }
        Action::Apply | Action::ApplyStage => ask_apply(model, action == Action::ApplyStage),
        Action::Rollback => return ask_rollback(model, RollbackScope::LastStep),
        Action::RollbackStage => return ask_rollback(model, RollbackScope::SelectedStage),
        Action::RollbackAll => return ask_rollback(model, RollbackScope::Everything),
        Action::Pause => return pause(model),
        Action::Cancel => return cancel(model),
        Action::Validate => {
            model.message = Some((Severity::Info, "validating: counting every table…".into()));
            return vec![Command::RefreshCounts { full: true }];
        }
        Action::ToggleShared => toggle_shared(model),
        Action::WritePlan => {
            let path = model
                .plan_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("plans/{}.plan.toml", model.server.database)));
            model.overlay = Some(Overlay::WritePlan { path: path.display().to_string() });
        }
        Action::Help => model.overlay = Some(Overlay::Help),
        Action::Quit => {
            if model.job.is_some() || model.plan_unsaved() {
                model.overlay = Some(Overlay::ConfirmQuit);
            } else {
                model.quit = true;
                return vec![Command::Quit];
            }
        }
        Action::StepBack | Action::StepForward => step_replay(model, action == Action::StepForward),
        Action::Confirm | Action::Dismiss | Action::Force | Action::Input(_) | Action::Backspace => {}
    }
    Vec::new()
}

/// Enter: on the Plan screen open or close the selected stage; on the Overview go to the plan.
fn open(model: &mut Model) {
    if model.screen == Screen::Plan {
        let stage = match model.selected_row() {
            Row::Stage(stage) => stage,
            Row::Step(i) => model.steps[i].stage,
        };
        if !model.expanded.remove(&stage) {
            model.expanded.insert(stage);
        }
        // Keep the cursor on the stage row.
        if let Some(row) = model.rows().iter().position(|r| *r == Row::Stage(stage)) {
            model.cursor = row;
        }
    } else if model.screen == Screen::Overview {
        model.screen = Screen::Plan;
    }
}

/// Nothing may change the database: a replay, or a job already running (says so).
fn refused(model: &mut Model) -> bool {
    if model.read_only {
        model.message = Some((Severity::Warning, "a replay is read-only".into()));
        return true;
    }
    busy(model)
}

/// a / A: confirm applying through the selected step, or through the rest of its stage.
fn ask_apply(model: &mut Model, whole_stage: bool) {
    if refused(model) {
        return;
    }
    let Some(selected) = model.selected_step() else { return };
    let (stop_after, scope, last) = if whole_stage {
        let stage = model.steps[selected].stage;
        let last = model.steps.iter().rposition(|s| s.stage == stage).unwrap_or(selected);
        (StopAfter::Stage(stage), format!("through stage {stage}"), last)
    } else {
        let id = model.steps[selected].id.clone();
        (StopAfter::Step(id.clone()), format!("through step {id}"), selected)
    };
    let step_ids: Vec<String> = model.steps[..=last]
        .iter()
        .filter(|s| !matches!(s.state, UiStepState::Done | UiStepState::Skipped))
        .map(|s| s.id.clone())
        .collect();
    if step_ids.is_empty() {
        model.message = Some((Severity::Info, format!("nothing to apply {scope}: already done")));
        return;
    }
    model.overlay = Some(Overlay::ConfirmApply { step_ids, scope, stop_after });
}

/// Which rollback a key asks for: `r` the last applied step, `R` the selected stage (and every
/// later one, since stages are undone in reverse order), `U` everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackScope {
    LastStep,
    SelectedStage,
    Everything,
}

/// Confirm a rollback, counting first what it would lose (the same guards `rollback` runs).
fn ask_rollback(model: &mut Model, scope: RollbackScope) -> Vec<Command> {
    if refused(model) {
        return Vec::new();
    }
    // Applied steps, last first: the order a rollback undoes them in.
    let applied: Vec<usize> =
        (0..model.steps.len()).rev().filter(|&i| model.steps[i].state.has_effects()).collect();
    if applied.is_empty() {
        model.message = Some((Severity::Info, "nothing has been applied".into()));
        return Vec::new();
    }
    let (target, title, undone): (RollbackTarget, String, Vec<usize>) = match scope {
        RollbackScope::LastStep => {
            (RollbackTarget::LastStep, model.steps[applied[0]].id.clone(), vec![applied[0]])
        }
        RollbackScope::Everything => (RollbackTarget::All, "everything".into(), applied),
        RollbackScope::SelectedStage => {
            let Some(stage) = model.selected_step().map(|i| model.steps[i].stage) else { return Vec::new() };
            let undone: Vec<usize> = applied.into_iter().filter(|&i| model.steps[i].stage >= stage).collect();
            if undone.is_empty() {
                model.message =
                    Some((Severity::Info, format!("nothing of stage {stage} or later is applied")));
                return Vec::new();
            }
            // Keep the stages before it: down to the last earlier stage, or everything.
            let target = match model.steps.iter().map(|s| s.stage).filter(|s| *s < stage).max() {
                Some(keep) => RollbackTarget::ToStage(keep),
                None => RollbackTarget::All,
            };
            let later = undone.iter().any(|&i| model.steps[i].stage > stage);
            (target, format!("stage {stage}{}", if later { " and later" } else { "" }), undone)
        }
    };
    let step_ids: Vec<String> = undone.iter().map(|&i| model.steps[i].id.clone()).collect();
    model.overlay = Some(Overlay::ConfirmRollback {
        target,
        scope: title,
        step_ids: step_ids.clone(),
        guards: None,
        force: false,
    });
    vec![Command::CountGuards(step_ids)]
}

fn pause(model: &mut Model) -> Vec<Command> {
    let backfilling = model
        .running_step()
        .and_then(|s| s.progress.as_ref())
        .is_some_and(|p| p.phase.as_deref() == Some("backfill"));
    match &mut model.job {
        Some(job) if job.kind == JobKind::Apply && (backfilling || job.paused) => {
            job.paused = !job.paused;
            let paused = job.paused;
            let text = if paused { "backfill pauses after the current batch" } else { "backfill resumed" };
            model.message = Some((Severity::Info, text.into()));
            vec![Command::SetPaused(paused)]
        }
        _ => {
            model.message = Some((Severity::Info, "p pauses a running backfill; none is running".into()));
            Vec::new()
        }
    }
}

fn cancel(model: &mut Model) -> Vec<Command> {
    match &mut model.job {
        Some(job) if !job.cancelling => {
            job.cancelling = true;
            model.message = Some((
                Severity::Warning,
                "cancelling: the running statement is stopped and its transaction rolled back".into(),
            ));
            vec![Command::Cancel]
        }
        Some(_) => Vec::new(),
        None => {
            model.message = Some((Severity::Info, "nothing is running".into()));
            Vec::new()
        }
    }
}

/// ← / →: in a replay, one step boundary back or forward (folding the recording again).
fn step_replay(model: &mut Model, forward: bool) {
    if let Some(recording) = &model.replay {
        let position = if forward { recording.position + 1 } else { recording.position.saturating_sub(1) };
        replay::seek(model, position);
        return;
    }
    if !model.read_only {
        model.message = Some((Severity::Info, "←/→ step through a replay (tenantize replay RUNLOG)".into()));
    }
}

fn on_confirm(model: &mut Model, action: Action) -> Vec<Command> {
    let overlay = model.overlay.clone();
    match (overlay, action) {
        (_, Action::Dismiss) => {
            model.overlay = None;
            Vec::new()
        }
        // Ctrl-C in a dialog: a second Ctrl-C confirms quitting; elsewhere it closes the dialog
        // and quits as it would without one (asking first while a step runs).
        (Some(Overlay::ConfirmQuit), Action::Quit) => on_confirm(model, Action::Confirm),
        (_, Action::Quit) => {
            model.overlay = None;
            on_action(model, Action::Quit)
        }
        (Some(Overlay::ConfirmApply { step_ids, stop_after, scope }), Action::Confirm) => {
            model.overlay = None;
            model.screen = Screen::Plan;
            model.job = Some(Job {
                kind: JobKind::Apply,
                description: format!("apply {scope} ({} steps)", step_ids.len()),
                paused: false,
                cancelling: false,
            });
            with_plan_written(model, Command::Apply(stop_after))
        }
        (Some(Overlay::ConfirmRollback { force, .. }), Action::Force) => {
            if let Some(Overlay::ConfirmRollback { force: f, .. }) = &mut model.overlay {
                *f = !force;
            }
            Vec::new()
        }
        (Some(Overlay::ConfirmRollback { target, scope, step_ids, guards, force }), Action::Confirm) => {
            match guards {
                None => {
                    model.message =
                        Some((Severity::Info, "still counting what the rollback would lose…".into()));
                    Vec::new()
                }
                Some(Err(e)) => {
                    model.message = Some((Severity::Error, format!("cannot count before rolling back: {e}")));
                    Vec::new()
                }
                Some(Ok(counts)) => {
                    if let Some(blocking) = counts.iter().find(|g| g.count > 0 && !g.forceable) {
                        let text = format!("{}: {} {}", blocking.step_id, blocking.count, blocking.message);
                        model.message = Some((Severity::Error, text));
                        return Vec::new();
                    }
                    if let Some(lossy) = counts.iter().find(|g| g.count > 0 && g.forceable)
                        && !force
                    {
                        model.message = Some((
                            Severity::Warning,
                            format!("{} {}: press F to undo anyway, then y", lossy.count, lossy.message),
                        ));
                        return Vec::new();
                    }
                    model.overlay = None;
                    model.screen = Screen::Plan;
                    model.job = Some(Job {
                        kind: JobKind::Rollback,
                        description: format!("roll back {scope} ({})", plural_steps(step_ids.len())),
                        paused: false,
                        cancelling: false,
                    });
                    with_plan_written(model, Command::Rollback { target, force })
                }
            }
        }
        (Some(Overlay::ConfirmQuit), Action::Confirm) => {
            model.overlay = None;
            model.quit = true;
            if let Some(job) = &mut model.job {
                job.cancelling = true;
            }
            vec![Command::Cancel, Command::Quit]
        }
        _ => Vec::new(),
    }
}

/// `run`, after writing the plan to its default file when it is in none (the run keeps it in
/// the journal too): what a run of a plan built in the wizard starts with.
fn with_plan_written(model: &Model, run: Command) -> Vec<Command> {
    match model.plan_file_for_run() {
        Some(path) => vec![Command::WritePlan(path), run],
        None => vec![run],
    }
}

fn on_prompt(model: &mut Model, action: Action) -> Vec<Command> {
    let Some(Overlay::WritePlan { path }) = &mut model.overlay else { return Vec::new() };
    match action {
        Action::Input(c) => {
            path.push(c);
            Vec::new()
        }
        Action::Backspace => {
            path.pop();
            Vec::new()
        }
        Action::Confirm => {
            let target = PathBuf::from(path.trim());
            model.overlay = None;
            if target.as_os_str().is_empty() {
                model.message = Some((Severity::Warning, "no file name given; nothing written".into()));
                return Vec::new();
            }
            vec![Command::WritePlan(target)]
        }
        Action::Dismiss => {
            model.overlay = None;
            Vec::new()
        }
        Action::Quit => {
            model.overlay = None;
            on_action(model, Action::Quit)
        }
        _ => Vec::new(),
    }
}

fn move_cursor(model: &mut Model, action: Action) {
    let page = 10;
    let delta: isize = match action {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -page,
        _ => page,
    };
    let step = |value: usize, len: usize| -> usize {
        if len == 0 {
            return 0;
        }
        (value as isize + delta).clamp(0, len as isize - 1) as usize
    };
    match model.screen {
        Screen::Plan => model.cursor = step(model.cursor, model.rows().len()),
        Screen::Overview | Screen::Counts => {
            model.table_cursor = step(model.table_cursor, model.plan.tables.len());
        }
        Screen::Log => {
            // Scrolling up goes back in time: the offset counts lines from the bottom.
            let offset = model.log_scroll as isize - delta;
            model.log_scroll = offset.clamp(0, model.log.len().saturating_sub(1) as isize) as usize;
        }
    }
}

fn toggle_shared(model: &mut Model) {
    if model.screen != Screen::Overview {
        model.message = Some((Severity::Info, "e toggles the table selected on the Overview screen".into()));
        return;
    }
    if model.read_only || model.job.is_some() || !model.nothing_applied() {
        model.message =
            Some((Severity::Warning, "tables can be toggled only while nothing is applied".into()));
        return;
    }
    let Some(catalog) = model.catalog.clone() else {
        model.message = Some((
            Severity::Warning,
            "this plan was loaded from a file: rebuild it with tenantize plan".into(),
        ));
        return;
    };
    let Some(table) = model.plan.tables.get(model.table_cursor) else { return };
    let root = catalog.partition_root(&table.name).clone();
    let key = root.display_plain();
    let mut options = model.options.clone();
    let now_shared = if let Some(at) = options.exclude.iter().position(|e| *e == key) {
        options.exclude.remove(at);
        false
    } else {
        options.exclude.push(key.clone());
        options.exclude.sort();
        true
    };
    let generated_at = model.plan.source.generated_at.clone();
    match crate::plan::build(&catalog, &options, &generated_at) {
        Ok(plan) => {
            let mut rebuilt = Model::new(plan, options, model.server.clone(), model.clock);
            rebuilt.catalog = model.catalog.take();
            rebuilt.screen = model.screen;
            rebuilt.table_cursor = model.table_cursor;
            rebuilt.counts = model.counts.take();
            rebuilt.counts_at = model.counts_at;
            rebuilt.live = model.live.take();
            rebuilt.log = std::mem::take(&mut model.log);
            rebuilt.started = model.started;
            rebuilt.theme = model.theme;
            rebuilt.plan_check = std::mem::take(&mut model.plan_check);
            rebuilt.plan_path = None;
            *model = rebuilt;
            let what = if now_shared { "shared (no tenant column, no policy)" } else { "tenant-scoped" };
            let text =
                format!("{key} is now {what}; the plan was rebuilt ({} steps)", model.plan.steps.len());
            model.log(LogKind::Info, text.clone());
            model.message = Some((Severity::Info, text));
        }
        Err(e) => model.message = Some((Severity::Error, e.to_string())),
    }
}

fn plural_steps(n: usize) -> String {
    if n == 1 { "1 step".into() } else { format!("{n} steps") }
}

/// A count that failed: say so where the operator looks (the status line, the Log) and keep
/// the last numbers, which the Counts screen then marks as stale. A quick refresh that keeps
/// failing the same way is logged once.
fn counts_failed(model: &mut Model, error: String) {
    let stale = match model.counts_age() {
        Some(age) => format!("the counts shown are from {:.1} s ago", age.as_secs_f64()),
        None => "no counts yet".to_string(),
    };
    let text = format!("counting failed: {} ({stale})", error.lines().next().unwrap_or(""));
    if model.counts_error.as_deref() != Some(error.as_str()) {
        model.log(LogKind::Failure, text.clone());
    }
    let validating = matches!(&model.message, Some((Severity::Info, m)) if m.starts_with("validating"));
    if validating || model.counts_error.as_deref() != Some(error.as_str()) {
        model.message = Some((Severity::Error, text));
    }
    model.counts_error = Some(error);
}

#[cfg(test)]
#[path = "update_tests/mod.rs"]
mod update_tests;
