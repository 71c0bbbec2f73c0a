//! Stage 7's foreign keys: each key between scoped tables is replaced by a composite
//! `(tenant, key)` key, so a child row cannot point at another tenant's parent.

use crate::catalog::ForeignKey;
use crate::plan::analysis::{Analysis, ForeignKeyGroup, Scope, ScopedForeignKey};
use crate::plan::ddl::{check, deferrable_clause, exempt, long, regclass, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{Check, LockMode, Part, Stage, Statement, Step};
use crate::plan::probe::{self, all, holds, not};
use crate::plan::statement::Transition;
use crate::sql::{QualifiedName, ident_list, quote_ident, quote_literal};

/// One step per child table, children in root order.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.foreign_keys.iter().filter_map(|group| step(&a.scope, group)).collect()
}

fn step(s: &Scope, group: &ForeignKeyGroup) -> Option<Step> {
    if group.converted.is_empty() {
        return None;
    }
    let child = &group.child;
    let col = &s.tenant.column;
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for scoped in &group.converted {
        parts.push(key_part(child, scoped, col, group.partitioned_child));
        checks.push(consistent_check(child, scoped.fk, col));
    }
    let converted: Vec<&str> = group.converted.iter().map(|c| c.fk.name.as_str()).collect();
    let mut tables = vec![child.clone()];
    for fk in &group.all {
        if !tables.contains(&fk.referenced_table) {
            tables.push(fk.referenced_table.clone());
        }
    }
    Some(Step {
        id: format!("7.foreign-keys:{}", child),
        stage: Stage::Unique,
        title: format!("Make {} on {} tenant-consistent", converted.join(", "), child.display_plain()),
        note: if group.partitioned_child {
            "Composite (tenant, key) foreign keys, keeping their actions. PostgreSQL cannot add \
             a NOT VALID key to a partitioned table, so this one is validated as it is added \
             (writes to the table wait during the check)."
                .into()
        } else {
            "Composite (tenant, key) foreign keys added NOT VALID, validated while writes go on, \
             then swapped in under the original name in one short transaction. ON DELETE \
             SET NULL keeps the tenant column (SET NULL (column))."
                .into()
        },
        tables,
        rows_estimate: s.table_rows(child),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts,
        hash: String::new(),
    })
}

const GONE: &str = "gone (dropped by someone else)";

/// One foreign key as a part. Forward: the composite successor is added alongside under a
/// temporary name (NOT VALID, then VALIDATE, where PostgreSQL allows it), then takes the
/// original's name in one short transaction. Back: the original definition is added alongside
/// under its restore name (validated again only if it was valid), then takes the name back.
/// Either half-way state has a way on in both directions.
fn key_part(child: &QualifiedName, scoped: &ScopedForeignKey, col: &str, partitioned_child: bool) -> Part {
    let fk = scoped.fk;
    let (name, temp, restore) = (&fk.name, &scoped.temp_name, &scoped.restore_name);
    let composite = probe::foreign_key_leads_with(child, name, col);
    let exists = |n: &str| probe::constraint_exists(child, n, 'f');
    let global = all(&[exists(name), not(composite.clone())]);
    let validated = |n: &str| probe::constraint_validated(child, n);
    let mut states = vec![
        state("composite", holds(all(&[composite.clone(), not(exists(temp)), not(exists(restore))]))),
        state("restoring, validated", holds(all(&[composite.clone(), validated(restore)]))),
        state("restoring", holds(all(&[composite.clone(), exists(restore)]))),
        state("composite alongside, validated", holds(all(&[global.clone(), validated(temp)]))),
        state("composite alongside", holds(all(&[global.clone(), exists(temp)]))),
        state("global", holds(global)),
        state(GONE, holds("true".into())),
    ];
    if partitioned_child {
        // Keys are validated as they are added: no half-validated state.
        states.retain(|s| s.name != "restoring" && s.name != "composite alongside");
    }
    let mut transitions =
        forward_transitions(child, scoped, &composite_definition(fk, col), partitioned_child);
    transitions.extend(rollback_transitions(child, scoped, partitioned_child));
    Part {
        name: format!("{name} on {}", child.display_plain()),
        states,
        done: names(&["composite"]),
        undone: names(&["global", GONE]),
        rollback_from: None,
        transitions,
        guards: Vec::new(),
    }
}

