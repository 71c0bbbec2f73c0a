//! What a run looked like, step by step: built from engine events with their times (a run log,
//! or a rehearsal as it happens), rendered as Markdown (for a pull request) or as a
//! self-contained HTML timeline.

use std::fmt::Write as _;

use crate::event::{CheckPhase, Direction, Event};
use crate::plan::{LockMode, Plan};

/// A span during which the run held (or waited for) a lock that blocks writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSpan {
    pub start_ms: u64,
    pub end_ms: u64,
    pub lock: LockMode,
    pub on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTiming {
    pub step_id: String,
    pub title: String,
    pub direction: Direction,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub rows: u64,
    pub failed: Option<String>,
    pub retries: u32,
    /// The longest single lock wait, and who caused it (pid and application).
    pub longest_wait_ms: u64,
    pub waited_for: Vec<String>,
    pub write_blocking: Vec<LockSpan>,
    pub checks_before: Vec<(String, i64)>,
    pub checks_after: Vec<(String, i64, i64, bool)>,
}

impl StepTiming {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.unwrap_or(self.start_ms).saturating_sub(self.start_ms)
    }

    pub fn write_blocked_ms(&self) -> u64 {
        self.write_blocking.iter().map(|s| s.end_ms.saturating_sub(s.start_ms)).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    pub steps: Vec<StepTiming>,
    pub total_ms: u64,
    pub outcome: Option<String>,
}

impl Timeline {
    /// Build the timeline of `events` (with their times) for `plan`. A statement blocks writes
    /// from when it asks for its lock (waiting in the queue blocks others too) until its
    /// transaction ends: its own COMMIT, or the step's for one-transaction steps.
    pub fn from_events(plan: &Plan, events: &[(u64, Event)]) -> Timeline {
        let mut timeline = Timeline::default();
        let mut open: OpenStatements = Vec::new();
        let mut held: HeldLocks = Vec::new();
        for (at, event) in events {
            timeline.total_ms = timeline.total_ms.max(*at);
            let find = |timeline: &Timeline, id: &str| timeline.steps.iter().rposition(|s| s.step_id == id);
            match event {
                Event::StepStarted { step_id, title, direction, .. } => {
                    timeline.steps.push(StepTiming {
                        step_id: step_id.clone(),
                        title: title.clone(),
                        direction: *direction,
                        start_ms: *at,
                        end_ms: None,
                        rows: 0,
                        failed: None,
                        retries: 0,
                        longest_wait_ms: 0,
                        waited_for: Vec::new(),
                        write_blocking: Vec::new(),
                        checks_before: Vec::new(),
                        checks_after: Vec::new(),
                    });
                }
                Event::StatementStarted { step_id, index, lock, on, .. } => {
                    let one_transaction = find(&timeline, step_id).is_some_and(|i| {
                        let rollback = timeline.steps[i].direction == Direction::Rollback;
                        plan.step(step_id).is_some_and(|s| s.shares_transaction(rollback, *index))
                    });
                    if one_transaction {
                        if lock.blocks_writes() && !held.iter().any(|(s, ..)| s == step_id) {
                            held.push((step_id.clone(), *at, *lock, on.clone()));
                        }
                    } else {
                        open.retain(|(s, i, ..)| !(s == step_id && i == index));
                        open.push((step_id.clone(), *index, *at, *lock, on.clone()));
                    }
                }
                Event::StatementFinished { step_id, index, .. } => {
                    if let Some(pos) = open.iter().position(|(s, i, ..)| s == step_id && i == index) {
                        let (_, _, start, lock, on) = open.remove(pos);
                        if lock.blocks_writes()
                            && let Some(i) = find(&timeline, step_id)
                        {
                            timeline.steps[i].write_blocking.push(LockSpan {
                                start_ms: start,
                                end_ms: *at,
                                lock,
                                on,
                            });
                        }
                    }
                }
                Event::LockWait { step_id, waited_ms, blockers, .. } => {
                    if let Some(i) = find(&timeline, step_id) {
                        let s = &mut timeline.steps[i];
                        s.longest_wait_ms = s.longest_wait_ms.max(*waited_ms);
                        note_blockers(s, blockers);
                    }
                }
                Event::AutovacuumCancelled { step_id, pid, cancelled, .. } => {
                    if let Some(i) = find(&timeline, step_id) {
                        let what = if *cancelled { "cancelled" } else { "not cancelled" };
                        let who = format!("autovacuum pid {pid} ({what})");
                        if !timeline.steps[i].waited_for.contains(&who) {
                            timeline.steps[i].waited_for.push(who);
                        }
                    }
                }
                Event::Retry { step_id, blockers, .. } => {
                    if let Some(i) = find(&timeline, step_id) {
                        let step = &mut timeline.steps[i];
                        step.retries += 1;
                        note_blockers(step, blockers);
                        close_spans(step, *at, &mut open, &mut held);
                    }
                }
                Event::CheckResult { step_id, name, value, expected, ok, phase } => {
                    if let Some(i) = find(&timeline, step_id) {
                        match phase {
                            CheckPhase::Before => {
                                timeline.steps[i].checks_before.push((name.clone(), *value))
                            }
                            CheckPhase::After | CheckPhase::AfterUndo => {
                                timeline.steps[i].checks_after.push((name.clone(), *value, *expected, *ok))
                            }
                        }
                    }
                }
                Event::StepFinished { step_id, .. } | Event::StepFailed { step_id, .. } => {
                    open.retain(|(s, ..)| s != step_id);
                    if let Some(i) = find(&timeline, step_id) {
                        if let Some(pos) = held.iter().position(|(s, ..)| s == step_id) {
                            let (_, start, lock, on) = held.remove(pos);
                            timeline.steps[i].write_blocking.push(LockSpan {
                                start_ms: start,
                                end_ms: *at,
                                lock,
                                on,
                            });
                        }
                        timeline.steps[i].end_ms = Some(*at);
                        match event {
                            Event::StepFinished { rows, .. } => timeline.steps[i].rows = *rows,
                            Event::StepFailed { error, .. } => timeline.steps[i].failed = Some(error.clone()),
                            _ => {}
                        }
                    }
                }
                Event::RunFinished { message, .. } => timeline.outcome = Some(message.clone()),
                _ => {}
            }
        }
        timeline
    }

