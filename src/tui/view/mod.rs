//! Pure drawing of the model: `draw` reads the [`Model`] and paints a frame. Nothing here
//! mutates the model, does I/O or reads the clock (ages come from `model.clock`), so the same
//! model always draws the same screen.
//!
//! The frame: a header line (database, server, role, what runs), the tabs, the screen, a
//! message line and the key bar. Overlays (help, confirmations, the write prompt) are drawn
//! centred over the screen, above the key bar.

mod chrome;
mod counts;
mod live;
mod log;
mod overlays;
mod overview;
mod plan;
mod rollback;
mod text;
mod theme;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use super::state::{Model, Screen};
use theme::Palette;

pub fn draw(frame: &mut Frame, model: &Model) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let palette = Palette::new(model.theme);
    let [header, tabs, body, message, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(if area.height >= 4 { 1 } else { 0 }),
        Constraint::Fill(1),
        Constraint::Length(if area.height >= 5 { 1 } else { 0 }),
        Constraint::Length(if area.height >= 2 { 1 } else { 0 }),
    ])
    .areas(area);
    chrome::header(frame, header, model, palette);
    chrome::tabs(frame, tabs, model, palette);
    match model.screen {
        Screen::Overview => overview::draw(frame, body, model, palette),
        Screen::Plan => plan::draw(frame, body, model, palette),
        Screen::Counts => counts::draw(frame, body, model, palette),
        Screen::Log => log::draw(frame, body, model, palette),
    }
    chrome::message(frame, message, model, palette);
    chrome::bar(frame, bar, model, palette);
    if let Some(overlay) = &model.overlay {
        // Overlays may use everything but the key bar, which tells their keys.
        let room = Rect { height: area.height.saturating_sub(bar.height), ..area };
        overlays::draw(frame, room, area, model, overlay, palette);
    }
}
