//! Overview: where we are (server, database, role and what it may do), the tables the plan
//! covers, and everything preflight found, most severe first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::{
    bytes, count, duration_ms, fit_line, one_line, pad, pad_left, plural, short_version, wrap_after,
};
use super::theme::{Palette, severity_marker};
use crate::plan::{Finding, PlanTable, Severity};
use crate::tui::state::Model;

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let server_lines = server_lines(model, palette, area.width as usize);
    let server_height = (server_lines.len() as u16).min(area.height);
    let [server_area, rest] =
        Layout::vertical([Constraint::Length(server_height), Constraint::Fill(1)]).areas(area);
    frame.render_widget(Paragraph::new(server_lines), server_area);
    if rest.height == 0 {
        return;
    }
    let wide = rest.width >= 110;
    let (tables_area, findings_area) = if wide {
        let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .spacing(2)
            .areas(rest);
        (left, right)
    } else {
        let wanted = model.plan.tables.len() as u16 + 1;
        let findings_wanted = finding_items(model).len() as u16 + 1;
        let tables_height =
            wanted.min((rest.height / 2).max(rest.height.saturating_sub(findings_wanted))).min(rest.height);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(tables_height), Constraint::Fill(1)]).areas(rest);
        (top, bottom)
    };
    tables(frame, tables_area, model, palette);
    findings(frame, findings_area, model, palette);
}

/// A section heading: `── Title ───────`.
pub fn rule(title: &str, width: usize, palette: Palette) -> Line<'static> {
    let title = format!(" {title} ");
    let used = super::text::width(&title) + 2;
    fit_line(
        Line::from(vec![
            Span::styled("──", palette.dim()),
            Span::styled(title, palette.title()),
            Span::styled("─".repeat(width.saturating_sub(used)), palette.dim()),
        ]),
        width,
    )
}

fn yes_no(on: bool, palette: Palette, bad_when_off: bool) -> Span<'static> {
    match (on, bad_when_off) {
        (true, _) => Span::styled("✓", palette.ok()),
        (false, true) => Span::styled("✗", palette.error()),
        (false, false) => Span::styled("✗", palette.plain()),
    }
}

fn server_lines(model: &Model, palette: Palette, width: usize) -> Vec<Line<'static>> {
    let server = &model.server;
    let label = |text: &str| Span::styled(pad(text, 9), palette.title());
    let version = short_version(if server.version.is_empty() {
        &model.plan.source.server_version
    } else {
        &server.version
    });
    let mut first = vec![
        label("Server"),
        Span::raw(version),
        Span::raw(" · database "),
        Span::styled(server.database.clone(), palette.bold()),
    ];
    if !server.connection.is_empty() {
        first.push(Span::styled(format!(" · {}", server.connection), palette.dim()));
    }
    let mut role = vec![
        label("Role"),
        Span::styled(server.role.clone(), palette.bold()),
        Span::raw("  superuser "),
        yes_no(server.superuser, palette, false),
        Span::raw("  BYPASSRLS "),
        yes_no(server.bypass_rls, palette, false),
    ];
    if server.superuser || server.bypass_rls {
        role.push(Span::styled("  (policies do not apply to it)", palette.dim()));
    }
    let may = vec![
        label("May"),
        Span::raw("create the journal schema "),
        yes_no(server.can_create_schema, palette, true),
        Span::raw("  own every table "),
        yes_no(server.owns_all_tables, palette, true),
    ];
    [first, role, may].into_iter().map(|spans| fit_line(Line::from(spans), width)).collect()
}

/// Tables in display order: roots in plan order, each followed by its partitions (indented).
/// Returns (index into `plan.tables`, depth).
pub fn table_order(tables: &[PlanTable]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let known = |name: &crate::sql::QualifiedName| tables.iter().any(|t| &t.name == name);
    fn visit(tables: &[PlanTable], i: usize, depth: usize, out: &mut Vec<(usize, usize)>) {
        if out.iter().any(|(seen, _)| *seen == i) || depth > 8 {
            return;
        }
        out.push((i, depth));
        for (j, child) in tables.iter().enumerate() {
            if child.partition_of.as_ref() == Some(&tables[i].name) {
                visit(tables, j, depth + 1, out);
            }
        }
    }
    for (i, table) in tables.iter().enumerate() {
        if table.partition_of.as_ref().is_none_or(|p| !known(p)) {
            visit(tables, i, 0, &mut out);
        }
    }
    for i in 0..tables.len() {
        if !out.iter().any(|(seen, _)| *seen == i) {
            out.push((i, 0));
        }
    }
    out
}

