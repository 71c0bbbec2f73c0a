//! Exit codes, as the README documents them, and the one mapping from every error of the
//! layers below to a code and a message. The engine and the checks never choose an exit code.

use crate::checks::CheckError;
use crate::db::journal::Direction;
use crate::db::{ConnError, DbError};
use crate::engine::EngineError;
use crate::plan::file::PlanFileError;

pub const SUCCESS: i32 = 0;
pub const PREFLIGHT_REFUSED: i32 = 1;
pub const STEP_FAILED: i32 = 2;
pub const VERIFY_FAILED: i32 = 3;
pub const ROLLBACK_FAILED: i32 = 4;
pub const USAGE: i32 = 5;

/// A failure with its exit code and the message for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }

    /// Bad input, a connection or a plan file problem, a lock held by another run.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(USAGE, message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code an engine error ends the process with.
pub fn engine_code(e: &EngineError) -> i32 {
    match e {
        EngineError::Preflight(_) => PREFLIGHT_REFUSED,
        EngineError::StepFailed { .. } | EngineError::Cancelled { direction: Direction::Forward, .. } => {
            STEP_FAILED
        }
        // An interrupted rollback did not finish either: the same code, the same advice.
        EngineError::RollbackFailed { .. }
        | EngineError::Cancelled { direction: Direction::Rollback, .. } => ROLLBACK_FAILED,
        EngineError::Connection(_)
        | EngineError::PlanFile(_)
        | EngineError::Drift { .. }
        | EngineError::Locked(_)
        | EngineError::OtherPlanActive { .. }
        | EngineError::Usage(_)
        | EngineError::Database(_) => USAGE,
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::new(engine_code(&e), e.to_string())
    }
}

impl From<CheckError> for Failure {
    fn from(e: CheckError) -> Self {
        let code = match &e {
            CheckError::Refused(_) => PREFLIGHT_REFUSED,
            CheckError::Db(_) | CheckError::Nothing(_) => USAGE,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<PlanFileError> for Failure {
    fn from(e: PlanFileError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::from(EngineError::from(e))
    }
}

impl From<ConnError> for Failure {
    fn from(e: ConnError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<crate::catalog::IntrospectError> for Failure {
    fn from(e: crate::catalog::IntrospectError) -> Self {
        Failure::usage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_documented_exit_code() {
        assert_eq!(engine_code(&EngineError::Preflight(vec![])), 1);
        assert_eq!(engine_code(&EngineError::StepFailed { step_id: "x".into(), error: "e".into() }), 2);
        let rollback = EngineError::RollbackFailed { step_id: "x".into(), error: "e".into(), undone: 2 };
        assert_eq!(engine_code(&rollback), 4);
        assert!(rollback.to_string().contains("after 2 steps had been rolled back"), "{rollback}");
        let cancelled = |direction| EngineError::Cancelled { step_id: "x".into(), direction };
        assert_eq!(engine_code(&cancelled(Direction::Forward)), 2);
        assert!(cancelled(Direction::Forward).to_string().contains("run apply again"));
        assert_eq!(engine_code(&cancelled(Direction::Rollback)), 4);
        assert!(cancelled(Direction::Rollback).to_string().contains("run rollback again to resume"));
        assert_eq!(engine_code(&EngineError::Drift { lines: vec![], started: false }), 5);
        assert_eq!(engine_code(&EngineError::Usage("x".into())), 5);
        assert_eq!(Failure::from(CheckError::Refused("no".into())).code, PREFLIGHT_REFUSED);
    }
}
