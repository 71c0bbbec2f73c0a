//! The wizard's model: plain data, changed only by `update`, drawn by `view`.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::checks::{LivePreflight, VerifyReport};
use crate::engine::{GuardCount, JournalStep, StepState};
use crate::event::{Blocker, Event, ProgressUnit};
use crate::plan::{Plan, PlanOptions, Severity, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Plan,
    Counts,
    Log,
}

impl Screen {
    pub const ALL: [Screen; 4] = [Screen::Overview, Screen::Plan, Screen::Counts, Screen::Log];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Plan => "Plan",
            Screen::Counts => "Counts",
            Screen::Log => "Log",
        }
    }
}

/// What a step looks like in the wizard (the journal's states, plus "skipped" for steps that
/// ran nothing because an earlier run had done them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiStepState {
    Pending,
    Running,
    Done,
    Failed,
    RolledBack,
    Skipped,
}

impl UiStepState {
    pub fn from_journal(state: StepState) -> Self {
        match state {
            StepState::Pending => UiStepState::Pending,
            StepState::Running => UiStepState::Running,
            StepState::Done => UiStepState::Done,
            StepState::Failed => UiStepState::Failed,
            StepState::RolledBack => UiStepState::RolledBack,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            UiStepState::Pending => "pending",
            UiStepState::Running => "running",
            UiStepState::Done => "done",
            UiStepState::Failed => "failed",
            UiStepState::RolledBack => "rolled back",
            UiStepState::Skipped => "skipped",
        }
    }

