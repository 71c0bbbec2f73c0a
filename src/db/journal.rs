//! The journal in schema `tenantize`: created by the tool's own versioned migrations
//! (`migrations/*.sql`, embedded), one row per plan step with its state, timings, rows, error
//! and resume key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::DbError;
use super::tx::transaction;
use crate::checksum::sha256_hex;

/// The tool's own migrations, in order. Never edit one that has shipped: add a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "journal", include_str!("../../migrations/0001_journal.sql")),
    (2, "plan_text", include_str!("../../migrations/0002_plan_text.sql")),
    (3, "stage_numbers", include_str!("../../migrations/0003_stage_numbers.sql")),
];

/// Which way a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Forward,
    Rollback,
}

/// What the journal records of a plan when a run starts: its hash, the catalog fingerprint it
/// was built against, and its steps in order.
pub struct PlanRecord<'a> {
    pub plan_hash: &'a str,
    pub catalog_fingerprint: &'a str,
    /// (step id, stage number, step hash), in plan order.
    pub steps: Vec<(&'a str, u8, &'a str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    RolledBack,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::RolledBack => "rolled_back",
        }
    }

    fn parse(text: &str) -> StepState {
        match text {
            "running" => StepState::Running,
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "rolled_back" => StepState::RolledBack,
            _ => StepState::Pending,
        }
    }

    /// The step may have changed the database (fully or partly).
    pub fn has_effects(self) -> bool {
        matches!(self, StepState::Running | StepState::Done | StepState::Failed)
    }
}

/// Where a step stood when it last committed something: its direction, the part it was on
/// and the state that part reached (what the engine itself reads back is only a backfill's
/// position: a part's state is always asked of the catalog).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub direction: Option<Direction>,
    /// The part (index in the step) last worked on.
    pub statement: usize,
    /// The state that part reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Keyset backfill: the last key done, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_key: Option<Vec<String>>,
    /// Ctid backfill: the next heap block to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<i64>,
    #[serde(default)]
    pub sweep: u32,
}

