//! Plan: the eight stages (expandable to their steps) on the left, the selected step on the
//! right (its SQL and locks, its rollback and guards, its checks), and the live panel below
//! while anything runs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::scrollbar;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Scrollbar, ScrollbarOrientation, ScrollbarState};

use super::live;
use super::overview::{rule, scroll_offset};
use super::text::{count, count_u, duration_ms, ellipsize, fit_line, wrap, wrap_styled};
use super::theme::Palette;
use crate::plan::Statement;
use crate::tui::state::{Model, Row, StepView, UiStepState};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let (top, live_area) = if live::visible(model, area) {
        let height = live::height(model, area);
        let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Length(height)]).areas(area);
        (top, Some(bottom))
    } else {
        (area, None)
    };
    let tree_width = if top.width < 50 { top.width } else { (top.width * 2 / 5).clamp(26, 44) };
    let [tree_area, detail_area] =
        Layout::horizontal([Constraint::Length(tree_width), Constraint::Fill(1)]).spacing(1).areas(top);
    tree(frame, tree_area, model, palette);
    if detail_area.width >= 10 {
        detail(frame, detail_area, model, palette);
    }
    if let Some(live_area) = live_area {
        live::draw(frame, live_area, model, palette);
    }
}

/// How a step is named in the tree: its id without the stage ("users", "unique-swap:users"),
/// or its title for stages of one step.
pub fn step_label(model: &Model, index: usize) -> String {
    let step = &model.steps[index];
    let id = step.id.as_str();
    let rest = id.split_once('.').map(|(_, r)| r).unwrap_or(id);
    let Some((kind, object)) = rest.split_once(':') else { return step.title.clone() };
    let object = match model.plan.options.schemas.as_slice() {
        [only] => object.strip_prefix(&format!("{only}.")).unwrap_or(object),
        _ => object,
    };
    if kind == step.stage.name() { object.to_string() } else { format!("{kind}:{object}") }
}

/// What a step row shows on its right: how it went, or how far it is.
fn step_status(model: &Model, index: usize) -> String {
    let step = &model.steps[index];
    match step.state {
        UiStepState::Running => {
            if step.lock_wait.is_some() {
                "lock wait".into()
            } else if let Some(p) = &step.progress
                && let Some(total) = p.total.filter(|t| *t > 0)
            {
                format!("{}%", (p.done.min(total) * 100) / total)
            } else {
                "running".into()
            }
        }
        UiStepState::Done => step.duration_ms.map(duration_ms).unwrap_or_else(|| "done".into()),
        UiStepState::Failed => "failed".into(),
        UiStepState::RolledBack => "undone".into(),
        UiStepState::Skipped => "skipped".into(),
        UiStepState::Pending => String::new(),
    }
}

