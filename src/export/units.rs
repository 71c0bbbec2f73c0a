//! The units of an export: what one migration file (or one tool's revision) holds.
//!
//! Every file holds one unit: a transaction's worth of SQL, or a single statement that cannot
//! run in a transaction (CONCURRENTLY, a batched backfill), marked as the tool requires. A step
//! with several units spans several versions. Version k of a step carries the step's k-th
//! forward unit and, counted from the end, its rollback units, so that running the downs in
//! reverse version order replays each step's rollback in order. Where a step has more units in
//! one direction than the other, the spare files are explicit no-ops.

use crate::plan::{BackfillKey, LockMode, Plan, Statement, StatementKind, Step, Transition};
use crate::sql::{dollar_quote, quote_ident, quote_literal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sql,
    Sqlx,
    GolangMigrate,
    Flyway,
    Dbmate,
    Alembic,
    Sqitch,
    Pgtap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub name: String,
    pub content: String,
}

/// One file's worth of SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unit {
    pub(super) sql: String,
    pub(super) transactional: bool,
    /// Long work under a weak lock (VALIDATE, CONCURRENTLY, batches): a long lock timeout and
    /// no statement timeout, as the engine runs it.
    pub(super) long: bool,
    pub(super) lock: LockMode,
    pub(super) note: String,
}

/// `lock_timeout` written into exported transactional files by default: longer than a run's
/// (100 ms), because migration tools do not retry.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 1000;

/// lock_timeout for long statements (the engine's default long profile).
const LONG_LOCK_TIMEOUT_MS: u64 = 600_000;
/// statement_timeout for short DDL (the engine's default).
const DDL_STATEMENT_TIMEOUT_MS: u64 = 60_000;

impl Unit {
    pub(super) fn timeouts(&self, lock_timeout_ms: u64) -> (u64, u64) {
        if self.long { (LONG_LOCK_TIMEOUT_MS, 0) } else { (lock_timeout_ms, DDL_STATEMENT_TIMEOUT_MS) }
    }
}

fn unit_of(statement: &Statement, step: &Step, lock_timeout_ms: u64) -> Unit {
    match statement.kind {
        StatementKind::Transaction => Unit {
            sql: statement.sql.trim_end().to_string(),
            transactional: true,
            long: statement.profile == crate::plan::TimeoutProfile::Long,
            lock: statement.lock,
            note: format!("lock: {} on {}", statement.lock.label(), statement.on.join(", ")),
        },
        StatementKind::ConcurrentIndex | StatementKind::NonTransactional => Unit {
            sql: statement.sql.trim_end().to_string(),
            transactional: false,
            long: true,
            lock: statement.lock,
            note: format!(
                "runs outside a transaction; lock: {} on {} (writes go on)",
                statement.lock.label(),
                statement.on.join(", ")
            ),
        },
        StatementKind::Batch => Unit {
            sql: backfill_block(step, lock_timeout_ms),
            transactional: false,
            long: true,
            lock: statement.lock,
            note: "batched backfill: one short transaction per batch (COMMIT inside DO needs no outer transaction)"
                .to_string(),
        },
    }
}

/// A batched backfill as a DO block that commits per block range (the tool itself walks the
/// primary key; an exported file cannot keep state between runs, so it walks the heap).
fn backfill_block(step: &Step, lock_timeout_ms: u64) -> String {
    let Some(b) = &step.backfill else { return "SELECT 1;".to_string() };
    let table = &b.table;
    let column = quote_ident(&b.column);
    let blocks = match b.key {
        BackfillKey::Ctid => b.batch_blocks.max(1),
        BackfillKey::Keyset { .. } => (b.batch_rows / 50).max(1),
    };
    let replica = if b.suppress_triggers {
        "    -- Keep user triggers from firing (needs a superuser).\n    PERFORM set_config('session_replication_role', 'replica', false);\n"
    } else {
        ""
    };
    let reset = if b.suppress_triggers {
        "    PERFORM set_config('session_replication_role', 'origin', false);\n"
    } else {
        ""
    };
    let body = format!(
        "\nDECLARE\n    total_blocks bigint := pg_catalog.pg_relation_size({rel}::pg_catalog.regclass) / current_setting('block_size')::int8;\n    first_block bigint := 0;\nBEGIN\n    PERFORM set_config('lock_timeout', '{lock_timeout_ms}ms', false);\n{replica}    WHILE first_block <= total_blocks LOOP\n        UPDATE {table} SET {column} = {value}\n         WHERE ctid >= format('(%s,0)', first_block)::tid AND ctid < format('(%s,0)', first_block + {blocks})::tid\n           AND {column} IS NULL;\n        COMMIT;\n        first_block := first_block + {blocks};\n    END LOOP;\n    -- Rows the application moved behind the sweep.\n    UPDATE {table} SET {column} = {value} WHERE {column} IS NULL;\n    COMMIT;\n{reset}END\n",
        rel = quote_literal(&table.to_string()),
        value = b.value_sql,
    );
    // The body holds the table's name: its dollar tag must not occur in it.
    format!("DO {};", dollar_quote(&body))
}