impl Resume {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("resume key serializes")
    }

    fn from_text(text: Option<String>) -> Resume {
        text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// A few words on where a resumed backfill picks up, or `None`.
    pub fn describe(&self) -> Option<String> {
        if let Some(key) = &self.batch_key {
            return Some(format!("after key [{}]", key.join(", ")));
        }
        self.block.map(|block| format!("at heap block {block}"))
    }

    /// A backfill's position when it was interrupted going forward on part `part`; else a
    /// fresh start.
    pub fn for_part(&self, part: usize) -> Resume {
        if self.direction == Some(Direction::Forward) && self.statement == part {
            self.clone()
        } else {
            Resume { direction: Some(Direction::Forward), statement: part, ..Resume::default() }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalStep {
    pub step_id: String,
    pub position: i32,
    pub stage: i16,
    pub step_hash: String,
    pub state: StepState,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub rows_affected: i64,
    pub error: Option<String>,
    pub resume: Resume,
    pub attempts: i32,
}

pub async fn journal_exists(client: &Client) -> Result<bool, DbError> {
    let row = client.query_one("SELECT to_regclass('tenantize.steps') IS NOT NULL", &[]).await?;
    Ok(row.get(0))
}

/// Create or upgrade the journal schema (under the advisory lock, so never concurrently).
pub async fn migrate(client: &Client) -> Result<(), DbError> {
    let created = transaction(client, "BEGIN", async || {
        client
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS tenantize;
                 CREATE TABLE IF NOT EXISTS tenantize.schema_migrations (
                     version    integer PRIMARY KEY,
                     name       text NOT NULL,
                     checksum   text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now());",
            )
            .await
    })
    .await;
    created.map_err(|e| {
        DbError::JournalSchema(format!(
            "cannot create the journal schema tenantize: {}",
            super::describe_pg_error(&e)
        ))
    })?;
    for (version, name, sql) in MIGRATIONS {
        let checksum = sha256_hex(crate::checksum::normalize_sql(sql).as_bytes());
        let applied = client
            .query_opt("SELECT checksum FROM tenantize.schema_migrations WHERE version = $1", &[version])
            .await?;
        match applied {
            Some(row) => {
                let recorded: String = row.get(0);
                if recorded != checksum {
                    return Err(DbError::JournalVersion(format!(
                        "journal migration {version} ({name}) in this database differs from the one \
                         this tenantize ships; the journal was changed by hand or by another version"
                    )));
                }
            }
            None => {
                transaction(client, "BEGIN", async || {
                    client.batch_execute(sql).await?;
                    client
                        .execute(
                            "INSERT INTO tenantize.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            &[version, name, &checksum],
                        )
                        .await?;
                    Ok::<_, DbError>(())
                })
                .await?;
            }
        }
    }
    Ok(())
}

pub async fn register_plan(client: &Client, plan: &PlanRecord<'_>) -> Result<(), DbError> {
    transaction(client, "BEGIN", async || {
        client
            .execute(
                "INSERT INTO tenantize.plans (plan_hash, catalog_fingerprint, database_name, step_count)
                 VALUES ($1, $2, current_database(), $3) ON CONFLICT (plan_hash) DO NOTHING",
                &[&plan.plan_hash, &plan.catalog_fingerprint, &(plan.steps.len() as i32)],
            )
            .await?;
        for (position, (step_id, stage, step_hash)) in plan.steps.iter().enumerate() {
            client
                .execute(
                    "INSERT INTO tenantize.steps (plan_hash, step_id, position, stage, step_hash)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (plan_hash, step_id) DO NOTHING",
                    &[&plan.plan_hash, step_id, &(position as i32), &(*stage as i16), step_hash],
                )
                .await?;
        }
        Ok::<_, DbError>(())
    })
    .await
}

/// A plan's file text as the journal keeps it (migration 2), for resuming without the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub plan_hash: String,
    pub text: String,
    /// SHA-256 of `text`, as recorded when it was stored.
    pub text_sha256: String,
    pub stored_at: DateTime<Utc>,
}

impl StoredPlan {
    /// The text still hashes to the checksum recorded with it.
    pub fn text_intact(&self) -> bool {
        sha256_hex(self.text.as_bytes()) == self.text_sha256
    }
}

/// Keep `text` (the plan's sealed file text) as the journal's copy of plan `plan_hash`, with
/// its checksum; a copy stored before is replaced (the caller verified this one). Call after
/// [`migrate`], under the advisory lock.
pub async fn store_plan_text(client: &Client, plan_hash: &str, text: &str) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO tenantize.plan_texts (plan_hash, plan_text, text_sha256) VALUES ($1, $2, $3)
             ON CONFLICT (plan_hash) DO UPDATE
                SET plan_text = excluded.plan_text, text_sha256 = excluded.text_sha256, stored_at = now()",
            &[&plan_hash, &text, &sha256_hex(text.as_bytes())],
        )
        .await?;
    Ok(())
}

/// The journal's copy of plan `plan_hash`, if it has one (read only: a journal written before
/// migration 2, or none at all, has none).
pub async fn stored_plan_text(client: &Client, plan_hash: &str) -> Result<Option<StoredPlan>, DbError> {
    let present: bool =
        client.query_one("SELECT to_regclass('tenantize.plan_texts') IS NOT NULL", &[]).await?.get(0);
    if !present {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT plan_hash, plan_text, text_sha256, stored_at FROM tenantize.plan_texts WHERE plan_hash = $1",
            &[&plan_hash],
        )
        .await?;
    Ok(row.map(|r| StoredPlan {
        plan_hash: r.get(0),
        text: r.get(1),
        text_sha256: r.get(2),
        stored_at: r.get(3),
    }))
}

/// Plans whose steps have changed the database (running, done or failed), with how many:
/// the runs in progress (read only: none without a journal).
pub async fn plans_in_progress(client: &Client) -> Result<Vec<(String, i64)>, DbError> {
    if !journal_exists(client).await? {
        return Ok(Vec::new());
    }
    other_active_plans(client, "").await
}

