//! Stage 6, `--cover-indexes`: each of the application's plain btree indexes on a table is
//! rebuilt as the same index `INCLUDE (tenant column)` and takes the original's name, so that
//! an index-only scan stays one under the policy. Writes go on throughout: the copy is built
//! concurrently, the names are swapped in one short transaction, the original is dropped
//! concurrently. The rollback is the mirror image.

use super::index_part;
use super::uniques::{GONE, gone};
use crate::plan::analysis::{Analysis, CoveredIndex, Scope};
use crate::plan::ddl::{check, concurrent_index, drop_index_concurrently, exempt, regclass, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{Check, LockMode, Part, Stage, Statement, Step};
use crate::plan::probe::{self, all, holds, not};
use crate::sql::{QualifiedName, dollar_quote, quote_ident, quote_literal};

/// One step per table with indexes to cover, in table name order.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.covers.iter().map(|(table, covers)| step(&a.scope, table, covers)).collect()
}

fn step(s: &Scope, table: &QualifiedName, covers: &[CoveredIndex]) -> Step {
    let col = &s.tenant.column;
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for c in covers {
        parts.push(build_part(table, c, col));
        parts.push(swap_part(table, c, col));
        checks.push(covered_check(table, c, col));
    }
    let names: Vec<&str> = covers.iter().map(|c| c.original.name.as_str()).collect();
    Step {
        id: format!("6.cover-indexes:{table}"),
        stage: Stage::Indexes,
        title: format!("Cover {} on {} with {col}", names.join(", "), table.display_plain()),
        note: format!(
            "Each index is rebuilt CONCURRENTLY as the same index INCLUDE ({col}), then takes \
             the original's name in one short transaction, and the original is dropped \
             CONCURRENTLY: writes go on. Under the policy an index-only scan needs {col} from \
             the index itself, or it reads the table for every entry."
        ),
        tables: vec![table.clone()],
        rows_estimate: s.table_rows(table),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    }
}

/// The original's name holds the covering index (the swap below has run).
fn covered(table: &QualifiedName, c: &CoveredIndex, col: &str) -> String {
    probe::index_includes(&table.sibling(c.original.name.clone()), col)
}

const COVERED_IN: &str = "swapped in (roll back the swap first)";

/// The covering copy under its temporary name, built concurrently; once the swap has consumed
/// it, undoing it waits for the swap's rollback (the part after it, undone first).
fn build_part(table: &QualifiedName, c: &CoveredIndex, col: &str) -> Part {
    let temp = table.sibling(c.temp_name.clone());
    let mut states = vec![state(COVERED_IN, holds(covered(table, c, col)))];
    states.extend(index_part::states(&temp));
    Part {
        name: c.temp_name.clone(),
        states,
        done: names(&["built", COVERED_IN]),
        undone: names(&["absent"]),
        rollback_from: None,
        transitions: index_part::transitions(&temp, table, format!("{};\n", c.cover_definition)),
        guards: Vec::new(),
    }
}

/// The swap under the original's name: rename the original aside and the copy in, then drop
/// the original concurrently. Back: rebuild the original concurrently under its restore name,
/// then rename the copy back to its temporary name and the rebuilt original in.
fn swap_part(table: &QualifiedName, c: &CoveredIndex, col: &str) -> Part {
    let original = table.sibling(c.original.name.clone());
    let temp = table.sibling(c.temp_name.clone());
    let retired = table.sibling(c.retired_name.clone());
    let restore = table.sibling(c.restore_name.clone());
    let is_covered = covered(table, c, col);
    let swap = |away: &QualifiedName, back_in: &QualifiedName, forward: bool| {
        renames(table, c, away, back_in, forward)
    };
    Part {
        name: c.original.name.clone(),
        states: vec![
            state(
                "covered",
                holds(all(&[
                    is_covered.clone(),
                    not(probe::relation_exists(&retired)),
                    not(probe::relation_exists(&restore)),
                ])),
            ),
            // An interrupted DROP INDEX CONCURRENTLY leaves the old one invalid: finish the drop
            // (the way back rebuilds the original) rather than rename it back in.
            state(HALF_DROPPED, holds(all(&[is_covered.clone(), probe::index_invalid(&retired)]))),
            state(
                "covered, old one retired",
                holds(all(&[is_covered.clone(), probe::relation_exists(&retired)])),
            ),
            state("rebuilding plain", holds(all(&[is_covered.clone(), probe::index_valid(&restore)]))),
            state("broken plain copy", holds(all(&[is_covered, probe::index_invalid(&restore)]))),
            state("plain", holds(probe::relation_exists(&original))),
            gone(),
        ],
        done: names(&["covered"]),
        undone: names(&["plain", GONE]),
        rollback_from: None,
        transitions: vec![
            transition("plain", "covered, old one retired", swap(&retired, &temp, true)),
            transition("covered, old one retired", "covered", drop_index_concurrently(&retired, table)),
            transition(HALF_DROPPED, "covered", drop_index_concurrently(&retired, table)),
            transition("covered, old one retired", "plain", swap(&temp, &retired, false)),
            transition(
                "covered",
                "rebuilding plain",
                concurrent_index(restore.clone(), table, format!("{};\n", c.restore_definition)),
            ),
            transition("rebuilding plain", "plain", swap(&temp, &restore, false)),
            transition("rebuilding plain", "covered", drop_index_concurrently(&restore, table)),
            transition("broken plain copy", "covered", drop_index_concurrently(&restore, table)),
        ],
        guards: Vec::new(),
    }
}