/// Rows and bytes of a table; a partitioned parent sums its partitions.
fn table_size(model: &Model, index: usize) -> (Option<i64>, bool, i64) {
    let tables = &model.plan.tables;
    let table = &tables[index];
    let name = table.name.display_plain();
    let exact = model.counts.as_ref().and_then(|c| c.tables.iter().find(|t| t.table == name)).map(|t| t.rows);
    let children: Vec<&PlanTable> =
        tables.iter().filter(|t| t.partition_of.as_ref() == Some(&table.name)).collect();
    if !children.is_empty() && exact.is_none() {
        let descendants = descendants(tables, &table.name);
        let rows = descendants.iter().filter(|t| t.row_estimate > 0).map(|t| t.row_estimate).sum();
        let size = descendants.iter().map(|t| t.total_bytes.max(0)).sum::<i64>() + table.total_bytes.max(0);
        return (Some(rows), false, size);
    }
    match exact {
        Some(rows) => (Some(rows), true, table.total_bytes),
        None if table.row_estimate >= 0 => (Some(table.row_estimate), false, table.total_bytes),
        None => (None, false, table.total_bytes),
    }
}

fn descendants<'a>(tables: &'a [PlanTable], parent: &crate::sql::QualifiedName) -> Vec<&'a PlanTable> {
    let mut out = Vec::new();
    let mut frontier = vec![parent.clone()];
    while let Some(current) = frontier.pop() {
        for t in tables.iter().filter(|t| t.partition_of.as_ref() == Some(&current)) {
            if out.len() < tables.len() {
                out.push(t);
                frontier.push(t.name.clone());
            }
        }
    }
    out
}

/// The first visible row of a list of `len` rows in `height` lines, keeping `cursor` in view
/// (centred once the list scrolls).
pub fn scroll_offset(cursor: usize, len: usize, height: usize) -> usize {
    if len <= height || height == 0 {
        return 0;
    }
    cursor.saturating_sub(height / 2).min(len - height)
}

