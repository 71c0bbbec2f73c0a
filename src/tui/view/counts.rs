//! Counts: every table's numbers from the last validation, problems highlighted.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::live::rls_text;
use super::overview::{rule, scroll_offset};
use super::text::{
    bytes, count, count_in, duration_ms, fit_line, one_line, pad, pad_left, plural, truncate, wrap_styled,
};
use super::theme::Palette;
use crate::checks::{DistributionReport, TableCounts, VerifyReport};
use crate::tui::state::Model;

struct Column {
    title: &'static str,
    /// Columns when narrow, when wide (0: not shown); the per-tenant column takes what is left.
    narrow: usize,
    wide: usize,
}

const COLUMNS: [Column; 9] = [
    Column { title: "rows", narrow: 10, wide: 11 },
    Column { title: "NULL", narrow: 8, wide: 9 },
    Column { title: "unknown", narrow: 8, wide: 9 },
    Column { title: "cross", narrow: 6, wide: 7 },
    Column { title: "per tenant", narrow: 0, wide: 0 },
    Column { title: "bad idx", narrow: 0, wide: 8 },
    Column { title: "unscoped", narrow: 0, wide: 9 },
    Column { title: "RLS", narrow: 7, wide: 8 },
    Column { title: "policy", narrow: 0, wide: 7 },
];

/// A tenant id as short as it can be and still tell tenants apart on screen.
fn tenant_label(model: &Model, id: &str) -> String {
    if id == model.plan.tenant.default_id {
        "default".into()
    } else if id.chars().count() > 10 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_string()
    }
}

/// The largest tenants of a table, as many as fit in `cells` (at most `entries`).
fn per_tenant(model: &Model, t: &TableCounts, entries: usize, cells: usize) -> String {
    if !t.tenant_column {
        return String::new();
    }
    let text = |n: usize| {
        let mut parts: Vec<String> = t
            .rows_per_tenant
            .iter()
            .take(n)
            .map(|(id, rows)| format!("{} {}", tenant_label(model, id), count(*rows)))
            .collect();
        if t.rows_per_tenant.len() > n {
            parts.push(format!("+{}", t.rows_per_tenant.len() - n));
        }
        parts.join(", ")
    };
    (1..=entries).rev().map(text).find(|s| width_of(s) <= cells).unwrap_or_else(|| text(1))
}

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = area.width as usize;
    let height = area.height as usize;
    let age = model.counts_age().map(|d| duration_ms(d.as_millis() as u64));
    let Some(report) = &model.counts else {
        let mut lines = vec![rule("Counts", width, palette)];
        match &model.counts_error {
            Some(error) => lines.extend(wrap_styled(
                vec![Span::styled(format!(" counting failed: {}", one_line(error)), palette.error())],
                width,
                2,
            )),
            None => lines.push(Line::styled(" counting…", palette.dim())),
        }
        frame.render_widget(Paragraph::new(lines), area);
        return;
    };
    let mut title = String::from("Counts");
    if let Some(age) = age {
        title.push_str(&format!(" · {age} ago"));
    }
    title.push_str(if report.full { " · full" } else { " · quick (v counts everything)" });
    if model.counts_error.is_some() {
        title.push_str(" · STALE");
    }
    let mut lines = vec![rule(&title, width, palette)];
    if let Some(error) = &model.counts_error {
        lines.extend(wrap_styled(
            vec![Span::styled(
                format!(" ✗ these counts are stale: the last count failed: {}", one_line(error)),
                palette.error(),
            )],
            width,
            2,
        ));
    }

    let wide = width >= 110;
    let columns: Vec<(&Column, usize)> = COLUMNS
        .iter()
        .map(|c| (c, if wide { c.wide } else { c.narrow }))
        .filter(|(c, w)| *w > 0 || c.title == "per tenant")
        .collect();
    let fixed: usize = columns.iter().map(|(_, w)| w).sum();
    let longest = report
        .tables
        .iter()
        .map(|t| width_of(&t.table) + if t.partition_of.is_some() { 3 } else { 1 })
        .max()
        .unwrap_or(6);
    let mut name_width = (longest + 1).min(32);
    let mut tenant_width = width.saturating_sub(fixed + name_width);
    if tenant_width < 14 {
        name_width = width.saturating_sub(fixed + 14).max(14).min(name_width);
        tenant_width = width.saturating_sub(fixed + name_width);
    }
    let columns: Vec<(&Column, usize)> = columns
        .into_iter()
        .map(|(c, w)| (c, if c.title == "per tenant" { tenant_width } else { w }))
        .filter(|(_, w)| *w > 0)
        .collect();
    let header: Style = palette.title();
    let mut spans = vec![Span::styled(pad(" table", name_width), header)];
    for (c, w) in &columns {
        spans.push(if c.title == "per tenant" {
            Span::styled(pad(&format!("  {}", c.title), *w), header)
        } else {
            Span::styled(pad_left(c.title, *w), header)
        });
    }
    lines.push(fit_line(Line::from(spans), width));

    // Problems go below the table; the table gets what is left.
    let mut problems = problem_lines(report, model.counts_error.is_some(), wide, width, palette);

    let problems_room = problems.len().min(height / 3).max(1);
    let mut shards = report.distribution.as_ref().map(|d| shard_lines(d, width, palette)).unwrap_or_default();
    // The tables come first: the shards only when at least three rows of them still fit.
    if height.saturating_sub(lines.len() + 1 + problems_room + shards.len()) < report.tables.len().min(3) {
        shards.clear();
    }
    let rows_room = height.saturating_sub(lines.len() + 1 + problems_room + shards.len());
    let selected = model.plan.tables.get(model.table_cursor).map(|t| t.name.display_plain());
    let cursor = report.tables.iter().position(|t| Some(&t.table) == selected.as_ref()).unwrap_or(0);
    let offset = scroll_offset(cursor, report.tables.len(), rows_room);
    for (i, t) in report.tables.iter().enumerate().skip(offset).take(rows_room) {
        let mut line = table_row(model, t, &columns, name_width, wide, palette);
        if i == cursor && selected.is_some() {
            line = line.style(palette.selected());
        }
        lines.push(fit_line(line, width));
    }
    if report.tables.is_empty() {
        lines.push(Line::styled(" no tables", palette.dim()));
    }
    lines.extend(shards);
    lines.push(rule("Problems", width, palette));
    let left = height.saturating_sub(lines.len());
    if problems.len() > left && left > 0 {
        let hidden = problems.len() - (left - 1);
        problems.truncate(left - 1);
        problems.push(Line::styled(format!(" … and {hidden} more lines"), palette.dim()));
    }
    lines.extend(problems);
    lines.truncate(height);
    frame.render_widget(Paragraph::new(lines), area);
}

