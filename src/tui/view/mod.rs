//! Pure drawing of the model (stub; replaced by the real screens).

use ratatui::Frame;
use ratatui::widgets::Paragraph;

use super::state::Model;

pub fn draw(frame: &mut Frame, model: &Model) {
    frame.render_widget(Paragraph::new(format!("tenantize: {} steps", model.steps.len())), frame.area());
}
