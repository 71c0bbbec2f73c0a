//! Stage 7's uniques: tenant-scoped copies are built first (before the foreign keys that need
//! them), then swapped in under the original names (after those keys are in place).

use super::index_part;
use crate::catalog::UniqueConstraintInfo;
use crate::plan::analysis::{Analysis, Scope, ScopedUnique};
use crate::plan::ddl::{
    check, concurrent_index, constraint_with_index_parameters, deferrable_clause, drop_index_concurrently,
    duplicate_count_sql, exempt, index_valid_check, long, regclass, rewrite_index_definition,
    splice_constraint_columns, stmt, to_regclass,
};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{Check, Guard, LockMode, Part, Stage, Statement, Step};
use crate::plan::probe::{self, all, holds, not};
use crate::plan::statement::PartState;
use crate::sql::{QualifiedName, quote_ident, quote_literal};

mod partitioned;
mod primary_key;
use partitioned::{swap_partitioned_constraint, swap_partitioned_index};

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
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for u in uniques {
        let Some(sql) = &u.build_definition else { continue };
        let temp = table.sibling(u.temp_name.clone());
        parts.push(if u.partitioned {
            build_in_place_part(s, table, u, sql)
        } else {
            build_concurrently_part(s, table, u, sql)
        });
        checks.push(if u.primary_key && !u.partitioned {
            scoped_key_check(s, table, u, &temp)
        } else {
            index_valid_check(&temp)
        });
    }
    if parts.is_empty() {
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
        rows_estimate: s.table_rows(table),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    })
}

/// A primary key's scoped copy is valid, or already the key: an apply resumed after a rollback
/// that stopped between the swap's and this step's finds the key scoped, and goes on from there.
fn scoped_key_check(s: &Scope, table: &QualifiedName, u: &ScopedUnique, temp: &QualifiedName) -> Check {
    let scoped = probe::constraint_index_leads_with(table, &u.original.index_name, &s.tenant.column);
    check(
        format!("index {} is valid, or is the key", temp.name),
        1,
        format!("SELECT (({}) OR ({scoped}))::int::int8", probe::index_valid(temp)),
    )
}

/// Whether the swap consumed the copy: the original's name now holds a scoped index. Undoing
/// the copy then has to wait for the swap's rollback.
fn swapped_in(s: &Scope, table: &QualifiedName, u: &ScopedUnique) -> PartState {
    let original = table.sibling(u.original.index_name.clone());
    state(SWAPPED_IN, holds(probe::index_leads_with(&original, &s.tenant.column)))
}

const SWAPPED_IN: &str = "swapped in (roll back the swap first)";

/// The scoped copy of a unique of an ordinary table, built concurrently. A rolled-back
/// constraint swap leaves it as a constraint under its temporary name.
fn build_concurrently_part(s: &Scope, table: &QualifiedName, u: &ScopedUnique, sql: &str) -> Part {
    let temp = table.sibling(u.temp_name.clone());
    // A primary key's rollback drops the scoped copy with the key: never kept aside.
    let constraint = u.original.constraint.is_some() && !u.primary_key;
    let mut states = Vec::new();
    if u.primary_key {
        states.push(primary_key::global_copy_built(table, u, &s.tenant.column));
    }
    states.push(swapped_in(s, table, u));
    if constraint {
        states.push(state(KEPT, holds(probe::constraint_exists(table, &u.temp_name, 'u'))));
    }
    states.extend(index_part::states(&temp));
    let mut transitions = index_part::transitions(&temp, table, format!("{sql};\n"));
    let mut done = names(&["built", SWAPPED_IN]);
    if u.primary_key {
        done.push(primary_key::GLOBAL_COPY_BUILT.into());
        transitions.push(transition(
            primary_key::GLOBAL_COPY_BUILT,
            "absent",
            primary_key::swap_back(table, u),
        ));
    }
    if constraint {
        done.push(KEPT.into());
        transitions.push(transition(
            KEPT,
            "absent",
            stmt(
                LockMode::AccessExclusive,
                &[table],
                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {};\n", quote_ident(&u.temp_name)),
            ),
        ));
    }
    Part {
        name: u.temp_name.clone(),
        states,
        done,
        undone: names(&["absent"]),
        rollback_from: if u.primary_key {
            Some(primary_key::GLOBAL_COPY_BUILT.to_string())
        } else {
            constraint.then(|| KEPT.to_string())
        },
        transitions,
        guards: Vec::new(),
    }
}

