//! Formatting and fitting text into cells: numbers, sizes, durations, truncation, wrapping.
//! Widths are display widths (what the terminal shows), not bytes or chars.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::event::ProgressUnit;
pub use crate::event::describe::bytes;

/// Display width of `text`.
pub fn width(text: &str) -> usize {
    Span::raw(text).width()
}

fn char_width(c: char) -> usize {
    let mut buffer = [0u8; 4];
    width(c.encode_utf8(&mut buffer))
}

/// `text` cut to `max` columns, ending in "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` cut from the left to `max` columns ("…tail"), for paths.
pub fn truncate_left(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        tail.push(c);
        used += w;
    }
    let mut out = String::from("…");
    out.extend(tail.into_iter().rev());
    out
}

/// `text` padded with spaces (or cut) to exactly `cells` columns, left-aligned.
pub fn pad(text: &str, cells: usize) -> String {
    let cut = truncate(text, cells);
    let w = width(&cut);
    format!("{cut}{}", " ".repeat(cells.saturating_sub(w)))
}

/// `text` right-aligned in `cells` columns (cut when longer).
pub fn pad_left(text: &str, cells: usize) -> String {
    let cut = truncate(text, cells);
    let w = width(&cut);
    format!("{}{cut}", " ".repeat(cells.saturating_sub(w)))
}

/// Runs of whitespace (newlines included) as one space: a query on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Word-wrap `text` into lines of at most `max` columns. Words longer than a line are split.
/// Leading spaces of `text` are kept on every line (indented SQL stays indented).
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let trimmed = text.trim_start_matches(' ');
    let indent = (text.len() - trimmed.len()).min(max / 2);
    let room = max - indent;
    let prefix = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for word in trimmed.split(' ').filter(|w| !w.is_empty()) {
        let w = width(word);
        if used > 0 && used + 1 + w <= room {
            current.push(' ');
            current.push_str(word);
            used += 1 + w;
            continue;
        }
        if used > 0 {
            lines.push(format!("{prefix}{current}"));
            current.clear();
            used = 0;
        }
        if w <= room {
            current.push_str(word);
            used = w;
        } else {
            for c in word.chars() {
                let cw = char_width(c);
                if used + cw > room && used > 0 {
                    lines.push(format!("{prefix}{current}"));
                    current.clear();
                    used = 0;
                }
                current.push(c);
                used += cw;
            }
        }
    }
    if used > 0 || lines.is_empty() {
        lines.push(format!("{prefix}{current}"));
    }
    lines
}

/// `prefix` then `text` wrapped in `style`; continuation lines indented by the prefix's width.
pub fn wrap_after(prefix: Vec<Span<'static>>, text: &str, style: Style, max: usize) -> Vec<Line<'static>> {
    let indent: usize = prefix.iter().map(|s| s.width()).sum();
    let indent = indent.min(max / 2);
    let room = max.saturating_sub(indent).max(1);
    let mut out = Vec::new();
    for (i, part) in wrap(text, room).into_iter().enumerate() {
        let mut spans = if i == 0 { prefix.clone() } else { vec![Span::raw(" ".repeat(indent))] };
        spans.push(Span::styled(part, style));
        out.push(Line::from(spans));
    }
    out
}

/// Styled words wrapped into lines of at most `max` columns; continuation lines start with
/// `indent` spaces. Spaces inside spans separate words (runs of spaces become one), except the
/// leading spaces of the first span, which indent the first line.
pub fn wrap_styled(spans: Vec<Span<'static>>, max: usize, indent: usize) -> Vec<Line<'static>> {
    let max = max.max(1);
    let indent = indent.min(max / 2);
    let lead = spans.first().map(|s| s.content.len() - s.content.trim_start_matches(' ').len()).unwrap_or(0);
    let lead = lead.min(max / 2);
    let mut words: Vec<(String, Style, bool)> = Vec::new();
    let mut space_before = true;
    for span in spans {
        let text = span.content.to_string();
        let mut first = true;
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            // A word glued to the previous span (no space between) stays glued.
            let glued = first && !space_before && !text.starts_with(' ');
            words.push((word.to_string(), span.style, glued));
            first = false;
        }
        if !text.is_empty() {
            space_before = text.ends_with(' ') || (first && text.starts_with(' '));
        }
    }
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    if lead > 0 {
        current.push(Span::raw(" ".repeat(lead)));
    }
    let mut used = lead;
    let mut line_start = true;
    let mut new_line = |current: &mut Vec<Span<'static>>, used: &mut usize| {
        lines.push(Line::from(std::mem::take(current)));
        if indent > 0 {
            current.push(Span::raw(" ".repeat(indent)));
        }
        *used = indent;
    };
    for (word, style, glued) in words {
        let w = width(&word);
        let gap = usize::from(!line_start && !glued);
        if !line_start && !glued && used + gap + w > max {
            new_line(&mut current, &mut used);
        } else if gap == 1 {
            current.push(Span::raw(" "));
            used += 1;
        }
        if used + w > max {
            // A word longer than a line: split it.
            for part in wrap(&word, max.saturating_sub(used).max(1)) {
                if used + width(&part) > max && used > indent {
                    new_line(&mut current, &mut used);
                }
                used += width(&part);
                current.push(Span::styled(part, style));
            }
        } else {
            current.push(Span::styled(word, style));
            used += w;
        }
        line_start = false;
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(Line::from(current));
    }
    lines.into_iter().map(|l| fit_line(l, max)).collect()
}

/// `text` ending in " …" within `max` columns: marks a line that was cut short.
pub fn ellipsize(text: &str, max: usize) -> String {
    let keep = max.saturating_sub(2);
    let mut out = String::new();
    let mut used = 0;
    for c in text.trim_end().chars() {
        let w = char_width(c);
        if used + w > keep {
            break;
        }
        out.push(c);
        used += w;
    }
    format!("{} …", out.trim_end())
}

