//! Dialogs drawn centred over the screen: the help (from the keymap), the apply, rollback and
//! quit confirmations, and the prompt for the plan file's path.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph};

use super::text::{count, fit_line, pad, plural, truncate_left, width, wrap_after, wrap_styled};
use super::theme::Palette;
use crate::plan::LockMode;
use crate::tui::keys::{self, Action, Context};
use crate::tui::state::{Model, Overlay};

/// `area` is the screen above the key bar; `full` the whole frame (the help may take it all on a
/// short terminal, saying how to close itself).
pub fn draw(frame: &mut Frame, area: Rect, full: Rect, model: &Model, overlay: &Overlay, palette: Palette) {
    if area.width < 4 || area.height < 3 {
        return;
    }
    match overlay {
        Overlay::Help => help(frame, area, full, model, palette),
        Overlay::ConfirmApply { step_ids, scope, .. } => {
            confirm_apply(frame, area, model, step_ids, scope, palette)
        }
        Overlay::ConfirmRollback { .. } => super::rollback::draw(frame, area, model, overlay, palette),
        Overlay::ConfirmQuit => confirm_quit(frame, area, model, palette),
        Overlay::WritePlan { path } => write_plan(frame, area, path, palette),
    }
}

/// The box for a dialog `wanted` columns wide with `lines` lines inside, centred in `area`.
fn dialog_area(area: Rect, wanted: u16, lines: usize) -> Rect {
    let width = wanted.min(area.width);
    let height = (lines as u16).saturating_add(2).min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

/// Inner text width of a dialog of `box_width` columns (border and one column of padding each side).
pub(super) fn inner_width(box_width: u16) -> usize {
    box_width.saturating_sub(4).max(1) as usize
}

pub(super) fn preferred_width(area: Rect) -> u16 {
    area.width.saturating_sub(4).clamp(20.min(area.width), 78)
}

/// Draw `lines` in a bordered box; when they do not fit, the last line says how many are hidden.
pub(super) fn render_dialog(
    frame: &mut Frame,
    area: Rect,
    box_width: u16,
    title: &str,
    border: Style,
    mut lines: Vec<Line<'static>>,
    palette: Palette,
) -> Rect {
    let rect = dialog_area(area, box_width, lines.len());
    let room = rect.height.saturating_sub(2) as usize;
    if lines.len() > room && room > 0 {
        let hidden = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(Line::styled(
            format!("… {hidden} more lines (a taller terminal shows them)"),
            palette.dim(),
        ));
    }
    let block = Block::bordered()
        .title(Span::styled(format!(" {title} "), palette.bold()))
        .border_style(border)
        .padding(Padding::horizontal(1));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
    rect
}

pub(super) fn key_line(parts: &[(&str, &str)], palette: Palette) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, (key, text)) in parts.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(", "));
        }
        spans.push(Span::styled(key.to_string(), palette.key()));
        spans.push(Span::raw(format!(" {text}")));
    }
    Line::from(spans)
}

fn help_lines(model: &Model, inner: usize, palette: Palette) -> Vec<Line<'static>> {
    let replay_only: Vec<&str> = keys::KEYMAP
        .iter()
        .filter(|b| matches!(b.action, Action::StepBack | Action::StepForward))
        .map(|b| b.label)
        .collect();
    let normal = keys::KEYMAP.iter().filter(|b| b.context == Context::Normal).count();
    let entries = keys::help_lines();
    let key_width = entries.iter().map(|(k, _)| width(k)).max().unwrap_or(0) + 1;
    // Two short entries in a row share a line (move up / move down), so that every key fits
    // on an 80x24 terminal.
    let half = inner / 2;
    let short = |text: &str| key_width + width(text) + 2 <= half;
    let mut lines = Vec::new();
    let shown: Vec<(usize, &(&str, &str))> = entries
        .iter()
        .enumerate()
        // Replay keys only where they do something.
        .filter(|(_, (key, _))| model.read_only || !replay_only.contains(key))
        .collect();
    let mut i = 0;
    while i < shown.len() {
        let (at, (key, text)) = shown[i];
        if at == normal {
            lines.push(Line::styled("In a confirmation:", palette.title()));
        }
        let mut spans = vec![Span::styled(pad(key, key_width), palette.key())];
        match shown.get(i + 1) {
            Some((next_at, (next_key, next_text)))
                if short(text) && short(next_text) && (*next_at < normal) == (at < normal) =>
            {
                spans.push(Span::styled(pad(text, half - key_width), palette.plain()));
                spans.push(Span::styled(pad(next_key, key_width), palette.key()));
                spans.push(Span::styled(next_text.to_string(), palette.plain()));
                lines.push(Line::from(spans));
                i += 2;
            }
            _ => {
                lines.extend(wrap_after(spans, text, palette.plain(), inner));
                i += 1;
            }
        }
    }
    lines
}