/// `FOREIGN KEY (tenant, cols) REFERENCES parent (tenant, cols)` with the original's actions
/// and deferrability. SET NULL / SET DEFAULT name their columns so the tenant column is spared;
/// MATCH FULL is dropped (see the findings).
pub(in crate::plan) fn composite_definition(fk: &ForeignKey, tenant_column: &str) -> String {
    let lead = |rest: &[String]| -> Vec<String> {
        let mut columns = vec![tenant_column.to_string()];
        columns.extend(rest.iter().cloned());
        columns
    };
    let delete_columns = if fk.on_delete_columns.is_empty() { &fk.columns } else { &fk.on_delete_columns };
    let on_update = action_clause("ON UPDATE", &fk.on_update, &[]);
    let on_delete = action_clause("ON DELETE", &fk.on_delete, delete_columns);
    format!(
        "FOREIGN KEY ({}) REFERENCES {} ({}){on_update}{on_delete}{}",
        ident_list(&lead(&fk.columns)),
        fk.referenced_table,
        ident_list(&lead(&fk.referenced_columns)),
        deferrable_clause(fk.deferrable, fk.initially_deferred),
    )
}

/// ` ON DELETE CASCADE` and the like for a `confupdtype`/`confdeltype` code; nothing for
/// NO ACTION (the default).
fn action_clause(event: &str, code: &str, set_columns: &[String]) -> String {
    let action = match code {
        "r" => "RESTRICT".to_string(),
        "c" => "CASCADE".to_string(),
        "n" => format!("SET NULL ({})", ident_list(set_columns)),
        "d" => format!("SET DEFAULT ({})", ident_list(set_columns)),
        _ => return String::new(),
    };
    format!(" {event} {action}")
}

fn drop_if_exists(child: &QualifiedName, parent: &QualifiedName, name: &str) -> Statement {
    stmt(
        LockMode::AccessExclusive,
        &[child, parent],
        format!("ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {};\n", quote_ident(name)),
    )
}

/// Add the successor alongside, validate it, swap it in; or take it away again.
fn forward_transitions(
    child: &QualifiedName,
    scoped: &ScopedForeignKey,
    definition: &str,
    partitioned_child: bool,
) -> Vec<Transition> {
    let parent = &scoped.fk.referenced_table;
    let qtemp = quote_ident(&scoped.temp_name);
    let qname = quote_ident(&scoped.fk.name);
    let mut out = Vec::new();
    if partitioned_child {
        // No NOT VALID on partitioned tables: the key is validated as it is added.
        out.push(transition(
            "global",
            "composite alongside, validated",
            long(
                LockMode::ShareRowExclusive,
                &[child, parent],
                format!(
                    "{}ALTER TABLE {child} ADD CONSTRAINT {qtemp} {definition};\n",
                    exempt(
                        "constraint-missing-not-valid, adding-foreign-key-constraint",
                        "PostgreSQL has no NOT VALID for partitioned tables: validated as added (see the findings)"
                    )
                ),
            ),
        ));
    } else {
        out.push(transition(
            "global",
            "composite alongside",
            stmt(
                LockMode::ShareRowExclusive,
                &[child, parent],
                format!("ALTER TABLE {child} ADD CONSTRAINT {qtemp} {definition} NOT VALID;\n"),
            ),
        ));
        out.push(transition(
            "composite alongside",
            "composite alongside, validated",
            long(
                LockMode::ShareUpdateExclusive,
                &[child, parent],
                format!("ALTER TABLE {child} VALIDATE CONSTRAINT {qtemp};\n"),
            ),
        ));
        out.push(transition(
            "composite alongside",
            "global",
            drop_if_exists(child, parent, &scoped.temp_name),
        ));
    }
    out.push(transition(
        "composite alongside, validated",
        "composite",
        stmt(
            LockMode::AccessExclusive,
            &[child, parent],
            format!(
                "{}ALTER TABLE {child} DROP CONSTRAINT {qname};\n\
                 {}ALTER TABLE {child} RENAME CONSTRAINT {qtemp} TO {qname};\n",
                exempt(
                    "ban-drop-constraint",
                    "replaced in this transaction by its tenant-consistent successor"
                ),
                exempt("renaming-object", "the successor takes the original name clients know")
            ),
        ),
    ));
    out.push(transition(
        "composite alongside, validated",
        "global",
        drop_if_exists(child, parent, &scoped.temp_name),
    ));
    out
}

