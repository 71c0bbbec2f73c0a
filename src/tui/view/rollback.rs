//! The rollback confirmation: what it undoes (one step with its SQL, or a list of steps for a
//! stage or everything), what it counts first and what those counts allow.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::overlays::{inner_width, plan_written_first, preferred_width, render_dialog};
use super::text::{count, plural, truncate, wrap, wrap_styled};
use super::theme::Palette;
use crate::engine::GuardCount;
use crate::plan::Step;
use crate::tui::state::{Model, Overlay};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, overlay: &Overlay, palette: Palette) {
    let Overlay::ConfirmRollback { scope, step_ids, guards, force, .. } = overlay else { return };
    let guards = guards.as_ref();
    let box_width = preferred_width(area);
    let inner = inner_width(box_width);
    let mut lines: Vec<Line<'static>> = Vec::new();
    // One step: its SQL as it will run. Several: the steps, in the order they are undone.
    let mut body = match step_ids.as_slice() {
        [step_id] => {
            lines.extend(step_line(model, step_id, "Undo ", inner, palette));
            lines.push(Line::styled("Rollback SQL:", palette.title()));
            rollback_sql(model.plan.step(step_id), inner, palette)
        }
        ids => {
            let what = format!(
                "Undoes {} in this order (each step's SQL is on the Plan screen):",
                plural(ids.len(), "step", "steps")
            );
            lines.extend(wrap_styled(vec![Span::styled(what, palette.title())], inner, 2));
            ids.iter().flat_map(|id| step_line(model, id, "  ", inner, palette)).collect()
        }
    };

    // The checks it runs first.
    let mut checks = guard_lines(guards, step_ids.len() > 1, inner, palette);
    checks.push(force_line(*force, palette));
    checks.extend(plan_written_first(model, inner, palette));
    checks.push(Line::raw(""));
    checks.extend(wrap_styled(decision(verdict(guards, *force), palette), inner, 0));

    // The SQL (or the list) gives way when the screen is short; the checks and the decision never do.
    let room = (area.height as usize).saturating_sub(2 + lines.len() + checks.len());
    if body.len() > room {
        let keep = room.saturating_sub(1);
        let hidden = body.len() - keep;
        body.truncate(keep);
        body.push(Line::styled(format!("    … {hidden} more lines"), palette.dim()));
    }
    lines.extend(body);
    lines.extend(checks);
    let border = match verdict(guards, *force) {
        Verdict::Blocked | Verdict::CountFailed | Verdict::Forced => palette.error(),
        Verdict::NeedsForce => palette.warn(),
        _ => palette.title(),
    };
    let title = format!("Roll back {}", truncate(scope, inner.saturating_sub(14)));
    render_dialog(frame, area, box_width, &title, border, lines, palette);
}

/// `lead`, the step's id, its state and title.
fn step_line(model: &Model, step_id: &str, lead: &str, inner: usize, palette: Palette) -> Vec<Line<'static>> {
    let mut spans = vec![Span::raw(lead.to_string()), Span::styled(step_id.to_string(), palette.bold())];
    if let Some(view) = model.step_index(step_id).map(|i| &model.steps[i]) {
        spans.push(Span::styled(format!(" ({})", view.state.label()), palette.state(view.state)));
    }
    if let Some(step) = model.plan.step(step_id) {
        spans.push(Span::styled(format!(": {}", step.title), palette.plain()));
    }
    wrap_styled(spans, inner, lead.len() + 2)
}

/// What the rollback may do given its guard counts.
enum Verdict {
    Counting,
    CountFailed,
    Blocked,
    NeedsForce,
    Forced,
    Clear,
}

fn verdict(guards: Option<&Result<Vec<GuardCount>, String>>, force: bool) -> Verdict {
    match guards {
        None => Verdict::Counting,
        Some(Err(_)) => Verdict::CountFailed,
        Some(Ok(list)) => {
            if list.iter().any(|g| g.count > 0 && !g.forceable) {
                Verdict::Blocked
            } else if list.iter().any(|g| g.count > 0) {
                if force { Verdict::Forced } else { Verdict::NeedsForce }
            } else {
                Verdict::Clear
            }
        }
    }
}

/// The rollback SQL, as it will run, with each statement's lock.
fn rollback_sql(step: Option<&Step>, inner: usize, palette: Palette) -> Vec<Line<'static>> {
    let mut sql: Vec<Line<'static>> = Vec::new();
    match step {
        Some(step) if step.rollback().is_empty() => {
            let reason = step.no_rollback_reason.clone().unwrap_or_else(|| "nothing to undo".into());
            sql.extend(wrap_styled(vec![Span::styled(format!("  none: {reason}"), palette.dim())], inner, 4));
        }
        Some(step) => {
            for statement in step.rollback() {
                let mut spans = vec![
                    Span::raw("  "),
                    Span::styled(statement.lock.label().to_string(), palette.lock(statement.lock)),
                ];
                if !statement.on.is_empty() {
                    spans.push(Span::raw(format!(" on {}", statement.on.join(", "))));
                }
                spans.push(Span::styled(format!(": {}", statement.lock.effect()), palette.dim()));
                sql.extend(wrap_styled(spans, inner, 4));
                for line in statement
                    .sql
                    .trim()
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.trim().starts_with("-- squawk-ignore"))
                {
                    sql.extend(wrap(&format!("    {}", line.trim_end()), inner).into_iter().map(Line::raw));
                }
            }
        }
        None => sql.push(Line::styled("  (the step is not in this plan)", palette.error())),
    }
    sql
}

