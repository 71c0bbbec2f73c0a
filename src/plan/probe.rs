//! The catalog questions a part's states are made of: each function returns a boolean SQL
//! expression, true when the database holds what it names. They read only `pg_catalog`, name
//! everything through `to_regclass` (so a missing relation reads false instead of failing),
//! and combine with [`all`], [`any`] and [`not`]; [`holds`] makes a state's query of one.

use crate::sql::{QualifiedName, quote_literal};

fn regclass(name: &QualifiedName) -> String {
    format!("pg_catalog.to_regclass({})", quote_literal(&name.to_string()))
}

/// `SELECT <expression>`: a state's query.
pub fn holds(expression: String) -> String {
    format!("SELECT {expression}")
}

pub fn all(parts: &[String]) -> String {
    match parts {
        [] => "true".to_string(),
        [one] => one.clone(),
        _ => parts.iter().map(|p| format!("({p})")).collect::<Vec<_>>().join(" AND "),
    }
}

pub fn any(parts: &[String]) -> String {
    match parts {
        [] => "false".to_string(),
        [one] => one.clone(),
        _ => parts.iter().map(|p| format!("({p})")).collect::<Vec<_>>().join(" OR "),
    }
}

pub fn not(part: String) -> String {
    format!("NOT ({part})")
}

/// A relation (table, index, view) of that name exists.
pub fn relation_exists(name: &QualifiedName) -> String {
    format!("{} IS NOT NULL", regclass(name))
}

/// The column's attribute number in `table` (NULL when either is missing).
fn attnum(table: &QualifiedName, column: &str) -> String {
    format!(
        "(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = {} AND a.attname = {} AND NOT a.attisdropped)",
        regclass(table),
        quote_literal(column)
    )
}

pub fn column_exists(table: &QualifiedName, column: &str) -> String {
    format!("{} IS NOT NULL", attnum(table, column))
}

pub fn column_not_null(table: &QualifiedName, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {} AND a.attname = {} AND a.attnotnull AND NOT a.attisdropped)",
        regclass(table),
        quote_literal(column)
    )
}

/// The planner has statistics for the column with no NULLs in them (`pg_stats`, gathered after
/// the column was filled), or there is nothing ANALYZE would store: it found the table empty
/// (`reltuples = 0`, no statistics stored), or the table is partitioned with no partitions
/// (ANALYZE skips it). Once row security is active for this role on the table (stage 8's
/// FORCE, for an owner without BYPASSRLS, as on managed databases), `pg_stats` hides the
/// table's rows from it: the statistics were taken before stage 8 (this step comes first)
/// and stay until the column goes, so the step reads as done rather than failing its check.
pub fn column_analyzed(table: &QualifiedName, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_stats s WHERE s.schemaname = {} AND s.tablename = {} \
         AND s.attname = {} AND s.null_frac = 0) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {} AND (c.reltuples = 0 \
         OR (c.relkind = 'p' AND NOT c.relhassubclass) OR pg_catalog.row_security_active(c.oid)))",
        quote_literal(&table.schema),
        quote_literal(&table.name),
        quote_literal(column),
        regclass(table)
    )
}

/// The index exists and is valid (a finished build).
pub fn index_valid(index: &QualifiedName) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = {} AND i.indisvalid AND i.indisready)",
        regclass(index)
    )
}

/// The index exists but is not valid (an interrupted or failed concurrent build).
pub fn index_invalid(index: &QualifiedName) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = {} AND NOT (i.indisvalid AND i.indisready))",
        regclass(index)
    )
}

/// The index's first key column is `column` of its table.
pub fn index_leads_with(index: &QualifiedName, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indexrelid = {} AND a.attname = {})",
        regclass(index),
        quote_literal(column)
    )
}

/// `column` of the index's table is one of the index's included (non-key) columns.
pub fn index_includes(index: &QualifiedName, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attname = {} WHERE i.indexrelid = {} \
         AND a.attnum IN (SELECT i.indkey[k] FROM generate_series(i.indnkeyatts, i.indnatts - 1) k))",
        quote_literal(column),
        regclass(index)
    )
}

/// A constraint of that name and type (`u`, `f`, `c`, `p`, `x`) exists on `table`.
pub fn constraint_exists(table: &QualifiedName, name: &str, kind: char) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} AND c.contype = {})",
        regclass(table),
        quote_literal(name),
        quote_literal(&kind.to_string())
    )
}

pub fn constraint_validated(table: &QualifiedName, name: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} AND c.convalidated)",
        regclass(table),
        quote_literal(name)
    )
}