/// One transition as one file: its statements in one transaction, or the one statement that
/// cannot run in one.
fn transition_unit(transition: &Transition, step: &Step, lock_timeout_ms: u64) -> Vec<Unit> {
    let statements: Vec<Statement> = transition.statements.clone();
    units(&statements, statements.len() > 1, step, lock_timeout_ms)
}

fn units(statements: &[Statement], atomic: bool, step: &Step, lock_timeout_ms: u64) -> Vec<Unit> {
    if statements.is_empty() {
        return Vec::new();
    }
    if atomic {
        let sql: Vec<String> = statements.iter().map(|s| s.sql.trim_end().to_string()).collect();
        let lock = statements.iter().map(|s| s.lock).max().unwrap_or(LockMode::None);
        let on: Vec<String> = statements.iter().flat_map(|s| s.on.iter().cloned()).collect();
        let mut seen = Vec::new();
        for o in on {
            if !seen.contains(&o) {
                seen.push(o);
            }
        }
        return vec![Unit {
            sql: sql.join("\n"),
            transactional: true,
            long: statements.iter().any(|s| s.profile == crate::plan::TimeoutProfile::Long),
            lock,
            note: format!("one transaction; strongest lock: {} on {}", lock.label(), seen.join(", ")),
        }];
    }
    statements.iter().map(|s| unit_of(s, step, lock_timeout_ms)).collect()
}

pub(super) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed: String = out.trim_matches('_').chars().take(60).collect();
    trimmed.trim_end_matches('_').to_string()
}

pub(super) const NO_OP: &str = "SELECT 1; -- nothing to do in this direction for this part of the step";

/// A version: one unit up, one unit down (either may be a no-op).
pub(super) struct Version {
    pub(super) name: String,
    pub(super) step_id: String,
    pub(super) up: Option<Unit>,
    pub(super) down: Option<Unit>,
    /// The step's last version: where its checks can be judged.
    pub(super) last: bool,
}

pub(super) fn versions(plan: &Plan, lock_timeout_ms: u64) -> Vec<Version> {
    let mut out = Vec::new();
    // What `apply` runs: the cutover is the application team's later decision, not part of the
    // migrations a deployment runs in one go (`tenantize cutover` runs it). Stage 9 is not
    // exported either: distribution is run by `tenantize apply`, whose catalog-driven states
    // resume Citus's multi-transaction operations; a migration file cannot.
    for step in
        plan.steps.iter().filter(|s| !s.stage.needs_asking() && s.stage != crate::plan::Stage::Distribute)
    {
        let up: Vec<Unit> = step
            .forward_transitions()
            .into_iter()
            .flat_map(|t| transition_unit(t, step, lock_timeout_ms))
            .collect();
        let down: Vec<Unit> = step
            .rollback_transitions()
            .into_iter()
            .flat_map(|t| transition_unit(t, step, lock_timeout_ms))
            .collect();
        let count = up.len().max(down.len());
        for k in 0..count {
            let part = if count > 1 { format!("_{}", k + 1) } else { String::new() };
            out.push(Version {
                name: format!("{}{part}", slug(&step.id)),
                step_id: step.id.clone(),
                up: up.get(k).cloned(),
                down: (count - 1 - k < down.len()).then(|| down[count - 1 - k].clone()),
                last: k + 1 == count,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("3.add-column:public.\"Order Items\""), "3_add_column_public_order_items");
        assert!(slug(&"x".repeat(200)).len() <= 60);
    }
}
