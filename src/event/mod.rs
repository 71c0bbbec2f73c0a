//! The one contract between the engine and the front ends (headless printer, TUI, run log).
//!
//! The engine sends these on a channel and never prints; every front end renders them.

use serde::{Deserialize, Serialize};

pub mod describe;

pub use crate::db::journal::Direction;
use crate::plan::{Finding, LockMode, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressUnit {
    Rows,
    Blocks,
}

/// A session another transaction is waiting behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub pid: i32,
    pub application: String,
    pub state: String,
    pub query: String,
    /// How long its current transaction has been open.
    pub transaction_ms: u64,
}

/// When a step's checks were counted: before the step ran, or after (where they must hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    Before,
    #[default]
    After,
    /// After the step was rolled back: counted for the record, not judged.
    AfterUndo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Success,
    Failed,
    Cancelled,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        direction: Direction,
        plan_hash: String,
        database: String,
        server_version: String,
        steps_total: usize,
        steps_to_run: usize,
    },
    Findings {
        findings: Vec<Finding>,
    },
    StepStarted {
        step_id: String,
        stage: Stage,
        title: String,
        direction: Direction,
        /// Where the step is in the plan, counted from 1 as the operator reads it (in the
        /// text output, the wizard and the run log's JSON alike).
        position: usize,
        /// Set when an interrupted run is picked up again: where ("at statement 3",
        /// "after key [2999]", "at block 120").
        resumed: Option<String>,
    },
    StatementStarted {
        step_id: String,
        index: usize,
        lock: LockMode,
        on: Vec<String>,
        sql: String,
        attempt: u32,
    },
    StatementFinished {
        step_id: String,
        index: usize,
        duration_ms: u64,
        rows: u64,
        /// Skipped because an earlier, interrupted run already did it.
        skipped: bool,
    },
    LockWait {
        step_id: String,
        index: usize,
        waited_ms: u64,
        blockers: Vec<Blocker>,
    },
    /// A routine autovacuum blocked a statement and was cancelled (or could not be).
    AutovacuumCancelled {
        step_id: String,
        index: usize,
        pid: i32,
        query: String,
        cancelled: bool,
        note: String,
    },
    Retry {
        step_id: String,
        index: usize,
        attempt: u32,
        max_attempts: u32,
        backoff_ms: u64,
        reason: String,
        blockers: Vec<Blocker>,
    },
    Progress {
        step_id: String,
        done: u64,
        total: Option<u64>,
        unit: ProgressUnit,
        phase: Option<String>,
    },
    Paused {
        step_id: String,
        paused: bool,
    },
    GuardResult {
        step_id: String,
        name: String,
        count: i64,
        forceable: bool,
    },
    CheckResult {
        step_id: String,
        name: String,
        value: i64,
        expected: i64,
        ok: bool,
        #[serde(default)]
        phase: CheckPhase,
    },
    StepSkipped {
        step_id: String,
        reason: String,
    },
    StepFinished {
        step_id: String,
        direction: Direction,
        duration_ms: u64,
        rows: u64,
    },
    StepFailed {
        step_id: String,
        direction: Direction,
        error: String,
    },
    RunFinished {
        outcome: RunOutcome,
        duration_ms: u64,
        message: String,
    },
}

pub type EventSender = tokio::sync::mpsc::UnboundedSender<Event>;
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<Event>;

pub fn channel() -> (EventSender, EventReceiver) {
    tokio::sync::mpsc::unbounded_channel()
}
