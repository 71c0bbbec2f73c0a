//! The one text form of each engine event. The headless printer, the wizard's log, run-log
//! replays and reports all show these words; a front end only adds its own framing (an
//! indent, a clock, the step id in a list that mixes steps).

use super::{Blocker, CheckPhase, Direction, Event, ProgressUnit};

/// An event in words: which step it belongs to (if any) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub step_id: Option<String>,
    pub text: String,
    pub tone: Tone,
}

/// How a front end may colour or mark the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    Statement,
    Done,
    Warning,
    Failure,
}

/// The first non-empty line of a SQL text, at most 100 characters.
pub fn first_line(sql: &str) -> String {
    let line = sql.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(99).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Who holds the lock a statement waits for.
pub fn blockers(blockers: &[Blocker]) -> String {
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

/// "1 row", "2 rows": `n` with its noun, singular when it is one.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 { format!("1 {singular}") } else { format!("{n} {plural}") }
}

/// Bytes in binary units, as verify and the wizard show sizes: "0 B", "1.5 KiB", "393 MiB".
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        return format!("{n} B");
    }
    let mut value = n;
    let mut unit = "B";
    for next in ["KiB", "MiB", "GiB", "TiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if value < 10.0 { format!("{value:.1} {unit}") } else { format!("{value:.0} {unit}") }
}

fn verb(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "apply",
        Direction::Rollback => "roll back",
    }
}

fn unit_name(unit: ProgressUnit) -> &'static str {
    match unit {
        ProgressUnit::Rows => "rows",
        ProgressUnit::Blocks => "blocks",
    }
}

/// A guard's verdict before a rollback.
pub fn guard_verdict(count: i64, forceable: bool) -> &'static str {
    if count == 0 {
        "ok"
    } else if forceable {
        "needs --force"
    } else {
        "blocks the rollback"
    }
}