/// Plans other than `plan_hash` whose steps have changed the database, with how many.
pub async fn other_active_plans(client: &Client, plan_hash: &str) -> Result<Vec<(String, i64)>, DbError> {
    let rows = client
        .query(
            "SELECT plan_hash, count(*) FROM tenantize.steps
              WHERE plan_hash <> $1 AND state IN ('running', 'done', 'failed')
              GROUP BY plan_hash ORDER BY plan_hash",
            &[&plan_hash],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn load(client: &Client, plan_hash: &str) -> Result<BTreeMap<String, JournalStep>, DbError> {
    let rows = client
        .query(
            "SELECT step_id, position, stage, step_hash, state, started_at, finished_at, duration_ms,
                    rows_affected, error, resume_key, attempts
               FROM tenantize.steps WHERE plan_hash = $1 ORDER BY position",
            &[&plan_hash],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let step = JournalStep {
                step_id: r.get(0),
                position: r.get(1),
                stage: r.get(2),
                step_hash: r.get(3),
                state: StepState::parse(r.get(4)),
                started_at: r.get(5),
                finished_at: r.get(6),
                duration_ms: r.get(7),
                rows_affected: r.get(8),
                error: r.get(9),
                resume: Resume::from_text(r.get(10)),
                attempts: r.get(11),
            };
            (step.step_id.clone(), step)
        })
        .collect())
}

pub async fn mark_running(
    client: &Client,
    plan_hash: &str,
    step_id: &str,
    resume: &Resume,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE tenantize.steps SET state = 'running', started_at = now(), finished_at = NULL,
                    duration_ms = NULL, error = NULL, resume_key = $3, attempts = attempts + 1,
                    updated_at = now()
              WHERE plan_hash = $1 AND step_id = $2",
            &[&plan_hash, &step_id, &resume.to_text()],
        )
        .await?;
    Ok(())
}

/// Record progress; callers run this inside the transaction of the work it records.
pub async fn save_resume(
    client: &Client,
    plan_hash: &str,
    step_id: &str,
    resume: &Resume,
    rows_added: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE tenantize.steps SET resume_key = $3, rows_affected = rows_affected + $4, updated_at = now()
              WHERE plan_hash = $1 AND step_id = $2",
            &[&plan_hash, &step_id, &resume.to_text(), &rows_added],
        )
        .await
        .map(|_| ())
}

/// Finish a step (done, failed or rolled back); may run inside the step's own transaction.
pub async fn finish(
    client: &Client,
    plan_hash: &str,
    step_id: &str,
    state: StepState,
    rows_added: i64,
    error: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE tenantize.steps SET state = $3, finished_at = clock_timestamp(),
                    duration_ms = (extract(epoch FROM clock_timestamp() - coalesce(started_at, clock_timestamp())) * 1000)::int8,
                    rows_affected = CASE WHEN $3 = 'rolled_back' THEN rows_affected ELSE rows_affected + $4 END,
                    error = $5,
                    resume_key = CASE WHEN $3 = 'failed' THEN resume_key END,
                    updated_at = now()
              WHERE plan_hash = $1 AND step_id = $2",
            &[&plan_hash, &step_id, &state.as_str(), &rows_added, &error],
        )
        .await
        .map(|_| ())
}

pub async fn start_run(client: &Client, plan_hash: &str, command: &str) -> Result<i64, DbError> {
    let row = client
        .query_one(
            "INSERT INTO tenantize.runs (plan_hash, command, tool_version) VALUES ($1, $2, $3) RETURNING run_id",
            &[&plan_hash, &command, &env!("CARGO_PKG_VERSION")],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn finish_run(client: &Client, run_id: i64, outcome: &str, detail: &str) {
    let _ = client
        .execute(
            "UPDATE tenantize.runs SET finished_at = now(), outcome = $2, detail = $3 WHERE run_id = $1",
            &[&run_id, &outcome, &detail],
        )
        .await;
}

/// The journal's view of a plan, for `tenantize status` (read only: creates nothing).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub plan_hash: String,
    pub database: String,
    pub journal_present: bool,
    pub steps: Vec<JournalStep>,
    /// Other plans with applied steps in this database.
    pub other_active_plans: Vec<(String, i64)>,
}

pub async fn read_status(client: &Client, plan_hash: &str) -> Result<Status, DbError> {
    let database: String = client.query_one("SELECT current_database()::text", &[]).await?.get(0);
    let present = journal_exists(client).await?;
    let (steps, others) = if present {
        let mut steps: Vec<JournalStep> = load(client, plan_hash).await?.into_values().collect();
        steps.sort_by_key(|s| s.position);
        (steps, other_active_plans(client, plan_hash).await?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Status {
        plan_hash: plan_hash.to_string(),
        database,
        journal_present: present,
        steps,
        other_active_plans: others,
    })
}
