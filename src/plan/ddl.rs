//! Statement builders and definition splicing: the SQL text every stage is made of.

use super::model::{Check, LockMode, Statement, StatementKind, TenantSpec, TimeoutProfile};
use crate::catalog::{UniqueConstraintInfo, UniqueIndex};
use crate::sql::{QualifiedName, index_storage_clause, quote_ident, quote_literal, with_tablespace};

pub(super) fn regclass(name: &QualifiedName) -> String {
    format!("{}::pg_catalog.regclass", quote_literal(&name.to_string()))
}

pub(super) fn to_regclass(name: &QualifiedName) -> String {
    format!("pg_catalog.to_regclass({})", quote_literal(&name.to_string()))
}

pub(super) fn stmt(lock: LockMode, on: &[&QualifiedName], sql: String) -> Statement {
    Statement {
        lock,
        on: on.iter().map(|q| q.to_string()).collect(),
        profile: TimeoutProfile::Ddl,
        kind: StatementKind::Transaction,
        index: None,
        settings: Vec::new(),
        sql,
    }
}

pub(super) fn long(lock: LockMode, on: &[&QualifiedName], sql: String) -> Statement {
    Statement { profile: TimeoutProfile::Long, ..stmt(lock, on, sql) }
}

/// Comment lines marking the next statement as knowingly breaking linter `rules` (squawk), with
/// the reason for the reviewer (who reads it in the plan, and in exported migrations).
pub(super) fn exempt(rules: &str, why: &str) -> String {
    format!("-- {why}\n-- squawk-ignore {rules}\n")
}

pub(super) fn concurrent_index(index: QualifiedName, on: &QualifiedName, sql: String) -> Statement {
    let sql = format!(
        "{}{sql}",
        exempt(
            "prefer-robust-stmts",
            "no IF NOT EXISTS: it would keep an INVALID leftover; tenantize drops and rebuilds one"
        )
    );
    Statement {
        profile: TimeoutProfile::Long,
        kind: StatementKind::ConcurrentIndex,
        index: Some(index),
        ..stmt(LockMode::ShareUpdateExclusive, &[on], sql)
    }
}

pub(super) fn drop_index_concurrently(index: &QualifiedName, on: &QualifiedName) -> Statement {
    Statement {
        profile: TimeoutProfile::Long,
        kind: StatementKind::NonTransactional,
        ..stmt(LockMode::ShareUpdateExclusive, &[on], format!("DROP INDEX CONCURRENTLY IF EXISTS {index};\n"))
    }
}

pub(super) fn check(name: impl Into<String>, expect: i64, sql: String) -> Check {
    Check { name: name.into(), expect, sql }
}

/// Splice a leading column into a unique index's definition printed by `pg_get_indexdef()`.
///
/// `CREATE UNIQUE INDEX name ON [ONLY] schema.table USING method (cols) ...` becomes
/// `CREATE UNIQUE INDEX [CONCURRENTLY] new_name ON schema.table USING method (lead, cols) ...`;
/// everything after the column list (INCLUDE, NULLS NOT DISTINCT, WITH, WHERE) is kept as
/// written, and the index's own tablespace, which `pg_get_indexdef()` never prints, is put
/// back. Returns `None` when the text does not have the expected shape.
pub(super) fn rewrite_index_definition(
    original: &UniqueIndex,
    table: &QualifiedName,
    new_name: &str,
    concurrently: bool,
    lead_column: Option<&str>,
) -> Option<String> {
    let (definition, method) = (&original.index_definition, &original.access_method);
    let head = format!("CREATE UNIQUE INDEX {} ON ", quote_ident(&original.index_name));
    let rest = definition.strip_prefix(&head)?;
    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
    let after_table = rest.strip_prefix(&format!("{table} USING {method} ("))?;
    let concurrently = if concurrently { "CONCURRENTLY " } else { "" };
    let lead = lead_column.map(|c| format!("{}, ", quote_ident(c))).unwrap_or_default();
    let rewritten = format!(
        "CREATE UNIQUE INDEX {concurrently}{} ON {table} USING {method} ({lead}{after_table}",
        quote_ident(new_name)
    );
    match &original.tablespace {
        Some(tablespace) => with_tablespace(&rewritten, table, tablespace),
        None => Some(rewritten),
    }
}