    pub fn write_blocked_ms(&self) -> u64 {
        self.steps.iter().map(|s| s.write_blocked_ms()).sum()
    }

    pub fn longest_write_block_ms(&self) -> u64 {
        self.steps
            .iter()
            .flat_map(|s| s.write_blocking.iter())
            .map(|s| s.end_ms.saturating_sub(s.start_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn slowest(&self, n: usize) -> Vec<&StepTiming> {
        let mut steps: Vec<&StepTiming> = self.steps.iter().collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.duration_ms()));
        steps.truncate(n);
        steps
    }
}

/// Statements started and not finished: (step, index, start, lock, on).
type OpenStatements = Vec<(String, usize, u64, LockMode, Vec<String>)>;
/// One-transaction steps holding a write-blocking lock since: (step, start, lock, on).
type HeldLocks = Vec<(String, u64, LockMode, Vec<String>)>;

/// An attempt of `step` gave up on its lock at `at` and its transaction rolled back: writes
/// were blocked while it queued, not during the backoff sleep that follows (the next attempt
/// opens a new span when it asks for the lock again).
fn close_spans(step: &mut StepTiming, at: u64, open: &mut OpenStatements, held: &mut HeldLocks) {
    let (queued, rest): (Vec<_>, Vec<_>) = open.drain(..).partition(|(s, ..)| *s == step.step_id);
    *open = rest;
    let spans = queued.into_iter().map(|(_, _, start, lock, on)| (start, lock, on));
    let taken = held.iter().position(|(s, ..)| *s == step.step_id).map(|p| held.remove(p));
    let spans = spans.chain(taken.map(|(_, start, lock, on)| (start, lock, on)));
    for (start, lock, on) in spans.filter(|(_, lock, _)| lock.blocks_writes()) {
        step.write_blocking.push(LockSpan { start_ms: start, end_ms: at, lock, on });
    }
}

fn note_blockers(step: &mut StepTiming, blockers: &[crate::event::Blocker]) {
    for b in blockers {
        let who = format!("pid {} ({})", b.pid, b.application);
        if !step.waited_for.contains(&who) {
            step.waited_for.push(who);
        }
    }
}

fn ms(value: u64) -> String {
    if value >= 10_000 { format!("{:.1} s", value as f64 / 1000.0) } else { format!("{value} ms") }
}

/// The story of one run, as Markdown for a pull request comment.
pub fn markdown_run(log: &crate::runlog::RunLog) -> String {
    let timeline = Timeline::from_events(&log.plan, &log.events);
    let server = log
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::RunStarted { server_version, database, .. } => Some(format!(
                "{} on database `{database}`",
                server_version.split(" on ").next().unwrap_or(server_version)
            )),
            _ => None,
        })
        .unwrap_or_else(|| "unknown server".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## tenantize {}: {}",
        log.command,
        timeline.outcome.as_deref().unwrap_or("did not finish")
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Plan `{:.12}`{} · {server} · tenantize {} · started {}",
        log.plan.plan_hash,
        log.plan_file.as_deref().map(|p| format!(" (`{p}`)")).unwrap_or_default(),
        log.tool_version,
        log.started_at
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "**{} steps in {}** · writes blocked for {} in total, at most {} at a time",
        timeline.steps.len(),
        ms(timeline.total_ms),
        ms(timeline.write_blocked_ms()),
        ms(timeline.longest_write_block_ms())
    );
    let _ = writeln!(out);
    let _ =
        writeln!(out, "| # | step | took | rows | blocks writes | waited for | checks (before → after) |");
    let _ =
        writeln!(out, "|---|------|------|------|---------------|------------|--------------------------|");
    for (n, step) in timeline.steps.iter().enumerate() {
        let checks: Vec<String> = step
            .checks_after
            .iter()
            .map(|(name, after, expected, ok)| {
                let before = step.checks_before.iter().find(|(b, _)| b == name).map(|(_, v)| v.to_string());
                let mark = if *ok { "✓" } else { "✗" };
                format!(
                    "{name}: {} → {after} {mark}{}",
                    before.unwrap_or_else(|| "?".into()),
                    if *ok { String::new() } else { format!(" (expected {expected})") }
                )
            })
            .collect();
        let waited = if step.waited_for.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{} ({} retries, longest {})",
                step.waited_for.join(", "),
                step.retries,
                ms(step.longest_wait_ms)
            )
        };
        let undo = if step.direction == Direction::Rollback { "undo " } else { "" };
        let failed = step
            .failed
            .as_deref()
            .map(|e| format!(" **FAILED: {}**", e.replace('|', "\\|")))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {undo}`{}`{failed} | {} | {} | {} | {} | {} |",
            n + 1,
            step.step_id,
            ms(step.duration_ms()),
            step.rows,
            if step.write_blocked_ms() > 0 { ms(step.write_blocked_ms()) } else { "-".into() },
            waited.replace('|', "\\|"),
            checks.join("<br>").replace('|', "\\|")
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained HTML page: one bar per step (its duration), with the spans that held a
/// write-blocking lock drawn over it.
pub fn html_timeline(title: &str, summary_rows: &[(String, String)], timeline: &Timeline) -> String {
    let width = 900.0;
    let total = timeline.total_ms.max(1) as f64;
    let row_height = 18.0;
    let label_width = 330.0;
    let height = row_height * timeline.steps.len() as f64 + 30.0;
    let mut bars = String::new();
    for (n, step) in timeline.steps.iter().enumerate() {
        let y = 20.0 + n as f64 * row_height;
        let x = label_width + step.start_ms as f64 / total * width;
        let w = (step.duration_ms() as f64 / total * width).max(1.0);
        let fill = if step.failed.is_some() {
            "#c0392b"
        } else if step.direction == Direction::Rollback {
            "#7f8c8d"
        } else {
            "#2e86c1"
        };
        let _ = write!(
            bars,
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{}</text><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"12\" fill=\"{fill}\"><title>{} — {}</title></rect>",
            y + 10.0,
            escape(&step.step_id),
            y,
            escape(&step.step_id),
            ms(step.duration_ms())
        );
        for span in &step.write_blocking {
            let sx = label_width + span.start_ms as f64 / total * width;
            let sw = ((span.end_ms.saturating_sub(span.start_ms)) as f64 / total * width).max(2.0);
            let _ = write!(
                bars,
                "<rect x=\"{sx:.1}\" y=\"{:.1}\" width=\"{sw:.1}\" height=\"4\" fill=\"#e74c3c\"><title>{} on {}: writes wait for {}</title></rect>",
                y + 12.0,
                span.lock.label(),
                escape(&span.on.join(", ")),
                ms(span.end_ms.saturating_sub(span.start_ms))
            );
        }
    }
    let mut rows = String::new();
    for (k, v) in summary_rows {
        let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    let mut slow = String::new();
    for step in timeline.slowest(5) {
        let _ = write!(
            slow,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(&step.step_id),
            ms(step.duration_ms()),
            if step.write_blocked_ms() > 0 { ms(step.write_blocked_ms()) } else { "-".into() }
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\n\
         body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 1.5em; }} th, td {{ text-align: left; padding: 2px 12px 2px 0; }}\n\
         .label {{ font: 11px monospace; }} svg {{ border-top: 1px solid #ccc; }}\n\
         .legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}\n\
         </style></head><body>\n<h1>{t}</h1>\n<table>{rows}</table>\n<h2>Slowest steps</h2>\n\
         <table><tr><th>step</th><th>took</th><th>blocked writes</th></tr>{slow}</table>\n<h2>Timeline</h2>\n\
         <p class=\"legend\"><span style=\"background:#2e86c1\"></span>step<span style=\"background:#7f8c8d\"></span>rollback step\
         <span style=\"background:#e74c3c\"></span>holding or waiting for a lock that blocks writes<span style=\"background:#c0392b\"></span>failed</p>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{svg_w:.0}\" height=\"{height:.0}\">\
         <text x=\"{label_width:.0}\" y=\"12\" class=\"label\">0</text><text x=\"{end_x:.0}\" y=\"12\" class=\"label\" text-anchor=\"end\">{end}</text>{bars}</svg>\n\
         </body></html>\n",
        t = escape(title),
        svg_w = label_width + width + 10.0,
        end_x = label_width + width,
        end = ms(timeline.total_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn statement(step_id: &str, index: usize, lock: LockMode) -> Event {
        Event::StatementStarted {
            step_id: step_id.into(),
            index,
            lock,
            on: vec!["public.t".into()],
            sql: "ALTER TABLE public.t ...".into(),
            attempt: 0,
        }
    }

    fn retry(step_id: &str, index: usize, backoff_ms: u64) -> Event {
        Event::Retry {
            step_id: step_id.into(),
            index,
            attempt: 1,
            max_attempts: 5,
            backoff_ms,
            reason: "lock timeout".into(),
            blockers: Vec::new(),
        }
    }

    fn sample_plan() -> Plan {
        let text = include_str!("../plans/sample.plan.toml");
        crate::plan::file::parse(text, "plans/sample.plan.toml").expect("the sample plan parses")
    }

    /// The timeline of a step that waits 50 ms for its lock, gives up, sleeps 500 ms, then
    /// gets the lock at once: a step whose write-blocking statement shares a transaction with
    /// others when `shared`, else one that runs it alone.
    fn retried_step(shared: bool) -> Timeline {
        let plan = sample_plan();
        let (step, index) = plan
            .steps
            .iter()
            .find_map(|step| {
                let forward = step.forward();
                let index = (0..forward.len()).find(|&i| {
                    forward[i].lock.blocks_writes() && step.shares_transaction(false, i) == shared
                })?;
                Some((step, index))
            })
            .expect("the sample plan has such a step");
        let lock = step.forward()[index].lock;
        let id = step.id.as_str();
        let events = vec![
            (
                0,
                Event::StepStarted {
                    step_id: id.into(),
                    stage: step.stage,
                    title: step.title.clone(),
                    direction: Direction::Forward,
                    position: 0,
                    resumed: None,
                },
            ),
            (0, statement(id, index, lock)),
            (50, retry(id, index, 500)),
            (550, statement(id, index, lock)),
            (
                552,
                Event::StatementFinished {
                    step_id: id.into(),
                    index,
                    duration_ms: 2,
                    rows: 0,
                    skipped: false,
                },
            ),
            (
                560,
                Event::StepFinished {
                    step_id: id.into(),
                    direction: Direction::Forward,
                    duration_ms: 560,
                    rows: 0,
                },
            ),
        ];
        Timeline::from_events(&plan, &events)
    }

    /// Writes were blocked for about the 50 ms wait and the statement, never for the backoff.
    #[test]
    fn backoff_sleeps_are_not_counted_as_blocked_writes() {
        for shared in [false, true] {
            let timeline = retried_step(shared);
            assert_eq!(timeline.steps[0].retries, 1);
            let blocked_ms = timeline.write_blocked_ms();
            assert!((52..=62).contains(&blocked_ms), "shared={shared}: writes blocked for {blocked_ms} ms");
            let longest_ms = timeline.longest_write_block_ms();
            assert_eq!(longest_ms, 50, "shared={shared}: the longest block is the wait");
        }
    }
}