/// A rolled-back constraint swap keeps the scoped copy as a constraint under its temporary
/// name (PostgreSQL cannot turn a constraint's index back into a plain one).
const KEPT: &str = "kept as a constraint";

/// The scoped copy of a unique index of a partitioned table: built in place, under a SHARE
/// lock, in one transaction (PostgreSQL cannot build a partitioned index concurrently).
fn build_in_place_part(s: &Scope, table: &QualifiedName, u: &ScopedUnique, sql: &str) -> Part {
    let temp = table.sibling(u.temp_name.clone());
    let build = long(
        LockMode::Share,
        &[table],
        format!("{}{sql};\n", exempt("require-concurrent-index-creation", PARTITIONED_BUILD_EXEMPTION)),
    );
    let drop = stmt(LockMode::AccessExclusive, &[table], format!("DROP INDEX IF EXISTS {temp};\n"));
    Part {
        name: u.temp_name.clone(),
        states: vec![
            swapped_in(s, table, u),
            state("built", holds(probe::relation_exists(&temp))),
            state("absent", holds(not(probe::relation_exists(&temp)))),
        ],
        done: names(&["built", SWAPPED_IN]),
        undone: names(&["absent"]),
        rollback_from: None,
        transitions: vec![transition("absent", "built", build), transition("built", "absent", drop)],
        guards: Vec::new(),
    }
}

fn swap_step(s: &Scope, table: &QualifiedName, uniques: &[ScopedUnique]) -> Option<Step> {
    let col = &s.tenant.column;
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for u in uniques {
        let part = match (&u.original.constraint, u.partitioned) {
            (Some(_), false) if u.primary_key => primary_key::swap_primary_key(table, u, col),
            (Some(constraint), false) => swap_constraint(table, u, constraint, col),
            (None, false) => swap_index(table, u, col),
            (Some(constraint), true) => Some(swap_partitioned_constraint(table, u, constraint, col)),
            (None, true) => swap_partitioned_index(table, u, col),
        };
        let Some(mut part) = part else { continue };
        part.guards.push(repeated_values_guard(table, u));
        parts.push(part);
        checks.push(leads_with_tenant_check(table, u, col));
    }
    if parts.is_empty() {
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
        rows_estimate: s.table_rows(table),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    })
}

/// The original's definition under its restore name, for the rollback to rebuild.
fn restore_definition(table: &QualifiedName, u: &ScopedUnique, concurrently: bool) -> Option<String> {
    let o = &u.original;
    rewrite_index_definition(o, table, &u.restore_name, concurrently, None)
}

/// What a swap finds when the index it swaps is not there at all: the application dropped
/// it. Nothing to undo, and `apply` has no way on (the plan no longer fits). Also the
/// `--cover-indexes` swaps'.
pub(super) fn gone() -> PartState {
    state(GONE, holds("true".into()))
}

pub(super) const GONE: &str = "gone (dropped by someone else)";

/// The global copy the rollback builds, and what an interrupted rollback leaves.
fn restore_states(original_scoped: &str, restore: &QualifiedName) -> Vec<PartState> {
    vec![
        state("rebuilding global", holds(all(&[original_scoped.to_string(), probe::index_valid(restore)]))),
        state(
            "broken global copy",
            holds(all(&[original_scoped.to_string(), probe::index_invalid(restore)])),
        ),
    ]
}

