//! The terminal shell around the [`Runtime`]: keys and ticks in, frames out. The terminal is
//! restored on quit, on error, on panic and on Ctrl-C.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;

use super::Runtime;
use super::job::ENGINE_THREAD;
use crate::db::ConnSpec;
use crate::engine::RunSettings;
use crate::tui::keys::{self, Context};
use crate::tui::state::{Model, Overlay};
use crate::tui::update::Msg;
use crate::tui::view;

const TICK_INTERVAL: Duration = Duration::from_millis(250);

fn context(model: &Model) -> Context {
    match model.overlay {
        None => Context::Normal,
        Some(Overlay::Help) => Context::Help,
        Some(Overlay::WritePlan { .. }) => Context::Prompt,
        Some(_) => Context::Confirm,
    }
}

/// Open the wizard on `model` until the user quits. `spec` is where the engine and the counts
/// connect; `None` makes a read-only wizard (replay).
pub async fn run(spec: Option<ConnSpec>, mut model: Model, settings: RunSettings) -> Result<(), String> {
    if !std::io::stdout().is_terminal() {
        return Err(
            "the wizard needs a terminal; use the headless commands (plan, apply, rollback) instead".into()
        );
    }
    model.theme.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    keep_the_terminal_on_engine_panics();
    let mut runtime = Runtime::new(spec, settings);
    let result = event_loop(&mut terminal, &mut runtime, &mut model).await;
    ratatui::restore();
    runtime.shutdown().await;
    result
}

/// ratatui's panic hook restores the terminal; an engine panic ends only the job (its message
/// is the job's error), so the wizard keeps its screen and the hook stays quiet for it.
fn keep_the_terminal_on_engine_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(ENGINE_THREAD) {
            hook(info);
        }
    }));
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    runtime: &mut Runtime,
    model: &mut Model,
) -> Result<(), String> {
    runtime.start(model);
    let mut input = EventStream::new();
    let mut ticker = tokio::time::interval(TICK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    terminal.draw(|f| view::draw(f, model)).map_err(|e| e.to_string())?;
    loop {
        let msg = tokio::select! {
            key = input.next() => match key {
                Some(Ok(TermEvent::Key(key))) => keys::resolve(&key, context(model)).map(Msg::Action),
                Some(Ok(TermEvent::Resize(_, _))) => Some(Msg::Tick(Instant::now())),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(format!("reading the terminal failed: {e}")),
                None => return Ok(()),
            },
            msg = runtime.recv() => Some(msg),
            _ = ticker.tick() => Some(Msg::Tick(Instant::now())),
        };
        let Some(msg) = msg else { continue };
        runtime.handle(model, msg);
        // Take whatever else has arrived, so a burst of engine events costs one redraw.
        while let Some(more) = runtime.try_recv() {
            runtime.handle(model, more);
        }
        terminal.draw(|f| view::draw(f, model)).map_err(|e| e.to_string())?;
        if runtime.finished() {
            return Ok(());
        }
    }
}