    /// One character for tight lists.
    pub fn symbol(self) -> &'static str {
        match self {
            UiStepState::Pending => "·",
            UiStepState::Running => "▶",
            UiStepState::Done => "✓",
            UiStepState::Failed => "✗",
            UiStepState::RolledBack => "↶",
            UiStepState::Skipped => "-",
        }
    }

    /// The step may have changed the database (what `r` can undo).
    pub fn has_effects(self) -> bool {
        matches!(self, UiStepState::Running | UiStepState::Done | UiStepState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    pub done: u64,
    pub total: Option<u64>,
    pub unit: ProgressUnit,
    pub phase: Option<String>,
    /// Units per second over the last samples.
    pub rate_per_s: f64,
    pub eta_s: Option<u64>,
    /// Recent rates (units per second), oldest first, for a sparkline.
    pub rate_samples: VecDeque<u64>,
    pub last_sample: Option<(Instant, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWaitView {
    pub blockers: Vec<Blocker>,
    /// How long the current attempt has waited.
    pub waited_ms: u64,
    /// Lock timeouts so far on this statement.
    pub retries: u32,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckView {
    pub name: String,
    pub value: i64,
    pub expected: i64,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub id: String,
    pub stage: Stage,
    pub title: String,
    pub state: UiStepState,
    pub started: Option<Instant>,
    pub duration_ms: Option<u64>,
    pub rows: u64,
    pub error: Option<String>,
    pub statement: Option<usize>,
    pub progress: Option<ProgressView>,
    pub lock_wait: Option<LockWaitView>,
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Info,
    Statement,
    Done,
    Warning,
    Failure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Milliseconds since the wizard started.
    pub at_ms: u64,
    pub kind: LogKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Apply,
    Rollback,
}

/// Work running in the background (the engine, on its own task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    pub description: String,
    pub paused: bool,
    pub cancelling: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help,
    ConfirmApply {
        /// Steps that would run, in order.
        step_ids: Vec<String>,
        /// "through step X" / "through stage 6 indexes".
        scope: String,
        stop_after: crate::engine::StopAfter,
    },
    ConfirmRollback {
        /// What confirming runs: the last step, down to a stage, or everything.
        target: crate::engine::RollbackTarget,
        /// What the dialog's title says it undoes: a step's id, "stage 7 uniques and later",
        /// "everything".
        scope: String,
        /// The steps it undoes, in the order it undoes them (their guards are counted).
        step_ids: Vec<String>,
        /// `None` while the pre-checks are still counting.
        guards: Option<Result<Vec<GuardCount>, String>>,
        force: bool,
    },
    ConfirmQuit,
    /// A path prompt for `w`.
    WritePlan {
        path: String,
    },
}

/// A row of the plan tree: a stage, or one of its steps (index into `Model::steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Stage(Stage),
    Step(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

/// What the wizard knows about where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSummary {
    pub connection: String,
    pub database: String,
    pub version: String,
    pub role: String,
    pub superuser: bool,
    pub bypass_rls: bool,
    pub can_create_schema: bool,
    pub owns_all_tables: bool,
}

/// A run log being replayed, and where the replay stands: the model shows the recorded events
/// up to `position` step boundaries (`replay::seek` folds them).
#[derive(Debug, Clone)]
pub struct Replay {
    /// The recorded events, with their time since the run started.
    pub events: Vec<(u64, Event)>,
    /// Event count after each step ended (a step boundary), in order.
    pub boundaries: Vec<usize>,
    /// How many boundaries are applied (0: before the first step).
    pub position: usize,
    pub command: String,
    pub started_at: String,
}

impl Replay {
    /// How many events are applied at the current position.
    pub fn upto(&self) -> usize {
        self.position.checked_sub(1).map(|p| self.boundaries[p]).unwrap_or(0)
    }

    /// The recording's time at the current position.
    pub fn at_ms(&self) -> u64 {
        self.upto().checked_sub(1).and_then(|i| self.events.get(i)).map(|(at, _)| *at).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub plan: Plan,
    /// The file the plan is in: opened from, or written to (`w`, or when a run starts).
    pub plan_path: Option<PathBuf>,
    /// Where a plan in no file (built here, or resumed from the journal's copy) is written when
    /// a run of it starts: the current directory.
    pub plan_dir: PathBuf,
    pub catalog: Option<Catalog>,
    pub options: PlanOptions,
    pub server: ServerSummary,
    /// What checking the plan against the database found (checksums, drift), with severity.
    pub plan_check: Vec<(Severity, String)>,
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub steps: Vec<StepView>,
    pub expanded: BTreeSet<Stage>,
    /// Cursor in the plan tree (index into `rows()`).
    pub cursor: usize,
    /// Cursor in the overview's table list (index into `plan.tables`).
    pub table_cursor: usize,
    pub counts: Option<VerifyReport>,
    pub counts_at: Option<Instant>,
    pub counts_error: Option<String>,
    pub live: Option<LivePreflight>,
    pub log: Vec<LogLine>,
    /// Lines scrolled up from the bottom of the log.
    pub log_scroll: usize,
    pub job: Option<Job>,
    pub message: Option<(Severity, String)>,
    pub started: Instant,
    /// The time as of the last tick: views compute ages from it, so drawing is deterministic.
    pub clock: Instant,
    pub theme: Theme,
    /// Replay: nothing can be applied or rolled back.
    pub read_only: bool,
    /// Set when the wizard replays a run log.
    pub replay: Option<Replay>,
    pub quit: bool,
}

impl Model {
    pub fn new(plan: Plan, options: PlanOptions, server: ServerSummary, now: Instant) -> Model {
        let steps = plan
            .steps
            .iter()
            .map(|s| StepView {
                id: s.id.clone(),
                stage: s.stage,
                title: s.title.clone(),
                state: UiStepState::Pending,
                started: None,
                duration_ms: None,
                rows: 0,
                error: None,
                statement: None,
                progress: None,
                lock_wait: None,
                checks: Vec::new(),
            })
            .collect();
        Model {
            plan,
            plan_path: None,
            plan_dir: PathBuf::from("."),
            catalog: None,
            options,
            server,
            plan_check: Vec::new(),
            screen: Screen::Overview,
            overlay: None,
            steps,
            expanded: BTreeSet::new(),
            cursor: 0,
            table_cursor: 0,
            counts: None,
            counts_at: None,
            counts_error: None,
            live: None,
            log: Vec::new(),
            log_scroll: 0,
            job: None,
            message: None,
            started: now,
            clock: now,
            theme: Theme { color: true },
            read_only: false,
            replay: None,
            quit: false,
        }
    }

    /// Take the journal's view of the steps (resuming a conversion in progress).
    pub fn apply_journal(&mut self, journal: &[JournalStep]) {
        for entry in journal {
            if let Some(step) = self.steps.iter_mut().find(|s| s.id == entry.step_id) {
                step.state = UiStepState::from_journal(entry.state);
                step.duration_ms = entry.duration_ms.map(|d| d.max(0) as u64);
                step.rows = entry.rows_affected.max(0) as u64;
                step.error = entry.error.clone();
                if step.state == UiStepState::Running {
                    // Running in the journal but nobody runs it: an interrupted run.
                    step.state = UiStepState::Failed;
                    step.error.get_or_insert_with(|| "interrupted; apply resumes it".to_string());
                }
            }
        }
        // Open the stage where the conversion stands.
        if let Some(stage) = self.current_stage() {
            self.expanded.insert(stage);
            if let Some(row) = self.rows().iter().position(|r| *r == Row::Stage(stage)) {
                self.cursor = row;
            }
        }
    }

    /// The stage of the first step not done (where the conversion stands).
    pub fn current_stage(&self) -> Option<Stage> {
        self.steps
            .iter()
            .find(|s| s.state != UiStepState::Done && s.state != UiStepState::Skipped)
            .map(|s| s.stage)
    }

    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for stage in Stage::ALL {
            // Stage 9 exists only in plans that distribute.
            if stage == Stage::Distribute && !self.steps.iter().any(|s| s.stage == stage) {
                continue;
            }
            rows.push(Row::Stage(stage));
            if self.expanded.contains(&stage) {
                rows.extend(
                    self.steps
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.stage == stage)
                        .map(|(i, _)| Row::Step(i)),
                );
            }
        }
        rows
    }

    pub fn selected_row(&self) -> Row {
        let rows = self.rows();
        rows.get(self.cursor.min(rows.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Row::Stage(Stage::TenantTable))
    }

    /// The step the cursor is on (a stage row selects its first step not done, else its last).
    pub fn selected_step(&self) -> Option<usize> {
        match self.selected_row() {
            Row::Step(i) => Some(i),
            Row::Stage(stage) => {
                let in_stage: Vec<usize> =
                    self.steps.iter().enumerate().filter(|(_, s)| s.stage == stage).map(|(i, _)| i).collect();
                in_stage
                    .iter()
                    .copied()
                    .find(|&i| self.steps[i].state != UiStepState::Done)
                    .or_else(|| in_stage.last().copied())
            }
        }
    }

    /// (done, total) steps of a stage.
    pub fn stage_progress(&self, stage: Stage) -> (usize, usize) {
        let in_stage: Vec<&StepView> = self.steps.iter().filter(|s| s.stage == stage).collect();
        let done =
            in_stage.iter().filter(|s| matches!(s.state, UiStepState::Done | UiStepState::Skipped)).count();
        (done, in_stage.len())
    }

    /// The state that summarises a stage for the tree.
    pub fn stage_state(&self, stage: Stage) -> UiStepState {
        let states: Vec<UiStepState> =
            self.steps.iter().filter(|s| s.stage == stage).map(|s| s.state).collect();
        if states.contains(&UiStepState::Running) {
            UiStepState::Running
        } else if states.contains(&UiStepState::Failed) {
            UiStepState::Failed
        } else if !states.is_empty()
            && states.iter().all(|s| matches!(s, UiStepState::Done | UiStepState::Skipped))
        {
            UiStepState::Done
        } else if states.contains(&UiStepState::RolledBack) && !states.contains(&UiStepState::Done) {
            UiStepState::RolledBack
        } else {
            UiStepState::Pending
        }
    }

    /// The step that is running (or was last started), for the live panel.
    pub fn running_step(&self) -> Option<&StepView> {
        self.steps.iter().find(|s| s.state == UiStepState::Running)
    }

    /// The last step (by position) that changed the database: what `r` undoes.
    pub fn last_applied(&self) -> Option<usize> {
        self.steps.iter().rposition(|s| s.state.has_effects())
    }

    /// The file a run about to start writes the plan to first: the default path, shown on the
    /// confirmation, when the plan is in no file (`None` when it is, and in a replay).
    pub fn plan_file_for_run(&self) -> Option<PathBuf> {
        if self.plan_path.is_some() || self.read_only {
            return None;
        }
        let path = crate::app::resume::default_plan_path(
            &self.plan_dir,
            &self.server.database,
            &self.plan.plan_hash,
        );
        Some(path)
    }

    /// Steps of the plan changed the database but the plan is in no file (only the journal
    /// keeps it): quitting asks first.
    pub fn plan_unsaved(&self) -> bool {
        self.plan_path.is_none() && !self.read_only && !self.nothing_applied()
    }

    /// Nothing has been applied (tables may still be toggled between scoped and shared).
    pub fn nothing_applied(&self) -> bool {
        self.steps.iter().all(|s| matches!(s.state, UiStepState::Pending | UiStepState::RolledBack))
    }

    pub fn log(&mut self, kind: LogKind, text: impl Into<String>) {
        let at_ms = self.clock.saturating_duration_since(self.started).as_millis() as u64;
        self.log.push(LogLine { at_ms, kind, text: text.into() });
        if self.log.len() > 5000 {
            self.log.drain(..1000);
        }
    }

    pub fn counts_age(&self) -> Option<Duration> {
        self.counts_at.map(|t| self.clock.saturating_duration_since(t))
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}