/// A unique constraint of an ordinary table: the constraint is re-added over the scoped index
/// (`UNIQUE USING INDEX`); the rollback builds the global index again concurrently and does
/// the same with it, keeping the scoped one as a constraint under its temporary name.
fn swap_constraint(
    table: &QualifiedName,
    u: &ScopedUnique,
    constraint: &UniqueConstraintInfo,
    col: &str,
) -> Option<Part> {
    let rebuild = restore_definition(table, u, true)?;
    let orig = &u.original.index_name;
    let (qorig, qtemp, qrestore) =
        (quote_ident(orig), quote_ident(&u.temp_name), quote_ident(&u.restore_name));
    let restore = table.sibling(u.restore_name.clone());
    let deferrable = deferrable_clause(constraint.deferrable, constraint.initially_deferred);
    let scoped = probe::constraint_index_leads_with(table, orig, col);
    let lock = |sql: String| stmt(LockMode::AccessExclusive, &[table], sql);
    let mut states =
        vec![state("scoped", holds(all(&[scoped.clone(), not(probe::relation_exists(&restore))])))];
    states.extend(restore_states(&scoped, &restore));
    states.push(state(
        "global, scoped copy kept",
        holds(all(&[
            probe::constraint_exists(table, orig, 'u'),
            probe::constraint_exists(table, &u.temp_name, 'u'),
        ])),
    ));
    states.push(state("global", holds(probe::constraint_exists(table, orig, 'u'))));
    states.push(gone());
    Some(Part {
        name: orig.clone(),
        states,
        done: names(&["scoped"]),
        undone: names(&["global", "global, scoped copy kept", GONE]),
        rollback_from: None,
        transitions: vec![
            transition(
                "global",
                "scoped",
                lock(format!(
                    "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                     ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qtemp}{deferrable};\n",
                    exempt(
                        "ban-drop-constraint",
                        "replaced in this transaction by its tenant-scoped successor"
                    )
                )),
            ),
            transition(
                "global, scoped copy kept",
                "scoped",
                lock(format!(
                    "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                     {}ALTER TABLE {table} RENAME CONSTRAINT {qtemp} TO {qorig};\n",
                    exempt("ban-drop-constraint", "replaced in this transaction by the scoped copy kept"),
                    exempt("renaming-object", "the successor takes the original name clients know")
                )),
            ),
            transition(
                "scoped",
                "rebuilding global",
                concurrent_index(restore.clone(), table, format!("{rebuild};\n")),
            ),
            transition(
                "rebuilding global",
                "global, scoped copy kept",
                lock(format!(
                    "ALTER TABLE {table} RENAME CONSTRAINT {qorig} TO {qtemp};\n\
                     ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qrestore}{deferrable};\n"
                )),
            ),
            transition("rebuilding global", "scoped", drop_index_concurrently(&restore, table)),
            transition("broken global copy", "scoped", drop_index_concurrently(&restore, table)),
        ],
        guards: Vec::new(),
    })
}

