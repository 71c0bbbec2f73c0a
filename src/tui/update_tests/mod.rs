//! Pure tests of `update`: actions and engine events in, model changes and commands out. No
//! terminal, no database, no clock (every `Instant` is a fixed offset from one epoch).

use super::*;
use crate::checks::TableCounts;
use crate::event::{Blocker, CheckPhase, Direction, ProgressUnit};
use crate::plan::{LockMode, Stage};
use crate::tui::view::fixture::{self, at};

fn act(model: &mut Model, action: Action) -> Vec<Command> {
    update(model, Msg::Action(action))
}

fn event(model: &mut Model, event: Event, at_ms: u64) {
    let commands = update(model, Msg::Engine(event, at(at_ms)));
    assert!(commands.is_empty(), "engine events never ask for work");
}

fn index(model: &Model, id: &str) -> usize {
    model.step_index(id).unwrap_or_else(|| panic!("no step {id}"))
}

fn done(model: &mut Model, ids: &[&str]) {
    for id in ids {
        let i = index(model, id);
        model.steps[i].state = UiStepState::Done;
    }
}

/// Cursor on a step (its stage open), on the Plan screen.
fn select(model: &mut Model, id: &str) {
    let i = index(model, id);
    model.screen = Screen::Plan;
    model.expanded.insert(model.steps[i].stage);
    model.cursor = model.rows().iter().position(|r| *r == Row::Step(i)).unwrap();
}

fn ids_in(model: &Model, stage: Stage) -> Vec<String> {
    model.steps.iter().filter(|s| s.stage == stage).map(|s| s.id.clone()).collect()
}

fn guard(step_id: &str, count: i64, forceable: bool) -> GuardCount {
    GuardCount {
        step_id: step_id.into(),
        name: format!("guard of {step_id}"),
        message: "rows would lose their tenant".into(),
        count,
        forceable,
        deferred: false,
    }
}

fn blocker() -> Blocker {
    Blocker {
        pid: 4242,
        application: "psql".into(),
        state: "idle in transaction".into(),
        query: "UPDATE issues SET title = 'x'".into(),
        transaction_ms: 60_000,
    }
}

fn message(model: &Model) -> String {
    model.message.as_ref().map(|(_, m)| m.clone()).unwrap_or_default()
}

// By what the user does: moving around (and stepping a replay), running jobs, and the engine's
// events and counts coming back.
mod events;
mod jobs;
mod moving;
