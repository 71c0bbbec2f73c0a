//! Stage 7's uniques: tenant-scoped copies are built first (before the foreign keys that need
//! them), then swapped in under the original names (after those keys are in place).

use crate::catalog::UniqueConstraintInfo;
use crate::plan::analysis::{Analysis, Scope, ScopedUnique};
use crate::plan::ddl::{
    check, concurrent_index, deferrable_clause, drop_index_concurrently, duplicate_count_sql, exempt,
    index_valid_check, long, regclass, rewrite_index_definition, splice_constraint_columns, stmt,
    to_regclass,
};
use crate::plan::model::{Check, Guard, LockMode, Stage, Statement, Step};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

const PARTITIONED_BUILD_EXEMPTION: &str =
    "PostgreSQL cannot build a partitioned index concurrently (see the findings)";

/// One step per table: the scoped copies of its uniques, built under temporary names.
pub(in crate::plan) fn build_steps(a: &Analysis) -> Vec<Step> {
    a.uniques.iter().filter_map(|(table, uniques)| build_step(&a.scope, table, uniques)).collect()
}

/// One step per table: each scoped copy takes its original's place.
pub(in crate::plan) fn swap_steps(a: &Analysis) -> Vec<Step> {
    a.uniques.iter().filter_map(|(table, uniques)| swap_step(&a.scope, table, uniques)).collect()
}

fn build_step(s: &Scope, table: &QualifiedName, uniques: &[ScopedUnique]) -> Option<Step> {
    let mut forward = Vec::new();
    let mut rollback = Vec::new();
    let mut checks = Vec::new();
    for u in uniques {
        let Some(sql) = &u.build_definition else { continue };
        let temp = table.sibling(u.temp_name.clone());
        if u.partitioned {
            forward.push(long(
                LockMode::Share,
                &[table],
                format!(
                    "{}{sql};\n",
                    exempt("require-concurrent-index-creation", PARTITIONED_BUILD_EXEMPTION)
                ),
            ));
            rollback.push(stmt(
                LockMode::AccessExclusive,
                &[table],
                format!("DROP INDEX IF EXISTS {temp};\n"),
            ));
        } else {
            forward.push(concurrent_index(temp.clone(), table, format!("{sql};\n")));
            // A rolled-back swap leaves the scoped index as a constraint under this name.
            rollback.push(stmt(
                LockMode::AccessExclusive,
                &[table],
                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {};\n", quote_ident(&u.temp_name)),
            ));
            rollback.push(drop_index_concurrently(&temp, table));
        }
        checks.push(index_valid_check(&temp));
    }
    if forward.is_empty() {
        return None;
    }
    let names: Vec<&str> = uniques.iter().map(|u| u.original.index_name.as_str()).collect();
    Some(Step {
        id: format!("7.unique-build:{}", table),
        stage: Stage::Unique,
        title: format!("Build tenant-scoped copies of {} on {}", names.join(", "), table.display_plain()),
        note: "Each unique is rebuilt with the tenant column in front, keeping its predicate, \
               expressions and options; the copy is swapped in under the original name after \
               the foreign keys that need it are in place."
            .into(),
        tables: vec![table.clone()],
        atomic: false,
        rows_estimate: s.table_rows(table),
        forward,
        rollback_atomic: false,
        rollback,
        no_rollback_reason: None,
        rollback_guards: Vec::new(),
        checks,
        backfill: None,
        hash: String::new(),
    })
}

/// The statements of one table's swaps, in order.
#[derive(Default)]
struct Swaps {
    forward: Vec<Statement>,
    rollback: Vec<Statement>,
}