/// A plain unique index of an ordinary table: rename the global index aside and the scoped
/// one in (a lock that lets reads and writes go on), then drop the global one concurrently.
fn swap_index(table: &QualifiedName, u: &ScopedUnique, col: &str) -> Option<Part> {
    let rebuild = restore_definition(table, u, true)?;
    let orig = &u.original.index_name;
    let original = table.sibling(orig.clone());
    let qorig = quote_ident(orig);
    let temp = table.sibling(u.temp_name.clone());
    let retired = table.sibling(u.retired_name.clone());
    let restore = table.sibling(u.restore_name.clone());
    let scoped = probe::index_leads_with(&original, col);
    let renames = |lock: LockMode, away: &QualifiedName, back_in: &QualifiedName, note: bool| {
        let exemption = |why: &str| if note { exempt("renaming-object", why) } else { String::new() };
        stmt(
            lock,
            &[table],
            format!(
                "{}ALTER INDEX {original} RENAME TO {};\n{}ALTER INDEX {back_in} RENAME TO {qorig};\n",
                exemption("set aside, then dropped concurrently below"),
                quote_ident(&away.name),
                exemption("the successor takes the original name clients know")
            ),
        )
    };
    let mut states = vec![
        state(
            "scoped",
            holds(all(&[
                scoped.clone(),
                not(probe::relation_exists(&retired)),
                not(probe::relation_exists(&restore)),
            ])),
        ),
        // An interrupted DROP INDEX CONCURRENTLY leaves the old one invalid: finish the drop (the
        // way back rebuilds the global one) rather than rename it back in.
        state("scoped, old one half-dropped", holds(all(&[scoped.clone(), probe::index_invalid(&retired)]))),
        state("scoped, old one retired", holds(all(&[scoped.clone(), probe::relation_exists(&retired)]))),
    ];
    states.extend(restore_states(&scoped, &restore));
    states.push(state("global", holds(probe::relation_exists(&original))));
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
                "scoped, old one retired",
                renames(LockMode::ShareUpdateExclusive, &retired, &temp, true),
            ),
            transition("scoped, old one retired", "scoped", drop_index_concurrently(&retired, table)),
            transition("scoped, old one half-dropped", "scoped", drop_index_concurrently(&retired, table)),
            transition(
                "scoped, old one retired",
                "global",
                renames(LockMode::ShareUpdateExclusive, &temp, &retired, false),
            ),
            transition(
                "scoped",
                "rebuilding global",
                concurrent_index(restore.clone(), table, format!("{rebuild};\n")),
            ),
            transition(
                "rebuilding global",
                "global",
                renames(LockMode::AccessExclusive, &temp, &restore, false),
            ),
            transition("rebuilding global", "scoped", drop_index_concurrently(&restore, table)),
            transition("broken global copy", "scoped", drop_index_concurrently(&restore, table)),
        ],
        guards: Vec::new(),
    })
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

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{LockMode, PlanOptions, PrimaryKeyScope, Stage, StatementKind};

    #[test]
    fn stage7_rebuilds_uniques_with_the_tenant_column_keeping_predicates_and_expressions() {
        let plan = plan_of(&saas(PG15).build());
        let build_step = step(&plan, "7.unique-build:public.users");
        assert!(build_step.parts.iter().all(|p| p.forward_path().len() == 1));
        assert_eq!(
            forward_sql(build_step),
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_tenant_id ON public.users USING btree (tenant_id, email);\n\
             CREATE UNIQUE INDEX CONCURRENTLY users_email_lower_idx_tenant_id ON public.users USING btree (tenant_id, lower(email));\n\
             CREATE UNIQUE INDEX CONCURRENTLY users_username_active_idx_tenant_id ON public.users USING btree (tenant_id, username) WHERE (deleted_at IS NULL);\n"
        );
        assert!(build_step.forward().iter().all(|s| s.kind == StatementKind::ConcurrentIndex));
        assert_eq!(build_step.forward()[0].index, Some(qn("public", "users_email_key_tenant_id")));

        let swap = step(&plan, "7.unique-swap:public.users");
        assert_eq!(
            forward_sql(swap),
            "ALTER TABLE public.users DROP CONSTRAINT users_email_key;\n\
             ALTER TABLE public.users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key_tenant_id;\n\
             ALTER INDEX public.users_email_lower_idx RENAME TO users_email_lower_idx_retired;\n\
             ALTER INDEX public.users_email_lower_idx_tenant_id RENAME TO users_email_lower_idx;\n\
             DROP INDEX CONCURRENTLY IF EXISTS public.users_email_lower_idx_retired;\n\
             ALTER INDEX public.users_username_active_idx RENAME TO users_username_active_idx_retired;\n\
             ALTER INDEX public.users_username_active_idx_tenant_id RENAME TO users_username_active_idx;\n\
             DROP INDEX CONCURRENTLY IF EXISTS public.users_username_active_idx_retired;\n"
        );
        // One short transaction per swap; a replaced unique index is renamed aside (a lock that lets
        // reads and writes go on) and dropped concurrently.
        assert_eq!(swap.forward().len(), 5);
        let kinds: Vec<StatementKind> = swap.forward().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                StatementKind::Transaction,
                StatementKind::Transaction,
                StatementKind::NonTransactional,
                StatementKind::Transaction,
                StatementKind::NonTransactional
            ]
        );
        assert_eq!(swap.forward()[1].lock, LockMode::ShareUpdateExclusive);
        // Rolling back counts values that now repeat across tenants, and cannot be forced.
        let guards: Vec<(&str, bool)> = swap.guards().iter().map(|g| (g.sql.as_str(), g.forceable)).collect();
        assert_eq!(
            guards,
            [
                (
                    "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (email) IS NOT NULL \
                     GROUP BY (email) HAVING count(*) > 1) repeated",
                    false
                ),
                (
                    "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (lower(email)) IS NOT NULL \
                     GROUP BY (lower(email)) HAVING count(*) > 1) repeated",
                    false
                ),
                (
                    "SELECT count(*) FROM (SELECT 1 FROM public.users WHERE (username) IS NOT NULL \
                     AND ((deleted_at IS NULL)) GROUP BY (username) HAVING count(*) > 1) repeated",
                    false
                ),
            ]
        );
        // The rollback rebuilds the original global definitions.
        let rollback = rollback_sql(swap);
        offset(
            &rollback,
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_global ON public.users USING btree (email);\n",
        );
        offset(
            &rollback,
            "CREATE UNIQUE INDEX CONCURRENTLY users_username_active_idx_global ON public.users USING btree (username) WHERE (deleted_at IS NULL);\n",
        );
    }

    #[test]
    fn stage7_keeps_each_uniques_tablespace_and_storage_parameters_both_ways() {
        // pg_get_indexdef() leaves out the tablespace, pg_get_constraintdef() the storage
        // parameters too: every rebuild, forward and back, puts back what the index had.
        let mut catalog = with_events(saas(PG15)).build();
        let users = catalog.tables.iter_mut().find(|t| t.name == qn("public", "users")).unwrap();
        users.uniques[0].tablespace = Some("fast disk".into());
        let events = catalog.tables.iter_mut().find(|t| t.name == qn("public", "events")).unwrap();
        let pk = events.primary_key.as_mut().unwrap();
        pk.index_definition = Some(
            "CREATE UNIQUE INDEX events_pkey ON ONLY public.events USING btree (id, created_at) \
             WITH (fillfactor='80')"
                .into(),
        );
        pk.tablespace = Some("fast".into());
        let options = PlanOptions { scope_primary_keys: PrimaryKeyScope::All, ..Default::default() };
        let plan = plan_with(&catalog, &options);
        offset(
            &forward_sql(step(&plan, "7.unique-build:public.users")),
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_tenant_id ON public.users USING btree \
             (tenant_id, email) TABLESPACE \"fast disk\";\n",
        );
        offset(
            &rollback_sql(step(&plan, "7.unique-swap:public.users")),
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key_global ON public.users USING btree \
             (email) TABLESPACE \"fast disk\";\n",
        );
        let events = step(&plan, "7.unique-swap:public.events");
        offset(
            &forward_sql(events),
            "ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, id, created_at) WITH (fillfactor='80') \
             USING INDEX TABLESPACE fast;\n",
        );
        offset(
            &rollback_sql(events),
            "ADD CONSTRAINT events_pkey PRIMARY KEY (id, created_at) WITH (fillfactor='80') USING \
             INDEX TABLESPACE fast;\n",
        );
    }

    #[test]
    fn stage7_builds_come_before_foreign_keys_which_come_before_swaps() {
        let catalog = saas(PG15)
            .alter("public", "projects", |t| t.col("slug", "text").unique(&["slug"]))
            .table("public", "invitations", |t| {
                t.pk(&["id"]).col_nn("email", "text").fk(&["email"], "users", &["email"], 'c')
            })
            .build();
        let plan = plan_of(&catalog);
        let stage7 = ids_in(&plan, Stage::Unique);
        let kind = |id: &str| id.split(':').next().unwrap().to_string();
        let kinds: Vec<String> = stage7.iter().map(|id| kind(id)).collect();
        let first =
            |k: &str| kinds.iter().position(|x| x == k).unwrap_or_else(|| panic!("no {k} in {stage7:?}"));
        let last = |k: &str| kinds.iter().rposition(|x| x == k).unwrap();
        assert!(last("7.unique-build") < first("7.foreign-keys"), "{stage7:?}");
        assert!(last("7.foreign-keys") < first("7.unique-swap"), "{stage7:?}");
        // A foreign key to a unique (not the primary key) references the scoped copy.
        offset(
            &forward_sql(step(&plan, "7.foreign-keys:public.invitations")),
            "FOREIGN KEY (tenant_id, email) REFERENCES public.users (tenant_id, email) ON DELETE CASCADE NOT VALID;\n",
        );
        assert!(
            position(&plan, "7.unique-build:public.users")
                < position(&plan, "7.foreign-keys:public.invitations")
        );
        assert!(
            position(&plan, "7.foreign-keys:public.invitations")
                < position(&plan, "7.unique-swap:public.users")
        );
    }
}
