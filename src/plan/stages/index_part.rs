//! An index built concurrently, as a part: built, left INVALID by an interrupted or failed
//! build, or absent. Stage 6's indexes and stage 7's scoped copies are such parts.

use crate::plan::ddl::{concurrent_index, drop_index_concurrently};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::Part;
use crate::plan::probe::{holds, index_invalid, index_valid, not, relation_exists};
use crate::plan::statement::{PartState, Transition};
use crate::sql::QualifiedName;

/// The states of a concurrently built `index`, most advanced first.
pub(super) fn states(index: &QualifiedName) -> Vec<PartState> {
    vec![
        state("built", holds(index_valid(index))),
        state("invalid", holds(index_invalid(index))),
        state("absent", holds(not(relation_exists(index)))),
    ]
}

/// Build, drop, and drop an INVALID leftover (the way back to a clean build, forward or back).
pub(super) fn transitions(
    index: &QualifiedName,
    table: &QualifiedName,
    create_sql: String,
) -> Vec<Transition> {
    vec![
        transition("absent", "built", concurrent_index(index.clone(), table, create_sql)),
        transition("built", "absent", drop_index_concurrently(index, table)),
        transition("invalid", "absent", drop_index_concurrently(index, table)),
    ]
}

/// `index` on `table`, built with `create_sql` (a `CREATE [UNIQUE] INDEX CONCURRENTLY`).
pub(super) fn part(name: String, index: &QualifiedName, table: &QualifiedName, create_sql: String) -> Part {
    Part {
        name,
        states: states(index),
        done: names(&["built"]),
        undone: names(&["absent"]),
        rollback_from: None,
        transitions: transitions(index, table, create_sql),
        guards: Vec::new(),
    }
}
