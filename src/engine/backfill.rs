//! A batched backfill: keyset (or ctid) batches, one short transaction each, every batch
//! committed with its resume key so an interrupted run picks up after the last batch done.

use std::time::Instant;

use tokio_postgres::types::ToSql;

use super::exec::{ExecError, Executor, Watch};
use super::pace::Pace;
use super::{elapsed_ms, emit};
use crate::db::journal::{self, Resume};
use crate::event::{Direction, Event, ProgressUnit};
use crate::plan::{BackfillKey, BackfillSql, Plan, Statement, Step, backfill_sql};

/// One batched backfill in progress.
struct Backfiller<'e, 'a> {
    exec: &'e Executor<'a>,
    plan: &'e Plan,
    step: &'e Step,
    index: usize,
    statement: &'e Statement,
    sql: BackfillSql,
    /// `SET LOCAL` lines each batch's transaction starts with.
    batch_settings: &'static str,
    /// Rows without a tenant when the step started (the gauge's total).
    remaining_at_start: u64,
    rows_done: u64,
    /// Each batch's size and the pause after it, by how long our commits take.
    pace: Pace,
}

/// Fill the tenant column in short batches, each committed with its resume key.
pub(super) async fn run_backfill(
    exec: &Executor<'_>,
    plan: &Plan,
    step: &Step,
    index: usize,
    statement: &Statement,
    resume: &Resume,
) -> Result<u64, ExecError> {
    // The plan's structural validation refuses a batch statement without its parameters.
    let Some(backfill) = step.backfill.as_ref() else {
        return Err(ExecError::CheckFailed(format!(
            "step {} has a batch statement but no backfill section",
            step.id
        )));
    };
    let client = &exec.session.ddl;
    super::wal::write_heavy_begin(client).await;
    emit(
        exec.events,
        Event::StatementStarted {
            step_id: step.id.clone(),
            index,
            lock: statement.lock,
            on: statement.on.clone(),
            sql: statement.sql.clone(),
            attempt: 0,
        },
    );
    let started = Instant::now();
    let sql = backfill_sql(backfill);
    let remaining_at_start: i64 = exec.session.checks.query_one(sql.remaining.as_str(), &[]).await?.get(0);
    let mut filler = Backfiller {
        exec,
        plan,
        step,
        index,
        statement,
        sql,
        batch_settings: if backfill.suppress_triggers {
            "SET LOCAL session_replication_role = replica;"
        } else {
            ""
        },
        remaining_at_start: remaining_at_start.max(0) as u64,
        rows_done: 0,
        pace: Pace::new(match &backfill.key {
            BackfillKey::Keyset { .. } => u64::from(backfill.batch_rows),
            BackfillKey::Ctid => u64::from(backfill.batch_blocks),
        }),
    };
    filler.report(0, ProgressUnit::Rows, Some(filler.remaining_at_start));
    let filled = match &backfill.key {
        BackfillKey::Keyset { .. } => filler.keyset(resume.batch_key.clone()).await,
        BackfillKey::Ctid => filler.ctid(resume.block.unwrap_or(0), resume.sweep).await,
    };
    // Put back on the way out too: the session goes on to other steps (or a rollback).
    super::wal::write_heavy_end(client).await;
    filled?;
    let done = Resume { direction: Some(Direction::Forward), statement: index + 1, ..Resume::default() };
    journal::save_resume(client, &plan.plan_hash, &step.id, &done, 0).await?;
    emit(
        exec.events,
        Event::StatementFinished {
            step_id: step.id.clone(),
            index,
            duration_ms: elapsed_ms(started),
            rows: filler.rows_done,
            skipped: false,
        },
    );
    Ok(filler.rows_done)
}

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Backfiller<'_, '_> {
    fn report(&self, done: u64, unit: ProgressUnit, total: Option<u64>) {
        emit(
            self.exec.events,
            Event::Progress {
                step_id: self.step.id.clone(),
                done,
                total,
                unit,
                phase: Some("backfill".into()),
            },
        );
    }

    /// One batch: `update` with `values`, committed together with the resume key `next`, then
    /// the pause the pace asks for.
    async fn batch(&mut self, update: &str, values: &[String], next: &Resume) -> Result<u64, ExecError> {
        let exec = self.exec;
        let client = &exec.session.ddl;
        let (step, index) = (&self.step.id, self.index);
        let mut body_done = Instant::now();
        let rows = exec
            .transaction(step, index, self.statement.profile, self.batch_settings, async |_, blockers| {
                let values = params(values);
                let work = client.execute(update, &values);
                let rows = exec.monitored(step, index, blockers, Watch::Locks, work).await?;
                journal::save_resume(client, &self.plan.plan_hash, step, next, rows as i64).await?;
                body_done = Instant::now();
                Ok(rows)
            })
            .await?;
        // The COMMIT's time: in effect the flush of the batch's WAL.
        let commit_ms = body_done.elapsed().as_secs_f64() * 1000.0;
        let pause = self.pace.after_commit(commit_ms);
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = exec.control.cancel.cancelled() => return Err(ExecError::Cancelled),
            }
        }
        Ok(rows)
    }

    /// Keyset batches over the primary key, from after `lower` (the last key done) to the end.
    async fn keyset(&mut self, mut lower: Option<Vec<String>>) -> Result<(), ExecError> {
        let client = &self.exec.session.ddl;
        loop {
            wait_while_paused(self.exec, self.step).await?;
            let lower_values: Vec<String> = lower.clone().unwrap_or_default();
            let upper_sql = if lower.is_some() { &self.sql.upper_next } else { &self.sql.upper_first };
            let mut upper_params = lower_values.clone();
            upper_params.push(self.pace.size().to_string());
            let Some(upper_row) = client.query_opt(upper_sql.as_str(), &params(&upper_params)).await? else {
                return Ok(());
            };
            let upper: Vec<String> = (0..upper_row.len()).map(|i| upper_row.get::<_, String>(i)).collect();
            let update = if lower.is_some() { &self.sql.update_next } else { &self.sql.update_first };
            let mut values = lower_values;
            values.extend(upper.iter().cloned());
            let next = Resume {
                direction: Some(Direction::Forward),
                statement: self.index,
                batch_key: Some(upper.clone()),
                ..Resume::default()
            };
            self.rows_done += self.batch(&update.clone(), &values, &next).await?;
            // The rows just filled, read back at once: the first read after a commit sets
            // every touched tuple's hint bits, and so dirties its page again. Now, while the
            // batch's pages are still dirty in shared buffers, that costs no write; left to
            // the step's checks, one scan dirtied the whole table at once (~500 MB for 2M
            // rows) and the kernel's writeback of it held the application's commits up to a
            // second behind their WAL fsync (benchmark run c).
            let read_back =
                if lower.is_some() { &self.sql.read_back_next } else { &self.sql.read_back_first };
            client.query_one(read_back.as_str(), &params(&values)).await?;
            self.report(self.rows_done, ProgressUnit::Rows, Some(self.remaining_at_start));
            lower = Some(upper);
        }
    }

    /// Heap block ranges for a table without a primary key, swept again until no row is left
    /// without a tenant (rows the application updates may move behind the sweep).
    async fn ctid(&mut self, mut start: i64, mut sweep: u32) -> Result<(), ExecError> {
        const MAX_SWEEPS: u32 = 20;
        let client = &self.exec.session.ddl;
        loop {
            let blocks: i64 = client.query_one(self.sql.block_count.as_str(), &[]).await?.get(0);
            while start < blocks {
                wait_while_paused(self.exec, self.step).await?;
                let end = start + self.pace.size() as i64;
                let next = Resume {
                    direction: Some(Direction::Forward),
                    statement: self.index,
                    block: Some(end),
                    sweep,
                    ..Resume::default()
                };
                let update = self.sql.update_next.clone();
                self.rows_done += self.batch(&update, &[start.to_string(), end.to_string()], &next).await?;
                self.report(end.min(blocks) as u64, ProgressUnit::Blocks, Some(blocks as u64));
                start = end;
            }
            let remaining: i64 = client.query_one(self.sql.remaining.as_str(), &[]).await?.get(0);
            if remaining == 0 {
                return Ok(());
            }
            sweep += 1;
            if sweep > MAX_SWEEPS {
                return Err(ExecError::CheckFailed(format!(
                    "{remaining} rows still have no tenant after {sweep} sweeps; is something writing NULL tenants?"
                )));
            }
            start = 0;
        }
    }
}

async fn wait_while_paused(exec: &Executor<'_>, step: &Step) -> Result<(), ExecError> {
    let mut pause = exec.control.pause.clone();
    if !*pause.borrow() {
        return if exec.control.cancel.is_cancelled() { Err(ExecError::Cancelled) } else { Ok(()) };
    }
    emit(exec.events, Event::Paused { step_id: step.id.clone(), paused: true });
    loop {
        tokio::select! {
            changed = pause.changed() => {
                if changed.is_err() || !*pause.borrow() {
                    break;
                }
            }
            _ = exec.control.cancel.cancelled() => return Err(ExecError::Cancelled),
        }
    }
    emit(exec.events, Event::Paused { step_id: step.id.clone(), paused: false });
    Ok(())
}
