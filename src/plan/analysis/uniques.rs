//! Stage 7's decisions about uniques: which become tenant-scoped `(tenant, key)`, which must
//! stay global, and the names the swap uses.

use std::collections::BTreeMap;

use super::names::NameBook;
use super::{Findings, Scope, sorted};
use crate::catalog::{TableKind, UniqueConstraintInfo, UniqueIndex};
use crate::plan::ddl::rewrite_index_definition;
use crate::plan::model::{PrimaryKeyScope, Severity};
use crate::sql::{QualifiedName, ident_list, quote_ident};

/// How a unique constraint or index becomes tenant-scoped in stage 7.
#[derive(Debug, Clone)]
pub(in crate::plan) struct ScopedUnique {
    pub original: UniqueIndex,
    /// Name the scoped index is built under before the swap.
    pub temp_name: String,
    /// Name the original is rebuilt under when rolling back.
    pub restore_name: String,
    /// Name a replaced unique index is renamed to before it is dropped concurrently.
    pub retired_name: String,
    /// Build concurrently (ordinary tables) or in place under a SHARE lock (partitioned).
    pub partitioned: bool,
    /// The unique is the table's primary key: swapped in as `PRIMARY KEY USING INDEX`, and
    /// its rollback drops the scoped key instead of keeping it aside.
    pub primary_key: bool,
    /// The original key's index is the table's CLUSTER index: the swaps keep that.
    pub clustered: bool,
    /// The scoped copy's `CREATE UNIQUE INDEX` (no `;`) that the build step runs. `None` for
    /// a partitioned table's constraint (the swap rebuilds it in place) and for a definition
    /// that could not be read (reported).
    pub build_definition: Option<String>,
}

/// A foreign key that keeps depending on a global unique: (from table, to table, columns).
type GlobalReference = (QualifiedName, QualifiedName, Vec<String>);

pub(super) fn decide(
    scope: &Scope,
    book: &mut NameBook,
    findings: &mut Findings,
) -> BTreeMap<QualifiedName, Vec<ScopedUnique>> {
    let global_references = global_references(scope);
    let scoped_fk_targets: Vec<(QualifiedName, Vec<String>)> =
        super::foreign_keys::scoped_foreign_keys(scope)
            .into_iter()
            .map(|(_, fk)| (fk.referenced_table.clone(), fk.referenced_columns.clone()))
            .collect();
    let mut decided = BTreeMap::new();
    for name in &scope.scoped {
        let planned = decide_for_table(scope, name, &global_references, &scoped_fk_targets, book, findings);
        if !planned.is_empty() {
            decided.insert(name.clone(), planned);
        }
    }
    decided
}

/// Uniques that a foreign key from outside the scoped set depends on must stay global; so
/// must those a scoped foreign key that stays single-column references.
fn global_references(scope: &Scope) -> Vec<GlobalReference> {
    let mut references: Vec<GlobalReference> = Vec::new();
    for table in &scope.catalog.tables {
        if scope.is_scoped(&table.name) {
            continue;
        }
        for fk in &table.foreign_keys {
            references.push((table.name.clone(), fk.referenced_table.clone(), fk.referenced_columns.clone()));
        }
    }
    for ext in &scope.catalog.external_foreign_keys {
        references.push((
            ext.table.clone(),
            ext.foreign_key.referenced_table.clone(),
            ext.foreign_key.referenced_columns.clone(),
        ));
    }
    for (child, fk) in super::foreign_keys::scoped_foreign_keys(scope) {
        if super::foreign_keys::unconvertible_reason(scope, fk).is_some() {
            references.push((child, fk.referenced_table.clone(), fk.referenced_columns.clone()));
        }
    }
    references
}

