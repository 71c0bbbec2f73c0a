//! The headless front end: engine events as indicatif bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{Blocker, Direction, Event, EventReceiver, ProgressUnit, RunOutcome};

/// What the printer saw, for the caller's exit message.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub outcome: Option<RunOutcome>,
    pub message: String,
    pub steps_finished: usize,
    pub steps_failed: usize,
}

struct Bars {
    multi: MultiProgress,
    steps: HashMap<String, ProgressBar>,
}

pub struct Printer<W: Write> {
    out: W,
    bars: Option<Bars>,
    steps_total: usize,
    lock_printed: HashMap<String, Instant>,
    progress_printed: HashMap<String, (Instant, u64)>,
    seen: Seen,
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(99).collect::<String>())
    } else {
        line.to_string()
    }
}

pub fn describe_blockers(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(|b| {
            format!(
                "pid {} ({:?}, {}, transaction open {:.1} s): {}",
                b.pid,
                b.application,
                b.state,
                b.transaction_ms as f64 / 1000.0,
                first_line(&b.query)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl<W: Write> Printer<W> {
    /// `terminal`: draw progress bars (on stderr) instead of printing progress lines.
    pub fn new(out: W, terminal: bool) -> Self {
        let bars = terminal.then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            steps: HashMap::new(),
        });
        Printer {
            out,
            bars,
            steps_total: 0,
            lock_printed: HashMap::new(),
            progress_printed: HashMap::new(),
            seen: Seen::default(),
        }
    }

    fn line(&mut self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => {
                let _ = writeln!(self.out, "{text}");
            }
        }
    }

    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                direction,
                database,
                server_version,
                steps_total,
                steps_to_run,
                plan_hash,
            } => {
                self.steps_total = *steps_total;
                let verb = match direction {
                    Direction::Forward => "apply",
                    Direction::Rollback => "roll back",
                };
                let version = server_version.split(" on ").next().unwrap_or(server_version);
                self.line(format!(
                    "{verb}: {steps_to_run} of {steps_total} steps, database {database} ({version}), plan {:.12}",
                    plan_hash
                ));
            }
            Event::Findings { findings } => {
                for f in findings {
                    self.line(format!("  {:<7} {} {}: {}", f.severity.label(), f.code, f.object, f.message));
                }
            }
            Event::StepStarted { step_id, title, position, direction, resumed, .. } => {
                let resumed = resumed.as_ref().map(|r| format!(" (resuming {r})")).unwrap_or_default();
                let arrow = if *direction == Direction::Rollback { "undo " } else { "" };
                let text =
                    format!("[{:>3}/{}] {arrow}{step_id}: {title}{resumed}", position + 1, self.steps_total);
                self.line(text.clone());
                if let Some(bars) = &mut self.bars {
                    let pb = bars.multi.add(ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template("  {spinner} {elapsed:>4} {msg}")
                            .expect("valid template"),
                    );
                    pb.enable_steady_tick(Duration::from_millis(120));
                    pb.set_message(step_id.clone());
                    bars.steps.insert(step_id.clone(), pb);
                }
            }
            Event::StatementStarted { step_id, index, lock, on, sql, attempt } => {
                let retry = if *attempt > 0 { format!(" (attempt {})", attempt + 1) } else { String::new() };
                let text = format!(
                    "        #{} {} on {}{retry}: {}",
                    index + 1,
                    lock.label(),
                    on.join(", "),
                    first_line(sql)
                );
                match &self.bars {
                    Some(bars) => {
                        if let Some(pb) = bars.steps.get(step_id) {
                            pb.set_message(format!("{step_id} #{} {}", index + 1, first_line(sql)));
                        }
                    }
                    None => self.line(text),
                }
            }
            Event::StatementFinished { index, duration_ms, rows, skipped, .. } => {
                if self.bars.is_none() {
                    let what = if *skipped {
                        "already done by an earlier run".to_string()
                    } else {
                        format!("{duration_ms} ms, {rows} rows")
                    };
                    self.line(format!("        #{} {what}", index + 1));
                }
            }
            Event::LockWait { step_id, waited_ms, blockers, .. } => {
                let now = Instant::now();
                let due = self
                    .lock_printed
                    .get(step_id)
                    .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(5));
                if due {
                    self.lock_printed.insert(step_id.clone(), now);
                    self.line(format!(
                        "        waiting {:.1} s for a lock held by {}",
                        *waited_ms as f64 / 1000.0,
                        describe_blockers(blockers)
                    ));
                }
            }
            Event::AutovacuumCancelled { pid, query, note, .. } => {
                self.line(format!("        blocked by {query} (pid {pid}): {note}"));
            }
            Event::Retry { attempt, max_attempts, backoff_ms, reason, blockers, .. } => {
                let who = if blockers.is_empty() {
                    String::new()
                } else {
                    format!("; blocked by {}", describe_blockers(blockers))
                };
                self.line(format!(
                    "        {reason}: retry {attempt}/{} in {backoff_ms} ms{who}",
                    max_attempts.saturating_sub(1)
                ));
            }
            Event::Progress { step_id, done, total, unit, phase } => {
                let unit_name = match unit {
                    ProgressUnit::Rows => "rows",
                    ProgressUnit::Blocks => "blocks",
                };
                match &mut self.bars {
                    Some(bars) => {
                        if let Some(pb) = bars.steps.get(step_id) {
                            if let Some(total) = total
                                && pb.length() != Some(*total)
                            {
                                pb.set_length(*total);
                                pb.set_style(
                                    ProgressStyle::with_template(&format!(
                                        "  {{bar:30}} {{pos}}/{{len}} {unit_name} {{per_sec}} eta {{eta}} {{msg}}"
                                    ))
                                    .expect("valid template"),
                                );
                            }
                            pb.set_position(*done);
                            if let Some(phase) = phase {
                                pb.set_message(phase.clone());
                            }
                        }
                    }
                    None => {
                        let now = Instant::now();
                        let last = self.progress_printed.get(step_id).copied();
                        let due = last.is_none_or(|(t, _)| now.duration_since(t) >= Duration::from_secs(2))
                            || total.is_some_and(|t| *done >= t && last.is_none_or(|(_, d)| d < t));
                        if due {
                            self.progress_printed.insert(step_id.clone(), (now, *done));
                            let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                            let phase = phase.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
                            self.line(format!("        {done}{of} {unit_name}{phase}"));
                        }
                    }
                }
            }
            Event::Paused { paused, .. } => {
                self.line(if *paused { "        paused".into() } else { "        resumed".into() });
            }
            Event::GuardResult { step_id, name, count, forceable } => {
                let mark = if *count == 0 {
                    "ok"
                } else if *forceable {
                    "needs --force"
                } else {
                    "blocks the rollback"
                };
                self.line(format!("  before undoing {step_id}: {name} = {count} ({mark})"));
            }
            Event::CheckResult {
                phase: crate::event::CheckPhase::Before | crate::event::CheckPhase::AfterUndo,
                ..
            } => {}
            Event::CheckResult { name, value, expected, ok, .. } => {
                let mark = if *ok { "✓" } else { "✗" };
                self.line(format!("        {mark} {name}: {value} (expected {expected})"));
            }
            Event::StepSkipped { step_id, reason } => self.line(format!("        skip {step_id}: {reason}")),
            Event::StepFinished { step_id, duration_ms, rows, .. } => {
                self.seen.steps_finished += 1;
                if let Some(bars) = &mut self.bars
                    && let Some(pb) = bars.steps.remove(step_id)
                {
                    pb.finish_and_clear();
                }
                self.line(format!("        done in {duration_ms} ms, {rows} rows written"));
            }
            Event::StepFailed { step_id, error, .. } => {
                self.seen.steps_failed += 1;
                if let Some(bars) = &mut self.bars
                    && let Some(pb) = bars.steps.remove(step_id)
                {
                    pb.abandon();
                }
                self.line(format!("        FAILED: {error}"));
            }
            Event::RunFinished { outcome, duration_ms, message } => {
                self.seen.outcome = Some(*outcome);
                self.seen.message = message.clone();
                if let Some(bars) = &self.bars {
                    let _ = bars.multi.clear();
                }
                self.line(format!("{message} ({:.1} s)", *duration_ms as f64 / 1000.0));
            }
        }
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }
}