fn help(frame: &mut Frame, area: Rect, full: Rect, model: &Model, palette: Palette) {
    let box_width = preferred_width(area).max(area.width.min(40));
    let lines = help_lines(model, inner_width(box_width), palette);
    if lines.len() + 2 <= area.height as usize {
        render_dialog(frame, area, box_width, "Keys", palette.title(), lines, palette);
        return;
    }
    // A short terminal: the whole screen, no box, and the way out on the first line.
    let inner = full.width.saturating_sub(2).max(1) as usize;
    let mut lines = help_lines(model, inner, palette);
    let room = full.height.saturating_sub(1) as usize;
    if lines.len() > room && room > 0 {
        let hidden = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(Line::styled(
            format!("… {hidden} more lines (a taller terminal shows them)"),
            palette.dim(),
        ));
    }
    let title = Line::from(vec![
        Span::styled(" Keys · ", palette.bar().patch(palette.bold())),
        Span::styled("Esc", palette.bar().patch(palette.bold())),
        Span::styled(" or ", palette.bar()),
        Span::styled("?", palette.bar().patch(palette.bold())),
        Span::styled(" closes", palette.bar()),
    ]);
    frame.render_widget(Clear, full);
    frame.render_widget(
        Paragraph::new(fit_line(title, full.width as usize)).style(palette.bar()),
        Rect { height: 1, ..full },
    );
    let body = Rect { y: full.y + 1, height: full.height.saturating_sub(1), ..full };
    frame.render_widget(Paragraph::new(lines).block(Block::new().padding(Padding::horizontal(1))), body);
}

/// The strongest lock the steps take, with a step and the tables it is taken on.
fn strongest_lock(model: &Model, step_ids: &[String]) -> Option<(LockMode, String, Vec<String>)> {
    // A lock on the tenant table the plan creates blocks no one: rank locks on the
    // application's own tables first.
    let tenant_table = model.plan.tenant.table.to_string();
    let rank = |lock: LockMode, on: &[String]| (on.iter().any(|t| *t != tenant_table), lock);
    let mut best: Option<(LockMode, String, Vec<String>)> = None;
    for id in step_ids {
        let Some(step) = model.plan.step(id) else { continue };
        for statement in step.forward() {
            if best.as_ref().is_none_or(|(lock, _, on)| rank(statement.lock, &statement.on) > rank(*lock, on))
            {
                best = Some((statement.lock, id.clone(), statement.on.clone()));
            }
        }
    }
    best
}

fn confirm_apply(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    step_ids: &[String],
    scope: &str,
    palette: Palette,
) {
    let box_width = preferred_width(area);
    let inner = inner_width(box_width);
    let mut head = Vec::new();
    head.extend(wrap_styled(
        vec![
            Span::raw("Apply "),
            Span::styled(scope.to_string(), palette.bold()),
            Span::raw(format!(": {} in this order:", plural(step_ids.len(), "step", "steps"))),
        ],
        inner,
        2,
    ));
    let mut tail = vec![Line::raw("")];
    let rows: i64 =
        step_ids.iter().filter_map(|id| model.plan.step(id)).map(|s| s.rows_estimate.max(0)).sum();
    if rows > 0 {
        let noun = if rows == 1 { "row" } else { "rows" };
        tail.push(Line::raw(format!("Touches about {} {noun} (planner estimate).", count(rows))));
    }
    if let Some((lock, id, on)) = strongest_lock(model, step_ids) {
        let mut spans =
            vec![Span::raw("Strongest lock: "), Span::styled(lock.label().to_string(), palette.lock(lock))];
        if !on.is_empty() {
            spans.push(Span::raw(format!(" on {}", on.join(", "))));
        }
        spans.push(Span::raw(format!(" ({id})")));
        spans.push(Span::styled(format!(": {}", lock.effect()), palette.lock(lock)));
        tail.extend(wrap_styled(spans, inner, 2));
        if lock.blocks_writes() {
            tail.extend(wrap_styled(
                vec![Span::styled(
                    "Strong locks wait at most lock_timeout, then retry: the application never queues behind them for long.",
                    palette.dim(),
                )],
                inner,
                0,
            ));
        }
    }
    let cutover = step_ids.iter().filter_map(|id| model.plan.step(id)).any(|s| s.stage.needs_asking());
    if cutover {
        tail.extend(wrap_styled(
            vec![Span::styled(
                format!(
                    "This includes the cutover (stage 10): a session that does not SET LOCAL {} then \
                     reads no row and cannot insert.",
                    model.plan.tenant.setting
                ),
                palette.warn(),
            )],
            inner,
            0,
        ));
    }
    tail.extend(plan_written_first(model, inner, palette));
    tail.push(Line::raw(""));
    tail.push(key_line(&[("y", "to apply"), ("n", "to cancel")], palette));

    // The list gets what is left of the screen.
    let room = (area.height as usize).saturating_sub(2 + head.len() + tail.len()).max(1);
    let mut list = Vec::new();
    let shown = if step_ids.len() > room { room.saturating_sub(1).max(1) } else { step_ids.len() };
    for id in step_ids.iter().take(shown) {
        let title = model.plan.step(id).map(|s| s.title.clone()).unwrap_or_default();
        let line = Line::from(vec![
            Span::raw("  · "),
            Span::styled(id.clone(), palette.bold()),
            Span::styled(format!("  {title}"), palette.dim()),
        ]);
        list.push(fit_line(line, inner));
    }
    if shown < step_ids.len() {
        list.push(Line::styled(format!("  … and {} more", step_ids.len() - shown), palette.dim()));
    }
    let lines: Vec<Line<'static>> = head.into_iter().chain(list).chain(tail).collect();
    render_dialog(
        frame,
        area,
        box_width,
        &format!("Apply {}", plural(step_ids.len(), "step", "steps")),
        palette.title(),
        lines,
        palette,
    );
}

