//! What runs: statements with the lock each takes, the guards counted before undoing, and
//! the parts a step changes with their states and transitions (plain data; `plan::machine`
//! finds the ways between states).

use serde::{Deserialize, Serialize};

use crate::sql::QualifiedName;

/// PostgreSQL's table lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockMode {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "ACCESS SHARE")]
    AccessShare,
    #[serde(rename = "ROW SHARE")]
    RowShare,
    #[serde(rename = "ROW EXCLUSIVE")]
    RowExclusive,
    #[serde(rename = "SHARE UPDATE EXCLUSIVE")]
    ShareUpdateExclusive,
    #[serde(rename = "SHARE")]
    Share,
    #[serde(rename = "SHARE ROW EXCLUSIVE")]
    ShareRowExclusive,
    #[serde(rename = "EXCLUSIVE")]
    Exclusive,
    #[serde(rename = "ACCESS EXCLUSIVE")]
    AccessExclusive,
}

impl LockMode {
    /// Does holding this lock make INSERT/UPDATE/DELETE on the table wait?
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::Share
    }

    /// Does holding this lock make plain SELECTs wait?
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusive
    }

    pub fn label(self) -> &'static str {
        match self {
            LockMode::None => "none",
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// What the lock means for the application, in a few words.
    pub fn effect(self) -> &'static str {
        if self.blocks_reads() {
            "blocks reads and writes"
        } else if self.blocks_writes() {
            "blocks writes"
        } else if self == LockMode::None {
            "no table lock"
        } else {
            "reads and writes go on"
        }
    }
}

/// How long a statement may wait for its lock, and how long it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutProfile {
    /// Short DDL under a strong lock: a short `lock_timeout`, retried with backoff.
    #[default]
    Ddl,
    /// Long work under a weak lock (VALIDATE, CONCURRENTLY, batches): waiting longer harms
    /// nobody, so the lock timeout is longer and there is no statement timeout.
    Long,
}

/// How a statement must be executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StatementKind {
    /// One transaction (possibly several commands).
    #[default]
    Transaction,
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY` of the statement's `index`, outside any
    /// transaction; the engine shows the build's progress. A build that fails or is interrupted
    /// leaves the index INVALID: the part's states say so, and its transitions drop it.
    ConcurrentIndex,
    /// A command that cannot run in a transaction block (`DROP INDEX CONCURRENTLY IF EXISTS`).
    NonTransactional,
    /// The template of a batched backfill: run by the engine once per key range.
    Batch,
}

impl StatementKind {
    fn is_default(&self) -> bool {
        *self == StatementKind::Transaction
    }
}

/// One unit of execution: a transaction's worth of SQL, or one command that cannot run in a
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Statement {
    /// The strongest table lock the statement takes.
    pub lock: LockMode,
    /// The tables (or views) that lock is taken on.
    pub on: Vec<String>,
    #[serde(default, skip_serializing_if = "is_ddl_profile")]
    pub profile: TimeoutProfile,
    #[serde(default, skip_serializing_if = "StatementKind::is_default")]
    pub kind: StatementKind,
    /// The index a `concurrent-index` statement builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<QualifiedName>,
    /// Settings the statement runs under, as `name = value` (`citus.enable_unsafe_triggers =
    /// on`): `SET LOCAL` in its transaction, or `SET` before and `RESET` after a command that
    /// cannot run in one (which must be sent alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    pub sql: String,
}

impl Statement {
    /// The `SET` (or `SET LOCAL`) commands for [`Statement::settings`], in one string.
    pub fn settings_sql(&self, local: bool) -> String {
        let set = if local { "SET LOCAL" } else { "SET" };
        self.settings.iter().map(|s| format!("{set} {s};")).collect::<Vec<_>>().join(" ")
    }

    /// The `RESET` commands that undo [`Statement::settings_sql`] outside a transaction.
    pub fn reset_settings_sql(&self) -> String {
        self.settings
            .iter()
            .map(|s| format!("RESET {};", s.split('=').next().unwrap_or_default().trim()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn is_ddl_profile(profile: &TimeoutProfile) -> bool {
    *profile == TimeoutProfile::Ddl
}

/// A count taken before a rollback; a non-zero count means the rollback would lose or break
/// something, and it stops (unless `forceable` and `--force` was given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Guard {
    pub name: String,
    /// Shown with the count when the guard stops a rollback.
    pub message: String,
    pub forceable: bool,
    pub sql: String,
}

/// A state a part can be in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartState {
    pub name: String,
    /// One query returning one boolean: does this state hold? States are tested in the order
    /// they are listed and the first that holds is the part's state. A query that names a
    /// relation or column that does not exist does not hold.
    pub when: String,
}

/// One way from a state to another: one transaction (one or more statements), or one
/// command that cannot run in a transaction (a transition of one statement of that kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub statements: Vec<Statement>,
}

/// One thing a step changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    /// What the part is ("users_email_key on public.users").
    pub name: String,
    pub states: Vec<PartState>,
    /// Where `apply` leaves the part; the first is the state a finished apply is in.
    pub done: Vec<String>,
    /// Where `rollback` leaves the part (it has no effect there); the first is the state
    /// before the step ran.
    pub undone: Vec<String>,
    /// The state the rollback of later steps leaves this part in, when that is not `done[0]`
    /// (the rollback a reviewer reads, and an exported migration runs, starts there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
    pub transitions: Vec<Transition>,
    /// Counted before a rollback takes the part out of its done states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
}
