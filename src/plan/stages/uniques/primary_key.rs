//! A natural primary key made tenant-scoped: the scoped copy (built concurrently by the
//! unique-build step, before the foreign keys that reference it) becomes the key with `PRIMARY
//! KEY USING INDEX` in one short transaction. The composite foreign keys depend on that copy
//! (stage 6 builds no `(tenant, key)` index of its own for such a key), so the table keeps one
//! index for the key, not two.
//!
//! A table has one primary key and PostgreSQL cannot turn a key's index back into a plain one,
//! so the rollback is split where the foreign keys allow it: the swap's rollback only builds
//! the global key's index again concurrently (the old foreign keys, restored next by the
//! foreign-key step's rollback, depend on it), and the unique-build step's rollback, once no
//! scoped key depends on the scoped one, swaps the global key back in and drops the scoped key
//! with its index.

use super::{GONE, gone, restore_definition};
use crate::plan::analysis::ScopedUnique;
use crate::plan::ddl::{concurrent_index, drop_index_concurrently, exempt, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{LockMode, Part, Statement};
use crate::plan::probe::{self, all, holds, not};
use crate::plan::statement::PartState;
use crate::sql::{QualifiedName, quote_ident};

/// The key is scoped and the global key's index stands beside it: where the swap's rollback
/// leaves the key, and where the unique-build step's rollback swaps it back from.
pub(super) const GLOBAL_COPY_BUILT: &str = "scoped, global copy built";

/// Whether the key is scoped and its global copy is built and valid.
pub(super) fn global_copy_built(table: &QualifiedName, u: &ScopedUnique, col: &str) -> PartState {
    let scoped = probe::constraint_index_leads_with(table, &u.original.index_name, col);
    let restore = table.sibling(u.restore_name.clone());
    state(GLOBAL_COPY_BUILT, holds(all(&[scoped, probe::index_valid(&restore)])))
}

/// One transaction: the key dropped and re-added over `index` (an index of its columns).
fn swap_to(table: &QualifiedName, u: &ScopedUnique, index: &str, why: &str) -> Statement {
    let qorig = quote_ident(&u.original.index_name);
    // The key's index stays the table's CLUSTER index when it was.
    let cluster =
        if u.clustered { format!("ALTER TABLE {table} CLUSTER ON {qorig};\n") } else { String::new() };
    stmt(
        LockMode::AccessExclusive,
        &[table],
        format!(
            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
             ALTER TABLE {table} ADD CONSTRAINT {qorig} PRIMARY KEY USING INDEX {index};\n{cluster}",
            exempt("ban-drop-constraint", why)
        ),
    )
}

/// The unique-build step's way back from [`GLOBAL_COPY_BUILT`]: the global key comes back and
/// the scoped one goes with its index, which leaves the scoped copy absent.
pub(super) fn swap_back(table: &QualifiedName, u: &ScopedUnique) -> Statement {
    swap_to(table, u, &quote_ident(&u.restore_name), "the global key comes back in this transaction")
}

pub(super) fn swap_primary_key(table: &QualifiedName, u: &ScopedUnique, col: &str) -> Option<Part> {
    let rebuild = restore_definition(table, u, true)?;
    let orig = &u.original.index_name;
    let restore = table.sibling(u.restore_name.clone());
    let scoped = probe::constraint_index_leads_with(table, orig, col);
    let states = vec![
        state("scoped", holds(all(&[scoped.clone(), not(probe::relation_exists(&restore))]))),
        global_copy_built(table, u, col),
        state("broken global copy", holds(all(&[scoped, probe::index_invalid(&restore)]))),
        state("global", holds(probe::constraint_exists(table, orig, 'p'))),
        gone(),
    ];
    Some(Part {
        name: orig.clone(),
        states,
        done: names(&["scoped"]),
        undone: names(&["global", GLOBAL_COPY_BUILT, GONE]),
        rollback_from: None,
        transitions: vec![
            transition(
                "global",
                "scoped",
                swap_to(
                    table,
                    u,
                    &quote_ident(&u.temp_name),
                    "replaced in this transaction by its tenant-scoped successor",
                ),
            ),
            transition(
                "scoped",
                GLOBAL_COPY_BUILT,
                concurrent_index(restore.clone(), table, format!("{rebuild};\n")),
            ),
            transition(GLOBAL_COPY_BUILT, "scoped", drop_index_concurrently(&restore, table)),
            transition("broken global copy", "scoped", drop_index_concurrently(&restore, table)),
        ],
        guards: Vec::new(),
    })
}
