//! The headless front end: engine events as indicatif bars on a terminal, plain lines
//! otherwise. The words are the events' own (`event::describe`); this adds the framing.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::describe::{describe, first_line};
use crate::event::{Event, EventReceiver, ProgressUnit, RunOutcome};

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

/// Step-level lines sit under their step's header line.
const INDENT: &str = "        ";

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

    fn indented(&mut self, text: &str) {
        for line in text.lines() {
            self.line(format!("{INDENT}{line}"));
        }
    }

    /// A spinner for a step that started (terminal only).
    fn start_bar(&mut self, step_id: &str) {
        if let Some(bars) = &mut self.bars {
            let pb = bars.multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("  {spinner} {elapsed:>4} {msg}").expect("valid template"),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb.set_message(step_id.to_string());
            bars.steps.insert(step_id.to_string(), pb);
        }
    }

    fn end_bar(&mut self, step_id: &str, failed: bool) {
        if let Some(bars) = &mut self.bars
            && let Some(pb) = bars.steps.remove(step_id)
        {
            if failed {
                pb.abandon();
            } else {
                pb.finish_and_clear();
            }
        }
    }

    /// Lock waits repeat every poll: print one line per step at most every 5 s.
    fn lock_wait_due(&mut self, step_id: &str) -> bool {
        let now = Instant::now();
        let due =
            self.lock_printed.get(step_id).is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(5));
        if due {
            self.lock_printed.insert(step_id.to_string(), now);
        }
        due
    }

    fn progress(&mut self, event: &Event) {
        let Event::Progress { step_id, done, total, unit, phase } = event else { return };
        match &mut self.bars {
            Some(bars) => {
                if let Some(pb) = bars.steps.get(step_id) {
                    if let Some(total) = total
                        && pb.length() != Some(*total)
                    {
                        let unit_name = match unit {
                            ProgressUnit::Rows => "rows",
                            ProgressUnit::Blocks => "blocks",
                        };
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
                    self.indented(&describe(event).text);
                }
            }
        }
    }

    pub fn handle(&mut self, event: &Event) {
        let text = describe(event).text;
        match event {
            Event::RunStarted { steps_total, .. } => {
                self.steps_total = *steps_total;
                self.line(text);
            }
            Event::Findings { .. } => {
                for line in text.lines() {
                    self.line(format!("  {line}"));
                }
            }
            Event::StepStarted { step_id, position, .. } => {
                self.line(format!("[{position:>3}/{}] {text}", self.steps_total));
                self.start_bar(step_id);
            }
            Event::StatementStarted { step_id, index, sql, .. } => match &self.bars {
                Some(bars) => {
                    if let Some(pb) = bars.steps.get(step_id) {
                        pb.set_message(format!("{step_id} #{} {}", index + 1, first_line(sql)));
                    }
                }
                None => self.indented(&text),
            },
            Event::StatementFinished { .. } => {
                if self.bars.is_none() {
                    self.indented(&text);
                }
            }
            Event::LockWait { step_id, .. } => {
                if self.lock_wait_due(step_id) {
                    self.indented(&text);
                }
            }
            Event::Progress { .. } => self.progress(event),
            Event::GuardResult { .. } => self.line(format!("  {text}")),
            // Counted before a step or after an undo: for the run log, not the terminal.
            Event::CheckResult {
                phase: crate::event::CheckPhase::Before | crate::event::CheckPhase::AfterUndo,
                ..
            } => {}
            Event::StepFinished { step_id, .. } => {
                self.seen.steps_finished += 1;
                self.end_bar(step_id, false);
                self.indented(&text);
            }
            Event::StepFailed { step_id, .. } => {
                self.seen.steps_failed += 1;
                self.end_bar(step_id, true);
                self.indented(&text);
            }
            Event::RunFinished { outcome, message, duration_ms } => {
                self.seen.outcome = Some(*outcome);
                self.seen.message = message.clone();
                if let Some(bars) = &self.bars {
                    let _ = bars.multi.clear();
                }
                // A run that did not succeed ends in an error, which the command prints once
                // (on stderr, with its exit code); here only how it ended.
                let ended = match outcome {
                    RunOutcome::Success => text,
                    RunOutcome::Failed => format!("run failed after {:.1} s", *duration_ms as f64 / 1000.0),
                    RunOutcome::Cancelled => {
                        format!("run cancelled after {:.1} s", *duration_ms as f64 / 1000.0)
                    }
                    RunOutcome::Refused => "run refused: nothing was changed".to_string(),
                };
                self.line(ended);
            }
            Event::AutovacuumCancelled { .. }
            | Event::Retry { .. }
            | Event::Paused { .. }
            | Event::CheckResult { .. }
            | Event::StepSkipped { .. } => self.indented(&text),
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
    use crate::event::{Blocker, Direction};
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
                position: 3,
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