fn swap_step(s: &Scope, table: &QualifiedName, uniques: &[ScopedUnique]) -> Option<Step> {
    let col = &s.tenant.column;
    let mut swaps = Swaps::default();
    let mut guards = Vec::new();
    let mut checks = Vec::new();
    for u in uniques {
        let swapped = match (&u.original.constraint, u.partitioned) {
            (Some(constraint), false) => swap_constraint(table, u, constraint, &mut swaps),
            (None, false) => swap_index(table, u, &mut swaps),
            (Some(constraint), true) => swap_partitioned_constraint(table, u, constraint, col, &mut swaps),
            (None, true) => swap_partitioned_index(table, u, &mut swaps),
        };
        if swapped.is_none() {
            continue;
        }
        guards.push(repeated_values_guard(table, u));
        checks.push(leads_with_tenant_check(table, u, col));
    }
    if swaps.forward.is_empty() {
        return None;
    }
    let names: Vec<&str> = uniques.iter().map(|u| u.original.index_name.as_str()).collect();
    Some(Step {
        id: format!("7.unique-swap:{}", table),
        stage: Stage::Unique,
        title: format!("Swap in tenant-scoped {} on {}", names.join(", "), table.display_plain()),
        note: "Each swap is one short transaction under the original name. Rolling back first \
               counts values that now repeat across tenants: a global unique cannot come back \
               while they exist."
            .into(),
        tables: vec![table.clone()],
        atomic: false,
        rows_estimate: s.table_rows(table),
        forward: swaps.forward,
        rollback_atomic: false,
        rollback: swaps.rollback,
        no_rollback_reason: None,
        rollback_guards: guards,
        checks,
        backfill: None,
        hash: String::new(),
    })
}

/// The original's definition under its restore name, for the rollback to rebuild.
fn restore_definition(table: &QualifiedName, u: &ScopedUnique, concurrently: bool) -> Option<String> {
    let o = &u.original;
    rewrite_index_definition(
        &o.index_definition,
        &o.index_name,
        table,
        &o.access_method,
        &u.restore_name,
        concurrently,
        None,
    )
}

/// A unique constraint of an ordinary table: the constraint is re-added over the scoped index
/// (`UNIQUE USING INDEX`); the rollback rebuilds the global index and does the same with it.
/// `None` when the original's definition cannot be read back (no rollback, guard or check).
fn swap_constraint(
    table: &QualifiedName,
    u: &ScopedUnique,
    constraint: &UniqueConstraintInfo,
    swaps: &mut Swaps,
) -> Option<()> {
    let qorig = quote_ident(&u.original.index_name);
    let qtemp = quote_ident(&u.temp_name);
    let qrestore = quote_ident(&u.restore_name);
    let deferrable = deferrable_clause(constraint.deferrable, constraint.initially_deferred);
    swaps.forward.push(stmt(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
             ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qtemp}{deferrable};\n",
            exempt("ban-drop-constraint", "replaced in this transaction by its tenant-scoped successor")
        ),
    ));
    let rebuild = restore_definition(table, u, true)?;
    let restore = table.sibling(u.restore_name.clone());
    swaps.rollback.push(concurrent_index(restore, table, format!("{rebuild};\n")));
    swaps.rollback.push(stmt(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "ALTER TABLE {table} RENAME CONSTRAINT {qorig} TO {qtemp};\n\
             ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qrestore}{deferrable};\n"
        ),
    ));
    Some(())
}

/// A plain unique index of an ordinary table: rename the global index aside and the scoped
/// one in (a lock that lets reads and writes go on), then drop the global one concurrently.
fn swap_index(table: &QualifiedName, u: &ScopedUnique, swaps: &mut Swaps) -> Option<()> {
    let original = table.sibling(u.original.index_name.clone());
    let qorig = quote_ident(&u.original.index_name);
    let temp = table.sibling(u.temp_name.clone());
    let retired = table.sibling(u.retired_name.clone());
    swaps.forward.push(stmt(
        LockMode::ShareUpdateExclusive,
        &[table],
        format!(
            "{}ALTER INDEX {original} RENAME TO {};\n{}ALTER INDEX {temp} RENAME TO {qorig};\n",
            exempt("renaming-object", "set aside, then dropped concurrently below"),
            quote_ident(&u.retired_name),
            exempt("renaming-object", "the successor takes the original name clients know")
        ),
    ));
    swaps.forward.push(drop_index_concurrently(&retired, table));
    swaps.rollback.push(drop_index_concurrently(&retired, table));
    let rebuild = restore_definition(table, u, true)?;
    let restore = table.sibling(u.restore_name.clone());
    swaps.rollback.push(concurrent_index(restore.clone(), table, format!("{rebuild};\n")));
    swaps.rollback.push(rename_restored_index(table, u, &restore));
    Some(())
}

