//! Fixed models for the wizard's tests (render tests here, `update` tests beside update.rs).
//!
//! A small synthetic catalog (users ← projects ← issues, a partitioned `events` table, a shared
//! `countries` lookup table) is planned with the real planner, so the screens show real SQL,
//! locks, guards and checks. Everything is deterministic: one fixed `Instant` is the epoch.

use std::time::{Duration, Instant};

use crate::catalog::{
    Catalog, Column, ForeignKey, KeyConstraint, RoleInfo, ServerInfo, Table, TableKind, UniqueConstraintInfo,
    UniqueIndex,
};
use crate::plan::{BackfillMode, Plan, PlanOptions};
use crate::sql::{QualifiedName, ident_list, quote_ident};
use crate::tui::state::{Model, ServerSummary};

pub const GENERATED_AT: &str = "2024-05-01T12:00:00Z";

fn qn(name: &str) -> QualifiedName {
    QualifiedName::new("public", name)
}

fn table(name: &str, rows: i64, bytes: i64) -> Table {
    Table { row_estimate: rows, total_bytes: bytes, ..Table::bare(qn(name), "app_owner") }
}

fn column(t: &mut Table, name: &str, data_type: &str, not_null: bool) {
    t.columns.push(Column {
        name: name.into(),
        data_type: data_type.into(),
        not_null,
        default: None,
        identity: None,
        generated: None,
    });
}

fn primary_key(t: &mut Table, columns: &[&str]) {
    // Surrogate keys, as the sample's are: a sequence fills each.
    for c in t.columns.iter_mut().filter(|c| columns.contains(&c.name.as_str())) {
        c.default = Some(format!("nextval('{}_{}_seq'::regclass)", t.name, c.name));
    }
    t.primary_key = Some(KeyConstraint {
        name: format!("{}_pkey", t.name.name),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        definition: format!("PRIMARY KEY ({})", ident_list(columns)),
        clustered: false,
        index_definition: None,
        tablespace: None,
    });
}

fn unique(t: &mut Table, column: &str) {
    let name = format!("{}_{column}_key", t.name.name);
    t.uniques.push(UniqueIndex {
        index_name: name.clone(),
        constraint: Some(UniqueConstraintInfo {
            definition: format!("UNIQUE ({})", quote_ident(column)),
            deferrable: false,
            initially_deferred: false,
            inherited: false,
        }),
        index_definition: format!(
            "CREATE UNIQUE INDEX {} ON {} USING btree ({})",
            quote_ident(&name),
            t.name,
            quote_ident(column)
        ),
        key_columns: vec![quote_ident(column)],
        key_column_names: Some(vec![column.to_string()]),
        predicate: None,
        access_method: "btree".into(),
        nulls_not_distinct: false,
        valid: true,
        is_partition_child: false,
        tablespace: None,
    });
}

fn foreign_key(t: &mut Table, column: &str, parent: &str, on_delete: &str) {
    let referenced = qn(parent);
    t.foreign_keys.push(ForeignKey {
        name: format!("{}_{column}_fkey", t.name.name),
        columns: vec![column.into()],
        definition: format!(
            "FOREIGN KEY ({}) REFERENCES {}(id){}",
            quote_ident(column),
            referenced,
            if on_delete == "c" { " ON DELETE CASCADE" } else { "" }
        ),
        referenced_table: referenced,
        referenced_columns: vec!["id".into()],
        on_update: "a".into(),
        on_delete: on_delete.into(),
        on_delete_columns: Vec::new(),
        match_type: "s".into(),
        deferrable: false,
        initially_deferred: false,
        validated: true,
        inherited: false,
    });
}