/// Where the shards live (stage 9 on Citus): the facts in one line, then per worker its node,
/// shards, reference placements, size and a bar of that size against the largest worker's.
fn shard_lines(d: &DistributionReport, width: usize, palette: Palette) -> Vec<Line<'static>> {
    let mut lines = vec![rule("Shards", width, palette)];
    lines.extend(wrap_styled(vec![Span::styled(format!(" {}", d.summary()), palette.dim())], width, 2));
    let node_width = d.workers.iter().map(|w| width_of(&w.node)).max().unwrap_or(0).min(28) + 2;
    let largest = d.workers.iter().map(|w| w.size_bytes).max().unwrap_or(0);
    for w in &d.workers {
        let text = format!(
            " {}{:>10}{:>14}{:>11}",
            pad(&truncate(&w.node, node_width - 2), node_width),
            plural(w.shards.max(0) as usize, "shard", "shards"),
            format!("{} reference", w.reference_shards),
            bytes(w.size_bytes)
        );
        let style = if w.should_have_shards && w.shards == 0 { palette.warn() } else { palette.plain() };
        let mut spans = vec![Span::styled(text, style)];
        let room = width.saturating_sub(width_of(&spans[0].content) + 3).min(40);
        if room >= 8 && largest > 0 {
            let filled = ((w.size_bytes.max(0) as f64 / largest as f64) * room as f64).round() as usize;
            spans.push(Span::raw("  "));
            spans.push(Span::styled("█".repeat(filled.min(room)), palette.running()));
            spans.push(Span::styled("░".repeat(room - filled.min(room)), palette.dim()));
        }
        lines.push(fit_line(Line::from(spans), width));
    }
    if d.workers.is_empty() {
        lines.push(Line::styled(" no active worker", palette.warn()));
    }
    lines
}