/// Where a run writes the plan first when it is in no file (built here, or resumed from the
/// journal's copy): nothing when it is in one.
pub(super) fn plan_written_first(model: &Model, inner: usize, palette: Palette) -> Vec<Line<'static>> {
    let Some(path) = model.plan_file_for_run() else { return Vec::new() };
    wrap_styled(
        vec![
            Span::raw("The plan is in no file: it is written to "),
            Span::styled(path.display().to_string(), palette.bold()),
            Span::raw(" first, and kept in the journal."),
        ],
        inner,
        0,
    )
}

fn confirm_quit(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    let box_width = preferred_width(area).min(64);
    let inner = inner_width(box_width);
    let running = match (model.running_step(), &model.job) {
        (Some(step), _) => format!("Step {} is running.", step.id),
        (None, Some(job)) => format!("Running: {}.", job.description),
        (None, None) => "Nothing is running any more.".to_string(),
    };
    let mut lines = Vec::new();
    if model.job.is_some() || !model.plan_unsaved() {
        lines.extend(wrap_styled(vec![Span::styled(running, palette.running())], inner, 0));
        lines.extend(wrap_styled(
            vec![Span::raw("Quitting cancels it safely: its transaction rolls back.")],
            inner,
            0,
        ));
        lines.extend(wrap_styled(
            vec![Span::raw(
                "What is done stays journaled and resumable: open the wizard again, or run tenantize apply.",
            )],
            inner,
            0,
        ));
    }
    if model.plan_unsaved() {
        lines.extend(wrap_styled(
            vec![Span::styled("The plan was never written to a file.", palette.warn())],
            inner,
            0,
        ));
        lines.extend(wrap_styled(
            vec![Span::raw(
                "It is kept in the journal: the wizard opened again on this database, or \
                 tenantize status, apply or rollback without a plan file, resume it from there. \
                 Press n, then w, to write it.",
            )],
            inner,
            0,
        ));
    }
    lines.push(Line::raw(""));
    lines.push(key_line(&[("y", "to quit"), ("n", "to stay")], palette));
    render_dialog(frame, area, box_width, "Quit?", palette.warn(), lines, palette);
}

fn write_plan(frame: &mut Frame, area: Rect, path: &str, palette: Palette) {
    let box_width = preferred_width(area).min(70);
    let inner = inner_width(box_width);
    let mut lines = wrap_styled(vec![Span::raw("Write the plan (TOML, for review) to:")], inner, 0);
    let field = inner.saturating_sub(3);
    let shown = truncate_left(path, field.saturating_sub(1));
    let input_row = lines.len();
    lines.push(Line::from(vec![
        Span::styled("> ", palette.title()),
        Span::styled(shown.clone(), palette.bold()),
        Span::styled("█", palette.plain()),
    ]));
    lines.push(Line::raw(""));
    lines.push(key_line(&[("Enter", "writes"), ("Esc", "cancels")], palette));
    let rect = render_dialog(frame, area, box_width, "Write the plan", palette.title(), lines, palette);
    // The terminal's cursor sits on the block, for screen readers and input methods.
    let x = rect.x + 2 + 2 + width(&shown) as u16;
    let y = rect.y + 1 + input_row as u16;
    if x < rect.right().saturating_sub(1) && y < rect.bottom().saturating_sub(1) {
        frame.set_cursor_position(Position::new(x, y));
    }
}