const HALF_DROPPED: &str = "covered, old one half-dropped";

/// One transaction: the original name is renamed to `away`'s and `back_in` takes it, with the
/// comment and the CLUSTER mark of the index that had the name, read as they are then (neither
/// is part of an index's definition, and a CLUSTER mark moves to the index it names). Renaming
/// an index, commenting on one and `CLUSTER ON` each take SHARE UPDATE EXCLUSIVE: reads and
/// writes go on.
fn renames(
    table: &QualifiedName,
    c: &CoveredIndex,
    away: &QualifiedName,
    back_in: &QualifiedName,
    forward: bool,
) -> Statement {
    let original = table.sibling(c.original.name.clone());
    // The linter reads the forward SQL; the rollback's renames mirror it.
    let exemption = |why: &str| if forward { exempt("renaming-object", why) } else { String::new() };
    let left = regclass(away);
    let marks = format!(
        "\nBEGIN\n    EXECUTE pg_catalog.format('COMMENT ON INDEX %s IS %L', {}, \
         pg_catalog.obj_description({left}, 'pg_class'));\n    \
         IF (SELECT i.indisclustered FROM pg_catalog.pg_index i WHERE i.indexrelid = {left}) THEN\n        \
         ALTER TABLE {table} CLUSTER ON {};\n    END IF;\nEND\n",
        quote_literal(&original.to_string()),
        quote_ident(&original.name)
    );
    let sql = format!(
        "{}ALTER INDEX {original} RENAME TO {};\n{}ALTER INDEX {back_in} RENAME TO {};\n\
         -- the comment and CLUSTER mark of the index that had the name go with the name\nDO {};\n",
        exemption("set aside, then dropped concurrently below"),
        quote_ident(&away.name),
        exemption("the covering copy takes the original name"),
        quote_ident(&original.name),
        dollar_quote(&marks)
    );
    stmt(LockMode::ShareUpdateExclusive, &[table], sql)
}

