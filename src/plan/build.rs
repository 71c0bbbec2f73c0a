//! `build(&Catalog, &PlanOptions) -> Plan`: pure, no I/O.
//!
//! The SQL follows `shared/notes/postgres-facts.md`: metadata-only column defaults, NOT VALID
//! then VALIDATE, CONCURRENTLY for index builds, swaps under the original names in short
//! transactions, and policies that fail closed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::backfill_sql::backfill_sql;
use super::ddl::{
    check, concurrent_index, drop_index_concurrently, duplicate_count_sql, exempt, long, regclass,
    rewrite_index_definition, splice_constraint_columns, stmt, to_regclass,
};
use super::model::*;
use super::options::PlanError;
use crate::catalog::{
    Catalog, FingerprintIgnore, ForeignKey, Table, TableKind, UniqueIndex, catalog_fingerprint,
    table_fingerprint, table_shape, view_fingerprint,
};
use crate::sql::{QualifiedName, bounded_name, ident_list, quote_ident, quote_literal};

/// Names the plan gives to what it creates, decided once so every stage agrees.
#[derive(Debug, Default, Clone)]
struct TableNames {
    /// FK from the tenant column to the tenant table (on ordinary tables and partitioned roots).
    tenant_fk: String,
    /// Per leaf partition of a partitioned root: the leaf's own tenant FK (added NOT VALID).
    leaf_tenant_fks: Vec<(QualifiedName, String)>,
    not_null_check: String,
    policy: String,
}

/// An index stage 6 creates.
#[derive(Debug, Clone)]
struct PlannedIndex {
    name: String,
    columns: Vec<String>,
    unique: bool,
}

/// How a unique constraint or index becomes tenant-scoped in stage 7.
#[derive(Debug, Clone)]
struct ScopedUnique {
    original: UniqueIndex,
    /// Name the scoped index is built under before the swap.
    temp_name: String,
    /// Name the original is rebuilt under when rolling back.
    restore_name: String,
    /// Name a replaced unique index is renamed to before it is dropped concurrently.
    retired_name: String,
    /// Build concurrently (ordinary tables) or in place under a SHARE lock (partitioned).
    partitioned: bool,
}

struct Planner<'a> {
    catalog: &'a Catalog,
    options: &'a PlanOptions,
    tenant: TenantSpec,
    pg15: bool,
    /// Every table that gets the tenant column, partitions included.
    scoped: BTreeSet<QualifiedName>,
    /// Scoped tables that are not partitions, parents before children (FK order).
    roots: Vec<QualifiedName>,
    taken: BTreeSet<QualifiedName>,
    owned: BTreeSet<String>,
    names: HashMap<QualifiedName, TableNames>,
    stage6: BTreeMap<QualifiedName, Vec<PlannedIndex>>,
    scoped_uniques: BTreeMap<QualifiedName, Vec<ScopedUnique>>,
    findings: Vec<Finding>,
    steps: Vec<Step>,
}

pub fn build(catalog: &Catalog, options: &PlanOptions, generated_at: &str) -> Result<Plan, PlanError> {
    super::options::validate(options)?;
    let tenant = super::options::tenant_spec(catalog, options);
    let mut planner = Planner {
        catalog,
        options,
        tenant,
        pg15: catalog.server.version_num >= 150000,
        scoped: BTreeSet::new(),
        roots: Vec::new(),
        taken: BTreeSet::new(),
        owned: BTreeSet::new(),
        names: HashMap::new(),
        stage6: BTreeMap::new(),
        scoped_uniques: BTreeMap::new(),
        findings: Vec::new(),
        steps: Vec::new(),
    };
    planner.classify_tables();
    planner.check_preconditions();
    planner.reserve_existing_names();
    planner.decide_names();
    planner.decide_indexes();
    planner.decide_uniques();
    planner.report_objects_rls_cannot_cover();

    planner.stage_tenant_table();
    planner.stage_default_tenant();
    for root in planner.roots.clone() {
        planner.stage_add_column(&root);
    }
    for root in planner.roots.clone() {
        planner.stage_backfill(&root);
    }
    for root in planner.roots.clone() {
        planner.stage_not_null(&root);
    }
    for table in planner.stage6.keys().cloned().collect::<Vec<_>>() {
        planner.stage_indexes(&table);
    }
    planner.stage_unique_and_foreign_keys();
    for root in planner.roots.clone() {
        planner.stage_rls(&root);
    }
    planner.stage_views();

    let Planner { findings, mut steps, owned, tenant, scoped, .. } = planner;
    let ignore =
        FingerprintIgnore { tenant_column: &tenant.column, tenant_table: &tenant.table, owned_names: &owned };
    let tables = catalog
        .tables
        .iter()
        .filter(|t| t.name != tenant.table)
        .map(|t| PlanTable {
            name: t.name.clone(),
            scoped: scoped.contains(&t.name),
            partition_of: t.partition_of.clone(),
            row_estimate: t.row_estimate.max(0),
            total_bytes: t.total_bytes,
            fingerprint: table_fingerprint(t, &ignore),
            shape: table_shape(t, &ignore),
        })
        .collect();
    let views = catalog
        .views
        .iter()
        .map(|v| PlanView {
            name: v.name.clone(),
            materialized: v.materialized,
            fingerprint: view_fingerprint(v),
        })
        .collect();
    for step in &mut steps {
        step.hash = super::codec::step_hash(step);
    }
    let drift = DriftBasis {
        catalog_fingerprint: catalog_fingerprint(catalog, &ignore),
        owned_names: owned.iter().cloned().collect(),
    };
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        plan_hash: String::new(),
        edited: false,
        source: PlanSource {
            database: catalog.server.database.clone(),
            server_version: catalog.server.version.clone(),
            server_version_num: catalog.server.version_num,
            role: catalog.role.name.clone(),
            generated_at: generated_at.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        options: options.clone(),
        tenant,
        findings,
        steps,
        tables,
        views,
        drift,
    };
    plan.plan_hash = super::codec::plan_hash(&plan);
    Ok(plan)
}

