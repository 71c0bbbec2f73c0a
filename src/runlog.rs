//! Run logs: every `apply` and `rollback` (headless or wizard) as JSON Lines.
//!
//! The first record is a header (tool and server version, plan hash, the whole plan, when);
//! then every engine event with its time since the start. Nothing secret or row-shaped goes in:
//! no connection string, and the query text of sessions that blocked us (which may carry the
//! application's data) is reduced to its command word.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::{Blocker, Event, EventReceiver, EventSender};
use crate::plan::Plan;

/// 2: a step's `position` counts from 1 (format 1 counted from 0; read back, it is shifted).
pub const RUN_LOG_FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header {
        format: u32,
        tool_version: String,
        command: String,
        /// Wall-clock start, RFC 3339.
        started_at: String,
        plan_hash: String,
        plan_file: Option<String>,
        plan: Box<Plan>,
    },
    Event {
        /// Milliseconds since the header.
        at_ms: u64,
        event: Event,
    },
}

/// The run log's file name next to a plan: `<plan stem>.<UTC time, ms>.<command>.jsonl`, never
/// one that exists already (two runs in the same millisecond get a counter).
pub fn default_path(plan_file: Option<&Path>, command: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let (dir, stem) = match plan_file {
        Some(plan) => {
            let stem =
                plan.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "plan".into());
            let stem = stem.strip_suffix(".toml").unwrap_or(&stem).to_string();
            (plan.parent().map(Path::to_path_buf).unwrap_or_default(), stem)
        }
        None => (std::env::temp_dir().join("tenantize-runs"), "run".to_string()),
    };
    let mut path = dir.join(format!("{stem}.{stamp}.{command}.jsonl"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{stem}.{stamp}-{n}.{command}.jsonl"));
        n += 1;
    }
    path
}

/// Keep only the command word of a query seen in `pg_stat_activity` (it may carry data).
pub fn redact_query(query: &str) -> String {
    // The server writes autovacuum's "query" itself: the operation and the table, no data.
    if query.starts_with("autovacuum: ") && !query.contains(['\'', '$', '(']) {
        return query.to_string();
    }
    let word: String = query.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if word.is_empty() {
        "(query not logged)".to_string()
    } else {
        format!("{} … (text not logged)", word.to_ascii_uppercase())
    }
}

fn redact_blockers(blockers: &mut [Blocker]) {
    for blocker in blockers {
        blocker.query = redact_query(&blocker.query);
    }
}

/// The event as it is written to a run log.
pub fn redact(event: &Event) -> Event {
    let mut event = event.clone();
    match &mut event {
        Event::LockWait { blockers, .. } | Event::Retry { blockers, .. } => redact_blockers(blockers),
        Event::AutovacuumCancelled { query, .. } => *query = redact_query(query),
        _ => {}
    }
    event
}

pub struct RunLogWriter {
    out: BufWriter<std::fs::File>,
    started: Instant,
    pub path: PathBuf,
}

impl RunLogWriter {
    pub fn create(
        path: &Path,
        command: &str,
        plan: &Plan,
        plan_file: Option<&Path>,
    ) -> std::io::Result<RunLogWriter> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = RunLogWriter {
            out: BufWriter::new(std::fs::File::create(path)?),
            started: Instant::now(),
            path: path.to_path_buf(),
        };
        writer.write(&Record::Header {
            format: RUN_LOG_FORMAT,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            plan_hash: plan.plan_hash.clone(),
            plan_file: plan_file.map(|p| p.display().to_string()),
            plan: Box::new(plan.clone()),
        })?;
        Ok(writer)
    }

    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        // Flush each record: a killed run still leaves a readable log up to its last event.
        self.out.flush()
    }

    pub fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.write(&Record::Event { at_ms, event: redact(event) })
    }
}