fn covered_check(table: &QualifiedName, c: &CoveredIndex, col: &str) -> Check {
    let original = table.sibling(c.original.name.clone());
    check(
        format!("{} includes {col}", c.original.name),
        1,
        format!(
            "SELECT (({}) AND ({}))::int::int8",
            probe::index_valid(&original),
            probe::index_includes(&original, col)
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{LockMode, PlanOptions, StatementKind};

    fn covering() -> PlanOptions {
        PlanOptions { cover_indexes: true, ..PlanOptions::default() }
    }

    /// The swap's DO block: the comment and CLUSTER mark of `leaving` go to tags_name_idx.
    fn marks(leaving: &str) -> String {
        format!(
            "DO $tenantize$\n\
             BEGIN\n\
             \x20   EXECUTE pg_catalog.format('COMMENT ON INDEX %s IS %L', 'public.tags_name_idx', \
             pg_catalog.obj_description('public.{leaving}'::pg_catalog.regclass, 'pg_class'));\n\
             \x20   IF (SELECT i.indisclustered FROM pg_catalog.pg_index i WHERE i.indexrelid = \
             'public.{leaving}'::pg_catalog.regclass) THEN\n\
             \x20       ALTER TABLE public.tags CLUSTER ON tags_name_idx;\n\
             \x20   END IF;\n\
             END\n\
             $tenantize$;\n"
        )
    }

    #[test]
    fn cover_indexes_rebuilds_plain_indexes_with_the_tenant_column_included_and_swaps_them_in() {
        let catalog = with_tags(saas(PG15))
            .alter("public", "tags", |t| t.expression_index("tags_lower_name_idx", &["lower(name)"]))
            .build();
        let plan = plan_with(&catalog, &covering());
        let tags = step(&plan, "6.cover-indexes:public.tags");
        assert_eq!(
            code(&forward_sql(tags)),
            format!(
                "CREATE INDEX CONCURRENTLY tags_name_idx_tenant_id ON public.tags USING btree (name) INCLUDE (tenant_id);\n\
             ALTER INDEX public.tags_name_idx RENAME TO tags_name_idx_retired;\n\
             ALTER INDEX public.tags_name_idx_tenant_id RENAME TO tags_name_idx;\n\
             {}\
             DROP INDEX CONCURRENTLY IF EXISTS public.tags_name_idx_retired;\n",
                marks("tags_name_idx_retired")
            )
        );
        let kinds: Vec<StatementKind> = tags.forward().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [StatementKind::ConcurrentIndex, StatementKind::Transaction, StatementKind::NonTransactional]
        );
        assert!(tags.forward().iter().all(|s| s.lock == LockMode::ShareUpdateExclusive));
        // The rollback rebuilds the original concurrently, swaps the names back, and drops the
        // covering copy concurrently.
        assert_eq!(
            code(&rollback_sql(tags)),
            format!(
                "CREATE INDEX CONCURRENTLY tags_name_idx_plain ON public.tags USING btree (name);\n\
             ALTER INDEX public.tags_name_idx RENAME TO tags_name_idx_tenant_id;\n\
             ALTER INDEX public.tags_name_idx_plain RENAME TO tags_name_idx;\n\
             {}\
             DROP INDEX CONCURRENTLY IF EXISTS public.tags_name_idx_tenant_id;\n",
                marks("tags_name_idx_tenant_id")
            )
        );
        // Covered indexes get no finding; the expression index is not covered and not named.
        let lost: Vec<&str> =
            plan.findings.iter().filter(|f| f.code == "index-only-scan").map(|f| f.object.as_str()).collect();
        assert!(lost.iter().all(|o| !o.ends_with("on public.tags")), "{lost:?}");
        assert!(!all_forward_sql(&plan).contains("tags_lower_name_idx_tenant_id"));
        // After stage 6's own indexes, before stage 7.
        assert!(position(&plan, "6.indexes:public.users") < position(&plan, "6.cover-indexes:public.tags"));
        assert!(
            position(&plan, "6.cover-indexes:public.tags") < position(&plan, "7.unique-build:public.users")
        );
    }

    #[test]
    fn a_covered_index_reads_as_the_original_to_the_drift_check() {
        let catalog = with_tags(saas(PG15)).build();
        let plan = plan_with(&catalog, &covering());
        let planned = plan.tables.iter().find(|t| t.name == qn("public", "tags")).unwrap();
        // What the swap leaves: the original's name on the definition with the tenant column.
        let mut covered = catalog.clone();
        let tags = covered.tables.iter_mut().find(|t| t.name == qn("public", "tags")).unwrap();
        tags.indexes[0].definition.push_str(" INCLUDE (tenant_id)");
        let tags = covered.table(&qn("public", "tags")).unwrap();
        let owned = plan.drift.owned_names.iter().cloned().collect();
        let ignore = crate::catalog::FingerprintIgnore {
            tenant_column: "tenant_id",
            tenant_table: &plan.tenant.table,
            owned_names: &owned,
            foreign_keys: true,
        };
        assert_eq!(crate::catalog::table_shape(tags, &ignore), planned.shape);
        // Another change to the index is drift.
        let mut changed = catalog.clone();
        let tags = changed.tables.iter_mut().find(|t| t.name == qn("public", "tags")).unwrap();
        tags.indexes[0].definition.push_str(" INCLUDE (id)");
        let tags = changed.table(&qn("public", "tags")).unwrap();
        assert_ne!(crate::catalog::table_shape(tags, &ignore), planned.shape);
    }

    #[test]
    fn an_index_in_its_own_tablespace_is_covered_and_restored_there() {
        // pg_get_indexdef() does not print the tablespace: both rebuilds name it.
        let mut catalog = with_tags(saas(PG15)).build();
        let tags = catalog.tables.iter_mut().find(|t| t.name == qn("public", "tags")).unwrap();
        tags.indexes[0].tablespace = Some("fast disk".into());
        let plan = plan_with(&catalog, &covering());
        let tags = step(&plan, "6.cover-indexes:public.tags");
        assert!(
            forward_sql(tags).starts_with(
                "CREATE INDEX CONCURRENTLY tags_name_idx_tenant_id ON public.tags USING btree (name) \
                 INCLUDE (tenant_id) TABLESPACE \"fast disk\";\n"
            ),
            "{}",
            forward_sql(tags)
        );
        assert!(
            rollback_sql(tags).starts_with(
                "CREATE INDEX CONCURRENTLY tags_name_idx_plain ON public.tags USING btree (name) \
                 TABLESPACE \"fast disk\";\n"
            ),
            "{}",
            rollback_sql(tags)
        );
    }

    #[test]
    fn cover_indexes_leaves_partitioned_tables_to_the_finding() {
        let catalog = with_events(saas(PG15))
            .alter("public", "events", |t| t.index("events_user_id_idx", &["user_id"]))
            .build();
        let plan = plan_with(&catalog, &covering());
        assert!(
            ids(&plan).iter().all(|id| !id.starts_with("6.cover-indexes:public.events")),
            "{:?}",
            ids(&plan)
        );
        let partitioned: Vec<&str> = plan
            .findings
            .iter()
            .filter(|f| f.code == "index-only-scan" && f.object.ends_with("on public.events"))
            .map(|f| f.message.as_str())
            .collect();
        assert!(
            !partitioned.is_empty()
                && partitioned.iter().all(|m| m.contains("--cover-indexes leaves partitioned tables alone")),
            "{partitioned:?}"
        );
    }
}
