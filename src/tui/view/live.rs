//! The live panel under the plan: the running step with its gauge, rate and ETA, who blocks
//! it when it waits on a lock, and the live counts per table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph, Sparkline};

use super::text::{
    count, count_in, count_u, duration_ms, duration_s, fit_line, one_line, pad, pad_left, truncate, unit,
};
use super::theme::Palette;
use crate::checks::TableCounts;
use crate::tui::state::{Model, StepView};

/// Shown while anything runs; on a large screen always.
pub fn visible(model: &Model, area: Rect) -> bool {
    model.job.is_some() || model.running_step().is_some() || (area.width >= 110 && area.height >= 30)
}

/// Lines the panel would like, capped so the plan above keeps room.
pub fn height(model: &Model, area: Rect) -> u16 {
    let cap = if area.height >= 30 { area.height * 45 / 100 } else { area.height / 2 };
    let mut wanted = 1;
    if let Some(step) = model.running_step() {
        if step.progress.is_some() {
            wanted += 2;
        }
        if let Some(wait) = &step.lock_wait {
            wanted += 1 + 2 * wait.blockers.len().clamp(1, 2);
        }
    }
    let tables = model.counts.as_ref().map(|c| compact_tables(model, &c.tables).len()).unwrap_or(1);
    wanted += 1 + tables;
    (wanted as u16).min(cap).max(3.min(area.height))
}

enum Part {
    Text(Line<'static>),
    Gauge { ratio: f64, label: String },
    Rate { text: Line<'static>, samples: Vec<u64> },
}

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = area.width as usize;
    let mut parts = vec![Part::Text(title(model, width, palette))];
    if let Some(step) = model.running_step() {
        parts.extend(progress(step, model, palette));
        parts.extend(lock_wait(step, model, width, palette));
    }
    let room = (area.height as usize).saturating_sub(parts.len());
    parts.extend(counts(model, width, room, palette).into_iter().map(Part::Text));
    for (y, part) in parts.into_iter().take(area.height as usize).enumerate() {
        let row = Rect { y: area.y + y as u16, height: 1, ..area };
        match part {
            Part::Text(line) => frame.render_widget(Paragraph::new(fit_line(line, width)), row),
            Part::Gauge { ratio, label } => {
                // A one-line gauge with its label beside the bar, so the bar stays whole (and
                // readable without colours): `backfill 412,000/1,000,000 rows · 41% ████░░░░`.
                let gauge = LineGauge::default()
                    .ratio(ratio.clamp(0.0, 1.0))
                    .label(truncate(&label, width))
                    .filled_symbol("█")
                    .unfilled_symbol("░")
                    .filled_style(palette.running())
                    .unfilled_style(palette.dim());
                frame.render_widget(gauge, row);
            }
            Part::Rate { text, samples } => {
                let text = fit_line(text, width);
                let used = text.width() + 2;
                frame.render_widget(Paragraph::new(text), row);
                if samples.len() >= 2 && width >= used + 8 {
                    let spark_width = (width - used).min(60);
                    let spark = Rect { x: row.x + used as u16, width: spark_width as u16, ..row };
                    let shown: Vec<u64> =
                        samples.iter().copied().skip(samples.len().saturating_sub(spark_width)).collect();
                    frame.render_widget(Sparkline::default().data(shown).style(palette.running()), spark);
                }
            }
        }
    }
}

fn title(model: &Model, width: usize, palette: Palette) -> Line<'static> {
    let mut spans = vec![Span::styled("── ", palette.dim())];
    match (model.running_step(), &model.job) {
        (Some(step), job) => {
            spans.push(Span::styled(format!("▶ {}", step.id), palette.running()));
            if let (Some(k), Some(planned)) = (step.statement, model.plan.step(&step.id)) {
                spans.push(Span::raw(format!(" · statement {}/{}", k + 1, planned.forward().len())));
            }
            if let Some(started) = step.started {
                let ms = model.clock.saturating_duration_since(started).as_millis() as u64;
                spans.push(Span::raw(format!(" · {}", duration_ms(ms))));
            }
            if let Some(job) = job {
                if job.cancelling {
                    spans.push(Span::styled(" · cancelling…", palette.warn()));
                } else if job.paused {
                    spans.push(Span::styled(" · paused", palette.warn()));
                }
            }
        }
        (None, Some(job)) => {
            spans.push(Span::styled(format!("▶ {}", job.description), palette.running()));
            spans.push(Span::raw(if job.cancelling { " · cancelling…" } else { " · starting…" }));
        }
        (None, None) => spans.push(Span::styled("Live · nothing running", palette.title())),
    }
    spans.push(Span::raw(" "));
    let used: usize = spans.iter().map(|s| s.width()).sum();
    spans.push(Span::styled("─".repeat(width.saturating_sub(used)), palette.dim()));
    Line::from(spans)
}