/// Put a run log between the engine and a front end: returns the receiver the front end reads.
/// The file is written on a thread of its own (never on the async runtime), each event before
/// the front end hears of it.
pub fn tee(mut from_engine: EventReceiver, mut writer: RunLogWriter) -> EventReceiver {
    let (to_front, front): (EventSender, EventReceiver) = crate::event::channel();
    std::thread::spawn(move || {
        while let Some(event) = from_engine.blocking_recv() {
            // A full disk must not stop the conversion; the front end still gets every event.
            let _ = writer.event(&event);
            let _ = to_front.send(event);
        }
    });
    front
}

#[derive(Debug, thiserror::Error)]
pub enum RunLogError {
    #[error("cannot read run log {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} line {line} is not a tenantize run log record: {detail}")]
    Parse { path: String, line: usize, detail: String },
    #[error("{path} has no header record (is it a tenantize run log?)")]
    NoHeader { path: String },
}

/// A run log read back: its header and its events with their times.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub tool_version: String,
    pub command: String,
    pub started_at: String,
    pub plan_file: Option<String>,
    pub plan: Plan,
    pub events: Vec<(u64, Event)>,
}

pub fn read(path: &Path) -> Result<RunLog, RunLogError> {
    let display = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|source| RunLogError::Read { path: display.clone(), source })?;
    let mut header = None;
    let mut format = RUN_LOG_FORMAT;
    let mut events = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| RunLogError::Read { path: display.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).map_err(|e| RunLogError::Parse {
            path: display.clone(),
            line: n + 1,
            detail: e.to_string(),
        })?;
        match record {
            Record::Header { format: found, .. } if found > RUN_LOG_FORMAT => {
                return Err(RunLogError::Parse {
                    path: display,
                    line: n + 1,
                    detail: format!(
                        "run log format {found} is newer than this tenantize reads ({RUN_LOG_FORMAT})"
                    ),
                });
            }
            Record::Header { format: found, tool_version, command, started_at, plan_file, plan, .. } => {
                format = found;
                header = Some((tool_version, command, started_at, plan_file, *plan));
            }
            Record::Event { at_ms, mut event } => {
                if let Event::StepStarted { position, .. } = &mut event
                    && format < 2
                {
                    *position += 1;
                }
                events.push((at_ms, event));
            }
        }
    }
    let (tool_version, command, started_at, plan_file, plan) =
        header.ok_or(RunLogError::NoHeader { path: display })?;
    Ok(RunLog { tool_version, command, started_at, plan_file, plan, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocker_queries_keep_only_their_command() {
        assert_eq!(
            redact_query("  update users set email = 'a@b.c' where id = 1"),
            "UPDATE … (text not logged)"
        );
        assert_eq!(redact_query("ALTER ROLE app PASSWORD 'secret'"), "ALTER … (text not logged)");
        assert_eq!(redact_query(""), "(query not logged)");
        // Autovacuum's own description names a table, never data: kept for the reader.
        assert_eq!(
            redact_query("autovacuum: VACUUM ANALYZE public.users"),
            "autovacuum: VACUUM ANALYZE public.users"
        );
        assert_eq!(
            redact_query("autovacuum: VACUUM x (to prevent wraparound)"),
            "AUTOVACUUM … (text not logged)"
        );
        let event = Event::LockWait {
            step_id: "s".into(),
            index: 0,
            waited_ms: 10,
            blockers: vec![Blocker {
                pid: 7,
                application: "app".into(),
                state: "idle in transaction".into(),
                query: "SELECT * FROM users WHERE email = 'x@y.z'".into(),
                transaction_ms: 5,
            }],
        };
        let text = serde_json::to_string(&redact(&event)).unwrap();
        assert!(!text.contains("x@y.z"), "{text}");
        assert!(text.contains("\"pid\":7"));
    }

    #[test]
    fn default_paths_sit_next_to_the_plan() {
        let path = default_path(Some(Path::new("plans/sample.plan.toml")), "apply");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(path.starts_with("plans"), "{path:?}");
        assert!(name.starts_with("sample.plan.") && name.ends_with(".apply.jsonl"), "{name}");
    }
}