/// What is counted before undoing, and what each count means.
fn guard_lines(
    guards: Option<&Result<Vec<GuardCount>, String>>,
    several: bool,
    inner: usize,
    palette: Palette,
) -> Vec<Line<'static>> {
    let mut checks: Vec<Line<'static>> =
        vec![Line::styled("Counted first (each must be 0):", palette.title())];
    match guards {
        None => checks.push(Line::styled("  counting what the rollback would lose…", palette.dim())),
        Some(Err(error)) => checks.extend(wrap_styled(
            vec![Span::styled(format!("  could not count: {error}"), palette.error())],
            inner,
            4,
        )),
        Some(Ok(list)) if list.is_empty() => checks.push(Line::from(vec![
            Span::styled("  ✓ ", palette.ok()),
            Span::raw("nothing to count: undoing loses no data"),
        ])),
        Some(Ok(list)) => {
            for g in list {
                // With several steps, each count says whose it is.
                let whose =
                    |text: &str| if several { format!("{text} ({})", g.step_id) } else { text.to_string() };
                let (name, message) = (whose(&g.name), whose(&g.message));
                let spans = if g.deferred {
                    vec![
                        Span::styled("  ? ", palette.warn()),
                        Span::raw(name),
                        Span::styled(
                            ": counted once stage 8 is undone (row-level security hides the rows from this role); \
                             the rollback stops before this step if it is not 0",
                            palette.dim(),
                        ),
                    ]
                } else if g.count == 0 {
                    vec![
                        Span::styled("  ✓ ", palette.ok()),
                        Span::styled("0", palette.ok()),
                        Span::raw(format!(" {name}")),
                    ]
                } else if g.forceable {
                    vec![
                        Span::styled("  ! ", palette.warn()),
                        Span::styled(count(g.count), palette.warn()),
                        Span::raw(format!(" {message}")),
                        Span::styled(" (a loss: F accepts it)", palette.warn()),
                    ]
                } else {
                    vec![
                        Span::styled("  ✗ ", palette.error()),
                        Span::styled(count(g.count), palette.error()),
                        Span::raw(format!(" {message}")),
                        Span::styled(" (blocks the rollback; cannot be forced)", palette.error()),
                    ]
                };
                checks.extend(wrap_styled(spans, inner, 4));
            }
        }
    }
    checks
}

fn force_line(force: bool, palette: Palette) -> Line<'static> {
    if force {
        Line::from(vec![
            Span::raw("Force: "),
            Span::styled("on", palette.error()),
            Span::raw(" (--force; "),
            Span::styled("F", palette.key()),
            Span::raw(" toggles)"),
        ])
    } else {
        Line::from(vec![
            Span::raw("Force: off ("),
            Span::styled("F", palette.key()),
            Span::raw(" toggles --force)"),
        ])
    }
}

/// The keys the dialog offers, as the counts decide.
fn decision(verdict: Verdict, palette: Palette) -> Vec<Span<'static>> {
    match verdict {
        Verdict::Counting => vec![
            Span::styled("Counting first… ", palette.dim()),
            key_span("n", palette),
            Span::raw(" to cancel"),
        ],
        Verdict::CountFailed => vec![
            Span::styled("Cannot roll back without the counts. ", palette.error()),
            key_span("n", palette),
            Span::raw(" to close"),
        ],
        Verdict::Blocked => vec![
            Span::styled("Refused: the rollback would break data. ", palette.error()),
            key_span("n", palette),
            Span::raw(" to close"),
        ],
        Verdict::NeedsForce => vec![
            Span::styled("Undoing loses data: ", palette.warn()),
            key_span("F", palette),
            Span::raw(" to accept, then "),
            key_span("y", palette),
            Span::raw("; "),
            key_span("n", palette),
            Span::raw(" to cancel"),
        ],
        Verdict::Forced => vec![
            key_span("y", palette),
            Span::styled(" to roll back with --force", palette.error()),
            Span::raw(", "),
            key_span("n", palette),
            Span::raw(" to cancel"),
        ],
        Verdict::Clear => vec![
            key_span("y", palette),
            Span::raw(" to roll back, "),
            key_span("n", palette),
            Span::raw(" to cancel"),
        ],
    }
}

fn key_span(key: &str, palette: Palette) -> Span<'static> {
    Span::styled(key.to_string(), palette.key())
}