fn decide_for_table(
    scope: &Scope,
    name: &QualifiedName,
    global_references: &[GlobalReference],
    scoped_fk_targets: &[(QualifiedName, Vec<String>)],
    book: &mut NameBook,
    findings: &mut Findings,
) -> Vec<ScopedUnique> {
    let table = scope.table(name);
    let col = &scope.tenant.column;
    let partitioned = table.kind == TableKind::Partitioned;
    let mut planned = Vec::new();
    for unique in &table.uniques {
        if unique.is_partition_child || unique.constraint.as_ref().is_some_and(|c| c.inherited) {
            continue;
        }
        let object = format!("{} on {}", unique.index_name, name.display_plain());
        let columns_match = |cols: &Vec<String>| {
            unique.predicate.is_none()
                && unique.key_column_names.as_ref().map(|c| sorted(c)) == Some(sorted(cols))
        };
        if let Some((from, _, _)) =
            global_references.iter().find(|(_, target, cols)| target == name && columns_match(cols))
        {
            findings.add(
                Severity::Warning,
                "unique-kept-global",
                object,
                format!(
                    "kept global: a foreign key of {} that is not made tenant-scoped \
                     references it; values stay unique across all tenants",
                    from.display_plain()
                ),
            );
            continue;
        }
        if !unique.valid {
            findings.add(
                Severity::Warning,
                "unique-invalid",
                object,
                "is INVALID (a failed concurrent build?); left as it is: rebuild or drop it",
            );
            continue;
        }
        if partitioned
            && unique.constraint.is_some()
            && scoped_fk_targets.iter().any(|(t, cols)| t == name && columns_match(cols))
        {
            findings.add(
                Severity::Warning,
                "unique-kept-global",
                object,
                "unique constraint of a partitioned table that foreign keys reference: \
                 PostgreSQL cannot swap it without dropping those keys; kept global",
            );
            continue;
        }
        let temp_name = book.fresh(&name.schema, &format!("{}_{}", unique.index_name, col));
        let restore_name = book.fresh(&name.schema, &format!("{}_global", unique.index_name));
        let retired_name = book.fresh(&name.schema, &format!("{}_retired", unique.index_name));
        if partitioned {
            findings.add(
                Severity::Warning,
                "partitioned-unique-in-place",
                object,
                "unique on a partitioned table: PostgreSQL cannot build it CONCURRENTLY, \
                 so the scoped index is built under a SHARE lock (writes to the table wait \
                 during the build)",
            );
        }
        planned.push(ScopedUnique {
            original: unique.clone(),
            temp_name,
            restore_name,
            retired_name,
            partitioned,
            primary_key: false,
            clustered: false,
            build_definition: None,
        });
    }
    planned.extend(primary_key(scope, name, global_references, scoped_fk_targets, book, findings));
    planned
}