fn tree(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    let bordered = area.width >= 30;
    let block = if bordered {
        Block::new().borders(Borders::RIGHT).border_style(palette.dim())
    } else {
        Block::new()
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let rows = model.rows();
    let height = inner.height as usize;
    let scrolls = rows.len() > height;
    // Without a border to draw the scrollbar on, it takes the last column.
    let width = if scrolls && !bordered { inner.width.saturating_sub(1) } else { inner.width } as usize;
    let cursor = model.cursor.min(rows.len().saturating_sub(1));
    let offset = scroll_offset(cursor, rows.len(), height);
    let mut lines = Vec::new();
    for (at, row) in rows.iter().enumerate().skip(offset).take(height) {
        let marker = Span::raw(if at == cursor { "›" } else { " " });
        let (left, right) = match *row {
            Row::Stage(stage) => {
                let state = model.stage_state(stage);
                let (done, total) = model.stage_progress(stage);
                let open = if model.expanded.contains(&stage) { "▾" } else { "▸" };
                (
                    vec![
                        marker,
                        Span::raw(format!("{open} ")),
                        Span::styled(state.symbol(), palette.state(state)),
                        Span::styled(format!(" {} {}", stage.number(), stage.name()), palette.bold()),
                    ],
                    Span::styled(format!("{done}/{total}"), palette.state(state)),
                )
            }
            Row::Step(i) => {
                let state = model.steps[i].state;
                (
                    vec![
                        marker,
                        Span::raw("   "),
                        Span::styled(state.symbol(), palette.state(state)),
                        Span::raw(format!(" {}", step_label(model, i))),
                    ],
                    Span::styled(step_status(model, i), palette.state(state)),
                )
            }
        };
        let right_width = right.width();
        let left_room = width.saturating_sub(right_width + 1);
        let left = fit_line(Line::from(left), left_room.max(width.min(6)));
        let mut spans = left.spans;
        let used: usize = spans.iter().map(|s| s.width()).sum();
        if used + right_width < width {
            spans.push(Span::raw(" ".repeat(width - used - right_width)));
            spans.push(right);
        }
        let mut line = Line::from(spans);
        if at == cursor {
            line = line.style(palette.selected());
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
    if scrolls {
        let bar_area = if bordered { area } else { inner };
        let mut state =
            ScrollbarState::new(rows.len() - height + 1).position(offset).viewport_content_length(height);
        let scrollbar = Scrollbar::new(ScrollbarOrientation::VerticalRight)
            .symbols(scrollbar::VERTICAL)
            .thumb_symbol("┃")
            .style(palette.dim());
        frame.render_stateful_widget(scrollbar, bar_area, &mut state);
    }
}

/// How much of the detail to show: SQL lines per statement and note lines.
#[derive(Clone, Copy)]
struct Caps {
    forward: usize,
    rollback: usize,
    note: usize,
    /// One line per statement, guard and check (no SQL): for a short pane.
    compact: bool,
}

/// The detail of a step in parts, so a short pane can cut the SQL and keep the rest.
#[derive(Default)]
struct Sections {
    head: Vec<Line<'static>>,
    note: Vec<Line<'static>>,
    forward: Vec<Line<'static>>,
    rollback: Vec<Line<'static>>,
    checks: Vec<Line<'static>>,
}

impl Sections {
    fn len(&self) -> usize {
        self.head.len() + self.note.len() + self.forward.len() + self.rollback.len() + self.checks.len()
    }

    fn lines(self) -> Vec<Line<'static>> {
        [self.head, self.note, self.forward, self.rollback, self.checks].into_iter().flatten().collect()
    }
}

fn detail(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    let width = area.width as usize;
    let height = area.height as usize;
    let Some(index) = model.selected_step() else {
        let lines = vec![Line::styled("This stage has no steps in the plan.", palette.dim())];
        frame.render_widget(Paragraph::new(lines), area);
        return;
    };
    let caps = |forward, rollback, note| Caps { forward, rollback, note, compact: false };
    let attempts = [
        caps(usize::MAX, usize::MAX, usize::MAX),
        caps(8, 4, 3),
        caps(4, 2, 2),
        caps(3, 2, 1),
        caps(2, 1, 1),
        caps(2, 1, 0),
        caps(1, 1, 0),
        Caps { forward: 0, rollback: 0, note: 0, compact: true },
    ];
    let mut sections = Sections::default();
    for caps in attempts {
        sections = detail_sections(model, index, width, caps, palette);
        if sections.len() <= height {
            break;
        }
    }
    let lines = if sections.len() <= height { sections.lines() } else { squeeze(sections, height, palette) };
    frame.render_widget(Paragraph::new(lines), area);
}

/// `lines` cut to `budget`, the last line saying how many were left out.
fn cut(mut lines: Vec<Line<'static>>, budget: usize, palette: Palette) -> Vec<Line<'static>> {
    if lines.len() <= budget {
        return lines;
    }
    if budget <= 1 {
        lines.truncate(budget);
        return lines;
    }
    let hidden = lines.len() - (budget - 1);
    lines.truncate(budget - 1);
    lines.push(Line::styled(format!("   … {hidden} more lines (w writes the plan)"), palette.dim()));
    lines
}

/// Fit a detail that is too long even in its compact form: the head stays, then the checks
/// (up to half of what is left), then the forward statements; the rollback gets the rest.
fn squeeze(sections: Sections, height: usize, palette: Palette) -> Vec<Line<'static>> {
    let Sections { head, forward, rollback, checks, .. } = sections;
    let mut avail = height.saturating_sub(head.len());
    let checks_budget = checks.len().min(avail / 2);
    avail -= checks_budget;
    let forward_budget = forward.len().min(avail);
    avail -= forward_budget;
    let rollback_budget = if avail >= 2 { rollback.len().min(avail) } else { 0 };
    let mut lines = head;
    lines.extend(cut(forward, forward_budget, palette));
    lines.extend(cut(rollback, rollback_budget, palette));
    lines.extend(cut(checks, checks_budget, palette));
    lines.truncate(height);
    lines
}

/// The SQL of a statement, indented, cut to `cap` lines (the last ending in "…" when cut).
fn sql_lines(sql: &str, width: usize, cap: usize, palette: Palette) -> Vec<Line<'static>> {
    let mut out: Vec<String> = Vec::new();
    // Linter directives are for squawk, not for the DBA (the reason line above each stays).
    for line in
        sql.trim().lines().filter(|l| !l.trim().is_empty() && !l.trim().starts_with("-- squawk-ignore"))
    {
        out.extend(wrap(&format!("   {}", line.trim_end()), width));
    }
    if out.len() > cap {
        out.truncate(cap);
        if let Some(last) = out.last_mut() {
            *last = ellipsize(last, width);
        }
    }
    out.into_iter().map(|l| Line::styled(l, palette.sql())).collect()
}

/// How a step stands, in short facts: how long it runs or ran, rows, what it will write.
fn status_facts(model: &Model, index: usize) -> Vec<String> {
    let mut facts: Vec<String> = Vec::new();
    let view = &model.steps[index];
    let step = model.plan.steps.get(index);
    match view.state {
        UiStepState::Running => {
            if let Some(started) = view.started {
                let ms = model.clock.saturating_duration_since(started).as_millis() as u64;
                facts.push(format!("for {}", duration_ms(ms)));
            }
            if let (Some(k), Some(step)) = (view.statement, step) {
                facts.push(format!("statement {}/{}", k + 1, step.forward().len()));
            }
        }
        UiStepState::Done | UiStepState::Failed | UiStepState::RolledBack => {
            if let Some(ms) = view.duration_ms {
                facts.push(format!("in {}", duration_ms(ms)));
            }
            if view.rows > 0 {
                facts.push(format!("{} {}", count_u(view.rows), if view.rows == 1 { "row" } else { "rows" }));
            }
        }
        UiStepState::Pending | UiStepState::Skipped => {
            if let Some(step) = step.filter(|s| s.rows_estimate > 0) {
                let noun = if step.rows_estimate == 1 { "row" } else { "rows" };
                facts.push(format!("~{} {noun} to write", count(step.rows_estimate)));
            }
        }
    }
    facts
}

/// The step's checks, with what they last returned.
fn check_lines(
    step: &crate::plan::Step,
    view: &StepView,
    width: usize,
    compact: bool,
    palette: Palette,
) -> Vec<Line<'static>> {
    let mut lines = vec![rule(&format!("Checks: {}", step.checks.len()), width, palette)];
    // Failed checks first: they say what went wrong.
    let latest = |name: &str| view.checks.iter().rev().find(|c| c.name == name);
    let mut checks: Vec<&crate::plan::Check> = step.checks.iter().collect();
    checks.sort_by_key(|c| latest(&c.name).is_none_or(|l| l.ok));
    for check in checks {
        let latest = latest(&check.name);
        let spans = match latest {
            Some(c) if c.ok => vec![
                Span::styled(" ✓ ", palette.ok()),
                Span::raw(check.name.clone()),
                Span::styled(format!(" = {}", c.value), palette.ok()),
            ],
            Some(c) => vec![
                Span::styled(" ✗ ", palette.error()),
                Span::raw(check.name.clone()),
                Span::styled(format!(" = {}, expected {}", c.value, c.expected), palette.error()),
            ],
            None => vec![
                Span::styled(" · ", palette.dim()),
                Span::raw(check.name.clone()),
                Span::styled(format!(" (expects {})", check.expect), palette.dim()),
            ],
        };
        let failed = latest.is_some_and(|c| !c.ok);
        lines.extend(item(spans, width, compact && !failed));
    }
    lines
}