/// users ← projects ← issues, `events` partitioned in two, and a shared `countries`.
pub fn catalog() -> Catalog {
    let mut countries = table("countries", 250, 49_152);
    column(&mut countries, "code", "text", true);
    column(&mut countries, "name", "text", true);
    primary_key(&mut countries, &["code"]);

    let mut users = table("users", 5_000, 1_572_864);
    column(&mut users, "id", "bigint", true);
    column(&mut users, "email", "text", true);
    column(&mut users, "country", "text", false);
    primary_key(&mut users, &["id"]);
    unique(&mut users, "email");
    foreign_key(&mut users, "country", "countries", "a");
    if let Some(fk) = users.foreign_keys.last_mut() {
        fk.referenced_columns = vec!["code".into()];
        fk.definition = "FOREIGN KEY (country) REFERENCES public.countries(code)".into();
    }

    let mut projects = table("projects", 800, 262_144);
    column(&mut projects, "id", "bigint", true);
    column(&mut projects, "owner_id", "bigint", true);
    column(&mut projects, "name", "text", true);
    primary_key(&mut projects, &["id"]);
    foreign_key(&mut projects, "owner_id", "users", "c");

    let mut issues = table("issues", 1_000_000, 412_090_368);
    column(&mut issues, "id", "bigint", true);
    column(&mut issues, "project_id", "bigint", true);
    column(&mut issues, "title", "text", true);
    primary_key(&mut issues, &["id"]);
    foreign_key(&mut issues, "project_id", "projects", "c");

    let mut events = table("events", -1, 0);
    events.kind = TableKind::Partitioned;
    events.partition_key = Some("RANGE (created_at)".into());
    column(&mut events, "id", "bigint", true);
    column(&mut events, "created_at", "timestamp with time zone", true);
    column(&mut events, "payload", "jsonb", false);
    primary_key(&mut events, &["id", "created_at"]);
    let partition = |name: &str, bound: &str, rows: i64, bytes: i64| {
        let mut p = table(name, rows, bytes);
        p.partition_of = Some(qn("events"));
        p.partition_bound = Some(bound.into());
        p.columns = events.columns.clone();
        primary_key(&mut p, &["id", "created_at"]);
        p
    };
    let events_2024 = partition(
        "events_2024",
        "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')",
        240_000,
        73_400_320,
    );
    let events_2025 = partition(
        "events_2025",
        "FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2026-01-01 00:00:00+00')",
        60_000,
        18_350_080,
    );

    let mut tables = vec![countries, users, projects, issues, events, events_2024, events_2025];
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut names: Vec<QualifiedName> = Vec::new();
    for t in &tables {
        names.push(t.name.clone());
        names.extend(t.primary_key.iter().map(|p| t.name.sibling(p.name.clone())));
        names.extend(t.uniques.iter().map(|u| t.name.sibling(u.index_name.clone())));
    }
    names.sort();
    Catalog {
        server: ServerInfo {
            version_num: 150018,
            version: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc \
                      (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit"
                .into(),
            database: "app".into(),
            wal_init_zero: false,
        },
        role: RoleInfo {
            name: "app_owner".into(),
            superuser: false,
            bypass_rls: false,
            can_create_in_database: true,
            can_set_replication_role: false,
        },
        schemas: vec!["public".into()],
        tables,
        views: Vec::new(),
        security_definer_functions: Vec::new(),
        relation_names: names,
        creatable_schemas: vec!["public".into()],
        journal_exists: false,
        external_foreign_keys: Vec::new(),
        legacy_roles: Vec::new(),
        citus: None,
    }
}

/// `countries` shared, backfilled in batches (so stage 4 shows a gauge).
pub fn options() -> PlanOptions {
    PlanOptions {
        exclude: vec!["public.countries".into()],
        backfill: Some(BackfillMode::Batched),
        ..PlanOptions::default()
    }
}

pub fn plan() -> Plan {
    crate::plan::build(&catalog(), &options(), GENERATED_AT).expect("the fixture plans")
}

pub fn server() -> ServerSummary {
    let catalog = catalog();
    ServerSummary {
        connection: "postgres://app_owner@db.internal:5432/app".into(),
        database: catalog.server.database.clone(),
        version: catalog.server.version.clone(),
        role: catalog.role.name.clone(),
        superuser: false,
        bypass_rls: false,
        can_create_schema: true,
        owns_all_tables: true,
    }
}

/// The epoch of every test: the wizard started at `t0()`.
pub fn t0() -> Instant {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t0() + ms`.
pub fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

/// A fresh wizard over the fixture plan, with the catalog (so tables can be toggled).
pub fn model() -> Model {
    let mut model = Model::new(plan(), options(), server(), t0());
    model.catalog = Some(catalog());
    model
}
