//! Replay a run log in the wizard: the model at any point of the recording is the events up to
//! there, folded into a fresh model (`fold` is pure), so stepping back and forth is just folding
//! again from the start. The recording itself is plain data, [`Replay`], kept in the model.

use std::time::{Duration, Instant};

use super::fold;
use super::state::{Model, Replay, Screen, ServerSummary};
use crate::event::Event;
use crate::runlog::RunLog;

/// A read-only model of `log`, positioned at its end.
pub fn model(log: &RunLog, now: Instant) -> Model {
    let (database, version) = log
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::RunStarted { database, server_version, .. } => {
                Some((database.clone(), server_version.clone()))
            }
            _ => None,
        })
        .unwrap_or_default();
    let server = ServerSummary {
        connection: format!("replay of a {} run started {}", log.command, log.started_at),
        database,
        version,
        role: log.plan.source.role.clone(),
        ..ServerSummary::default()
    };
    let mut model = Model::new(log.plan.clone(), log.plan.options.clone(), server, now);
    model.read_only = true;
    model.screen = Screen::Plan;
    let boundaries: Vec<usize> = log
        .events
        .iter()
        .enumerate()
        .filter(|(_, (_, e))| matches!(e, Event::StepFinished { .. } | Event::StepFailed { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    let end = boundaries.len();
    model.replay = Some(Replay {
        events: log.events.clone(),
        boundaries,
        position: 0,
        command: log.command.clone(),
        started_at: log.started_at.clone(),
    });
    seek(&mut model, end);
    model
}

/// Put the model at boundary `position` (clamped): a fresh model with the events up to there.
pub fn seek(model: &mut Model, position: usize) {
    let Some(mut replay) = model.replay.take() else { return };
    replay.position = position.min(replay.boundaries.len());
    let mut fresh =
        Model::new(model.plan.clone(), model.options.clone(), model.server.clone(), model.started);
    fresh.read_only = true;
    fresh.screen = model.screen;
    fresh.theme = model.theme;
    fresh.expanded = model.expanded.clone();
    for (at_ms, event) in &replay.events[..replay.upto()] {
        let at = model.started + Duration::from_millis(*at_ms);
        fresh.clock = at;
        fold::engine_event(&mut fresh, event.clone(), at);
    }
    // A step that was running at this point shows its elapsed time at this point.
    fresh.clock = model.started + Duration::from_millis(replay.at_ms());
    let message = match replay.position {
        0 => "replay: before the first step (→ or l steps forward)".to_string(),
        p => format!(
            "replay: step {p} of {} at +{:.1} s (← → to step)",
            replay.boundaries.len(),
            replay.at_ms() as f64 / 1000.0
        ),
    };
    fresh.message = Some((crate::plan::Severity::Info, message));
    fresh.replay = Some(replay);
    *model = fresh;
}
