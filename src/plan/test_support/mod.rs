//! Shared fixtures of the planner's unit tests: synthetic catalogs in, plans out. No database,
//! no I/O.

mod builder;
mod printed;

pub(crate) use builder::{CatalogBuilder, qn};

use super::{BackfillMode, Plan, PlanOptions, Severity, Stage, Step, build};
use crate::catalog::Catalog;

pub(crate) const PG15: i32 = 150018;
pub(crate) const PG14: i32 = 140011;
pub(crate) const GENERATED_AT: &str = "2024-05-01T12:00:00Z";
pub(crate) const DEFAULT_TENANT: &str = "'00000000-0000-0000-0000-000000000001'::uuid";
pub(crate) const POLICY_EXPRESSION: &str =
    "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)";

/// users <- projects <- issues <- issue_comments (declared children first, so that FK order
/// and not declaration or name order decides). issues references itself, and references users
/// with ON DELETE SET NULL. users has a unique constraint, a partial unique index and an
/// expression unique index.
pub(crate) fn saas(version_num: i32) -> CatalogBuilder {
    CatalogBuilder::new(version_num)
        .table("public", "issue_comments", |t| {
            t.pk(&["id"])
                .col_nn("issue_id", "bigint")
                .col_nn("author_id", "bigint")
                .col("body", "text")
                .fk(&["issue_id"], "issues", &["id"], 'c')
                .fk(&["author_id"], "users", &["id"], 'r')
                .rows(250_000, 80_000_000)
        })
        .table("public", "issues", |t| {
            t.pk(&["id"])
                .col_nn("project_id", "bigint")
                .col("assignee_id", "bigint")
                .col("parent_id", "bigint")
                .col("title", "text")
                .fk(&["project_id"], "projects", &["id"], 'c')
                .fk(&["assignee_id"], "users", &["id"], 'n')
                .fk(&["parent_id"], "issues", &["id"], 'a')
                .index("issues_project_id_idx", &["project_id"])
                .rows(40_000, 12_000_000)
        })
        .table("public", "projects", |t| {
            t.pk(&["id"]).col_nn("owner_id", "bigint").col_nn("name", "text").fk(
                &["owner_id"],
                "users",
                &["id"],
                'c',
            )
        })
        .table("public", "users", |t| {
            t.pk(&["id"])
                .col_nn("email", "text")
                .col("username", "text")
                .col("deleted_at", "timestamp with time zone")
                .unique(&["email"])
                .unique_index("users_username_active_idx", &["username"], Some("(deleted_at IS NULL)"))
                .unique_index("users_email_lower_idx", &["lower(email)"], None)
        })
}

/// A `tags` table with one plain index, `tags_name_idx (name)`.
pub(crate) fn with_tags(builder: CatalogBuilder) -> CatalogBuilder {
    builder
        .table("public", "tags", |t| t.pk(&["id"]).col_nn("name", "text").index("tags_name_idx", &["name"]))
}

/// A partitioned `events` table (two levels) referencing users.
pub(crate) fn with_events(builder: CatalogBuilder) -> CatalogBuilder {
    builder
        .table("public", "events", |t| {
            t.col_nn("id", "bigint")
                .col_nn("created_at", "timestamp with time zone")
                .col_nn("user_id", "bigint")
                .col("payload", "jsonb")
                .pk(&["id", "created_at"])
                .fk(&["user_id"], "users", &["id"], 'c')
                .partitioned("RANGE (created_at)")
        })
        .partition(
            "public",
            "events_2024",
            "events",
            "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')",
            |t| t.rows(300_000, 90_000_000),
        )
        .partition(
            "public",
            "events_2025",
            "events",
            "FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2026-01-01 00:00:00+00')",
            |t| t.partitioned("HASH (id)"),
        )
        .partition(
            "public",
            "events_2025_p0",
            "events_2025",
            "FOR VALUES WITH (modulus 2, remainder 0)",
            |t| t.rows(50_000, 15_000_000),
        )
        .partition(
            "public",
            "events_2025_p1",
            "events_2025",
            "FOR VALUES WITH (modulus 2, remainder 1)",
            |t| t.rows(50_000, 15_000_000),
        )
}

// ---------------------------------------------------------------------------------------------
// Reading plans
// ---------------------------------------------------------------------------------------------

pub(crate) fn plan_with(catalog: &Catalog, options: &PlanOptions) -> Plan {
    build(catalog, options, GENERATED_AT).expect("the options are valid")
}

pub(crate) fn plan_of(catalog: &Catalog) -> Plan {
    plan_with(catalog, &PlanOptions::default())
}

/// Stage 6 indexes every tenant-scoped foreign key's columns (`--index-foreign-keys`), also
/// where the fixture's application has no index on them: what tests of those indexes plan.
pub(crate) fn indexing_foreign_keys() -> PlanOptions {
    PlanOptions { index_foreign_keys: true, ..PlanOptions::default() }
}

pub(crate) fn batched() -> PlanOptions {
    PlanOptions { backfill: Some(BackfillMode::Batched), ..PlanOptions::default() }
}