/// The table's primary key as a unique to scope, when `--scope-primary-keys` asks for it: a
/// natural key (no column with an identity, a generated value or a computed default), or
/// any with `all`. Kept global when a foreign key that stays global references it, on a
/// partitioned table, and with INCLUDE columns.
fn primary_key(
    scope: &Scope,
    name: &QualifiedName,
    global_references: &[GlobalReference],
    scoped_fk_targets: &[(QualifiedName, Vec<String>)],
    book: &mut NameBook,
    findings: &mut Findings,
) -> Option<ScopedUnique> {
    let table = scope.table(name);
    let pk = table.primary_key.as_ref()?;
    let surrogate = pk.columns.iter().filter_map(|c| table.column(c)).any(|c| {
        c.identity.is_some() || c.generated.is_some() || c.default.as_ref().is_some_and(|d| d.contains('('))
    });
    let wanted = match scope.options.scope_primary_keys {
        PrimaryKeyScope::None => false,
        PrimaryKeyScope::Natural => !surrogate,
        PrimaryKeyScope::All => true,
    };
    if !wanted || table.is_partition() {
        return None;
    }
    let object = format!("{} on {}", pk.name, name.display_plain());
    let kept = |why: &str, findings: &mut Findings| {
        findings.add(Severity::Warning, "primary-key-kept-global", object.clone(), why.to_string());
    };
    let partitioned = table.kind == TableKind::Partitioned;
    // In place means ACCESS EXCLUSIVE while every partition's index is built: only when every
    // primary key was asked for (`all`, which distributing implies: Citus needs it).
    if partitioned && scope.options.scope_primary_keys != PrimaryKeyScope::All {
        kept(
            "primary key of a partitioned table: swapping it rebuilds it in place under an ACCESS \
             EXCLUSIVE lock, done only with --scope-primary-keys all; kept global",
            findings,
        );
        return None;
    }
    if partitioned
        && scoped_fk_targets.iter().any(|(t, cols)| t == name && sorted(cols) == sorted(&pk.columns))
    {
        kept(
            "primary key of a partitioned table that foreign keys reference: PostgreSQL cannot \
             swap it without dropping those keys; kept global",
            findings,
        );
        return None;
    }
    if pk.definition.contains(" INCLUDE ") {
        kept("primary key with INCLUDE columns; kept global", findings);
        return None;
    }
    if let Some((from, _, _)) = global_references
        .iter()
        .find(|(_, target, cols)| target == name && sorted(cols) == sorted(&pk.columns))
    {
        let why = format!(
            "a foreign key of {} that is not made tenant-scoped references it; kept global",
            from.display_plain()
        );
        kept(&why, findings);
        return None;
    }
    let col = &scope.tenant.column;
    let original = UniqueIndex {
        index_name: pk.name.clone(),
        constraint: Some(UniqueConstraintInfo {
            definition: pk.definition.clone(),
            deferrable: false,
            initially_deferred: false,
            inherited: false,
        }),
        // The key's own index definition keeps its storage parameters; a catalog read before
        // it was recorded falls back to the plain one.
        index_definition: pk.index_definition.clone().unwrap_or_else(|| {
            format!(
                "CREATE UNIQUE INDEX {} ON {name} USING btree ({})",
                quote_ident(&pk.name),
                ident_list(&pk.columns)
            )
        }),
        key_columns: pk.columns.iter().map(|c| quote_ident(c)).collect(),
        key_column_names: Some(pk.columns.clone()),
        predicate: None,
        access_method: "btree".into(),
        nulls_not_distinct: false,
        valid: true,
        is_partition_child: false,
        tablespace: pk.tablespace.clone(),
    };
    if partitioned {
        findings.add(
            Severity::Warning,
            "partitioned-unique-in-place",
            object,
            "primary key of a partitioned table: PostgreSQL cannot swap it concurrently, so it is \
             dropped and re-added with the tenant column in one transaction under an ACCESS \
             EXCLUSIVE lock (reads and writes of the table wait while each partition's index is built)",
        );
    }
    Some(ScopedUnique {
        temp_name: book.fresh(&name.schema, &format!("{}_{}", pk.name, col)),
        restore_name: book.fresh(&name.schema, &format!("{}_global", pk.name)),
        retired_name: book.fresh(&name.schema, &format!("{}_retired", pk.name)),
        original,
        partitioned,
        primary_key: true,
        clustered: pk.clustered,
        build_definition: None,
    })
}

