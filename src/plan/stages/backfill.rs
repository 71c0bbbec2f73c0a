//! Stage 4: every existing row gets the default tenant. On the fast path the column default
//! already did it and the step only proves it; batched, each leaf is filled in short batches.

use crate::catalog::{Table, TableKind};
use crate::plan::analysis::{Analysis, Scope};
use crate::plan::backfill_sql::backfill_sql;
use crate::plan::ddl::{null_count_check, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{
    Backfill, BackfillKey, BackfillMode, LockMode, Part, Stage, Statement, StatementKind, Step,
    TimeoutProfile,
};
use crate::plan::probe::{holds, not};
use crate::sql::QualifiedName;

/// Roughly the rows one heap block holds: a ctid batch spans the blocks `batch_rows` fill.
const ROWS_PER_BLOCK: u32 = 50;

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    let mut steps = Vec::new();
    for root in &s.roots {
        let table = s.table(root);
        match s.tenant.backfill {
            BackfillMode::Fast => steps.push(proof_step(s, root)),
            BackfillMode::Batched => {
                let targets: Vec<&Table> =
                    if table.kind == TableKind::Partitioned { s.leaves_of(root) } else { vec![table] };
                steps.extend(targets.into_iter().map(|target| batched_step(s, target)));
            }
        }
    }
    steps
}

fn proof_step(s: &Scope, root: &QualifiedName) -> Step {
    Step {
        id: format!("4.{}:{}", Stage::Backfill.name(), root),
        stage: Stage::Backfill,
        title: format!("Prove every row of {} has a tenant", root.display_plain()),
        note: "Nothing to update: the column default filled every existing row \
               (metadata only). The count below proves it."
            .into(),
        tables: vec![root.clone()],
        rows_estimate: s.table_rows(root),
        no_rollback_reason: Some(
            "nothing was written; the values go with the column in stage 3's rollback".into(),
        ),
        checks: vec![null_count_check(&s.tenant, root)],
        backfill: None,
        parts: Vec::new(),
        hash: String::new(),
    }
}

fn batched_step(s: &Scope, target: &Table) -> Step {
    let name = &target.name;
    let backfill = backfill_parameters(s, target);
    let batch = backfill_sql(&backfill);
    let mut note = match backfill.key {
        BackfillKey::Keyset { .. } => format!(
            "Keyset batches of {} rows over the primary key, one short transaction each; the \
             last key done is journaled with each batch, so an interrupted run resumes there.",
            s.options.batch_rows
        ),
        BackfillKey::Ctid => format!(
            "No primary key: batches of {} heap blocks by ctid range, then repeated sweeps \
             until no row is left without a tenant.",
            backfill.batch_blocks
        ),
    };
    if backfill.suppress_triggers {
        note.push_str(
            " Each batch runs with session_replication_role = replica so the table's \
             triggers do not fire (no timestamp is touched).",
        );
    }
    Step {
        id: format!("4.{}:{}", Stage::Backfill.name(), name),
        stage: Stage::Backfill,
        title: format!("Backfill {} in batches", name.display_plain()),
        note,
        tables: vec![name.clone()],
        rows_estimate: target.row_estimate.max(0),
        no_rollback_reason: Some("the backfilled values go with the column in stage 3's rollback".into()),
        checks: vec![null_count_check(&s.tenant, name)],
        backfill: Some(backfill),
        parts: vec![fill_part(s, name, batch.update_next)],
        hash: String::new(),
    }
}

/// The rows of `name` without a tenant, filled in batches. Both states are undone states: the
/// values go with the column when stage 3 is rolled back, so undoing this part needs nothing.
fn fill_part(s: &Scope, name: &QualifiedName, batch_sql: String) -> Part {
    let col = s.col();
    let missing = format!("EXISTS (SELECT 1 FROM {name} WHERE {col} IS NULL)");
    Part {
        name: format!("{} of {}", s.tenant.column, name.display_plain()),
        states: vec![state("filled", holds(not(missing.clone()))), state("filling", holds(missing))],
        done: names(&["filled"]),
        undone: names(&["filling", "filled"]),
        rollback_from: None,
        // Short lock timeout: a batch that waits on an application's row lock holds the
        // rows it already updated, so it gives up quickly and retries instead.
        transitions: vec![transition(
            "filling",
            "filled",
            Statement {
                profile: TimeoutProfile::Ddl,
                kind: StatementKind::Batch,
                ..stmt(LockMode::RowExclusive, &[name], batch_sql)
            },
        )],
        guards: Vec::new(),
    }
}