/// Print events until the engine drops its sender.
pub async fn print_events<W: Write>(mut events: EventReceiver, mut printer: Printer<W>) -> Seen {
    while let Some(event) = events.recv().await {
        printer.handle(&event);
    }
    printer.seen().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{LockMode, Stage};

    #[test]
    fn plain_lines_tell_the_story() {
        let mut out = Vec::new();
        {
            let mut p = Printer::new(&mut out, false);
            p.handle(&Event::RunStarted {
                direction: Direction::Forward,
                plan_hash: "abcdef0123456789".into(),
                database: "app".into(),
                server_version: "PostgreSQL 15.18 on x86_64".into(),
                steps_total: 3,
                steps_to_run: 3,
            });
            p.handle(&Event::StepStarted {
                step_id: "3.add-column:public.users".into(),
                stage: Stage::AddColumn,
                title: "Add tenant_id to public.users".into(),
                direction: Direction::Forward,
                position: 2,
                resumed: None,
            });
            p.handle(&Event::StatementStarted {
                step_id: "3.add-column:public.users".into(),
                index: 0,
                lock: LockMode::AccessExclusive,
                on: vec!["public.users".into()],
                sql: "ALTER TABLE public.users ADD COLUMN tenant_id uuid;\n".into(),
                attempt: 0,
            });
            p.handle(&Event::Retry {
                step_id: "3.add-column:public.users".into(),
                index: 0,
                attempt: 1,
                max_attempts: 30,
                backoff_ms: 120,
                reason: "canceling statement due to lock timeout".into(),
                blockers: vec![Blocker {
                    pid: 42,
                    application: "psql".into(),
                    state: "idle in transaction".into(),
                    query: "SELECT * FROM users".into(),
                    transaction_ms: 3200,
                }],
            });
            p.handle(&Event::StepFailed {
                step_id: "3.add-column:public.users".into(),
                direction: Direction::Forward,
                error: "boom".into(),
            });
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("apply: 3 of 3 steps, database app (PostgreSQL 15.18), plan abcdef012345"),
            "{text}"
        );
        assert!(text.contains("[  3/3] 3.add-column:public.users: Add tenant_id to public.users"), "{text}");
        assert!(
            text.contains(
                "#1 ACCESS EXCLUSIVE on public.users: ALTER TABLE public.users ADD COLUMN tenant_id uuid;"
            ),
            "{text}"
        );
        assert!(text.contains("retry 1/29 in 120 ms; blocked by pid 42 (\"psql\", idle in transaction, transaction open 3.2 s)"), "{text}");
        assert!(text.contains("FAILED: boom"), "{text}");
    }
}