/// The words for `event`. Checks counted before a step or after an undo are for the record
/// (run logs, reports) and read "counted", not judged.
pub fn describe(event: &Event) -> Described {
    let step = |id: &str| Some(id.to_string());
    let (step_id, text, tone) = match event {
        Event::RunStarted { direction, plan_hash, database, server_version, steps_total, steps_to_run } => {
            let version = server_version.split(" on ").next().unwrap_or(server_version);
            let text = format!(
                "{}: {steps_to_run} of {steps_total} steps, database {database} ({version}), plan {plan_hash:.12}",
                verb(*direction)
            );
            (None, text, Tone::Info)
        }
        Event::Findings { findings } => {
            let lines: Vec<String> = findings
                .iter()
                .map(|f| format!("{} {} {}: {}", f.severity.label(), f.code, f.object, f.message))
                .collect();
            (None, lines.join("\n"), Tone::Warning)
        }
        Event::StepStarted { step_id, title, direction, resumed, .. } => {
            let undo = if *direction == Direction::Rollback { "undo " } else { "" };
            let resumed = resumed.as_ref().map(|r| format!(" (resuming {r})")).unwrap_or_default();
            (step(step_id), format!("{undo}{step_id}: {title}{resumed}"), Tone::Info)
        }
        Event::StatementStarted { step_id, index, lock, on, sql, attempt } => {
            let retry = if *attempt > 0 { format!(" (attempt {})", attempt + 1) } else { String::new() };
            let text =
                format!("#{} {} on {}{retry}: {}", index + 1, lock.label(), on.join(", "), first_line(sql));
            (step(step_id), text, Tone::Statement)
        }
        Event::StatementFinished { step_id, index, duration_ms, rows, skipped } => {
            let what = if *skipped {
                "already done by an earlier run".to_string()
            } else {
                format!("ok in {duration_ms} ms, {}", count(*rows, "row", "rows"))
            };
            (step(step_id), format!("#{} {what}", index + 1), Tone::Done)
        }
        Event::LockWait { step_id, waited_ms, blockers: held_by, .. } => {
            let text = format!(
                "waiting {:.1} s for a lock held by {}",
                *waited_ms as f64 / 1000.0,
                blockers(held_by)
            );
            (step(step_id), text, Tone::Warning)
        }
        Event::AutovacuumCancelled { step_id, index, pid, query, note, .. } => {
            (step(step_id), format!("#{}: blocked by {query} (pid {pid}): {note}", index + 1), Tone::Warning)
        }
        Event::Retry { step_id, index, attempt, max_attempts, backoff_ms, reason, blockers: held_by } => {
            let who = if held_by.is_empty() {
                String::new()
            } else {
                format!("; blocked by {}", blockers(held_by))
            };
            let text = format!(
                "#{}: {reason}: retry {attempt}/{} in {backoff_ms} ms{who}",
                index + 1,
                max_attempts.saturating_sub(1)
            );
            (step(step_id), text, Tone::Warning)
        }
        Event::Progress { step_id, done, total, unit, phase } => {
            let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
            let phase = phase.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            (step(step_id), format!("{done}{of} {}{phase}", unit_name(*unit)), Tone::Info)
        }
        Event::Paused { step_id, paused } => {
            let text = if *paused { "backfill paused" } else { "backfill resumed" };
            (step(step_id), text.to_string(), Tone::Info)
        }
        Event::GuardResult { step_id, name, count, forceable } => {
            let tone = if *count == 0 { Tone::Info } else { Tone::Warning };
            let text =
                format!("before undoing {step_id}: {name} = {count} ({})", guard_verdict(*count, *forceable));
            (step(step_id), text, tone)
        }
        Event::CheckResult { step_id, name, value, expected, ok, phase } => {
            let (text, tone) = match phase {
                CheckPhase::After => {
                    let mark = if *ok { "✓" } else { "✗" };
                    let tone = if *ok { Tone::Info } else { Tone::Failure };
                    (format!("{mark} {name}: {value} (expected {expected})"), tone)
                }
                CheckPhase::Before => (format!("counted before: {name}: {value}"), Tone::Info),
                CheckPhase::AfterUndo => (format!("counted after the undo: {name}: {value}"), Tone::Info),
            };
            (step(step_id), text, tone)
        }
        Event::StepSkipped { step_id, reason } => {
            (step(step_id), format!("skip {step_id}: {reason}"), Tone::Info)
        }
        Event::StepFinished { step_id, direction, duration_ms, rows } => {
            let verb = if *direction == Direction::Forward { "done" } else { "rolled back" };
            let text = format!("{verb} in {duration_ms} ms, {} written", count(*rows, "row", "rows"));
            (step(step_id), text, Tone::Done)
        }
        Event::StepFailed { step_id, error, .. } => {
            (step(step_id), format!("FAILED: {error}"), Tone::Failure)
        }
        Event::RunFinished { duration_ms, message, .. } => {
            (None, format!("{message} ({:.1} s)", *duration_ms as f64 / 1000.0), Tone::Info)
        }
    };
    Described { step_id, text, tone }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LockMode;

    #[test]
    fn statements_read_with_their_lock_and_first_line() {
        let d = describe(&Event::StatementStarted {
            step_id: "3.add-column:public.users".into(),
            index: 0,
            lock: LockMode::AccessExclusive,
            on: vec!["public.users".into()],
            sql: "\n-- why\nALTER TABLE public.users ADD COLUMN tenant_id uuid;\n".into(),
            attempt: 2,
        });
        assert_eq!(d.step_id.as_deref(), Some("3.add-column:public.users"));
        assert_eq!(d.text, "#1 ACCESS EXCLUSIVE on public.users (attempt 3): -- why");
        assert_eq!(d.tone, Tone::Statement);
    }

    #[test]
    fn counts_take_their_singular() {
        assert_eq!(count(1, "row", "rows"), "1 row");
        assert_eq!(count(0, "row", "rows"), "0 rows");
        let d = describe(&Event::StepFinished {
            step_id: "x".into(),
            direction: Direction::Rollback,
            duration_ms: 5,
            rows: 1,
        });
        assert_eq!(d.text, "rolled back in 5 ms, 1 row written");
    }

    #[test]
    fn long_sql_is_cut_at_a_hundred_characters() {
        let line = first_line(&"x".repeat(300));
        assert_eq!(line.chars().count(), 100);
        assert!(line.ends_with('…'));
    }
}