/// A unique constraint of a partitioned table: dropped and re-added with the tenant column in
/// one transaction (PostgreSQL builds it in place, under the lock).
fn swap_partitioned_constraint(
    table: &QualifiedName,
    u: &ScopedUnique,
    constraint: &UniqueConstraintInfo,
    tenant_column: &str,
    swaps: &mut Swaps,
) -> Option<()> {
    let qorig = quote_ident(&u.original.index_name);
    let definition = &constraint.definition;
    let scoped = splice_constraint_columns(definition, &quote_ident(tenant_column));
    swaps.forward.push(long(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
             {}ALTER TABLE {table} ADD CONSTRAINT {qorig} {scoped};\n",
            exempt("ban-drop-constraint", "replaced in this transaction by its tenant-scoped successor"),
            exempt("require-concurrent-index-creation", PARTITIONED_BUILD_EXEMPTION)
        ),
    ));
    swaps.rollback.push(long(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
             ALTER TABLE {table} ADD CONSTRAINT {qorig} {definition};\n"
        ),
    ));
    Some(())
}

/// A plain unique index of a partitioned table: the scoped copy built in stage 7's build step
/// takes the original's name; the rollback rebuilds the original in place.
fn swap_partitioned_index(table: &QualifiedName, u: &ScopedUnique, swaps: &mut Swaps) -> Option<()> {
    let qorig = quote_ident(&u.original.index_name);
    let temp = table.sibling(u.temp_name.clone());
    swaps.forward.push(stmt(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "{}DROP INDEX {};\n{}ALTER INDEX {temp} RENAME TO {qorig};\n",
            exempt(
                "require-concurrent-index-deletion",
                "PostgreSQL cannot drop a partitioned index concurrently; dropping is instant"
            ),
            table.sibling(u.original.index_name.clone()),
            exempt("renaming-object", "the successor takes the original name clients know")
        ),
    ));
    let rebuild = restore_definition(table, u, false)?;
    let restore = table.sibling(u.restore_name.clone());
    swaps.rollback.push(long(LockMode::Share, &[table], format!("{rebuild};\n")));
    swaps.rollback.push(rename_restored_index(table, u, &restore));
    Some(())
}

/// Rollback: the scoped index goes back to its temporary name, the rebuilt original takes
/// the original name.
fn rename_restored_index(table: &QualifiedName, u: &ScopedUnique, restore: &QualifiedName) -> Statement {
    stmt(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "ALTER INDEX {} RENAME TO {};\nALTER INDEX {restore} RENAME TO {};\n",
            table.sibling(u.original.index_name.clone()),
            quote_ident(&u.temp_name),
            quote_ident(&u.original.index_name)
        ),
    )
}

fn repeated_values_guard(table: &QualifiedName, u: &ScopedUnique) -> Guard {
    let o = &u.original;
    Guard {
        name: format!("values of {} repeated across tenants", o.index_name),
        message: format!(
            "values that {} once kept unique now repeat across tenants; the global \
             unique cannot be rebuilt until they are resolved",
            o.index_name
        ),
        forceable: false,
        sql: duplicate_count_sql(table, o),
    }
}

fn leads_with_tenant_check(table: &QualifiedName, u: &ScopedUnique, tenant_column: &str) -> Check {
    let o = &u.original;
    check(
        format!("{} leads with {}", o.index_name, tenant_column),
        1,
        format!(
            "SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indexrelid = {} AND i.indisvalid \
             AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {})",
            to_regclass(&table.sibling(o.index_name.clone())),
            regclass(table),
            quote_literal(tenant_column)
        ),
    )
}