/// The original definition, added alongside under its restore name (validated again only if
/// it was valid), then back under its own name; or the restore copy taken away again.
fn rollback_transitions(
    child: &QualifiedName,
    scoped: &ScopedForeignKey,
    partitioned_child: bool,
) -> Vec<Transition> {
    let fk = scoped.fk;
    let parent = &fk.referenced_table;
    let original = fk.definition.trim_end_matches(" NOT VALID");
    let qrestore = quote_ident(&scoped.restore_name);
    let qname = quote_ident(&fk.name);
    // Where the restored key is ready to take the name: validated, unless the original was not.
    let ready = if fk.validated || partitioned_child { "restoring, validated" } else { "restoring" };
    let mut out = Vec::new();
    if partitioned_child {
        out.push(transition(
            "composite",
            ready,
            long(
                LockMode::ShareRowExclusive,
                &[child, parent],
                format!("ALTER TABLE {child} ADD CONSTRAINT {qrestore} {original};\n"),
            ),
        ));
    } else {
        out.push(transition(
            "composite",
            "restoring",
            stmt(
                LockMode::ShareRowExclusive,
                &[child, parent],
                format!("ALTER TABLE {child} ADD CONSTRAINT {qrestore} {original} NOT VALID;\n"),
            ),
        ));
        if fk.validated {
            out.push(transition(
                "restoring",
                "restoring, validated",
                long(
                    LockMode::ShareUpdateExclusive,
                    &[child, parent],
                    format!("ALTER TABLE {child} VALIDATE CONSTRAINT {qrestore};\n"),
                ),
            ));
        }
        out.push(transition("restoring", "composite", drop_if_exists(child, parent, &scoped.restore_name)));
    }
    out.push(transition(
        ready,
        "global",
        stmt(
            LockMode::AccessExclusive,
            &[child, parent],
            format!(
                "ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {qname};\n\
                 ALTER TABLE {child} RENAME CONSTRAINT {qrestore} TO {qname};\n"
            ),
        ),
    ));
    if ready != "restoring" {
        out.push(transition(ready, "composite", drop_if_exists(child, parent, &scoped.restore_name)));
    }
    out
}