/// A line of spans cut to `max` columns (the last visible span ends in "…" when cut).
pub fn fit_line(line: Line<'static>, max: usize) -> Line<'static> {
    if line.width() <= max {
        return line;
    }
    let style = line.style;
    let mut out: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in line.spans {
        let w = span.width();
        if used + w <= max {
            used += w;
            out.push(span);
            continue;
        }
        let room = max - used;
        if room > 0 {
            out.push(Span::styled(truncate(&span.content, room), span.style));
        } else if let Some(last) = out.pop() {
            let keep = last.width().saturating_sub(1);
            let text: String = last.content.chars().take(keep).collect();
            out.push(Span::styled(format!("{}…", truncate(&text, keep)), last.style));
        }
        break;
    }
    Line::from(out).style(style)
}

/// 1234567 → "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A count for a right-aligned column of `cells`, leaving at least one blank cell before it
/// so neighbouring numbers never run together: "600,000" when it fits, else "600k", "1.2M".
pub fn count_in(n: i64, cells: usize) -> String {
    let full = count(n);
    if full.len() < cells {
        return full;
    }
    let magnitude = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    for (unit, scale) in [("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)] {
        let value = magnitude / scale;
        let short =
            if value < 10.0 { format!("{sign}{value:.1}{unit}") } else { format!("{sign}{value:.0}{unit}") };
        if short.len() < cells && value < 1000.0 {
            return short;
        }
    }
    full
}

pub fn count_u(n: u64) -> String {
    count(n.min(i64::MAX as u64) as i64)
}

/// A duration for people: "850 ms", "12.3 s", "4m05s", "2h03m".
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = ms / 60_000;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// Whole seconds, for ETAs: "45 s", "4m05s".
pub fn duration_s(s: u64) -> String {
    if s < 60 { format!("{s} s") } else { duration_ms(s.saturating_mul(1000)) }
}

/// Milliseconds since the wizard started as `+mm:ss.s`.
pub fn log_time(ms: u64) -> String {
    let minutes = ms / 60_000;
    let seconds = (ms % 60_000) as f64 / 1000.0;
    format!("+{minutes:02}:{seconds:04.1}")
}

pub fn unit(unit: ProgressUnit) -> &'static str {
    match unit {
        ProgressUnit::Rows => "rows",
        ProgressUnit::Blocks => "blocks",
    }
}

/// "PostgreSQL 15.18" out of `version()`'s "PostgreSQL 15.18 (Debian …) on x86_64…, 64-bit".
pub fn short_version(version: &str) -> String {
    let words: Vec<&str> = version
        .split_whitespace()
        .take_while(|w| !w.starts_with('(') && *w != "on" && !w.ends_with(','))
        .take(2)
        .collect();
    match words.as_slice() {
        [] => String::new(),
        [only] if only.chars().next().is_some_and(|c| c.is_ascii_digit()) => format!("PostgreSQL {only}"),
        _ => words.join(" "),
    }
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {

    #[test]
    fn counts_in_a_column_always_leave_a_gap() {
        assert_eq!(count_in(294_001, 8), "294,001");
        assert_eq!(count_in(600_000, 7), "600k");
        assert_eq!(count_in(1_234_567, 7), "1.2M");
        assert_eq!(count_in(12_345_678, 6), "12M");
        assert_eq!(count_in(-600_000, 7), "-600k");
        for n in [0, 9, 99_999, 123_456, 9_999_999, 123_456_789_012] {
            assert!(count_in(n, 7).len() < 7, "{n}: {}", count_in(n, 7));
        }
    }
    use super::*;

    #[test]
    fn numbers_sizes_and_durations_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(-1234567), "-1,234,567");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(412_090_368), "393 MiB");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_340), "12.3 s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(duration_s(60), "1m00s");
        assert_eq!(log_time(65_300), "+01:05.3");
        assert_eq!(log_time(0), "+00:00.0");
    }

    #[test]
    fn versions_are_shortened() {
        assert_eq!(
            short_version(
                "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc"
            ),
            "PostgreSQL 15.18"
        );
        assert_eq!(short_version("PostgreSQL 16.2 on aarch64"), "PostgreSQL 16.2");
        assert_eq!(short_version("15.18"), "PostgreSQL 15.18");
        assert_eq!(short_version(""), "");
    }

    #[test]
    fn wrapping_and_truncating_respect_the_width() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate_left("plans/app.plan.toml", 10), "…plan.toml");
        assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(wrap("  indented words here", 10), ["  indented", "  words", "  here"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
        for line in wrap("ALTER TABLE public.users ADD COLUMN tenant_id uuid DEFAULT '0000'::uuid;", 12) {
            assert!(width(&line) <= 12, "{line}");
        }
        let lines =
            wrap_styled(vec![Span::raw("1 "), Span::raw("ACCESS EXCLUSIVE"), Span::raw(" on a, b")], 12, 2);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["1 ACCESS", "  EXCLUSIVE", "  on a, b"]);
        let lines =
            wrap_styled(vec![Span::raw("pid "), Span::raw("42"), Span::raw(","), Span::raw(" x")], 20, 0);
        assert_eq!(lines[0].to_string(), "pid 42, x");
        let lines = wrap_styled(vec![Span::raw("  ✓ "), Span::raw("one two three")], 9, 4);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["  ✓ one", "    two", "    three"]);
        assert_eq!(ellipsize("abcdef", 5), "abc …");
        assert_eq!(ellipsize("ab", 5), "ab …");
        let line = fit_line(Line::from(vec![Span::raw("abc"), Span::raw("defgh")]), 6);
        assert_eq!(line.to_string(), "abcde…");
    }
}
