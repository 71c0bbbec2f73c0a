//! Stage 7's swaps for partitioned tables: PostgreSQL cannot build or swap a partitioned
//! unique concurrently, so these swap in place, in one transaction each way.

use super::*;

/// A unique constraint or primary key of a partitioned table: dropped and re-added with the
/// tenant column in one transaction (PostgreSQL builds it in place, under the lock), and back
/// the same way.
pub(super) fn swap_partitioned_constraint(
    table: &QualifiedName,
    u: &ScopedUnique,
    constraint: &UniqueConstraintInfo,
    col: &str,
) -> Part {
    let orig = &u.original.index_name;
    let qorig = quote_ident(orig);
    // pg_get_constraintdef() leaves out the index's storage parameters and tablespace.
    let definition = &constraint_with_index_parameters(constraint, &u.original, table);
    let scoped_definition = splice_constraint_columns(definition, &quote_ident(col));
    Part {
        name: orig.clone(),
        states: vec![
            state("scoped", holds(probe::constraint_index_leads_with(table, orig, col))),
            state(
                "global",
                holds(probe::constraint_exists(table, orig, if u.primary_key { 'p' } else { 'u' })),
            ),
            gone(),
        ],
        done: names(&["scoped"]),
        undone: names(&["global", GONE]),
        rollback_from: None,
        transitions: vec![
            transition(
                "global",
                "scoped",
                long(
                    LockMode::AccessExclusive,
                    &[table],
                    format!(
                        "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                         {}ALTER TABLE {table} ADD CONSTRAINT {qorig} {scoped_definition};\n",
                        exempt(
                            "ban-drop-constraint",
                            "replaced in this transaction by its tenant-scoped successor"
                        ),
                        exempt("require-concurrent-index-creation", PARTITIONED_BUILD_EXEMPTION)
                    ),
                ),
            ),
            transition(
                "scoped",
                "global",
                long(
                    LockMode::AccessExclusive,
                    &[table],
                    format!(
                        "ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                         ALTER TABLE {table} ADD CONSTRAINT {qorig} {definition};\n"
                    ),
                ),
            ),
        ],
        guards: Vec::new(),
    }
}

/// A plain unique index of a partitioned table: the scoped copy built in stage 7's build step
/// takes the original's name; the rollback rebuilds the original in place.
pub(super) fn swap_partitioned_index(table: &QualifiedName, u: &ScopedUnique, col: &str) -> Option<Part> {
    let rebuild = restore_definition(table, u, false)?;
    let orig = &u.original.index_name;
    let original = table.sibling(orig.clone());
    let qorig = quote_ident(orig);
    let temp = table.sibling(u.temp_name.clone());
    let restore = table.sibling(u.restore_name.clone());
    let scoped = probe::index_leads_with(&original, col);
    Some(Part {
        name: orig.clone(),
        states: vec![
            state("scoped", holds(all(&[scoped.clone(), not(probe::relation_exists(&restore))]))),
            state("rebuilding global", holds(all(&[scoped, probe::relation_exists(&restore)]))),
            state("global", holds(probe::relation_exists(&original))),
            gone(),
        ],
        done: names(&["scoped"]),
        undone: names(&["global", GONE]),
        rollback_from: None,
        transitions: vec![
            transition(
                "global",
                "scoped",
                stmt(
                    LockMode::AccessExclusive,
                    &[table],
                    format!(
                        "{}DROP INDEX {original};\n{}ALTER INDEX {temp} RENAME TO {qorig};\n",
                        exempt(
                            "require-concurrent-index-deletion",
                            "PostgreSQL cannot drop a partitioned index concurrently; dropping is instant"
                        ),
                        exempt("renaming-object", "the successor takes the original name clients know")
                    ),
                ),
            ),
            transition(
                "scoped",
                "rebuilding global",
                long(LockMode::Share, &[table], format!("{rebuild};\n")),
            ),
            transition("rebuilding global", "global", rename_restored_index(table, u, &restore)),
            transition(
                "rebuilding global",
                "scoped",
                stmt(LockMode::AccessExclusive, &[table], format!("DROP INDEX IF EXISTS {restore};\n")),
            ),
        ],
        guards: Vec::new(),
    })
}
