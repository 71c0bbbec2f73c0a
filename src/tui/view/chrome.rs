//! What surrounds every screen: the header, the tabs, the message line and the key bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::{fit_line, short_version, truncate, width};
use super::theme::{Palette, severity_marker};
use crate::tui::keys::{self, Context};
use crate::tui::state::{Model, Overlay, Screen, UiStepState};

/// Database, server, role on the left; what is running on the right (it wins when space is short).
pub fn header(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let server = &model.server;
    let mut role = server.role.clone();
    let powers: Vec<&str> = [(server.superuser, "superuser"), (server.bypass_rls, "BYPASSRLS")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    if !powers.is_empty() {
        role = format!("{role} ({})", powers.join(", "));
    }
    let version = short_version(&server.version);
    let version = if version.is_empty() { short_version(&model.plan.source.server_version) } else { version };
    let database =
        if server.database.is_empty() { model.plan.source.database.clone() } else { server.database.clone() };
    let join =
        |parts: &[&str]| parts.iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" · ");
    // Most to least: everything, without the name of the tool, without the version, the database.
    let candidates = [
        format!(" tenantize  {}", join(&[&database, &version, &role])),
        format!(" {}", join(&[&database, &version, &role])),
        format!(" {}", join(&[&database, &role])),
        format!(" {database}"),
    ];

    let (status, status_style) = match &model.job {
        Some(job) => {
            let mut text = format!("▶ {}", job.description);
            if job.cancelling {
                text.push_str(" · cancelling…");
            } else if job.paused {
                text.push_str(" · paused");
            }
            (text, palette.bar().patch(palette.bold()))
        }
        None if model.read_only => ("replay (read-only)".to_string(), palette.bar()),
        None => ("idle".to_string(), palette.bar()),
    };
    let total = area.width as usize;
    let status_room = total.saturating_sub(12).max(total / 2);
    let status = truncate(&status, status_room);
    let left_room = total.saturating_sub(width(&status) + 3);
    let left = candidates
        .iter()
        .find(|c| width(c) <= left_room)
        .cloned()
        .unwrap_or_else(|| truncate(&candidates[3], left_room));
    let gap = total.saturating_sub(width(&left) + width(&status) + 1);
    let line = Line::from(vec![
        Span::styled(left, palette.bar().patch(palette.bold())),
        Span::styled(" ".repeat(gap), palette.bar()),
        Span::styled(status, status_style),
        Span::styled(" ", palette.bar()),
    ]);
    frame.render_widget(Paragraph::new(fit_line(line, total)).style(palette.bar()), area);
}

/// The screens, the active one reversed, and a summary of the steps on the right.
pub fn tabs(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let mut spans = vec![Span::raw(" ")];
    for screen in Screen::ALL {
        if screen == model.screen {
            let label = format!("[{}]", screen.title());
            spans.push(Span::styled(label, palette.bar().patch(palette.bold())));
        } else {
            spans.push(Span::styled(format!(" {} ", screen.title()), palette.plain()));
        }
        spans.push(Span::raw(" "));
    }
    let tabs_width: usize = spans.iter().map(|s| s.width()).sum();

    let count = |state: UiStepState| model.steps.iter().filter(|s| s.state == state).count();
    let done = count(UiStepState::Done) + count(UiStepState::Skipped);
    let mut summary = vec![Span::styled(format!("{done}/{} steps done", model.steps.len()), palette.plain())];
    for (state, n) in [
        (UiStepState::Running, count(UiStepState::Running)),
        (UiStepState::Failed, count(UiStepState::Failed)),
        (UiStepState::RolledBack, count(UiStepState::RolledBack)),
    ] {
        if n > 0 {
            summary.push(Span::raw(" · "));
            summary.push(Span::styled(format!("{n} {}", state.label()), palette.state(state)));
        }
    }
    summary.push(Span::raw(" "));
    let summary_width: usize = summary.iter().map(|s| s.width()).sum();
    let total = area.width as usize;
    if tabs_width + 2 + summary_width <= total {
        spans.push(Span::raw(" ".repeat(total - tabs_width - summary_width)));
        spans.extend(summary);
    }
    frame.render_widget(Paragraph::new(fit_line(Line::from(spans), total)), area);
}

/// The last message (coloured by severity), or a hint about the keys of this screen.
pub fn message(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let total = area.width as usize;
    let line = match &model.message {
        Some((severity, text)) => {
            let style = palette.severity(*severity);
            Line::from(vec![
                Span::raw(" "),
                Span::styled(format!("{} ", severity_marker(*severity)), style),
                Span::styled(super::text::one_line(text), style),
            ])
        }
        None => Line::from(Span::styled(format!(" {}", hint(model)), palette.dim())),
    };
    frame.render_widget(Paragraph::new(fit_line(line, total)), area);
}

fn hint(model: &Model) -> &'static str {
    if model.read_only {
        return "a replay: ←/→ step through the run";
    }
    match model.screen {
        Screen::Overview => "e toggles the selected table: tenant-scoped or shared · w writes the plan",
        Screen::Plan if model.job.is_some() => "p pauses a backfill · c cancels the running step safely",
        Screen::Plan => "Enter opens a stage · a applies up to the selected step · r undoes the last one",
        Screen::Counts => "v counts everything again (rows per tenant, cross-tenant references)",
        Screen::Log => "↑/↓ and PgUp/PgDn scroll · newest at the bottom",
    }
}

pub fn context(model: &Model) -> Context {
    match model.overlay {
        None => Context::Normal,
        Some(Overlay::Help) => Context::Help,
        Some(Overlay::WritePlan { .. }) => Context::Prompt,
        Some(_) => Context::Confirm,
    }
}

/// The keys of the current context, from the keymap. When they do not all fit, the least
/// needed go first; help and quit stay.
pub fn bar(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let rollback_dialog = matches!(model.overlay, Some(Overlay::ConfirmRollback { .. }));
    let mut items: Vec<(&str, &str)> = keys::bar(context(model), model.read_only)
        .into_iter()
        .filter(|(_, word)| *word != "force" || rollback_dialog)
        .collect();
    let total = area.width as usize;
    let item_width = |items: &[(&str, &str)]| -> usize {
        items.iter().map(|(k, w)| width(k) + 1 + width(w)).sum::<usize>() + 2 * items.len()
    };
    for drop in ["validate", "move", "open", "stage", "screen", "rollback"] {
        if item_width(&items) <= total {
            break;
        }
        items.retain(|(_, word)| *word != drop);
    }
    let mut spans = vec![Span::raw(" ")];
    for (i, (key, word)) in items.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(key.to_string(), palette.key()));
        spans.push(Span::raw(format!(" {word}")));
    }
    frame.render_widget(Paragraph::new(fit_line(Line::from(spans), total)), area);
}
