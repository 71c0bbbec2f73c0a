//! Log: every statement run, with its outcome, newest at the bottom. `log_scroll` counts
//! entries scrolled up from the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::overview::rule;
use super::text::{log_time, one_line, wrap_styled};
use super::theme::{Palette, log_marker};
use crate::tui::state::Model;

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = area.width as usize;
    let height = area.height as usize;
    let total = model.log.len();
    let scroll = model.log_scroll.min(total.saturating_sub(1));
    let end = total - scroll.min(total);
    let mut title = format!("Log: {} entries", total);
    if scroll > 0 {
        title.push_str(&format!(" · scrolled up {scroll} (↓ goes back to the newest)"));
    }
    let mut lines = vec![rule(&title, width, palette)];
    if total == 0 {
        lines.push(Line::styled(" nothing has run yet", palette.dim()));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    }
    // Fill from the bottom: the newest shown entry ends on the last line.
    let room = height - 1;
    let mut shown: Vec<Line<'static>> = Vec::new();
    for entry in model.log[..end].iter().rev() {
        if shown.len() >= room {
            break;
        }
        let style = palette.log(entry.kind);
        let prefix = vec![
            Span::styled(format!("{} ", log_time(entry.at_ms)), palette.dim()),
            Span::styled(format!("{} ", log_marker(entry.kind)), style),
        ];
        let mut spans = prefix;
        spans.push(Span::styled(one_line(&entry.text), style));
        let wrapped = wrap_styled(spans, width, 11);
        for line in wrapped.into_iter().rev() {
            shown.push(line);
        }
    }
    // Oldest lines cut at the top when the first entry does not fit whole.
    shown.truncate(room);
    shown.reverse();
    lines.extend(shown);
    frame.render_widget(Paragraph::new(lines), area);
}