impl<'a> Planner<'a> {
    fn finding(
        &mut self,
        severity: Severity,
        code: &str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            code: code.to_string(),
            object: object.into(),
            message: message.into(),
        });
    }

    fn table(&self, name: &QualifiedName) -> &'a Table {
        self.catalog.table(name).expect("planner only asks for catalogued tables")
    }

    fn col(&self) -> String {
        quote_ident(&self.tenant.column)
    }

    fn tenant_value(&self) -> String {
        format!("{}::{}", quote_literal(&self.tenant.default_id), self.tenant.key_type.sql())
    }

    fn policy_expression(&self) -> String {
        format!(
            "{} = nullif((SELECT current_setting({}, true)), '')::{}",
            self.col(),
            quote_literal(&self.tenant.setting),
            self.tenant.key_type.sql()
        )
    }

    fn is_scoped(&self, name: &QualifiedName) -> bool {
        self.scoped.contains(name)
    }

    fn leaves_of(&self, root: &QualifiedName) -> Vec<&'a Table> {
        self.catalog
            .partition_descendants(root)
            .into_iter()
            .filter(|t| t.kind == TableKind::Ordinary)
            .collect()
    }

    /// Decide which tables get the tenant column, and their order.
    fn classify_tables(&mut self) {
        let excluded: BTreeSet<QualifiedName> = self
            .options
            .exclude
            .iter()
            .map(|e| QualifiedName::parse_plain(e, &self.options.schemas[0]))
            .collect();
        for name in &excluded {
            if self.catalog.table(name).is_none() {
                self.finding(
                    Severity::Warning,
                    "exclude-unknown",
                    name.display_plain(),
                    "--exclude names a table that does not exist in the chosen schemas",
                );
            }
        }
        for table in &self.catalog.tables {
            if table.name == self.tenant.table {
                continue;
            }
            let root = self.catalog.partition_root(&table.name).clone();
            if self.catalog.table(&root).is_none() {
                self.finding(
                    Severity::Warning,
                    "partition-outside-schemas",
                    table.name.display_plain(),
                    "partition of a table outside the chosen schemas: left alone",
                );
                continue;
            }
            if excluded.contains(&root) {
                continue;
            }
            if !table.inherits_from.is_empty() {
                self.finding(
                    Severity::Error,
                    "legacy-inheritance",
                    table.name.display_plain(),
                    "inherits from another table (not partitioning); tenantize cannot convert \
                     inheritance trees: --exclude it or convert it to partitioning first",
                );
                continue;
            }
            self.scoped.insert(table.name.clone());
        }
        // Roots in foreign-key order: parents first, ties and cycles broken by name.
        let roots: BTreeSet<QualifiedName> =
            self.scoped.iter().filter(|n| !self.table(n).is_partition()).cloned().collect();
        let mut parents_of: BTreeMap<QualifiedName, BTreeSet<QualifiedName>> =
            roots.iter().map(|r| (r.clone(), BTreeSet::new())).collect();
        for name in &self.scoped {
            let child_root = self.catalog.partition_root(name).clone();
            for fk in &self.table(name).foreign_keys {
                if !self.is_scoped(&fk.referenced_table) {
                    continue;
                }
                let parent_root = self.catalog.partition_root(&fk.referenced_table).clone();
                if parent_root != child_root
                    && let Some(set) = parents_of.get_mut(&child_root)
                {
                    set.insert(parent_root);
                }
            }
        }
        let order = foreign_key_order(&parents_of);
        self.roots = order;
    }

    fn check_preconditions(&mut self) {
        if self.catalog.table(&self.tenant.table).is_some()
            || self.catalog.relation_exists(&self.tenant.table)
        {
            self.finding(
                Severity::Error,
                "tenant-table-exists",
                self.tenant.table.display_plain(),
                "a relation with the tenant table's name already exists: choose another \
                 --tenant-table (or see `tenantize status` if a conversion already ran)",
            );
        }
        if !self.catalog.schemas.contains(&self.tenant.table.schema)
            && !self.catalog.creatable_schemas.contains(&self.tenant.table.schema)
        {
            self.finding(
                Severity::Error,
                "tenant-schema-missing",
                self.tenant.table.schema.clone(),
                "the tenant table's schema does not exist or the role may not create in it",
            );
        }
        let scoped: Vec<QualifiedName> = self.scoped.iter().cloned().collect();
        for name in &scoped {
            let table = self.table(name);
            if table.column(&self.tenant.column).is_some() {
                self.finding(
                    Severity::Error,
                    "tenant-column-exists",
                    name.display_plain(),
                    format!(
                        "already has a column named {}: choose another --tenant-column, or \
                         --exclude the table if it is already tenant-aware",
                        self.tenant.column
                    ),
                );
            }
            if self.tenant.backfill == BackfillMode::Batched && table.kind == TableKind::Ordinary {
                let always: Vec<&str> = table
                    .triggers
                    .iter()
                    .filter(|t| t.fires_on_update && t.row_level && matches!(t.enabled.as_str(), "A" | "R"))
                    .map(|t| t.name.as_str())
                    .collect();
                if !always.is_empty() {
                    self.finding(
                        Severity::Error,
                        "batched-backfill-fires-triggers",
                        name.display_plain(),
                        format!(
                            "triggers {} are enabled ALWAYS/REPLICA and would fire on every \
                             backfilled row: use --backfill fast",
                            always.join(", ")
                        ),
                    );
                } else if !self.catalog.role.superuser
                    && table.triggers.iter().any(|t| t.fires_on_update && t.row_level && t.enabled == "O")
                {
                    self.finding(
                        Severity::Error,
                        "batched-backfill-fires-triggers",
                        name.display_plain(),
                        "has UPDATE triggers; a batched backfill can only keep them from firing \
                         as a superuser (session_replication_role): use --backfill fast or run \
                         as a superuser",
                    );
                }
            }
        }
        if self.roots.is_empty() {
            self.finding(
                Severity::Error,
                "nothing-to-convert",
                self.options.schemas.join(", "),
                "no tables to convert in the chosen schemas",
            );
        }
    }

    fn reserve_existing_names(&mut self) {
        for name in &self.catalog.relation_names {
            self.taken.insert(name.clone());
        }
        for table in &self.catalog.tables {
            let schema = &table.name.schema;
            let constraint_names = table
                .primary_key
                .iter()
                .map(|p| p.name.clone())
                .chain(table.foreign_keys.iter().map(|f| f.name.clone()))
                .chain(table.check_constraints.iter().map(|c| c.name.clone()))
                .chain(table.exclusion_constraints.iter().map(|c| c.name.clone()))
                .chain(table.uniques.iter().map(|u| u.index_name.clone()));
            for name in constraint_names {
                self.taken.insert(QualifiedName::new(schema.clone(), name));
            }
        }
    }

    /// A name not used by any relation or constraint in `schema`, derived from `natural`.
    fn fresh_name(&mut self, schema: &str, natural: &str) -> String {
        let mut candidate = bounded_name(natural);
        let mut n = 1;
        while self.taken.contains(&QualifiedName::new(schema, candidate.clone())) {
            candidate = bounded_name(&format!("{natural}{n}"));
            n += 1;
        }
        self.taken.insert(QualifiedName::new(schema, candidate.clone()));
        self.owned.insert(candidate.clone());
        candidate
    }

    fn decide_names(&mut self) {
        let col = self.tenant.column.clone();
        let tenant_table = self.tenant.table.clone();
        let pkey = bounded_name(&format!("{}_pkey", tenant_table.name));
        self.taken.insert(tenant_table.clone());
        if self.taken.contains(&tenant_table.sibling(pkey.clone())) {
            self.finding(
                Severity::Error,
                "tenant-table-exists",
                tenant_table.sibling(pkey.clone()).display_plain(),
                "the tenant table's primary key name is taken: choose another --tenant-table",
            );
        }
        self.taken.insert(tenant_table.sibling(pkey));
        for root in self.roots.clone() {
            let table = self.table(&root);
            let schema = root.schema.clone();
            let tenant_fk = self.fresh_name(&schema, &format!("{}_{}_fkey", root.name, col));
            let mut leaf_tenant_fks = Vec::new();
            if table.kind == TableKind::Partitioned {
                for leaf in self.leaves_of(&root) {
                    let name =
                        self.fresh_name(&leaf.name.schema, &format!("{}_{}_fkey", leaf.name.name, col));
                    leaf_tenant_fks.push((leaf.name.clone(), name));
                }
            }
            let not_null_check = self.fresh_name(&schema, &format!("{}_{}_not_null", root.name, col));
            let mut policy = "tenant_isolation".to_string();
            let mut n = 1;
            let mut all_tables = vec![table];
            all_tables.extend(self.catalog.partition_descendants(&root));
            while all_tables.iter().any(|t| t.policies.iter().any(|p| p.name == policy)) {
                policy = format!("tenant_isolation_{n}");
                n += 1;
            }
            self.owned.insert(policy.clone());
            for relation in &all_tables {
                if relation.policies.is_empty() {
                    continue;
                }
                let existing: Vec<&str> = relation.policies.iter().map(|p| p.name.as_str()).collect();
                self.finding(
                    Severity::Warning,
                    "existing-policies",
                    relation.name.display_plain(),
                    format!(
                        "already has policies ({}); the tenant policy is added AS RESTRICTIVE so \
                         it narrows them instead of widening them",
                        existing.join(", ")
                    ),
                );
            }
            self.names
                .insert(root.clone(), TableNames { tenant_fk, leaf_tenant_fks, not_null_check, policy });
        }
    }

    /// The tenant-scoped FKs stage 7 will create: (child table, fk) for every FK between
    /// scoped tables that is not cloned from a partitioned parent.
    fn scoped_foreign_keys(&self) -> Vec<(QualifiedName, &'a ForeignKey)> {
        let mut out = Vec::new();
        for name in &self.scoped {
            for fk in &self.table(name).foreign_keys {
                if !fk.inherited && self.is_scoped(&fk.referenced_table) {
                    out.push((name.clone(), fk));
                }
            }
        }
        out
    }

    fn decide_indexes(&mut self) {
        let col = self.tenant.column.clone();
        let mut wanted: BTreeMap<QualifiedName, Vec<(Vec<String>, bool)>> = BTreeMap::new();
        for (child, fk) in self.scoped_foreign_keys() {
            let mut columns = vec![col.clone()];
            columns.extend(fk.columns.iter().cloned());
            wanted.entry(child.clone()).or_default().push((columns, false));
            let parent = self.table(&fk.referenced_table);
            if let Some(pk) = &parent.primary_key
                && sorted(&pk.columns) == sorted(&fk.referenced_columns)
            {
                let mut columns = vec![col.clone()];
                columns.extend(pk.columns.iter().cloned());
                wanted.entry(parent.name.clone()).or_default().push((columns, true));
            }
        }
        for (table, list) in wanted {
            let mut planned: Vec<PlannedIndex> = Vec::new();
            // Unique first, so a plain index on the same columns is recognised as redundant.
            let mut list = list;
            list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (columns, unique) in list {
                if planned.iter().any(|p| p.columns == columns) {
                    continue;
                }
                let suffix = if unique { "key" } else { "idx" };
                let natural = format!("{}_{}_{}", table.name, columns.join("_"), suffix);
                let name = self.fresh_name(&table.schema, &natural);
                planned.push(PlannedIndex { name, columns, unique });
            }
            self.stage6.insert(table, planned);
        }
    }

    fn decide_uniques(&mut self) {
        // Uniques that an FK from outside the scoped set depends on must stay global.
        let mut external_refs: Vec<(QualifiedName, QualifiedName, Vec<String>)> = Vec::new();
        for table in &self.catalog.tables {
            if self.is_scoped(&table.name) {
                continue;
            }
            for fk in &table.foreign_keys {
                external_refs.push((
                    table.name.clone(),
                    fk.referenced_table.clone(),
                    fk.referenced_columns.clone(),
                ));
            }
        }
        for ext in &self.catalog.external_foreign_keys {
            external_refs.push((
                ext.table.clone(),
                ext.foreign_key.referenced_table.clone(),
                ext.foreign_key.referenced_columns.clone(),
            ));
        }
        // A scoped FK that stays single-column keeps depending on the global unique it references.
        for (child, fk) in self.scoped_foreign_keys() {
            if self.unconvertible_reason(fk).is_some() {
                external_refs.push((child, fk.referenced_table.clone(), fk.referenced_columns.clone()));
            }
        }
        let scoped_fk_targets: Vec<(QualifiedName, Vec<String>)> = self
            .scoped_foreign_keys()
            .into_iter()
            .map(|(_, fk)| (fk.referenced_table.clone(), fk.referenced_columns.clone()))
            .collect();
        let col = self.tenant.column.clone();
        let tables: Vec<QualifiedName> = self.scoped.iter().cloned().collect();
        for name in tables {
            let table = self.table(&name);
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
                    external_refs.iter().find(|(_, target, cols)| target == &name && columns_match(cols))
                {
                    self.finding(
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
                    self.finding(
                        Severity::Warning,
                        "unique-invalid",
                        object,
                        "is INVALID (a failed concurrent build?); left as it is: rebuild or drop it",
                    );
                    continue;
                }
                let partitioned = table.kind == TableKind::Partitioned;
                if partitioned
                    && unique.constraint.is_some()
                    && scoped_fk_targets.iter().any(|(t, cols)| t == &name && columns_match(cols))
                {
                    self.finding(
                        Severity::Warning,
                        "unique-kept-global",
                        object,
                        "unique constraint of a partitioned table that foreign keys reference: \
                         PostgreSQL cannot swap it without dropping those keys; kept global",
                    );
                    continue;
                }
                let temp_name = self.fresh_name(&name.schema, &format!("{}_{}", unique.index_name, col));
                let restore_name = self.fresh_name(&name.schema, &format!("{}_global", unique.index_name));
                let retired_name = self.fresh_name(&name.schema, &format!("{}_retired", unique.index_name));
                if partitioned {
                    self.finding(
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
                });
            }
            if !planned.is_empty() {
                self.scoped_uniques.insert(name.clone(), planned);
            }
        }
        // Every scoped root should end up with an index that leads with the tenant column,
        // so that RLS-filtered queries are not sequential scans.
        for root in self.roots.clone() {
            let has_lead = self.stage6.get(&root).is_some_and(|v| !v.is_empty())
                || self.scoped_uniques.get(&root).is_some_and(|v| !v.is_empty());
            if !has_lead {
                let name = self.fresh_name(&root.schema, &format!("{}_{}_idx", root.name, col));
                self.stage6.entry(root.clone()).or_default().push(PlannedIndex {
                    name,
                    columns: vec![col.clone()],
                    unique: false,
                });
            }
        }
    }

    fn report_objects_rls_cannot_cover(&mut self) {
        let catalog = self.catalog;
        for view in &catalog.views {
            let reads_scoped: Vec<String> =
                view.reads_tables.iter().filter(|t| self.is_scoped(t)).map(|t| t.display_plain()).collect();
            if reads_scoped.is_empty() {
                continue;
            }
            if view.materialized {
                self.finding(
                    Severity::Warning,
                    "materialized-view",
                    view.name.display_plain(),
                    format!(
                        "materialized view over {}: it stores rows of every tenant and RLS does \
                         not apply to it; restrict who may read it",
                        reads_scoped.join(", ")
                    ),
                );
            } else if view.owner_bypasses_rls && view.security_invoker != Some(true) && !self.pg15 {
                self.finding(
                    Severity::Warning,
                    "view-bypasses-rls",
                    view.name.display_plain(),
                    format!(
                        "owned by {} (bypasses RLS); PostgreSQL before 15 has no security_invoker, \
                         so reading through it shows every tenant's rows",
                        view.owner
                    ),
                );
            }
        }
        for function in &catalog.security_definer_functions {
            self.finding(
                Severity::Warning,
                "security-definer",
                format!("{}({})", function.name.display_plain(), function.arguments),
                format!(
                    "SECURITY DEFINER function owned by {}: it runs with its owner's rights and \
                     may read across tenants",
                    function.owner
                ),
            );
        }
        self.finding(
            Severity::Info,
            "column-default",
            self.tenant.column.clone(),
            format!(
                "the tenant column keeps the default tenant as its default so the current \
                 application keeps working; once it sets {} per transaction, switch each table \
                 with ALTER TABLE ... ALTER COLUMN {} SET DEFAULT nullif(current_setting({}, true), '')::{}",
                self.tenant.setting,
                self.col(),
                quote_literal(&self.tenant.setting),
                self.tenant.key_type.sql()
            ),
        );
    }

    fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    fn stage_tenant_table(&mut self) {
        let t = self.tenant.table.clone();
        let key = quote_ident(&self.tenant.key_column);
        let pkey = quote_ident(&bounded_name(&format!("{}_pkey", t.name)));
        let sql = format!(
            "CREATE TABLE {t} (\n    {key} {ty} NOT NULL,\n    name text NOT NULL,\n    \
             created_at timestamp with time zone NOT NULL DEFAULT now(),\n    \
             CONSTRAINT {pkey} PRIMARY KEY ({key})\n);\n",
            ty = self.tenant.key_type.sql()
        );
        let guard_sql =
            format!("SELECT count(*) FROM {t} WHERE {key} <> {value}", value = self.tenant_value());
        self.push(Step {
            id: format!("1.{}", Stage::TenantTable.name()),
            stage: Stage::TenantTable,
            title: format!("Create the tenant table {}", t.display_plain()),
            note: String::new(),
            tables: vec![t.clone()],
            atomic: true,
            rows_estimate: 0,
            forward: vec![stmt(LockMode::AccessExclusive, &[&t], sql)],
            rollback_atomic: true,
            rollback: vec![stmt(LockMode::AccessExclusive, &[&t], format!("DROP TABLE IF EXISTS {t};\n"))],
            no_rollback_reason: None,
            rollback_guards: vec![Guard {
                name: "tenants other than the default".into(),
                message: "tenants other than the default one exist; dropping the tenant table deletes them"
                    .into(),
                forceable: true,
                sql: guard_sql,
            }],
            checks: vec![check(
                "tenant table exists",
                1,
                format!("SELECT count(*) FROM pg_catalog.pg_class WHERE oid = {}", to_regclass(&t)),
            )],
            backfill: None,
            hash: String::new(),
        });
    }

    fn stage_default_tenant(&mut self) {
        let t = self.tenant.table.clone();
        let key = quote_ident(&self.tenant.key_column);
        let value = self.tenant_value();
        self.push(Step {
            id: format!("2.{}", Stage::DefaultTenant.name()),
            stage: Stage::DefaultTenant,
            title: format!("Insert the default tenant {:?}", self.tenant.default_name),
            note: "Every existing row will belong to this tenant.".into(),
            tables: vec![t.clone()],
            atomic: true,
            rows_estimate: 1,
            forward: vec![stmt(
                LockMode::RowExclusive,
                &[&t],
                format!(
                    "INSERT INTO {t} ({key}, name) VALUES ({value}, {});\n",
                    quote_literal(&self.tenant.default_name)
                ),
            )],
            rollback_atomic: true,
            rollback: vec![stmt(
                LockMode::RowExclusive,
                &[&t],
                format!("DELETE FROM {t} WHERE {key} = {value};\n"),
            )],
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks: vec![check(
                "default tenant row exists",
                1,
                format!("SELECT count(*) FROM {t} WHERE {key} = {value}"),
            )],
            backfill: None,
            hash: String::new(),
        });
    }

    fn tenant_fk_sql(&self, table: &QualifiedName, name: &str, not_valid: bool) -> String {
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){};\n",
            quote_ident(name),
            self.col(),
            self.tenant.table,
            quote_ident(&self.tenant.key_column),
            if not_valid { " NOT VALID" } else { "" }
        )
    }

    fn column_exists_check(&self, table: &QualifiedName) -> Check {
        check(
            format!("{} has {}", table.display_plain(), self.tenant.column),
            1,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {} AND NOT attisdropped",
                regclass(table),
                quote_literal(&self.tenant.column)
            ),
        )
    }

    fn stage_add_column(&mut self, root: &QualifiedName) {
        let table = self.table(root);
        let names = self.names[root].clone();
        let col = self.col();
        let ty = self.tenant.key_type.sql();
        let value = self.tenant_value();
        let tenant_table = self.tenant.table.clone();
        let mut forward = Vec::new();
        let mut note = String::new();
        match self.tenant.backfill {
            BackfillMode::Fast => {
                forward.push(stmt(
                    LockMode::AccessExclusive,
                    &[root],
                    format!("ALTER TABLE {root} ADD COLUMN {col} {ty} DEFAULT {value};\n"),
                ));
                note.push_str(
                    "A constant default is metadata only: every existing row reads the default \
                     tenant at once and no row is rewritten, so no trigger fires.",
                );
            }
            BackfillMode::Batched => {
                forward.push(stmt(
                    LockMode::AccessExclusive,
                    &[root],
                    format!(
                        "ALTER TABLE {root} ADD COLUMN {col} {ty};\n\
                         ALTER TABLE {root} ALTER COLUMN {col} SET DEFAULT {value};\n"
                    ),
                ));
                note.push_str(
                    "The default is set before the backfill so rows inserted meanwhile never join \
                     the backfill set.",
                );
            }
        }
        let mut checks = vec![self.column_exists_check(root)];
        if table.kind == TableKind::Partitioned {
            note.push_str(
                " PostgreSQL cannot add a NOT VALID foreign key to a partitioned table, so each \
                 partition gets its own; stage 5 validates them and attaches a parent key.",
            );
            let mut sql = String::new();
            let mut on = vec![&tenant_table];
            for (leaf, name) in &names.leaf_tenant_fks {
                sql.push_str(&self.tenant_fk_sql(leaf, name, true));
                on.push(leaf);
            }
            if !sql.is_empty() {
                forward.push(stmt(LockMode::ShareRowExclusive, &on, sql));
            }
            let leaf_names: Vec<String> =
                names.leaf_tenant_fks.iter().map(|(_, n)| quote_literal(n)).collect();
            if !leaf_names.is_empty() {
                checks.push(check(
                    "partition tenant foreign keys exist",
                    leaf_names.len() as i64,
                    format!(
                        "SELECT count(*) FROM pg_catalog.pg_constraint WHERE contype = 'f' AND conname IN ({})",
                        leaf_names.join(", ")
                    ),
                ));
            }
        } else {
            forward.push(stmt(
                LockMode::ShareRowExclusive,
                &[root, &tenant_table],
                self.tenant_fk_sql(root, &names.tenant_fk, true),
            ));
            checks.push(check(
                "tenant foreign key exists",
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid = {} AND conname = {}",
                    regclass(root),
                    quote_literal(&names.tenant_fk)
                ),
            ));
        }
        let rows = table_rows(self.catalog, root);
        self.push(Step {
            id: format!("3.{}:{}", Stage::AddColumn.name(), root),
            stage: Stage::AddColumn,
            title: format!("Add {} to {}", self.tenant.column, root.display_plain()),
            note,
            tables: vec![root.clone()],
            atomic: true,
            rows_estimate: rows,
            forward,
            rollback_atomic: true,
            rollback: vec![stmt(
                LockMode::AccessExclusive,
                &[root],
                format!("ALTER TABLE {root} DROP COLUMN IF EXISTS {col};\n"),
            )],
            no_rollback_reason: None,
            rollback_guards: vec![Guard {
                name: format!("rows of other tenants in {}", root.display_plain()),
                message: format!(
                    "rows of {} belong to a tenant other than the default one; dropping {} \
                     erases which tenant they belong to",
                    root.display_plain(),
                    self.tenant.column
                ),
                forceable: true,
                sql: format!("SELECT count(*) FROM {root} WHERE {col} <> {value}"),
            }],
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    fn null_count_check(&self, table: &QualifiedName) -> Check {
        check(
            format!("rows of {} without a tenant", table.display_plain()),
            0,
            format!("SELECT count(*) FROM {table} WHERE {} IS NULL", self.col()),
        )
    }

    fn stage_backfill(&mut self, root: &QualifiedName) {
        let table = self.table(root);
        match self.tenant.backfill {
            BackfillMode::Fast => {
                let rows = table_rows(self.catalog, root);
                self.push(Step {
                    id: format!("4.{}:{}", Stage::Backfill.name(), root),
                    stage: Stage::Backfill,
                    title: format!("Prove every row of {} has a tenant", root.display_plain()),
                    note: "Nothing to update: the column default filled every existing row \
                           (metadata only). The count below proves it."
                        .into(),
                    tables: vec![root.clone()],
                    atomic: true,
                    rows_estimate: rows,
                    forward: Vec::new(),
                    rollback_atomic: true,
                    rollback: Vec::new(),
                    no_rollback_reason: Some(
                        "nothing was written; the values go with the column in stage 3's rollback".into(),
                    ),
                    rollback_guards: Vec::new(),
                    checks: vec![self.null_count_check(root)],
                    backfill: None,
                    hash: String::new(),
                });
            }
            BackfillMode::Batched => {
                let targets: Vec<&Table> =
                    if table.kind == TableKind::Partitioned { self.leaves_of(root) } else { vec![table] };
                for target in targets {
                    self.batched_backfill_step(root, target);
                }
            }
        }
    }

    fn batched_backfill_step(&mut self, root: &QualifiedName, target: &Table) {
        let name = &target.name;
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
        let suppress_triggers = target.triggers.iter().any(|t| t.fires_on_update && t.row_level);
        let backfill = Backfill {
            table: name.clone(),
            column: self.tenant.column.clone(),
            value_sql: self.tenant_value(),
            key: key.clone(),
            batch_rows: self.options.batch_rows,
            batch_blocks: (self.options.batch_rows / 50).max(1),
            suppress_triggers,
        };
        let batch = backfill_sql(&backfill);
        let mut note = match key {
            BackfillKey::Keyset { .. } => format!(
                "Keyset batches of {} rows over the primary key, one short transaction each; the \
                 last key done is journaled with each batch, so an interrupted run resumes there.",
                self.options.batch_rows
            ),
            BackfillKey::Ctid => format!(
                "No primary key: batches of {} heap blocks by ctid range, then repeated sweeps \
                 until no row is left without a tenant.",
                backfill.batch_blocks
            ),
        };
        if suppress_triggers {
            note.push_str(
                " Each batch runs with session_replication_role = replica so the table's \
                 triggers do not fire (no timestamp is touched).",
            );
        }
        let _ = root;
        self.push(Step {
            id: format!("4.{}:{}", Stage::Backfill.name(), name),
            stage: Stage::Backfill,
            title: format!("Backfill {} in batches", name.display_plain()),
            note,
            tables: vec![name.clone()],
            atomic: false,
            rows_estimate: target.row_estimate.max(0),
            // Short lock timeout: a batch that waits on an application's row lock holds the
            // rows it already updated, so it gives up quickly and retries instead.
            forward: vec![Statement {
                profile: TimeoutProfile::Ddl,
                kind: StatementKind::Batch,
                ..stmt(LockMode::RowExclusive, &[name], batch.update_next.clone())
            }],
            rollback_atomic: true,
            rollback: Vec::new(),
            no_rollback_reason: Some("the backfilled values go with the column in stage 3's rollback".into()),
            rollback_guards: Vec::new(),
            checks: vec![self.null_count_check(name)],
            backfill: Some(backfill),
            hash: String::new(),
        });
    }

    fn stage_not_null(&mut self, root: &QualifiedName) {
        let table = self.table(root);
        let names = self.names[root].clone();
        let col = self.col();
        let check_name = quote_ident(&names.not_null_check);
        let tenant_table = self.tenant.table.clone();
        let mut forward = vec![
            stmt(
                LockMode::AccessExclusive,
                &[root],
                format!(
                    "ALTER TABLE {root} ADD CONSTRAINT {check_name} CHECK ({col} IS NOT NULL) NOT VALID;\n"
                ),
            ),
            long(
                LockMode::ShareUpdateExclusive,
                &[root],
                format!("ALTER TABLE {root} VALIDATE CONSTRAINT {check_name};\n"),
            ),
            stmt(
                LockMode::AccessExclusive,
                &[root],
                format!(
                    "{}ALTER TABLE {root} ALTER COLUMN {col} SET NOT NULL;\n\
                     {}ALTER TABLE {root} DROP CONSTRAINT {check_name};\n",
                    exempt("adding-not-nullable-field", "no scan: the validated CHECK above proves it"),
                    exempt("ban-drop-constraint", "the temporary CHECK, now that NOT NULL holds")
                ),
            ),
        ];
        let mut rollback_sql = format!(
            "ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {check_name};\n\
             ALTER TABLE {root} ALTER COLUMN {col} DROP NOT NULL;\n"
        );
        let mut checks = vec![
            check(
                format!("{}.{} is NOT NULL", root.display_plain(), self.tenant.column),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {} AND attnotnull",
                    regclass(root),
                    quote_literal(&self.tenant.column)
                ),
            ),
            self.null_count_check(root),
        ];
        let fk_validated = |relation: &QualifiedName, name: &str| {
            check(
                format!("tenant foreign key {name} validated"),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid = {} AND conname = {} AND convalidated",
                    regclass(relation),
                    quote_literal(name)
                ),
            )
        };
        let mut rollback_on = vec![root.clone()];
        if table.kind == TableKind::Partitioned {
            for (leaf, name) in &names.leaf_tenant_fks {
                forward.push(long(
                    LockMode::ShareUpdateExclusive,
                    &[leaf, &tenant_table],
                    format!("ALTER TABLE {leaf} VALIDATE CONSTRAINT {};\n", quote_ident(name)),
                ));
            }
            // With every partition's key valid, PostgreSQL attaches them instead of scanning.
            forward.push(stmt(
                LockMode::ShareRowExclusive,
                &[root, &tenant_table],
                format!(
                    "{}{}",
                    exempt(
                        "constraint-missing-not-valid, adding-foreign-key-constraint",
                        "no scan: every partition's own key is validated above and is attached, not checked"
                    ),
                    self.tenant_fk_sql(root, &names.tenant_fk, false)
                ),
            ));
            checks.push(fk_validated(root, &names.tenant_fk));
            // Dropping the parent key drops the attached partition keys; put them back as they
            // were after stage 3 (NOT VALID, metadata only).
            rollback_sql.push_str(&format!(
                "ALTER TABLE {root} DROP CONSTRAINT IF EXISTS {};\n",
                quote_ident(&names.tenant_fk)
            ));
            for (leaf, name) in &names.leaf_tenant_fks {
                rollback_sql.push_str(&self.tenant_fk_sql(leaf, name, true));
                rollback_on.push(leaf.clone());
            }
        } else {
            forward.push(long(
                LockMode::ShareUpdateExclusive,
                &[root, &tenant_table],
                format!("ALTER TABLE {root} VALIDATE CONSTRAINT {};\n", quote_ident(&names.tenant_fk)),
            ));
            checks.push(fk_validated(root, &names.tenant_fk));
        }
        let on: Vec<&QualifiedName> = rollback_on.iter().collect();
        self.push(Step {
            id: format!("5.{}:{}", Stage::NotNull.name(), root),
            stage: Stage::NotNull,
            title: format!("Make {}.{} NOT NULL", root.display_plain(), self.tenant.column),
            note: "CHECK NOT VALID, then VALIDATE under a lock that lets writes go on; SET NOT NULL \
                   then skips its scan because the valid check proves it. The tenant foreign key \
                   is validated here too, before RLS is forced."
                .into(),
            tables: vec![root.clone()],
            atomic: false,
            rows_estimate: table_rows(self.catalog, root),
            forward,
            rollback_atomic: true,
            rollback: vec![stmt(LockMode::AccessExclusive, &on, rollback_sql)],
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    fn index_valid_check(&self, index: &QualifiedName) -> Check {
        check(
            format!("index {} is valid", index.name),
            1,
            format!(
                "SELECT count(*) FROM pg_catalog.pg_index WHERE indexrelid = {} AND indisvalid",
                to_regclass(index)
            ),
        )
    }

    fn stage_indexes(&mut self, table_name: &QualifiedName) {
        let planned = self.stage6.get(table_name).cloned().unwrap_or_default();
        if planned.is_empty() {
            return;
        }
        let table = self.table(table_name);
        let mut forward = Vec::new();
        let mut rollback = Vec::new();
        let mut checks = Vec::new();
        for index in &planned {
            let unique = if index.unique { "UNIQUE " } else { "" };
            let columns = ident_list(&index.columns);
            let qualified = table_name.sibling(index.name.clone());
            if table.kind == TableKind::Partitioned {
                // PostgreSQL cannot build a partitioned index concurrently: create it ON ONLY
                // the parent (instant, INVALID), build each partition's concurrently, attach.
                forward.push(stmt(
                    LockMode::Share,
                    &[table_name],
                    format!(
                        "{}CREATE {unique}INDEX IF NOT EXISTS {} ON ONLY {table_name} ({columns});\n",
                        exempt(
                            "require-concurrent-index-creation",
                            "ON ONLY: an empty parent index, instant; partitions build theirs concurrently"
                        ),
                        quote_ident(&index.name)
                    ),
                ));
                let descendants = self.catalog.partition_descendants(table_name);
                let mut child_names: HashMap<QualifiedName, String> = HashMap::new();
                for child in &descendants {
                    let natural = format!(
                        "{}_{}_{}",
                        child.name.name,
                        index.columns.join("_"),
                        if index.unique { "key" } else { "idx" }
                    );
                    let name = self.fresh_name(&child.name.schema, &natural);
                    child_names.insert(child.name.clone(), name);
                }
                // Intermediate partitioned tables get an ON ONLY index too, then leaves.
                for child in descendants.iter().filter(|c| c.kind == TableKind::Partitioned) {
                    forward.push(stmt(
                        LockMode::Share,
                        &[&child.name],
                        format!(
                            "{}CREATE {unique}INDEX IF NOT EXISTS {} ON ONLY {} ({columns});\n",
                            exempt("require-concurrent-index-creation", "ON ONLY: an empty parent index, instant; partitions build theirs concurrently"),
                            quote_ident(&child_names[&child.name]),
                            child.name
                        ),
                    ));
                }
                for child in descendants.iter().rev() {
                    let child_index = child.name.sibling(child_names[&child.name].clone());
                    if child.kind == TableKind::Ordinary {
                        forward.push(concurrent_index(
                            child_index.clone(),
                            &child.name,
                            format!(
                                "CREATE {unique}INDEX CONCURRENTLY {} ON {} ({columns});\n",
                                quote_ident(&child_index.name),
                                child.name
                            ),
                        ));
                    }
                    let parent = child.partition_of.as_ref().expect("descendants are partitions");
                    let parent_index = if parent == table_name {
                        qualified.clone()
                    } else {
                        parent.sibling(child_names[parent].clone())
                    };
                    forward.push(stmt(
                        LockMode::ShareUpdateExclusive,
                        &[parent, &child.name],
                        format!("ALTER INDEX {parent_index} ATTACH PARTITION {child_index};\n"),
                    ));
                    rollback.push(drop_index_concurrently(&child_index, &child.name));
                }
                rollback.insert(
                    0,
                    stmt(
                        LockMode::AccessExclusive,
                        &[table_name],
                        format!("DROP INDEX IF EXISTS {qualified};\n"),
                    ),
                );
            } else {
                forward.push(concurrent_index(
                    qualified.clone(),
                    table_name,
                    format!(
                        "CREATE {unique}INDEX CONCURRENTLY {} ON {table_name} ({columns});\n",
                        quote_ident(&index.name)
                    ),
                ));
                rollback.push(drop_index_concurrently(&qualified, table_name));
            }
            checks.push(self.index_valid_check(&qualified));
        }
        let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
        self.push(Step {
            id: format!("6.{}:{}", Stage::Indexes.name(), table_name),
            stage: Stage::Indexes,
            title: format!("Build {} on {}", names.join(", "), table_name.display_plain()),
            note: "Built CONCURRENTLY: writes go on. An index left INVALID by an interrupted build \
                   is dropped and rebuilt when the step resumes. UNIQUE (tenant, key) is what \
                   tenant-consistent foreign keys reference in stage 7."
                .into(),
            tables: vec![table_name.clone()],
            atomic: false,
            rows_estimate: table_rows(self.catalog, table_name),
            forward,
            rollback_atomic: false,
            rollback,
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    fn stage_unique_and_foreign_keys(&mut self) {
        let tables: Vec<QualifiedName> = self.scoped_uniques.keys().cloned().collect();
        for table in &tables {
            self.unique_build_step(table);
        }
        let mut fk_children: BTreeMap<QualifiedName, Vec<&'a ForeignKey>> = BTreeMap::new();
        for (child, fk) in self.scoped_foreign_keys() {
            fk_children.entry(child).or_default().push(fk);
        }
        // Children in root order so the journal reads parents first.
        let order: Vec<QualifiedName> = self
            .roots
            .iter()
            .flat_map(|r| {
                let mut group = vec![r.clone()];
                group.extend(self.catalog.partition_descendants(r).into_iter().map(|t| t.name.clone()));
                group
            })
            .collect();
        for child in order {
            if let Some(fks) = fk_children.get(&child).cloned() {
                self.foreign_key_step(&child, &fks);
            }
        }
        for table in &tables {
            self.unique_swap_step(table);
        }
    }

    fn unique_build_step(&mut self, table: &QualifiedName) {
        let uniques = self.scoped_uniques[table].clone();
        let mut forward = Vec::new();
        let mut rollback = Vec::new();
        let mut checks = Vec::new();
        for u in &uniques {
            let o = &u.original;
            let temp = table.sibling(u.temp_name.clone());
            if u.partitioned && o.constraint.is_some() {
                continue; // rebuilt in place by the swap step
            }
            let Some(sql) = rewrite_index_definition(
                &o.index_definition,
                &o.index_name,
                table,
                &o.access_method,
                &u.temp_name,
                !u.partitioned,
                Some(&self.tenant.column),
            ) else {
                self.finding(
                    Severity::Error,
                    "index-definition",
                    format!("{} on {}", o.index_name, table.display_plain()),
                    format!("could not read the index definition {:?}", o.index_definition),
                );
                continue;
            };
            if u.partitioned {
                forward.push(long(
                    LockMode::Share,
                    &[table],
                    format!(
                        "{}{sql};\n",
                        exempt(
                            "require-concurrent-index-creation",
                            "PostgreSQL cannot build a partitioned index concurrently (see the findings)"
                        )
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
            checks.push(self.index_valid_check(&temp));
        }
        if forward.is_empty() {
            return;
        }
        let names: Vec<&str> = uniques.iter().map(|u| u.original.index_name.as_str()).collect();
        self.push(Step {
            id: format!("7.unique-build:{}", table),
            stage: Stage::Unique,
            title: format!("Build tenant-scoped copies of {} on {}", names.join(", "), table.display_plain()),
            note: "Each unique is rebuilt with the tenant column in front, keeping its predicate, \
                   expressions and options; the copy is swapped in under the original name after \
                   the foreign keys that need it are in place."
                .into(),
            tables: vec![table.clone()],
            atomic: false,
            rows_estimate: table_rows(self.catalog, table),
            forward,
            rollback_atomic: false,
            rollback,
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    /// Why a foreign key between scoped tables cannot become a composite tenant key, if it
    /// cannot (whatever its target).
    fn unconvertible_reason(&self, fk: &ForeignKey) -> Option<&'static str> {
        if matches!(fk.on_update.as_str(), "n" | "d") {
            return Some("ON UPDATE SET NULL/SET DEFAULT would also change the tenant column");
        }
        if matches!(fk.on_delete.as_str(), "n" | "d") && !self.pg15 {
            return Some(
                "ON DELETE SET NULL/SET DEFAULT needs a column list (PostgreSQL 15+) to spare the tenant column",
            );
        }
        None
    }

    /// The index a composite FK to `parent (tenant, cols)` will use, if the plan provides one.
    fn scoped_target_exists(&self, parent: &QualifiedName, columns: &[String]) -> bool {
        let table = self.table(parent);
        let pk_matches = table.primary_key.as_ref().is_some_and(|pk| sorted(&pk.columns) == sorted(columns));
        if pk_matches {
            return self.stage6.get(parent).is_some_and(|v| v.iter().any(|i| i.unique));
        }
        self.scoped_uniques.get(parent).is_some_and(|list| {
            list.iter().any(|u| {
                u.original.predicate.is_none()
                    && u.original.key_column_names.as_ref().map(|c| sorted(c)) == Some(sorted(columns))
            })
        })
    }

    fn foreign_key_step(&mut self, child: &QualifiedName, fks: &[&ForeignKey]) {
        let col = self.tenant.column.clone();
        let child_table = self.table(child);
        let partitioned_child = child_table.kind == TableKind::Partitioned;
        let mut forward = Vec::new();
        let mut rollback = Vec::new();
        let mut checks = Vec::new();
        let mut converted = Vec::new();
        for fk in fks {
            let object = format!("{} on {}", fk.name, child.display_plain());
            if !self.scoped_target_exists(&fk.referenced_table, &fk.referenced_columns) {
                self.finding(
                    Severity::Warning,
                    "foreign-key-not-scoped",
                    object,
                    format!(
                        "references {} ({}), which gets no tenant-scoped unique; left as it is \
                         (a child row may point at another tenant's parent)",
                        fk.referenced_table.display_plain(),
                        fk.referenced_columns.join(", ")
                    ),
                );
                continue;
            }
            if let Some(reason) = self.unconvertible_reason(fk) {
                self.finding(
                    Severity::Warning,
                    "foreign-key-not-scoped",
                    object,
                    format!("{reason}; left as it is"),
                );
                continue;
            }
            if fk.match_type == "f" && fk.columns.len() > 1 {
                self.finding(
                    Severity::Warning,
                    "foreign-key-match-full",
                    object.clone(),
                    "MATCH FULL becomes MATCH SIMPLE: with the NOT NULL tenant column in the key, \
                     MATCH FULL would reject rows whose other key columns are partly NULL",
                );
            }
            let temp = self.fresh_name(&child.schema, &format!("{}_{}", fk.name, col));
            let restore = self.fresh_name(&child.schema, &format!("{}_global", fk.name));
            let mut columns = vec![col.clone()];
            columns.extend(fk.columns.iter().cloned());
            let mut referenced = vec![col.clone()];
            referenced.extend(fk.referenced_columns.iter().cloned());
            let action = |code: &str, set_columns: &[String]| -> String {
                match code {
                    "r" => "RESTRICT".to_string(),
                    "c" => "CASCADE".to_string(),
                    "n" => format!("SET NULL ({})", ident_list(set_columns)),
                    "d" => format!("SET DEFAULT ({})", ident_list(set_columns)),
                    _ => "NO ACTION".to_string(),
                }
            };
            let delete_columns = if fk.on_delete_columns.is_empty() {
                fk.columns.clone()
            } else {
                fk.on_delete_columns.clone()
            };
            let deferrable = match (fk.deferrable, fk.initially_deferred) {
                (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                (true, false) => " DEFERRABLE",
                _ => "",
            };
            let on_update = match action(&fk.on_update, &[]) {
                a if a == "NO ACTION" => String::new(),
                a => format!(" ON UPDATE {a}"),
            };
            let on_delete = match action(&fk.on_delete, &delete_columns) {
                a if a == "NO ACTION" => String::new(),
                a => format!(" ON DELETE {a}"),
            };
            let definition = format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}){on_update}{on_delete}{deferrable}",
                ident_list(&columns),
                fk.referenced_table,
                ident_list(&referenced),
            );
            let parent = &fk.referenced_table;
            let qtemp = quote_ident(&temp);
            let qname = quote_ident(&fk.name);
            if partitioned_child {
                // No NOT VALID on partitioned tables: the key is validated as it is added.
                forward.push(long(
                    LockMode::ShareRowExclusive,
                    &[child, parent],
                    format!(
                        "{}ALTER TABLE {child} ADD CONSTRAINT {qtemp} {definition};\n",
                        exempt(
                            "constraint-missing-not-valid, adding-foreign-key-constraint",
                            "PostgreSQL has no NOT VALID for partitioned tables: validated as added (see the findings)"
                        )
                    ),
                ));
            } else {
                forward.push(stmt(
                    LockMode::ShareRowExclusive,
                    &[child, parent],
                    format!("ALTER TABLE {child} ADD CONSTRAINT {qtemp} {definition} NOT VALID;\n"),
                ));
                forward.push(long(
                    LockMode::ShareUpdateExclusive,
                    &[child, parent],
                    format!("ALTER TABLE {child} VALIDATE CONSTRAINT {qtemp};\n"),
                ));
            }
            forward.push(stmt(
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
            ));
            // Rollback: the original definition, back under its own name.
            let original = fk.definition.trim_end_matches(" NOT VALID").to_string();
            let qrestore = quote_ident(&restore);
            if partitioned_child {
                rollback.push(long(
                    LockMode::ShareRowExclusive,
                    &[child, parent],
                    format!(
                        "ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {qrestore};\n\
                         ALTER TABLE {child} ADD CONSTRAINT {qrestore} {original};\n"
                    ),
                ));
            } else {
                rollback.push(stmt(
                    LockMode::ShareRowExclusive,
                    &[child, parent],
                    format!(
                        "ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {qrestore};\n\
                         ALTER TABLE {child} ADD CONSTRAINT {qrestore} {original} NOT VALID;\n"
                    ),
                ));
                if fk.validated {
                    rollback.push(long(
                        LockMode::ShareUpdateExclusive,
                        &[child, parent],
                        format!("ALTER TABLE {child} VALIDATE CONSTRAINT {qrestore};\n"),
                    ));
                }
            }
            rollback.push(stmt(
                LockMode::AccessExclusive,
                &[child, parent],
                format!(
                    "ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {qname};\n\
                     ALTER TABLE {child} RENAME CONSTRAINT {qrestore} TO {qname};\n"
                ),
            ));
            checks.push(check(
                format!("{} is tenant-consistent and valid", fk.name),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} \
                     AND c.convalidated AND c.conkey[1] = (SELECT attnum FROM pg_catalog.pg_attribute \
                     WHERE attrelid = c.conrelid AND attname = {})",
                    regclass(child),
                    quote_literal(&fk.name),
                    quote_literal(&col)
                ),
            ));
            converted.push(fk.name.clone());
        }
        if forward.is_empty() {
            return;
        }
        let mut tables = vec![child.clone()];
        for fk in fks {
            if !tables.contains(&fk.referenced_table) {
                tables.push(fk.referenced_table.clone());
            }
        }
        self.push(Step {
            id: format!("7.foreign-keys:{}", child),
            stage: Stage::Unique,
            title: format!("Make {} on {} tenant-consistent", converted.join(", "), child.display_plain()),
            note: if partitioned_child {
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
            atomic: false,
            rows_estimate: table_rows(self.catalog, child),
            forward,
            rollback_atomic: false,
            rollback,
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    fn unique_swap_step(&mut self, table: &QualifiedName) {
        let uniques = self.scoped_uniques[table].clone();
        let col = self.tenant.column.clone();
        let mut forward = Vec::new();
        let mut rollback = Vec::new();
        let mut guards = Vec::new();
        let mut checks = Vec::new();
        for u in &uniques {
            let o = &u.original;
            let qorig = quote_ident(&o.index_name);
            let qtemp = quote_ident(&u.temp_name);
            let qrestore = quote_ident(&u.restore_name);
            let temp = table.sibling(u.temp_name.clone());
            let restore = table.sibling(u.restore_name.clone());
            match (&o.constraint, u.partitioned) {
                (Some(constraint), false) => {
                    let deferrable = match (constraint.deferrable, constraint.initially_deferred) {
                        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                        (true, false) => " DEFERRABLE",
                        _ => "",
                    };
                    forward.push(stmt(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                             ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qtemp}{deferrable};\n",
                            exempt("ban-drop-constraint", "replaced in this transaction by its tenant-scoped successor")
                        ),
                    ));
                    let Some(rebuild) = rewrite_index_definition(
                        &o.index_definition,
                        &o.index_name,
                        table,
                        &o.access_method,
                        &u.restore_name,
                        true,
                        None,
                    ) else {
                        continue;
                    };
                    rollback.push(concurrent_index(restore.clone(), table, format!("{rebuild};\n")));
                    rollback.push(stmt(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "ALTER TABLE {table} RENAME CONSTRAINT {qorig} TO {qtemp};\n\
                             ALTER TABLE {table} ADD CONSTRAINT {qorig} UNIQUE USING INDEX {qrestore}{deferrable};\n"
                        ),
                    ));
                }
                (None, false) => {
                    // Rename the global index aside and the scoped one in (a lock that lets reads
                    // and writes go on), then drop the global one concurrently.
                    let retired = table.sibling(u.retired_name.clone());
                    forward.push(stmt(
                        LockMode::ShareUpdateExclusive,
                        &[table],
                        format!(
                            "{}ALTER INDEX {} RENAME TO {};\n{}ALTER INDEX {temp} RENAME TO {qorig};\n",
                            exempt("renaming-object", "set aside, then dropped concurrently below"),
                            table.sibling(o.index_name.clone()),
                            quote_ident(&u.retired_name),
                            exempt("renaming-object", "the successor takes the original name clients know")
                        ),
                    ));
                    forward.push(drop_index_concurrently(&retired, table));
                    rollback.push(drop_index_concurrently(&retired, table));
                    let Some(rebuild) = rewrite_index_definition(
                        &o.index_definition,
                        &o.index_name,
                        table,
                        &o.access_method,
                        &u.restore_name,
                        true,
                        None,
                    ) else {
                        continue;
                    };
                    rollback.push(concurrent_index(restore.clone(), table, format!("{rebuild};\n")));
                    rollback.push(stmt(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "ALTER INDEX {} RENAME TO {qtemp};\nALTER INDEX {restore} RENAME TO {qorig};\n",
                            table.sibling(o.index_name.clone())
                        ),
                    ));
                }
                (Some(constraint), true) => {
                    let definition = &constraint.definition;
                    let scoped = splice_constraint_columns(definition, &quote_ident(&col));
                    forward.push(long(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "{}ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                             {}ALTER TABLE {table} ADD CONSTRAINT {qorig} {scoped};\n",
                            exempt(
                                "ban-drop-constraint",
                                "replaced in this transaction by its tenant-scoped successor"
                            ),
                            exempt(
                                "require-concurrent-index-creation",
                                "PostgreSQL cannot build a partitioned index concurrently (see the findings)"
                            )
                        ),
                    ));
                    rollback.push(long(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "ALTER TABLE {table} DROP CONSTRAINT {qorig};\n\
                             ALTER TABLE {table} ADD CONSTRAINT {qorig} {definition};\n"
                        ),
                    ));
                }
                (None, true) => {
                    forward.push(stmt(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "{}DROP INDEX {};\n{}ALTER INDEX {temp} RENAME TO {qorig};\n",
                            exempt(
                                "require-concurrent-index-deletion",
                                "PostgreSQL cannot drop a partitioned index concurrently; dropping is instant"
                            ),
                            table.sibling(o.index_name.clone()),
                            exempt("renaming-object", "the successor takes the original name clients know")
                        ),
                    ));
                    let Some(rebuild) = rewrite_index_definition(
                        &o.index_definition,
                        &o.index_name,
                        table,
                        &o.access_method,
                        &u.restore_name,
                        false,
                        None,
                    ) else {
                        continue;
                    };
                    rollback.push(long(LockMode::Share, &[table], format!("{rebuild};\n")));
                    rollback.push(stmt(
                        LockMode::AccessExclusive,
                        &[table],
                        format!(
                            "ALTER INDEX {} RENAME TO {qtemp};\nALTER INDEX {restore} RENAME TO {qorig};\n",
                            table.sibling(o.index_name.clone())
                        ),
                    ));
                }
            }
            guards.push(Guard {
                name: format!("values of {} repeated across tenants", o.index_name),
                message: format!(
                    "values that {} once kept unique now repeat across tenants; the global \
                     unique cannot be rebuilt until they are resolved",
                    o.index_name
                ),
                forceable: false,
                sql: duplicate_count_sql(table, o),
            });
            checks.push(check(
                format!("{} leads with {}", o.index_name, col),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indexrelid = {} AND i.indisvalid \
                     AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {})",
                    to_regclass(&table.sibling(o.index_name.clone())),
                    regclass(table),
                    quote_literal(&col)
                ),
            ));
        }
        if forward.is_empty() {
            return;
        }
        let names: Vec<&str> = uniques.iter().map(|u| u.original.index_name.as_str()).collect();
        self.push(Step {
            id: format!("7.unique-swap:{}", table),
            stage: Stage::Unique,
            title: format!("Swap in tenant-scoped {} on {}", names.join(", "), table.display_plain()),
            note: "Each swap is one short transaction under the original name. Rolling back first \
                   counts values that now repeat across tenants: a global unique cannot come back \
                   while they exist."
                .into(),
            tables: vec![table.clone()],
            atomic: false,
            rows_estimate: table_rows(self.catalog, table),
            forward,
            rollback_atomic: false,
            rollback,
            no_rollback_reason: None,
            rollback_guards: guards,
            checks,
            backfill: None,
            hash: String::new(),
        });
    }

    fn stage_rls(&mut self, root: &QualifiedName) {
        let names = self.names[root].clone();
        let mut relations = vec![root.clone()];
        relations.extend(self.catalog.partition_descendants(root).into_iter().map(|t| t.name.clone()));
        let expression = self.policy_expression();
        let policy = quote_ident(&names.policy);
        let mut forward_sql = String::new();
        let mut rollback_sql = String::new();
        let mut regclasses = Vec::new();
        for relation in &relations {
            let table = self.table(relation);
            // Permissive policies are OR'ed: next to existing ones ours must narrow, not widen.
            let kind = if table.policies.is_empty() { "PERMISSIVE" } else { "RESTRICTIVE" };
            forward_sql.push_str(&format!(
                "CREATE POLICY {policy} ON {relation} AS {kind} FOR ALL\n    USING ({expression})\n    WITH CHECK ({expression});\n\
                 ALTER TABLE {relation} ENABLE ROW LEVEL SECURITY;\n\
                 ALTER TABLE {relation} FORCE ROW LEVEL SECURITY;\n"
            ));
            rollback_sql.push_str(&format!("DROP POLICY IF EXISTS {policy} ON {relation};\n"));
            if !table.rls_forced {
                rollback_sql.push_str(&format!("ALTER TABLE {relation} NO FORCE ROW LEVEL SECURITY;\n"));
            }
            if !table.rls_enabled {
                rollback_sql.push_str(&format!("ALTER TABLE {relation} DISABLE ROW LEVEL SECURITY;\n"));
            }
            regclasses.push(regclass(relation));
        }
        let on: Vec<&QualifiedName> = relations.iter().collect();
        let check_sql = format!(
            "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid IN ({}) AND c.relrowsecurity \
             AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p \
             WHERE p.polrelid = c.oid AND p.polname = {})",
            regclasses.join(", "),
            quote_literal(&names.policy)
        );
        self.push(Step {
            id: format!("8.{}:{}", Stage::Rls.name(), root),
            stage: Stage::Rls,
            title: format!(
                "Row-level security on {}{}",
                root.display_plain(),
                if relations.len() > 1 {
                    format!(" and its {} partitions", relations.len() - 1)
                } else {
                    String::new()
                }
            ),
            note: "The policy reads the tenant from a setting the application sets per transaction \
                   (SET LOCAL works behind a pooler). Unset, it matches no row (fails closed). \
                   FORCE makes the table owner obey it too; partitions get their own policy because \
                   reading a partition directly skips the parent's."
                .into(),
            tables: relations.clone(),
            atomic: true,
            rows_estimate: 0,
            forward: vec![stmt(LockMode::AccessExclusive, &on, forward_sql)],
            rollback_atomic: true,
            rollback: vec![stmt(LockMode::AccessExclusive, &on, rollback_sql)],
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks: vec![check(
                format!("RLS enabled, forced and policy present on {} relations", relations.len()),
                relations.len() as i64,
                check_sql,
            )],
            backfill: None,
            hash: String::new(),
        });
    }

    fn stage_views(&mut self) {
        if !self.pg15 {
            return;
        }
        let views: Vec<_> = self
            .catalog
            .views
            .iter()
            .filter(|v| {
                !v.materialized
                    && v.owner_bypasses_rls
                    && v.security_invoker != Some(true)
                    && v.reads_tables.iter().any(|t| self.is_scoped(t))
            })
            .collect();
        if views.is_empty() {
            return;
        }
        let mut forward_sql = String::new();
        let mut rollback_sql = String::new();
        let names: Vec<QualifiedName> = views.iter().map(|v| v.name.clone()).collect();
        for view in &views {
            forward_sql.push_str(&format!("ALTER VIEW {} SET (security_invoker = true);\n", view.name));
            rollback_sql.push_str(&match view.security_invoker {
                Some(false) => format!("ALTER VIEW {} SET (security_invoker = false);\n", view.name),
                _ => format!("ALTER VIEW {} RESET (security_invoker);\n", view.name),
            });
        }
        let list =
            names.iter().map(|n| quote_literal(&n.to_string()) + "::pg_catalog.regclass").collect::<Vec<_>>();
        let on: Vec<&QualifiedName> = names.iter().collect();
        self.push(Step {
            id: format!("8.{}:views", Stage::Rls.name()),
            stage: Stage::Rls,
            title: format!("Make {} views respect row-level security", views.len()),
            note: "These views are owned by a role that bypasses RLS, so reading through them would \
                   show every tenant. security_invoker (PostgreSQL 15+) makes them read with the \
                   caller's rights, under the caller's policies."
                .into(),
            tables: names.clone(),
            atomic: true,
            rows_estimate: 0,
            forward: vec![stmt(LockMode::AccessExclusive, &on, forward_sql)],
            rollback_atomic: true,
            rollback: vec![stmt(LockMode::AccessExclusive, &on, rollback_sql)],
            no_rollback_reason: None,
            rollback_guards: Vec::new(),
            checks: vec![check(
                "views run as invoker",
                names.len() as i64,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid IN ({}) AND \
                     'security_invoker=true' = ANY (c.reloptions)",
                    list.join(", ")
                ),
            )],
            backfill: None,
            hash: String::new(),
        });
    }
}

/// Roots ordered parents first. Tables in a foreign-key cycle form one group (strongly
/// connected component) ordered by name; groups come in dependency order, the smallest name
/// first among those ready, so the order is deterministic and readable.
fn foreign_key_order(parents_of: &BTreeMap<QualifiedName, BTreeSet<QualifiedName>>) -> Vec<QualifiedName> {
    let names: Vec<&QualifiedName> = parents_of.keys().collect();
    let index: HashMap<&QualifiedName, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> =
        names.iter().map(|n| parents_of[*n].iter().filter_map(|p| index.get(p).copied()).collect()).collect();
    // Tarjan's algorithm, iteratively (thousands of tables must not exhaust the stack).
    let count = names.len();
    let mut component = vec![usize::MAX; count];
    let mut low = vec![0usize; count];
    let mut order_of = vec![usize::MAX; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next_order = 0;
    let mut components = 0;
    for start in 0..count {
        if order_of[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        order_of[start] = next_order;
        low[start] = next_order;
        next_order += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some((node, edge)) = work.pop() {
            if edge < edges[node].len() {
                work.push((node, edge + 1));
                let next = edges[node][edge];
                if order_of[next] == usize::MAX {
                    order_of[next] = next_order;
                    low[next] = next_order;
                    next_order += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(order_of[next]);
                }
                continue;
            }
            if low[node] == order_of[node] {
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component[member] = components;
                    if member == node {
                        break;
                    }
                }
                components += 1;
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
        }
    }
    // Kahn's algorithm over the components: a component is ready when every parent outside it
    // is placed; among ready ones the smallest member name goes first.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); components];
    for (node, &c) in component.iter().enumerate() {
        members[c].push(node);
    }
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    let mut children: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    for (node, parents) in edges.iter().enumerate() {
        for &parent in parents {
            let (c, p) = (component[node], component[parent]);
            if c != p {
                waiting_on[c].insert(p);
                children[p].insert(c);
            }
        }
    }
    let first_name = |c: usize| members[c].iter().map(|&n| names[n]).min().expect("components are not empty");
    let mut ready: BTreeSet<(&QualifiedName, usize)> =
        (0..components).filter(|&c| waiting_on[c].is_empty()).map(|c| (first_name(c), c)).collect();
    let mut out = Vec::with_capacity(count);
    while let Some(&(name, c)) = ready.iter().next() {
        ready.remove(&(name, c));
        let mut group: Vec<&QualifiedName> = members[c].iter().map(|&n| names[n]).collect();
        group.sort();
        out.extend(group.into_iter().cloned());
        for &child in &children[c] {
            waiting_on[child].remove(&c);
            if waiting_on[child].is_empty() {
                ready.insert((first_name(child), child));
            }
        }
    }
    out
}

fn sorted(columns: &[String]) -> Vec<String> {
    let mut copy = columns.to_vec();
    copy.sort();
    copy
}

fn table_rows(catalog: &Catalog, name: &QualifiedName) -> i64 {
    let own = catalog.table(name).map(|t| t.row_estimate.max(0)).unwrap_or(0);
    own + catalog
        .partition_descendants(name)
        .iter()
        .filter(|t| t.kind == TableKind::Ordinary)
        .map(|t| t.row_estimate.max(0))
        .sum::<i64>()
}