fn tables(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let width = area.width as usize;
    let tables = &model.plan.tables;
    let scoped = tables.iter().filter(|t| t.scoped).count();
    let title = format!("Tables: {} tenant-scoped, {} shared", scoped, tables.len() - scoped);
    let mut lines = vec![rule(&title, width, palette)];
    if tables.is_empty() {
        lines.push(Line::styled("  no tables in the plan's schemas", palette.dim()));
    }
    let order = table_order(tables);
    let height = area.height.saturating_sub(1) as usize;
    let cursor_row = order.iter().position(|(i, _)| *i == model.table_cursor).unwrap_or(0);
    let offset = scroll_offset(cursor_row, order.len(), height);
    // name | scope | rows | size, dropping the size when narrow.
    let show_size = width >= 52;
    let fixed = 2 + 7 + 1 + 12 + if show_size { 10 } else { 0 };
    // A partition in its parent's schema is named without the schema: it sits indented under
    // the parent, and the shorter name leaves room for what tells partitions apart.
    let shown = |i: usize| -> String {
        let table = &tables[i];
        match &table.partition_of {
            Some(parent) if parent.schema == table.name.schema => table.name.name.clone(),
            _ => table.name.display_plain(),
        }
    };
    let longest =
        order.iter().map(|(i, depth)| 2 * depth + super::text::width(&shown(*i))).max().unwrap_or(0);
    let name_width = width.saturating_sub(fixed).min(longest + 2).max(8);
    for (index, depth) in order.iter().skip(offset).take(height) {
        let table = &tables[*index];
        let selected = *index == model.table_cursor;
        let (rows, exact, size) = table_size(model, *index);
        let rows = match rows {
            Some(n) if exact => count(n),
            Some(n) => format!("~{}", count(n)),
            None => "?".to_string(),
        };
        let marker = if selected { "› " } else { "  " };
        let name = format!("{}{}", "  ".repeat(*depth), shown(*index));
        let (scope, scope_style) =
            if table.scoped { ("scoped", palette.plain()) } else { ("shared", palette.title()) };
        let mut spans = vec![
            Span::raw(marker),
            Span::raw(pad(&name, name_width)),
            Span::styled(pad(scope, 7), scope_style),
            Span::raw(" "),
            Span::raw(pad_left(&rows, 12)),
        ];
        if show_size {
            spans.push(Span::styled(pad_left(&bytes(size), 10), palette.dim()));
        }
        let mut line = fit_line(Line::from(spans), width);
        if selected {
            line = line.style(palette.selected());
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// Everything worth knowing before applying, with its severity and where it comes from.
pub fn finding_items(model: &Model) -> Vec<(Severity, String)> {
    let mut items: Vec<(Severity, u8, String)> = Vec::new();
    if let Some(live) = &model.live {
        for (who, mode, table) in &live.locks {
            let app = if who.application.is_empty() {
                "no application name".into()
            } else {
                who.application.clone()
            };
            items.push((
                Severity::Warning,
                0,
                format!(
                    "now: pid {} ({app}, {}) holds {mode} on {table}; DDL on it waits until that transaction ends",
                    who.pid,
                    if who.state.is_empty() { "?" } else { &who.state }
                ),
            ));
        }
        for who in &live.long_transactions {
            let app = if who.application.is_empty() {
                "no application name".into()
            } else {
                who.application.clone()
            };
            let query = one_line(&who.query);
            items.push((
                Severity::Warning,
                0,
                format!(
                    "now: pid {} ({app}) has had a transaction open for {}, {}{}",
                    who.pid,
                    duration_ms(who.transaction_ms),
                    if who.state.is_empty() { "?" } else { &who.state },
                    if query.is_empty() { String::new() } else { format!(": {query}") }
                ),
            ));
        }
    }
    for (severity, text) in &model.plan_check {
        items.push((*severity, 1, text.clone()));
    }
    if let Some((severity, text)) = cutover_item(model) {
        items.push((severity, 1, text));
    }
    for (severity, objects, message, code) in grouped_findings(&model.plan.findings) {
        items.push((severity, 2, format!("{}: {message} [{code}]", objects.join(", "))));
    }
    items.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    items.into_iter().map(|(s, _, text)| (s, text)).collect()
}

/// The plan's findings with the same severity, code and message as one, naming every object
/// in plan order: one unindexed foreign key per line filled the panel with the same sentence.
fn grouped_findings(findings: &[Finding]) -> Vec<(Severity, Vec<&str>, &str, &str)> {
    let mut groups: Vec<(Severity, Vec<&str>, &str, &str)> = Vec::new();
    for f in findings {
        let same = |g: &&mut (Severity, Vec<&str>, &str, &str)| {
            g.0 == f.severity && g.2 == f.message && g.3 == f.code
        };
        match groups.iter_mut().find(same) {
            Some(group) => group.1.push(&f.object),
            None => groups.push((f.severity, vec![&f.object], &f.message, &f.code)),
        }
    }
    groups
}

/// Where the cutover (stage 10) stands once stage 8 is done, and what the application must
/// change for it.
fn cutover_item(model: &Model) -> Option<(Severity, String)> {
    use crate::plan::{CutoverState, Stage, set_local_snippet};
    use crate::tui::state::UiStepState;
    let done = |stage: Stage| {
        let mut steps = model.steps.iter().filter(|s| s.stage == stage).peekable();
        steps.peek().is_some() && steps.all(|s| s.state == UiStepState::Done)
    };
    if !done(Stage::Rls) {
        return None;
    }
    let state =
        model.plan.cutover_state(|id| model.steps.iter().any(|s| s.id == id && s.state == UiStepState::Done));
    let setting = &model.plan.tenant.setting;
    let legacy = match model.plan.options.legacy_roles.as_slice() {
        [] => String::new(),
        roles => format!(" Until then the legacy roles ({}) keep the default tenant.", roles.join(", ")),
    };
    match state {
        CutoverState::NotPlanned => None,
        CutoverState::Pending | CutoverState::Partial => Some((
            if state == CutoverState::Partial { Severity::Warning } else { Severity::Info },
            format!(
                "cutover {}: the application must set {setting} in every transaction: {} Then apply \
                 stage 10 (select it, A) or run `tenantize cutover PLAN`; a session that sets no \
                 tenant then reads no row and cannot insert.{legacy}",
                if state == CutoverState::Partial { "partly done" } else { "pending" },
                set_local_snippet(setting, model.plan.options.distribute.is_some())
            ),
        )),
        CutoverState::Done => Some((
            Severity::Info,
            format!(
                "cutover done: tenant columns default to {setting}; a session that sets no tenant \
                 reads no row and cannot insert (r/R undo it)"
            ),
        )),
    }
}

fn findings(frame: &mut Frame, area: Rect, model: &Model, palette: Palette) {
    if area.height == 0 {
        return;
    }
    let width = area.width as usize;
    let items = finding_items(model);
    let n = |severity: Severity| items.iter().filter(|(s, _)| *s == severity).count();
    let mut parts = vec![
        plural(n(Severity::Error), "error", "errors"),
        plural(n(Severity::Warning), "warning", "warnings"),
        format!("{} info", n(Severity::Info)),
    ];
    if model.live.is_none() {
        parts.push("checking live activity…".into());
    }
    let mut lines = vec![rule(&format!("Findings: {}", parts.join(", ")), width, palette)];
    if items.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("  ✓ ", palette.ok()),
            Span::raw("nothing stands in the way"),
        ]));
    }
    let height = area.height as usize;
    for (i, (severity, text)) in items.iter().enumerate() {
        let style: Style = palette.severity(*severity);
        let label = match severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let prefix = vec![
            Span::styled(format!(" {} ", severity_marker(*severity)), style),
            Span::styled(pad(label, 8), style),
        ];
        let text_style = if *severity == Severity::Info { palette.plain() } else { style };
        let wrapped = wrap_after(prefix, text, text_style, width);
        let after = items.len() - i - 1;
        let reserve = usize::from(after > 0);
        if lines.len() + wrapped.len() + reserve <= height {
            lines.extend(wrapped);
            continue;
        }
        // Not everything fits: what does of this one, cut, then how many are left.
        let room = height.saturating_sub(lines.len() + reserve);
        if room > 0 {
            let mut part: Vec<Line<'static>> = wrapped.into_iter().take(room).collect();
            if let Some(last) = part.pop() {
                let mut spans = last.spans;
                spans.push(Span::styled(" …", palette.dim()));
                part.push(fit_line(Line::from(spans), width));
            }
            lines.extend(part);
            if after > 0 {
                lines.push(Line::styled(format!("   … and {after} more"), palette.dim()));
            }
        } else if height > lines.len() {
            lines.push(Line::styled(format!("   … and {} more", after + 1), palette.dim()));
        }
        break;
    }
    lines.truncate(height);
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::finding_items;
    use crate::plan::Stage;
    use crate::tui::state::UiStepState;
    use crate::tui::view::fixture;

    fn cutover_lines(model: &crate::tui::state::Model) -> Vec<String> {
        finding_items(model).into_iter().map(|(_, t)| t).filter(|t| t.starts_with("cutover ")).collect()
    }

    #[test]
    fn after_stage_8_the_overview_says_where_the_cutover_stands_and_what_the_application_must_do() {
        let mut model = fixture::model();
        assert!(cutover_lines(&model).is_empty(), "nothing to say before stage 8 is done");
        for step in model.steps.iter_mut().filter(|s| s.stage <= Stage::Rls) {
            step.state = UiStepState::Done;
        }
        let pending = cutover_lines(&model);
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert!(pending[0].starts_with("cutover pending"), "{}", pending[0]);
        assert!(pending[0].contains("SET LOCAL app.tenant_id = '<tenant id>'"), "{}", pending[0]);
        assert!(pending[0].contains("tenantize cutover"), "{}", pending[0]);
        for step in model.steps.iter_mut().filter(|s| s.stage == Stage::Cutover) {
            step.state = UiStepState::Done;
        }
        assert!(cutover_lines(&model)[0].starts_with("cutover done"));
    }
}