/// A unique constraint's definition as `pg_get_constraintdef()` prints it (`UNIQUE (a)`,
/// `PRIMARY KEY (a) DEFERRABLE`), with the index parameters it leaves out put back: the
/// index's storage parameters and its own tablespace, before any `DEFERRABLE`.
pub(super) fn constraint_with_index_parameters(
    constraint: &UniqueConstraintInfo,
    original: &UniqueIndex,
    table: &QualifiedName,
) -> String {
    let definition = &constraint.definition;
    let mut parameters = String::new();
    if let Some(with) = index_storage_clause(&original.index_definition, table) {
        parameters.push_str(&format!(" {with}"));
    }
    if let Some(tablespace) = &original.tablespace {
        parameters.push_str(&format!(" USING INDEX TABLESPACE {}", quote_ident(tablespace)));
    }
    // The clause pg_get_constraintdef() ends with, not a quoted column named "x DEFERRABLE".
    let deferrable = deferrable_clause(constraint.deferrable, constraint.initially_deferred);
    let head = definition.strip_suffix(deferrable).unwrap_or(definition);
    format!("{head}{parameters}{}", &definition[head.len()..])
}

/// The `DEFERRABLE` clause of a constraint definition.
pub(super) fn deferrable_clause(deferrable: bool, initially_deferred: bool) -> &'static str {
    match (deferrable, initially_deferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    }
}

/// `ALTER TABLE .. ADD CONSTRAINT name FOREIGN KEY (tenant column) REFERENCES tenant table`.
pub(super) fn tenant_fk_sql(
    tenant: &TenantSpec,
    table: &QualifiedName,
    name: &str,
    not_valid: bool,
) -> String {
    format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){};\n",
        quote_ident(name),
        quote_ident(&tenant.column),
        tenant.table,
        quote_ident(&tenant.key_column),
        if not_valid { " NOT VALID" } else { "" }
    )
}

pub(super) fn column_exists_check(tenant: &TenantSpec, table: &QualifiedName) -> Check {
    check(
        format!("{} has {}", table.display_plain(), tenant.column),
        1,
        format!(
            "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = {} AND attname = {} AND NOT attisdropped",
            regclass(table),
            quote_literal(&tenant.column)
        ),
    )
}

pub(super) fn null_count_check(tenant: &TenantSpec, table: &QualifiedName) -> Check {
    check(
        format!("rows of {} without a tenant", table.display_plain()),
        0,
        format!("SELECT count(*) FROM {table} WHERE {} IS NULL", quote_ident(&tenant.column)),
    )
}

pub(super) fn index_valid_check(index: &QualifiedName) -> Check {
    check(
        format!("index {} is valid", index.name),
        1,
        format!(
            "SELECT count(*) FROM pg_catalog.pg_index WHERE indexrelid = {} AND indisvalid",
            to_regclass(index)
        ),
    )
}

/// `UNIQUE (a, b)` → `UNIQUE (tenant_id, a, b)` (also with `NULLS NOT DISTINCT`).
pub(super) fn splice_constraint_columns(definition: &str, column: &str) -> String {
    match definition.find('(') {
        Some(at) => format!("{}({column}, {}", &definition[..at], &definition[at + 1..]),
        None => definition.to_string(),
    }
}

