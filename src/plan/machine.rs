//! Each step changes one or more *parts* of the database (a column, an index, a constraint, a
//! policy), and each part is a small state machine written down in the plan: the states it can
//! be in, each with the catalog query that tells whether it holds, and the transitions between
//! them, each one statement (a transaction, or one command that cannot run in one).
//!
//! The engine never trusts its own bookkeeping about how far a step got: it asks the catalog
//! which state each part is in and follows the transitions from there to where it was asked to
//! go — the part's `done` states for `apply`, its `undone` states for `rollback`. So a step
//! resumes after an interruption at any point, in either direction, and switching direction
//! is just asking for the other target. A state nobody planned for (the application dropped
//! the object, say) is reported as such, and nothing is touched.

use std::collections::{BTreeSet, VecDeque};

use super::statement::{Part, PartState, Statement, Transition};

impl Part {
    pub fn state(&self, name: &str) -> Option<&PartState> {
        self.states.iter().find(|s| s.name == name)
    }

    pub fn is_done(&self, state: &str) -> bool {
        self.done.iter().any(|s| s == state)
    }

    pub fn is_undone(&self, state: &str) -> bool {
        self.undone.iter().any(|s| s == state)
    }

    /// The shortest way from `from` to any of `targets` (empty when already there; `None`
    /// when there is no way).
    pub fn path<'a>(&'a self, from: &str, targets: &[String]) -> Option<Vec<&'a Transition>> {
        if targets.iter().any(|t| t == from) {
            return Some(Vec::new());
        }
        let mut seen: BTreeSet<&str> = BTreeSet::from([from]);
        let mut queue: VecDeque<(&str, Vec<&Transition>)> = VecDeque::from([(from, Vec::new())]);
        while let Some((state, trail)) = queue.pop_front() {
            for t in self.transitions.iter().filter(|t| t.from == state) {
                if !seen.insert(t.to.as_str()) {
                    continue;
                }
                let mut next = trail.clone();
                next.push(t);
                if targets.contains(&t.to) {
                    return Some(next);
                }
                queue.push_back((t.to.as_str(), next));
            }
        }
        None
    }

    /// What `apply` does to a part that has not been touched: from `undone[0]` to `done[0]`.
    pub fn forward_path(&self) -> Vec<&Transition> {
        match (self.undone.first(), self.done.first()) {
            (Some(from), Some(to)) => self.path(from, std::slice::from_ref(to)).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The state a rollback of the whole plan finds this part in.
    pub fn rollback_start(&self) -> Option<&str> {
        self.rollback_from.as_deref().or(self.done.first().map(String::as_str))
    }

    /// What `rollback` does to a finished part: from where the rollback finds it to an undone
    /// state.
    pub fn rollback_path(&self) -> Vec<&Transition> {
        match self.rollback_start() {
            Some(from) => self.path(from, &self.undone).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Transitions on neither path: how an interrupted run, or one that switched direction,
    /// gets back on track.
    pub fn recovery(&self) -> Vec<&Transition> {
        let on_paths: Vec<&Transition> =
            self.forward_path().into_iter().chain(self.rollback_path()).collect();
        self.transitions.iter().filter(|t| !on_paths.iter().any(|p| std::ptr::eq(*p, *t))).collect()
    }

    /// Undoing this part needs nothing: every state it can be in is an undone state.
    pub fn needs_no_rollback(&self) -> bool {
        self.states.iter().all(|s| self.is_undone(&s.name))
    }
}

/// A part's state with its query, for building parts.
pub fn state(name: &str, when: String) -> PartState {
    PartState { name: name.to_string(), when }
}

/// A transition of one statement, for building parts.
pub fn transition(from: &str, to: &str, statement: Statement) -> Transition {
    Transition { from: from.to_string(), to: to.to_string(), statements: vec![statement] }
}

/// A transition of several statements run in one transaction.
pub fn transaction(from: &str, to: &str, statements: Vec<Statement>) -> Transition {
    Transition { from: from.to_string(), to: to.to_string(), statements }
}

/// Names as owned strings, for `done` and `undone`.
pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::LockMode;

    fn statement(sql: &str) -> Statement {
        crate::plan::ddl::stmt(LockMode::AccessExclusive, &[], sql.to_string())
    }

    /// The unique-swap machine in miniature: a detour on the way back, and recoveries.
    fn swap() -> Part {
        Part {
            name: "u".into(),
            states: ["scoped", "scoped+copy", "global-kept", "global"]
                .into_iter()
                .map(|n| state(n, format!("SELECT {n:?} IS NOT NULL")))
                .collect(),
            done: names(&["scoped"]),
            undone: names(&["global", "global-kept"]),
            rollback_from: None,
            transitions: vec![
                transition("global", "scoped", statement("swap")),
                transition("global-kept", "scoped", statement("rename back")),
                transition("scoped", "scoped+copy", statement("build copy")),
                transition("scoped+copy", "global-kept", statement("swap back")),
                transition("scoped+copy", "scoped", statement("drop copy")),
            ],
            guards: Vec::new(),
        }
    }

    fn sqls(path: &[&Transition]) -> Vec<String> {
        path.iter().map(|t| t.statements[0].sql.clone()).collect()
    }

    #[test]
    fn paths_go_from_any_state_to_the_nearest_target() {
        let part = swap();
        assert_eq!(sqls(&part.forward_path()), ["swap"]);
        assert_eq!(sqls(&part.rollback_path()), ["build copy", "swap back"]);
        let done = part.done.clone();
        // Interrupted on the way back, then asked to go forward again.
        assert_eq!(sqls(&part.path("scoped+copy", &done).unwrap()), ["drop copy"]);
        assert_eq!(sqls(&part.path("global-kept", &done).unwrap()), ["rename back"]);
        assert_eq!(sqls(&part.path("scoped+copy", &part.undone).unwrap()), ["swap back"]);
        assert!(part.path("scoped", &done).unwrap().is_empty());
        assert_eq!(sqls(&part.recovery()), ["rename back", "drop copy"]);
    }

    #[test]
    fn a_state_without_a_way_out_has_no_path() {
        let mut part = swap();
        part.states.push(state("gone", "SELECT true".into()));
        assert!(part.path("gone", &part.done.clone()).is_none());
        assert!(!part.needs_no_rollback());
    }
}