pub(crate) fn ids(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

pub(crate) fn ids_in(plan: &Plan, stage: Stage) -> Vec<&str> {
    plan.steps_in(stage).map(|s| s.id.as_str()).collect()
}

pub(crate) fn step<'p>(plan: &'p Plan, id: &str) -> &'p Step {
    plan.step(id).unwrap_or_else(|| panic!("no step {id}; the plan has {:#?}", ids(plan)))
}

pub(crate) fn position(plan: &Plan, id: &str) -> usize {
    plan.position(id).unwrap_or_else(|| panic!("no step {id}; the plan has {:#?}", ids(plan)))
}

/// SQL without its comment lines (the linter exemptions and their reasons).
pub(crate) fn code(sql: &str) -> String {
    sql.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect()
}

pub(crate) fn forward_sql(step: &Step) -> String {
    step.forward().iter().map(|s| code(&s.sql)).collect()
}

pub(crate) fn rollback_sql(step: &Step) -> String {
    step.rollback().iter().map(|s| code(&s.sql)).collect()
}

pub(crate) fn all_forward_sql(plan: &Plan) -> String {
    plan.steps.iter().map(forward_sql).collect()
}

/// (code, object) of every finding of `severity`.
pub(crate) fn findings(plan: &Plan, severity: Severity) -> Vec<(String, String)> {
    plan.findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| (f.code.clone(), f.object.clone()))
        .collect()
}

pub(crate) fn has_finding(plan: &Plan, severity: Severity, code: &str, object: &str) -> bool {
    plan.findings.iter().any(|f| f.severity == severity && f.code == code && f.object == object)
}

/// Byte offset of `needle` in `haystack`, failing the test when it is absent.
pub(crate) fn offset(haystack: &str, needle: &str) -> usize {
    haystack.find(needle).unwrap_or_else(|| panic!("expected {needle:?} in:\n{haystack}"))
}

/// Index of the first statement of `step`'s forward list containing `needle`.
pub(crate) fn statement_index(step: &Step, needle: &str) -> usize {
    step.forward().iter().position(|s| code(&s.sql).contains(needle)).unwrap_or_else(|| {
        panic!("no forward statement of {} contains {needle:?}:\n{}", step.id, forward_sql(step))
    })
}

/// One identifier at the start of `text` (bare or double-quoted), unquoted.
pub(crate) fn leading_identifier(text: &str) -> String {
    if let Some(mut rest) = text.strip_prefix('"') {
        let mut out = String::new();
        loop {
            let end = rest.find('"').expect("closing quote");
            out.push_str(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    out.push('"');
                    rest = after;
                }
                None => return out,
            }
        }
    }
    text.split(|c: char| c.is_whitespace() || c == ';' || c == '(').next().unwrap_or_default().to_string()
}

/// Names the forward SQL gives to new objects: `ADD CONSTRAINT x`, `CREATE [UNIQUE] INDEX
/// [CONCURRENTLY] [IF NOT EXISTS] x`.
pub(crate) fn created_names(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for statement in plan.steps.iter().flat_map(|s| s.forward()) {
        let sql = statement.sql.as_str();
        for marker in ["ADD CONSTRAINT ", "INDEX CONCURRENTLY ", "INDEX IF NOT EXISTS "] {
            let mut from = 0;
            while let Some(at) = sql[from..].find(marker) {
                let start = from + at + marker.len();
                out.push(leading_identifier(&sql[start..]));
                from = start;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared tables, refusals
// ---------------------------------------------------------------------------------------------

/// `saas` with two shared (excluded) tables: `lookup`, which issues references, and
/// `audit_log`, which references users by email and by id.
pub(crate) fn with_shared_tables() -> (Catalog, PlanOptions) {
    let catalog = saas(PG15)
        .table("public", "lookup", |t| {
            t.pk_named("lookup_pkey", &["code"]).col_nn("code", "text").col("label", "text")
        })
        .table("public", "audit_log", |t| {
            t.pk(&["id"])
                .col("actor_email", "text")
                .col("user_id", "bigint")
                .fk(&["actor_email"], "users", &["email"], 'n')
                .fk(&["user_id"], "users", &["id"], 'n')
        })
        .alter("public", "issues", |t| {
            t.col("status_code", "text").fk(&["status_code"], "lookup", &["code"], 'r')
        })
        .build();
    let options = PlanOptions {
        exclude: vec!["public.lookup".into(), "public.audit_log".into()],
        ..PlanOptions::default()
    };
    (catalog, options)
}

/// Objects of the error findings with `code`.
pub(crate) fn error_objects(plan: &Plan, code: &str) -> Vec<String> {
    plan.errors().filter(|f| f.code == code).map(|f| f.object.clone()).collect()
}

/// The `n`-th statement of `step`'s forward list, to edit.
pub(crate) fn forward_statement_mut(step: &mut Step, n: usize) -> &mut crate::plan::Statement {
    let target = step.forward()[n] as *const crate::plan::Statement;
    all_statements_mut(step).find(|s| std::ptr::eq(*s, target)).expect("the statement is in the step")
}

/// Every statement of every transition of `step`, to edit.
pub(crate) fn all_statements_mut(step: &mut Step) -> impl Iterator<Item = &mut crate::plan::Statement> {
    step.parts.iter_mut().flat_map(|p| p.transitions.iter_mut()).flat_map(|t| t.statements.iter_mut())
}