fn progress(step: &StepView, model: &Model, palette: Palette) -> Vec<Part> {
    let Some(p) = &step.progress else { return Vec::new() };
    let what = unit(p.unit);
    let phase = p.phase.clone().unwrap_or_else(|| "progress".into());
    let mut parts = Vec::new();
    match p.total.filter(|t| *t > 0) {
        Some(total) => {
            let done = p.done.min(total);
            parts.push(Part::Gauge {
                ratio: done as f64 / total as f64,
                label: format!(
                    "{phase} {}/{} {what} · {}%",
                    count_u(p.done),
                    count_u(total),
                    done * 100 / total
                ),
            });
        }
        None => parts.push(Part::Text(Line::from(format!("{phase}: {} {what} so far", count_u(p.done))))),
    }
    let paused = model.job.as_ref().is_some_and(|j| j.paused);
    let mut text = vec![];
    if paused {
        text.push(Span::styled("paused after the current batch (p resumes)", palette.warn()));
    } else if p.rate_per_s > 0.0 {
        text.push(Span::raw(format!("{} {what}/s", count(p.rate_per_s.round() as i64))));
        match p.eta_s {
            Some(eta) => text.push(Span::raw(format!(" · ETA {}", duration_s(eta)))),
            None => text.push(Span::styled(" · no ETA (total unknown)", palette.dim())),
        }
    } else {
        text.push(Span::styled("measuring the rate…", palette.dim()));
    }
    parts.push(Part::Rate { text: Line::from(text), samples: p.rate_samples.iter().copied().collect() });
    parts
}

fn lock_wait(step: &StepView, model: &Model, width: usize, palette: Palette) -> Vec<Part> {
    let Some(wait) = &step.lock_wait else { return Vec::new() };
    let mut head =
        vec![Span::styled(format!("! waiting {} for ", duration_ms(wait.waited_ms)), palette.warn())];
    let statement =
        model.plan.step(&step.id).and_then(|s| s.forward().get(step.statement.unwrap_or(0)).copied());
    match statement {
        Some(s) => {
            head.push(Span::styled(s.lock.label().to_string(), palette.lock(s.lock)));
            if !s.on.is_empty() {
                head.push(Span::styled(format!(" on {}", s.on.join(", ")), palette.warn()));
            }
        }
        None => head.push(Span::styled("a lock", palette.warn())),
    }
    let retry = if wait.max_attempts > 0 {
        format!(" · retry {}/{}", wait.retries, wait.max_attempts.saturating_sub(1))
    } else if wait.retries > 0 {
        format!(" · retry {}", wait.retries)
    } else {
        " · first attempt".to_string()
    };
    head.push(Span::styled(retry, palette.bold()));
    let mut parts = vec![Part::Text(Line::from(head))];
    if wait.blockers.is_empty() {
        parts.push(Part::Text(Line::styled("  blocked by a session not identified yet", palette.dim())));
    }
    for blocker in wait.blockers.iter().take(2) {
        let app = if blocker.application.is_empty() { "no application name" } else { &blocker.application };
        let state = if blocker.state.is_empty() { "?" } else { &blocker.state };
        parts.push(Part::Text(Line::from(vec![
            Span::raw("  blocked by "),
            Span::styled(format!("pid {}", blocker.pid), palette.bold()),
            Span::raw(format!(
                " · {app} · {state} · transaction open {}",
                duration_ms(blocker.transaction_ms)
            )),
        ])));
        let query = one_line(&blocker.query);
        let query = if query.is_empty() { "(no query)".to_string() } else { query };
        parts.push(Part::Text(Line::styled(truncate(&format!("    {query}"), width), palette.dim())));
    }
    if wait.blockers.len() > 2 {
        parts.push(Part::Text(Line::styled(
            format!("  … and {} more sessions", wait.blockers.len() - 2),
            palette.dim(),
        )));
    }
    parts
}