/// The constraint's index (a unique or primary key) leads with `column`.
pub fn constraint_index_leads_with(table: &QualifiedName, name: &str, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_index i ON i.indexrelid = c.conindid \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE c.conrelid = {} AND c.conname = {} AND a.attname = {})",
        regclass(table),
        quote_literal(name),
        quote_literal(column)
    )
}

/// The foreign key's first column is `column` (a composite tenant key).
pub fn foreign_key_leads_with(table: &QualifiedName, name: &str, column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} \
         AND c.contype = 'f' AND c.conkey[1] = {})",
        regclass(table),
        quote_literal(name),
        attnum(table, column)
    )
}

pub fn policy_exists(table: &QualifiedName, policy: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = {} AND p.polname = {})",
        regclass(table),
        quote_literal(policy)
    )
}

/// Row-level security is enabled and forced on `table`.
pub fn rls_forced(table: &QualifiedName) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {} AND c.relrowsecurity AND c.relforcerowsecurity)",
        regclass(table)
    )
}

/// The view runs with its caller's rights.
pub fn view_invoker(view: &QualifiedName) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {} AND 'security_invoker=true' = ANY (c.reloptions))",
        regclass(view)
    )
}

/// A row of `table` matches `condition` (the table must exist: put a [`relation_exists`]
/// state first).
pub fn row_exists(table: &QualifiedName, condition: &str) -> String {
    format!("EXISTS (SELECT 1 FROM {table} WHERE {condition})")
}

/// The value of `setting` in the connected database for the role whose oid `role_oid` (SQL)
/// gives, 0 for the database's own (`pg_db_role_setting`), NULL when it has none.
fn db_role_setting(role_oid: &str, setting: &str) -> String {
    format!(
        "(SELECT substr(c, strpos(c, '=') + 1) FROM pg_catalog.pg_db_role_setting s, \
         unnest(s.setconfig) AS c WHERE s.setrole = {role_oid} \
         AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()) \
         AND split_part(c, '=', 1) = {} LIMIT 1)",
        quote_literal(&setting.to_ascii_lowercase())
    )
}

fn is_not_distinct(scalar: String, value: Option<&str>) -> String {
    let value = value.map(quote_literal).unwrap_or_else(|| "NULL".into());
    format!("{scalar} IS NOT DISTINCT FROM {value}")
}

/// The value of `setting` for `role` in the connected database (`pg_db_role_setting`, what
/// `ALTER ROLE … IN DATABASE … SET` wrote), NULL when it has none. A scalar, not a boolean:
/// compare it with `IS NOT DISTINCT FROM`.
pub fn role_setting(role: &str, setting: &str) -> String {
    db_role_setting(
        &format!("(SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = {})", quote_literal(role)),
        setting,
    )
}

/// The role's `setting` in this database is `value` (`None`: it has none).
pub fn role_setting_is(role: &str, setting: &str, value: Option<&str>) -> String {
    is_not_distinct(role_setting(role, setting), value)
}

/// The database's own `setting` (`ALTER DATABASE … SET`) is `value` (`None`: it has none).
pub fn database_setting_is(setting: &str, value: Option<&str>) -> String {
    is_not_distinct(db_role_setting("0", setting), value)
}

/// The column's default as `pg_get_expr` prints it (NULL without one).
fn column_default(table: &QualifiedName, column: &str) -> String {
    format!(
        "(SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
         WHERE d.adrelid = {} AND d.adnum = {})",
        regclass(table),
        attnum(table, column)
    )
}

/// The column's default is exactly `printed`, as `pg_get_expr` prints it.
pub fn column_default_is(table: &QualifiedName, column: &str, printed: &str) -> String {
    format!("{} = {}", column_default(table, column), quote_literal(printed))
}

/// The column's default reads `setting` (`current_setting('…', true)` in it).
pub fn column_default_reads(table: &QualifiedName, column: &str, setting: &str) -> String {
    let call = format!("current_setting({}::text, true)", quote_literal(setting));
    format!("strpos({}, {}) > 0", column_default(table, column), quote_literal(&call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_combine_and_name_relations_safely() {
        let t = QualifiedName::new("Sales", "Order's");
        assert_eq!(relation_exists(&t), "pg_catalog.to_regclass('\"Sales\".\"Order''s\"') IS NOT NULL");
        assert_eq!(all(&[]), "true");
        assert_eq!(any(&["a".into(), "b".into()]), "(a) OR (b)");
        assert_eq!(holds(not(all(&["a".into(), "b".into()]))), "SELECT NOT ((a) AND (b))");
        assert!(foreign_key_leads_with(&t, "fk", "tenant_id").contains("c.conkey[1] = (SELECT a.attnum"));
    }
}