fn consistent_check(child: &QualifiedName, fk: &ForeignKey, tenant_column: &str) -> Check {
    check(
        format!("{} is tenant-consistent and valid", fk.name),
        1,
        format!(
            "SELECT count(*) FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} \
             AND c.convalidated AND c.conkey[1] = (SELECT attnum FROM pg_catalog.pg_attribute \
             WHERE attrelid = c.conrelid AND attname = {})",
            regclass(child),
            quote_literal(&fk.name),
            quote_literal(tenant_column)
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::plan::Severity;
    use crate::plan::test_support::*;

    #[test]
    fn stage7_makes_foreign_keys_between_scoped_tables_composite() {
        let plan = plan_of(&saas(PG15).build());
        let projects = step(&plan, "7.foreign-keys:public.projects");
        assert!(
            projects.parts.iter().all(|p| p.forward_path().len() == 3),
            "each statement commits on its own"
        );
        let add = statement_index(
            projects,
            "ALTER TABLE public.projects ADD CONSTRAINT projects_owner_id_fkey_tenant_id FOREIGN KEY (tenant_id, owner_id) \
             REFERENCES public.users (tenant_id, id) ON DELETE CASCADE NOT VALID;\n",
        );
        let validate = statement_index(
            projects,
            "ALTER TABLE public.projects VALIDATE CONSTRAINT projects_owner_id_fkey_tenant_id;\n",
        );
        let swap = statement_index(
            projects,
            "ALTER TABLE public.projects DROP CONSTRAINT projects_owner_id_fkey;\n\
             ALTER TABLE public.projects RENAME CONSTRAINT projects_owner_id_fkey_tenant_id TO projects_owner_id_fkey;\n",
        );
        assert!(add < validate && validate < swap);
        assert!(!projects.forward()[validate].lock.blocks_writes());
        // The rollback puts the original definition back under its own name.
        offset(
            &rollback_sql(projects),
            "ADD CONSTRAINT projects_owner_id_fkey_global FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE NOT VALID;\n",
        );

        let issues = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
        // ON DELETE SET NULL spares the tenant column (PostgreSQL 15+).
        offset(
            &issues,
            "ADD CONSTRAINT issues_assignee_id_fkey_tenant_id FOREIGN KEY (tenant_id, assignee_id) \
             REFERENCES public.users (tenant_id, id) ON DELETE SET NULL (assignee_id) NOT VALID;\n",
        );
        // The self-reference is converted too.
        offset(
            &issues,
            "ADD CONSTRAINT issues_parent_id_fkey_tenant_id FOREIGN KEY (tenant_id, parent_id) \
             REFERENCES public.issues (tenant_id, id) NOT VALID;\n",
        );
        offset(
            &issues,
            "ADD CONSTRAINT issues_project_id_fkey_tenant_id FOREIGN KEY (tenant_id, project_id) \
             REFERENCES public.projects (tenant_id, id) ON DELETE CASCADE NOT VALID;\n",
        );
        let comments = forward_sql(step(&plan, "7.foreign-keys:public.issue_comments"));
        offset(&comments, "REFERENCES public.users (tenant_id, id) ON DELETE RESTRICT NOT VALID;\n");
        assert!(findings(&plan, Severity::Warning).iter().all(|(code, _)| code != "foreign-key-not-scoped"));
    }

    #[test]
    fn stage7_leaves_on_delete_set_null_alone_before_postgres_15() {
        let plan = plan_of(&saas(PG14).build());
        let issues = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
        assert!(!issues.contains("issues_assignee_id_fkey"), "{issues}");
        assert!(!issues.contains("SET NULL"), "{issues}");
        offset(&issues, "ADD CONSTRAINT issues_project_id_fkey_tenant_id");
        assert!(
            has_finding(
                &plan,
                Severity::Warning,
                "foreign-key-not-scoped",
                "issues_assignee_id_fkey on public.issues"
            ),
            "{:?}",
            findings(&plan, Severity::Warning)
        );
    }

    #[test]
    fn foreign_keys_to_and_from_shared_tables_are_left_alone() {
        let (catalog, options) = with_shared_tables();
        let plan = plan_with(&catalog, &options);
        let all = all_forward_sql(&plan);
        // From a shared table: never converted.
        assert!(plan.step("7.foreign-keys:public.audit_log").is_none());
        assert!(!all.contains("audit_log"), "{all}");
        // From a scoped table to a shared one: not converted, no composite index.
        assert!(!all.contains("status_code"), "{all}");
        let issue_fks = forward_sql(step(&plan, "7.foreign-keys:public.issues"));
        assert!(!issue_fks.contains("lookup"), "{issue_fks}");
        assert!(plan.step("6.indexes:public.lookup").is_none());
        assert!(!all.contains("(tenant_id, code)"));
    }
}