/// Scoped tables that are not partitions, those the running step touches first, then those
/// with something to fix.
pub fn compact_tables<'a>(model: &Model, tables: &'a [TableCounts]) -> Vec<&'a TableCounts> {
    let touched: Vec<String> = model
        .running_step()
        .and_then(|s| model.plan.step(&s.id))
        .map(|s| s.tables.iter().map(|t| t.display_plain()).collect())
        .unwrap_or_default();
    let mut out: Vec<&TableCounts> = tables.iter().filter(|t| t.scoped && t.partition_of.is_none()).collect();
    out.sort_by_key(|t| {
        let touched = touched.contains(&t.table);
        let troubled = t.null_tenant > 0 || t.unknown_tenant > 0 || t.cross_tenant > 0;
        (!touched, !troubled)
    });
    out
}

pub fn rls_text(t: &TableCounts) -> &'static str {
    match (t.rls_enabled, t.rls_forced) {
        (false, false) => "off",
        (false, true) => "off (forced)",
        (true, false) => "on",
        (true, true) => "forced",
    }
}

fn counts(model: &Model, width: usize, room: usize, palette: Palette) -> Vec<Line<'static>> {
    if room == 0 {
        return Vec::new();
    }
    let age = model.counts_age().map(|d| duration_ms(d.as_millis() as u64));
    let Some(report) = &model.counts else {
        let line = match &model.counts_error {
            Some(error) => Line::styled(format!("counts failed: {}", one_line(error)), palette.error()),
            None => Line::styled("counting…", palette.dim()),
        };
        return vec![line];
    };
    // name | rows | NULL tenant | unknown tenant | cross-tenant | RLS
    let columns = [11usize, 8, 8, 7, 8];
    let fixed: usize = columns.iter().sum::<usize>();
    let tables = compact_tables(model, &report.tables);
    let longest = tables.iter().map(|t| super::text::width(&t.table) + 2).max().unwrap_or(0);
    let name_width = width.saturating_sub(fixed).min(longest.max(18)).max(10);
    let mut label = match age {
        Some(age) => format!("counts {age} ago"),
        None => "counts".to_string(),
    };
    if model.counts_error.is_some() {
        label.push_str(" (refresh failing)");
    }
    let header_style: Style = palette.title();
    let mut lines = vec![fit_line(
        Line::from(vec![
            Span::styled(
                pad(&label, name_width),
                if model.counts_error.is_some() { palette.warn() } else { header_style },
            ),
            Span::styled(pad_left("rows", columns[0]), header_style),
            Span::styled(pad_left("NULL", columns[1]), header_style),
            Span::styled(pad_left("unknown", columns[2]), header_style),
            Span::styled(pad_left("cross", columns[3]), header_style),
            Span::styled(pad_left("RLS", columns[4]), header_style),
        ]),
        width,
    )];
    let rows_room = room - 1;
    let shown = if tables.len() > rows_room { rows_room.saturating_sub(1) } else { tables.len() };
    for t in tables.iter().take(shown) {
        let rls_style = if t.rls_enabled && t.rls_forced { palette.ok() } else { palette.plain() };
        lines.push(fit_line(
            Line::from(vec![
                Span::styled(
                    pad(&format!(" {}", t.table), name_width),
                    palette.problem_if(!t.problems.is_empty()),
                ),
                Span::raw(pad_left(&count_in(t.rows, columns[0]), columns[0])),
                Span::styled(
                    pad_left(&count_in(t.null_tenant, columns[1]), columns[1]),
                    if t.null_tenant > 0 { palette.warn() } else { palette.ok() },
                ),
                Span::styled(
                    pad_left(&count_in(t.unknown_tenant, columns[2]), columns[2]),
                    palette.problem_if(t.unknown_tenant > 0),
                ),
                Span::styled(
                    pad_left(&count_in(t.cross_tenant, columns[3]), columns[3]),
                    palette.problem_if(t.cross_tenant > 0),
                ),
                Span::styled(pad_left(rls_text(t), columns[4]), rls_style),
            ]),
            width,
        ));
    }
    if shown < tables.len() && rows_room > 0 {
        lines.push(Line::styled(
            format!(" … and {} more on the Counts screen", tables.len() - shown),
            palette.dim(),
        ));
    }
    lines
}