/// Groups of rows that a global unique would now reject: same key values (in any tenant),
/// ignoring rows the original would not compare (NULL keys unless NULLS NOT DISTINCT, rows
/// outside a partial index's predicate).
pub(super) fn duplicate_count_sql(table: &QualifiedName, unique: &UniqueIndex) -> String {
    let keys: Vec<String> = unique.key_columns.iter().map(|k| format!("({k})")).collect();
    let mut conditions: Vec<String> = Vec::new();
    if !unique.nulls_not_distinct {
        conditions.extend(keys.iter().map(|k| format!("{k} IS NOT NULL")));
    }
    if let Some(predicate) = &unique.predicate {
        conditions.push(format!("({predicate})"));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM {table}{filter} GROUP BY {} HAVING count(*) > 1) repeated",
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(name: &str, definition: &str, tablespace: Option<&str>) -> UniqueIndex {
        UniqueIndex {
            index_name: name.into(),
            constraint: None,
            index_definition: definition.into(),
            key_columns: Vec::new(),
            key_column_names: None,
            predicate: None,
            access_method: "btree".into(),
            nulls_not_distinct: false,
            valid: true,
            is_partition_child: false,
            tablespace: tablespace.map(str::to_string),
        }
    }

    #[test]
    fn index_definitions_get_the_tenant_column_in_front() {
        let table = QualifiedName::new("public", "users");
        let def = "CREATE UNIQUE INDEX users_email_lower ON public.users USING btree (lower(email)) WHERE (deleted_at IS NULL)";
        let original = unique("users_email_lower", def, None);
        let out = rewrite_index_definition(
            &original,
            &table,
            "users_email_lower_tenant_id",
            true,
            Some("tenant_id"),
        )
        .unwrap();
        assert_eq!(
            out,
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_lower_tenant_id ON public.users USING btree (tenant_id, lower(email)) WHERE (deleted_at IS NULL)"
        );
        // pg_get_indexdef() leaves the tablespace out: it is put back where the grammar has it.
        let original = unique("users_email_lower", def, Some("fast"));
        let out =
            rewrite_index_definition(&original, &table, "users_email_lower_global", true, None).unwrap();
        assert_eq!(
            out,
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_lower_global ON public.users USING btree (lower(email)) TABLESPACE fast WHERE (deleted_at IS NULL)"
        );
        let quoted = QualifiedName::new("Sales", "Order Items");
        let def = "CREATE UNIQUE INDEX \"UQ\" ON ONLY \"Sales\".\"Order Items\" USING btree (\"Code\") INCLUDE (x) NULLS NOT DISTINCT";
        let out = rewrite_index_definition(&unique("UQ", def, None), &quoted, "uq2", false, Some("Tenant"))
            .unwrap();
        assert_eq!(
            out,
            "CREATE UNIQUE INDEX uq2 ON \"Sales\".\"Order Items\" USING btree (\"Tenant\", \"Code\") INCLUDE (x) NULLS NOT DISTINCT"
        );
        let plain = unique("x", "CREATE INDEX x ON t USING btree (a)", None);
        assert!(rewrite_index_definition(&plain, &table, "y", true, None).is_none());
    }

    #[test]
    fn constraint_definitions_get_back_the_index_parameters_pg_get_constraintdef_leaves_out() {
        let table = QualifiedName::new("public", "users");
        let def = "CREATE UNIQUE INDEX users_email_key ON ONLY public.users USING btree (email) WITH (fillfactor='70')";
        let original = unique("users_email_key", def, Some("fast disk"));
        let info = |definition: &str, deferrable: bool| UniqueConstraintInfo {
            definition: definition.into(),
            deferrable,
            initially_deferred: deferrable,
            inherited: false,
        };
        let deferred = info("UNIQUE (email) DEFERRABLE INITIALLY DEFERRED", true);
        assert_eq!(
            constraint_with_index_parameters(&deferred, &original, &table),
            "UNIQUE (email) WITH (fillfactor='70') USING INDEX TABLESPACE \"fast disk\" DEFERRABLE INITIALLY DEFERRED"
        );
        // A column whose quoted name holds the word is not the clause.
        let odd = info("UNIQUE (\"x DEFERRABLE\")", false);
        assert_eq!(
            constraint_with_index_parameters(&odd, &original, &table),
            "UNIQUE (\"x DEFERRABLE\") WITH (fillfactor='70') USING INDEX TABLESPACE \"fast disk\""
        );
        let def = "CREATE UNIQUE INDEX users_pkey ON ONLY public.users USING btree (id)";
        let original = unique("users_pkey", def, None);
        let key = info("PRIMARY KEY (id)", false);
        assert_eq!(constraint_with_index_parameters(&key, &original, &table), "PRIMARY KEY (id)");
    }

    #[test]
    fn constraint_definitions_splice_after_the_first_parenthesis() {
        assert_eq!(splice_constraint_columns("UNIQUE (a, b)", "tenant_id"), "UNIQUE (tenant_id, a, b)");
        assert_eq!(
            splice_constraint_columns("UNIQUE NULLS NOT DISTINCT (a)", "t"),
            "UNIQUE NULLS NOT DISTINCT (t, a)"
        );
    }
}
