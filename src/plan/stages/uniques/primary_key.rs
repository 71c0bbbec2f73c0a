//! A natural primary key made tenant-scoped: the scoped copy (built concurrently by the
//! unique-build step) becomes the key with `PRIMARY KEY USING INDEX` in one short
//! transaction. A table has one primary key, so the rollback cannot keep the scoped copy
//! aside as a unique's does: it builds the global key's index again concurrently, then swaps
//! it back in and drops the scoped key with its index (nothing depends on it: the foreign keys
//! stage 7 made reference stage 6's (tenant, key) index, the older of the two).

use super::{GONE, gone, restore_definition, restore_states};
use crate::plan::analysis::ScopedUnique;
use crate::plan::ddl::{concurrent_index, drop_index_concurrently, exempt, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{LockMode, Part};
use crate::plan::probe::{self, all, holds, not};
use crate::sql::{QualifiedName, quote_ident};

pub(super) fn swap_primary_key(table: &QualifiedName, u: &ScopedUnique, col: &str) -> Option<Part> {
    let rebuild = restore_definition(table, u, true)?;
    let orig = &u.original.index_name;
    let (qorig, qtemp, qrestore) =
        (quote_ident(orig), quote_ident(&u.temp_name), quote_ident(&u.restore_name));
    let restore = table.sibling(u.restore_name.clone());
    let scoped = probe::constraint_index_leads_with(table, orig, col);
    let lock = |sql: String| stmt(LockMode::AccessExclusive, &[table], sql);
    // The key's index stays the table's CLUSTER index when it was.
    let cluster =
        if u.clustered { format!("ALTER TABLE {table} CLUSTER ON {qorig};\n") } else { String::new() };
    let swap = |index: &str, why: &str| {
        lock(format!(
            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
             ALTER TABLE {table} ADD CONSTRAINT {qorig} PRIMARY KEY USING INDEX {index};\n{cluster}",
            exempt("ban-drop-constraint", why)
        ))
    };
    let mut states =
        vec![state("scoped", holds(all(&[scoped.clone(), not(probe::relation_exists(&restore))])))];
    states.extend(restore_states(&scoped, &restore));
    states.push(state("global", holds(probe::constraint_exists(table, orig, 'p'))));
    states.push(gone());
    Some(Part {
        name: orig.clone(),
        states,
        done: names(&["scoped"]),
        undone: names(&["global", GONE]),
        rollback_from: None,
        transitions: vec![
            transition(
                "global",
                "scoped",
                swap(&qtemp, "replaced in this transaction by its tenant-scoped successor"),
            ),
            transition(
                "scoped",
                "rebuilding global",
                concurrent_index(restore.clone(), table, format!("{rebuild};\n")),
            ),
            transition(
                "rebuilding global",
                "global",
                swap(&qrestore, "the global key comes back in this transaction"),
            ),
            transition("rebuilding global", "scoped", drop_index_concurrently(&restore, table)),
            transition("broken global copy", "scoped", drop_index_concurrently(&restore, table)),
        ],
        guards: Vec::new(),
    })
}