/// The scoped copies' definitions: the original's text with the tenant column spliced in
/// front. A definition that does not have the shape `pg_get_indexdef()` prints is an error.
pub(super) fn decide_builds(
    scope: &Scope,
    uniques: &mut BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    findings: &mut Findings,
) {
    for (table, list) in uniques.iter_mut() {
        for u in list {
            let o = &u.original;
            if u.partitioned && o.constraint.is_some() {
                continue;
            }
            u.build_definition =
                rewrite_index_definition(o, table, &u.temp_name, !u.partitioned, Some(&scope.tenant.column));
            if u.build_definition.is_none() {
                findings.add(
                    Severity::Error,
                    "index-definition",
                    format!("{} on {}", o.index_name, table.display_plain()),
                    format!("could not read the index definition {:?}", o.index_definition),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{Severity, Stage};

    #[test]
    fn stage7_never_drops_a_unique_that_an_unconverted_foreign_key_depends_on() {
        let mut failures = Vec::new();
        for (version, on_update) in [(PG14, "a"), (PG15, "n")] {
            let catalog = saas(version)
                .table("public", "invitations", |t| {
                    t.pk(&["id"])
                        .col("email", "text")
                        .fk(&["email"], "users", &["email"], 'n')
                        .last_fk(|fk| fk.on_update = on_update.into())
                })
                .build();
            let plan = plan_of(&catalog);
            let converted = plan.step("7.foreign-keys:public.invitations").is_some();
            let dropped = all_forward_sql(&plan).contains("DROP CONSTRAINT users_email_key;");
            if dropped && !converted {
                failures.push(format!(
                    "server {version}, ON UPDATE {on_update}: invitations_email_fkey is left as it is, yet stage 7 runs \
                     `ALTER TABLE public.users DROP CONSTRAINT users_email_key` which it depends on"
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn natural_primary_keys_become_tenant_scoped_and_surrogate_ones_stay_unless_all() {
        use crate::plan::{PlanOptions, PrimaryKeyScope};
        let catalog = saas(PG15)
            .table("public", "countries", |t| t.pk_named("countries_pkey", &["code"]).col_nn("code", "text"))
            .table("public", "serials", |t| {
                t.pk(&["id"]).default("id", "nextval('serials_id_seq'::regclass)")
            })
            .build();
        let plan = plan_of(&catalog);
        let build = forward_sql(step(&plan, "7.unique-build:public.countries"));
        assert!(build.contains("ON public.countries USING btree (tenant_id, code)"), "{build}");
        let swap = step(&plan, "7.unique-swap:public.countries");
        assert!(
            forward_sql(swap)
                .contains("ADD CONSTRAINT countries_pkey PRIMARY KEY USING INDEX countries_pkey_tenant_id;")
        );
        // The swap's rollback only builds the global key's index (the old foreign keys come
        // back over it); the build step's rollback swaps it in once nothing needs the scoped key.
        let back = rollback_sql(swap);
        assert!(back.contains("CREATE UNIQUE INDEX CONCURRENTLY countries_pkey_global ON public.countries USING btree (code)"), "{back}");
        assert!(!back.contains("PRIMARY KEY USING INDEX"), "{back}");
        let build_back = rollback_sql(step(&plan, "7.unique-build:public.countries"));
        assert!(
            build_back
                .contains("ADD CONSTRAINT countries_pkey PRIMARY KEY USING INDEX countries_pkey_global;"),
            "{build_back}"
        );
        assert!(
            swap.guards().iter().any(|g| g.sql.contains("GROUP BY (code)")),
            "repeated keys are counted first"
        );
        assert!(plan.step("7.unique-swap:public.serials").is_none(), "a surrogate key stays global");
        let all = PlanOptions { scope_primary_keys: PrimaryKeyScope::All, ..Default::default() };
        assert!(
            forward_sql(step(&plan_with(&catalog, &all), "7.unique-swap:public.serials"))
                .contains("PRIMARY KEY USING INDEX")
        );
        let none = PlanOptions { scope_primary_keys: PrimaryKeyScope::None, ..Default::default() };
        assert!(plan_with(&catalog, &none).step("7.unique-swap:public.countries").is_none());
    }

    #[test]
    fn a_unique_a_shared_table_references_stays_global() {
        let (catalog, options) = with_shared_tables();
        let plan = plan_with(&catalog, &options);
        assert!(
            has_finding(&plan, Severity::Warning, "unique-kept-global", "users_email_key on public.users"),
            "{:?}",
            findings(&plan, Severity::Warning)
        );
        let stage7: String =
            plan.steps_in(Stage::Unique).map(|s| forward_sql(s) + &rollback_sql(s)).collect();
        assert!(!stage7.contains("users_email_key"), "{stage7}");
        // The other uniques of users are still scoped.
        offset(&forward_sql(step(&plan, "7.unique-build:public.users")), "users_email_lower_idx_tenant_id");
        offset(&forward_sql(step(&plan, "7.unique-swap:public.users")), "RENAME TO users_email_lower_idx;");
    }
}