/// The report's problems (narrow screens: with the index and unique notes the table has no
/// room for), or a line saying there are none.
fn problem_lines(
    report: &VerifyReport,
    stale: bool,
    wide: bool,
    width: usize,
    palette: Palette,
) -> Vec<Line<'static>> {
    let mut problems: Vec<Line<'static>> = Vec::new();
    for problem in &report.problems {
        problems.extend(wrap_styled(vec![Span::styled(format!(" ✗ {problem}"), palette.error())], width, 3));
    }
    if !wide {
        for t in &report.tables {
            if !t.invalid_indexes.is_empty() {
                problems.extend(wrap_styled(
                    vec![Span::styled(
                        format!(" ! {}: invalid indexes {}", t.table, t.invalid_indexes.join(", ")),
                        palette.warn(),
                    )],
                    width,
                    3,
                ));
            }
            if !t.unscoped_uniques.is_empty() {
                problems.extend(wrap_styled(
                    vec![Span::styled(
                        format!(" · {}: uniques not scoped yet {}", t.table, t.unscoped_uniques.join(", ")),
                        palette.dim(),
                    )],
                    width,
                    3,
                ));
            }
        }
    }
    if stale {
        // The last count failed: what it would have found is unknown, not fine.
        let line = " ? problems unknown since the last count failed; these are the last good count's (v counts again)";
        problems.insert(0, Line::styled(line, palette.warn()));
    } else if problems.is_empty() {
        let through = if report.applied_through > 0 {
            format!(" for what is applied (through stage {})", report.applied_through)
        } else {
            String::new()
        };
        problems.push(Line::from(vec![
            Span::styled(" ✓ ", palette.ok()),
            Span::raw(format!("no problems{through}")),
        ]));
    }
    problems
}

fn width_of(text: &str) -> usize {
    super::text::width(text)
}

fn table_row(
    model: &Model,
    t: &TableCounts,
    columns: &[(&Column, usize)],
    name_width: usize,
    wide: bool,
    palette: Palette,
) -> Line<'static> {
    let indent = if t.partition_of.is_some() { "   " } else { " " };
    let name_style = if !t.problems.is_empty() {
        palette.error()
    } else if !t.scoped {
        palette.dim()
    } else {
        palette.plain()
    };
    let mut spans = vec![Span::styled(pad(&format!("{indent}{}", t.table), name_width), name_style)];
    let none = || ("—".to_string(), palette.dim());
    for (c, w) in columns {
        let (text, style) = match c.title {
            "rows" => (count_in(t.rows, *w), palette.plain()),
            "NULL" | "unknown" | "cross" if !t.tenant_column => none(),
            "NULL" => {
                (count_in(t.null_tenant, *w), if t.null_tenant > 0 { palette.warn() } else { palette.ok() })
            }
            "unknown" => (count_in(t.unknown_tenant, *w), palette.problem_if(t.unknown_tenant > 0)),
            "cross" => (count_in(t.cross_tenant, *w), palette.problem_if(t.cross_tenant > 0)),
            "per tenant" => {
                (per_tenant(model, t, if wide { 3 } else { 2 }, w.saturating_sub(2)), palette.plain())
            }
            "bad idx" => {
                (t.invalid_indexes.len().to_string(), palette.problem_if(!t.invalid_indexes.is_empty()))
            }
            "unscoped" if !t.scoped => none(),
            "unscoped" => (
                t.unscoped_uniques.len().to_string(),
                if t.unscoped_uniques.is_empty() { palette.plain() } else { palette.warn() },
            ),
            "RLS" if !t.scoped => ("shared".to_string(), palette.dim()),
            "RLS" => (
                rls_text(t).to_string(),
                if t.rls_enabled && t.rls_forced { palette.ok() } else { palette.plain() },
            ),
            "policy" if !t.scoped => none(),
            "policy" => (
                if t.has_policy { "✓" } else { "✗" }.to_string(),
                if t.has_policy { palette.ok() } else { palette.plain() },
            ),
            _ => (String::new(), palette.plain()),
        };
        spans.push(if c.title == "per tenant" {
            Span::styled(pad(&format!("  {text}"), *w), style)
        } else {
            Span::styled(pad_left(&text, *w), style)
        });
    }
    Line::from(spans)
}