/// Keyset over the primary key when there is one, else ctid block ranges.
fn backfill_parameters(s: &Scope, target: &Table) -> Backfill {
    let key = match &target.primary_key {
        Some(pk) => BackfillKey::Keyset {
            columns: pk.columns.clone(),
            types: pk
                .columns
                .iter()
                .map(|c| target.column(c).map(|c| c.data_type.clone()).unwrap_or_else(|| "text".into()))
                .collect(),
        },
        None => BackfillKey::Ctid,
    };
    Backfill {
        table: target.name.clone(),
        column: s.tenant.column.clone(),
        value_sql: s.tenant_value(),
        key,
        batch_rows: s.options.batch_rows,
        batch_blocks: (s.options.batch_rows / ROWS_PER_BLOCK).max(1),
        suppress_triggers: target.triggers.iter().any(|t| t.fires_on_backfill()),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{BackfillKey, LockMode, PlanOptions, Severity, Stage, StatementKind, backfill_sql};

    #[test]
    fn stage4_batched_backfill_is_keyed_on_the_primary_key_or_ctid() {
        let catalog = with_events(saas(PG15))
            .table("public", "memberships", |t| {
                t.col_nn("org_id", "uuid").col_nn("seq", "integer").col("role", "text").pk(&["org_id", "seq"])
            })
            .table("public", "audit_trail", |t| {
                t.col("happened_at", "timestamp with time zone").col("what", "text")
            })
            .build();
        let plan = plan_with(&catalog, &PlanOptions { batch_rows: 2000, ..batched() });
        assert!(plan.errors().next().is_none(), "{:?}", findings(&plan, Severity::Error));
        let key = |id: &str| {
            step(&plan, id).backfill.as_ref().unwrap_or_else(|| panic!("{id} has no backfill")).key.clone()
        };
        assert_eq!(
            key("4.backfill:public.users"),
            BackfillKey::Keyset { columns: vec!["id".into()], types: vec!["bigint".into()] }
        );
        assert_eq!(
            key("4.backfill:public.memberships"),
            BackfillKey::Keyset {
                columns: vec!["org_id".into(), "seq".into()],
                types: vec!["uuid".into(), "integer".into()]
            }
        );
        assert_eq!(key("4.backfill:public.audit_trail"), BackfillKey::Ctid);

        let users = step(&plan, "4.backfill:public.users");
        assert_eq!(users.parts[0].undone, ["filling", "filled"], "undoing a backfill needs nothing");
        assert_eq!(users.forward().len(), 1);
        let statement = &users.forward()[0];
        assert_eq!(statement.kind, StatementKind::Batch);
        assert_eq!(statement.lock, LockMode::RowExclusive);
        let backfill = users.backfill.as_ref().unwrap();
        assert_eq!(statement.sql, backfill_sql(backfill).update_next);
        assert_eq!(backfill.value_sql, DEFAULT_TENANT);
        assert_eq!(backfill.column, "tenant_id");
        assert_eq!(backfill.batch_rows, 2000);
        assert!(!backfill.suppress_triggers);

        // A partitioned root is filled leaf by leaf.
        let stage4 = ids_in(&plan, Stage::Backfill);
        for leaf in ["events_2024", "events_2025_p0", "events_2025_p1"] {
            assert!(stage4.contains(&format!("4.backfill:public.{leaf}").as_str()), "{stage4:?}");
        }
        assert!(!stage4.contains(&"4.backfill:public.events"), "{stage4:?}");
        assert!(!stage4.contains(&"4.backfill:public.events_2025"), "{stage4:?}");
        assert_eq!(
            key("4.backfill:public.events_2024"),
            BackfillKey::Keyset {
                columns: vec!["id".into(), "created_at".into()],
                types: vec!["bigint".into(), "timestamp with time zone".into()]
            }
        );
    }
}