fn statement_lines(
    number: usize,
    statement: &Statement,
    current: bool,
    width: usize,
    caps: (usize, bool),
    palette: Palette,
) -> Vec<Line<'static>> {
    let (cap, compact) = caps;
    let marker = if current { "▶" } else { " " };
    let mut spans = vec![
        Span::styled(format!("{marker}{number} "), if current { palette.running() } else { palette.plain() }),
        Span::styled(statement.lock.label().to_string(), palette.lock(statement.lock)),
    ];
    if !statement.on.is_empty() {
        spans.push(Span::raw(format!(" on {}", statement.on.join(", "))));
    }
    if compact {
        return vec![fit_line(Line::from(spans), width)];
    }
    spans.push(Span::styled(format!(": {}", statement.lock.effect()), palette.dim()));
    let mut lines = wrap_styled(spans, width, 3);
    lines.extend(sql_lines(&statement.sql, width, cap, palette));
    lines
}

/// Wrapped, or cut to one line in compact form.
fn item(spans: Vec<Span<'static>>, width: usize, compact: bool) -> Vec<Line<'static>> {
    if compact { vec![fit_line(Line::from(spans), width)] } else { wrap_styled(spans, width, 3) }
}

fn detail_sections(model: &Model, index: usize, width: usize, caps: Caps, palette: Palette) -> Sections {
    let view = &model.steps[index];
    let mut out = Sections::default();
    let head = &mut out.head;
    head.extend(wrap_styled(vec![Span::styled(view.id.clone(), palette.bold())], width, 2));
    head.extend(wrap_styled(vec![Span::raw(view.title.clone())], width, 2));

    // How it stands.
    let mut status = vec![Span::styled(
        format!("{} {}", view.state.symbol(), view.state.label()),
        palette.state(view.state),
    )];
    let step = model.plan.steps.get(index);
    let facts = status_facts(model, index);
    for fact in facts {
        status.push(Span::raw(format!(" · {fact}")));
    }
    head.extend(wrap_styled(status, width, 2));
    if let Some(error) = &view.error {
        let style = if view.state == UiStepState::Failed { palette.error() } else { palette.warn() };
        head.extend(wrap_styled(vec![Span::styled(format!("error: {error}"), style)], width, 2));
    }
    let Some(step) = step else { return out };
    if !step.note.is_empty() && caps.note > 0 {
        let mut note = wrap(&step.note, width);
        if note.len() > caps.note {
            note.truncate(caps.note);
            if let Some(last) = note.last_mut() {
                *last = ellipsize(last, width);
            }
        }
        out.note.extend(note.into_iter().map(|l| Line::styled(l, palette.dim())));
    }

    // Forward.
    let running = view.state == UiStepState::Running;
    let transactions: usize = step.parts.iter().map(|p| p.forward_path().len()).sum();
    let how = match (step.forward().len(), transactions) {
        (0 | 1, _) => "",
        (_, 1) => ", in one transaction",
        _ => ", each committed",
    };
    out.forward.push(rule(&format!("Forward: {}{how}", statements(step.forward().len())), width, palette));
    for (k, statement) in step.forward().iter().enumerate() {
        let current = running && view.statement == Some(k);
        out.forward.extend(statement_lines(
            k + 1,
            statement,
            current,
            width,
            (caps.forward, caps.compact),
            palette,
        ));
    }

    // Rollback, and the counts it takes first.
    let rollback = &mut out.rollback;
    rollback.push(rule(&format!("Rollback: {}", statements(step.rollback().len())), width, palette));
    if step.rollback().is_empty() {
        let reason = step.no_rollback_reason.clone().unwrap_or_else(|| "nothing to undo".into());
        rollback.extend(wrap_styled(vec![Span::styled(format!(" none: {reason}"), palette.dim())], width, 3));
    }
    for (k, statement) in step.rollback().iter().enumerate() {
        rollback.extend(statement_lines(
            k + 1,
            statement,
            false,
            width,
            (caps.rollback, caps.compact),
            palette,
        ));
    }
    for guard in step.guards() {
        let (tag, style) = if guard.forceable {
            ("must be 0, or --force", palette.warn())
        } else {
            ("must be 0", palette.error())
        };
        rollback.extend(item(
            vec![
                Span::styled(" guard: ", palette.dim()),
                Span::raw(guard.name.clone()),
                Span::styled(format!(" ({tag})"), style),
            ],
            width,
            caps.compact,
        ));
    }

    out.checks = check_lines(step, view, width, caps.compact, palette);
    out
}

fn statements(n: usize) -> String {
    if n == 1 { "1 statement".into() } else { format!("{n} statements") }
}
