//! The one place identifiers and literals become SQL text.
//!
//! Every name that reaches generated SQL goes through [`quote_ident`]; every value through
//! [`quote_literal`]. The rules mirror PostgreSQL's own `quote_ident()` so that our text matches
//! what `pg_get_*def()` prints for the same objects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// PostgreSQL 15 keywords that are not "unreserved" (`pg_get_keywords()` with `catcode <> 'U'`):
/// these must be quoted when used as identifiers. Sorted for binary search.
const NON_UNRESERVED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Quote an identifier the way PostgreSQL's `quote_ident()` does: bare when it is a plain
/// lower-case name that is not a keyword, double-quoted (with `"` doubled) otherwise.
pub fn quote_ident(name: &str) -> String {
    if is_bare_identifier(name) { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

fn is_bare_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && NON_UNRESERVED_KEYWORDS.binary_search(&name).is_err()
}

/// Quote a string literal. Our sessions run with `standard_conforming_strings = on` (the
/// default since 9.1), so backslashes need no escaping; a literal with a backslash still gets
/// the `E''` form so that it reads the same on a server configured otherwise.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// A `-- ` comment line carrying `text`, which may hold names: a newline or carriage return
/// would end the comment and let the rest run as SQL, so they (and the backslash that
/// escapes them) are written as `\n`, `\r` and `\\`. Always exactly one line, without its
/// line break.
pub fn comment(text: &str) -> String {
    let mut out = String::from("-- ");
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

/// `body` dollar-quoted with a tag that does not occur in it (as pg_dump chooses one):
/// `$tenantize$`, else `$tenantize_1$`, `$tenantize_2$`, … A name inside the body can then
/// never end it early.
pub fn dollar_quote(body: &str) -> String {
    let mut tag = "$tenantize$".to_string();
    let mut n = 0u32;
    while body.contains(&tag) || body.ends_with(&tag[..tag.len() - 1]) {
        n += 1;
        tag = format!("$tenantize_{n}$");
    }
    format!("{tag}{body}{tag}")
}

/// A schema-qualified relation name. Displays and serializes as quoted SQL (`public."Users"`),
/// which reads naturally in a plan file and is never ambiguous about dots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self { schema: schema.into(), name: name.into() }
    }

    /// A name in the same schema as `self`.
    pub fn sibling(&self, name: impl Into<String>) -> Self {
        Self::new(self.schema.clone(), name)
    }

    /// Human-readable, unquoted `schema.name` (for messages, ids and file keys).
    pub fn display_plain(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Parse `[schema.]name` as typed on a command line (unquoted; a dot separates schema).
    pub fn parse_plain(text: &str, default_schema: &str) -> Self {
        match text.split_once('.') {
            Some((schema, name)) => Self::new(schema, name),
            None => Self::new(default_schema, text),
        }
    }
}

impl TryFrom<String> for QualifiedName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        QualifiedName::parse_sql(&text).ok_or_else(|| format!("not a qualified SQL name: {text:?}"))
    }
}

impl From<QualifiedName> for String {
    fn from(q: QualifiedName) -> Self {
        q.to_string()
    }
}

impl QualifiedName {
    /// Parse the quoted SQL form `schema.name` / `"Schema"."Na""me"` that [`fmt::Display`] writes.
    pub fn parse_sql(text: &str) -> Option<Self> {
        let (schema, rest) = parse_identifier(text)?;
        let rest = rest.strip_prefix('.')?;
        let (name, rest) = parse_identifier(rest)?;
        rest.is_empty().then(|| QualifiedName::new(schema, name))
    }
}

/// One identifier at the start of `text`, bare or double-quoted; returns it and the rest.
fn parse_identifier(text: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = text.strip_prefix('"') {
        let mut out = String::new();
        loop {
            let end = rest.find('"')?;
            out.push_str(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    out.push('"');
                    rest = after;
                }
                None => return Some((out, rest)),
            }
        }
    }
    let end = text.find('.').unwrap_or(text.len());
    let word = &text[..end];
    is_bare_identifier(word).then(|| (word.to_string(), &text[end..]))
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Join identifiers into a quoted, comma-separated column list.
pub fn ident_list<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| quote_ident(n.as_ref())).collect::<Vec<_>>().join(", ")
}

/// PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Build an object name from parts, keeping it within 63 bytes. When the natural name is too
/// long it is cut at a character boundary and an 8-hex-digit hash of the full name is appended,
/// so two long names that share a prefix stay distinct (PostgreSQL itself would silently
/// truncate them to the same name).
pub fn bounded_name(natural: &str) -> String {
    if natural.len() <= MAX_IDENTIFIER_BYTES {
        return natural.to_string();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(natural.as_bytes());
    let suffix = format!("_{}", &hex::encode(digest)[..8]);
    let mut cut = MAX_IDENTIFIER_BYTES - suffix.len();
    while !natural.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &natural[..cut], suffix)
}

/// Where the parenthesized list that starts at byte `open` (a `(`) of `text` ends: the byte
/// just past its `)`. Quoted identifiers and string literals (a `WITH` list's values, an
/// expression's constants) may hold parentheses and each other's quotes; a doubled quote
/// inside either reads as two toggles, which leaves the state as it was.
fn list_end(text: &str, open: usize) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (i, c) in text[open..].char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (_, Some(q)) if c == q => quote = None,
            (_, Some(_)) => {}
            ('(', None) => depth += 1,
            (')', None) => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where an index definition's key list ends (just past its `)`), and the span of its INCLUDE
/// list if it has one (from its `(` to just past its `)`), as `pg_get_indexdef()` prints an
/// index on `table`.
fn index_lists(definition: &str, table: &QualifiedName) -> Option<(usize, Option<(usize, usize)>)> {
    let on = [format!(" ON {table} USING "), format!(" ON ONLY {table} USING ")];
    let after_on = on.iter().find_map(|o| definition.find(o.as_str()).map(|at| at + o.len()))?;
    let key_open = after_on + definition[after_on..].find('(')?;
    let key_end = list_end(definition, key_open)?;
    let include = definition[key_end..].strip_prefix(" INCLUDE (").and_then(|_| {
        let open = key_end + " INCLUDE ".len();
        list_end(definition, open).map(|end| (open, end))
    });
    Some((key_end, include))
}

/// Where a `TABLESPACE` clause goes in an index definition printed by `pg_get_indexdef()`
/// (which never prints one): after the key list, INCLUDE, NULLS NOT DISTINCT and WITH, before
/// WHERE; and the span of its `WITH (…)` clause, if it has one.
fn index_tail(definition: &str, table: &QualifiedName) -> Option<(usize, Option<(usize, usize)>)> {
    let (key_end, include) = index_lists(definition, table)?;
    let mut at = include.map_or(key_end, |(_, end)| end);
    if definition[at..].starts_with(" NULLS NOT DISTINCT") {
        at += " NULLS NOT DISTINCT".len();
    }
    let with = match definition[at..].strip_prefix(" WITH (") {
        Some(_) => {
            let end = list_end(definition, at + " WITH ".len())?;
            let span = (at + 1, end);
            at = end;
            Some(span)
        }
        None => None,
    };
    let tail = &definition[at..];
    (tail.is_empty() || tail.starts_with(" WHERE ")).then_some((at, with))
}

/// The index definition with `TABLESPACE tablespace` where PostgreSQL's grammar puts it;
/// `None` when the text does not have the shape `pg_get_indexdef()` prints.
pub fn with_tablespace(definition: &str, table: &QualifiedName, tablespace: &str) -> Option<String> {
    let (at, _) = index_tail(definition, table)?;
    Some(format!("{} TABLESPACE {}{}", &definition[..at], quote_ident(tablespace), &definition[at..]))
}

/// The `WITH (…)` clause of an index definition printed by `pg_get_indexdef()`, if it has one.
pub fn index_storage_clause<'d>(definition: &'d str, table: &QualifiedName) -> Option<&'d str> {
    let (_, with) = index_tail(definition, table)?;
    with.map(|(start, end)| &definition[start..end])
}

/// The index definition with `column` appended to its INCLUDE list (which it gains if it has
/// none); everything else as printed.
pub fn with_included_column(definition: &str, table: &QualifiedName, column: &str) -> Option<String> {
    let (key_end, include) = index_lists(definition, table)?;
    let column = quote_ident(column);
    Some(match include {
        Some((_, end)) => format!("{}, {column}{}", &definition[..end - 1], &definition[end - 1..]),
        None => format!("{} INCLUDE ({column}){}", &definition[..key_end], &definition[key_end..]),
    })
}

/// The inverse of [`with_included_column`]: the definition without `column` where it ends
/// the INCLUDE list; `None` where it does not.
pub fn without_included_column(definition: &str, table: &QualifiedName, column: &str) -> Option<String> {
    let (key_end, include) = index_lists(definition, table)?;
    let (open, end) = include?;
    let column = quote_ident(column);
    let inner = &definition[open + 1..end - 1];
    if inner == column {
        return Some(format!("{}{}", &definition[..key_end], &definition[end..]));
    }
    let kept = inner.strip_suffix(&format!(", {column}"))?;
    Some(format!("{}{kept}{}", &definition[..open + 1], &definition[end - 1..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_included_column_is_appended_and_removed_exactly() {
        let table = QualifiedName::new("public", "t(1)");
        for (plain, covered) in [
            (
                r#"CREATE INDEX i ON public."t(1)" USING btree (a, "b)c" DESC)"#,
                r#"CREATE INDEX i ON public."t(1)" USING btree (a, "b)c" DESC) INCLUDE (tenant_id)"#,
            ),
            (
                r#"CREATE INDEX i ON public."t(1)" USING btree (a) INCLUDE (b, "c(") WHERE (a > 0)"#,
                r#"CREATE INDEX i ON public."t(1)" USING btree (a) INCLUDE (b, "c(", tenant_id) WHERE (a > 0)"#,
            ),
            (
                r#"CREATE INDEX i ON ONLY public."t(1)" USING btree (a) WITH (fillfactor='70')"#,
                r#"CREATE INDEX i ON ONLY public."t(1)" USING btree (a) INCLUDE (tenant_id) WITH (fillfactor='70')"#,
            ),
        ] {
            assert_eq!(with_included_column(plain, &table, "tenant_id").as_deref(), Some(covered));
            assert_eq!(without_included_column(covered, &table, "tenant_id").as_deref(), Some(plain));
            assert_eq!(without_included_column(plain, &table, "tenant_id"), None, "{plain}");
        }
        // Not the last included column, or another table: left alone.
        let other = r#"CREATE INDEX i ON public."t(1)" USING btree (a) INCLUDE (tenant_id, b)"#;
        assert_eq!(without_included_column(other, &table, "tenant_id"), None);
        assert_eq!(with_included_column(other, &QualifiedName::new("public", "u"), "x"), None);
    }

    #[test]
    fn a_tablespace_goes_after_with_and_before_where() {
        let table = QualifiedName::new("public", "t(1)");
        for (plain, placed, with) in [
            (
                r#"CREATE UNIQUE INDEX i ON public."t(1)" USING btree (a)"#,
                r#"CREATE UNIQUE INDEX i ON public."t(1)" USING btree (a) TABLESPACE "fast disk""#,
                None,
            ),
            (
                r#"CREATE UNIQUE INDEX i ON public."t(1)" USING btree (a, lower(b)) INCLUDE (c) NULLS NOT DISTINCT WITH (fillfactor='70') WHERE (b <> ')'::text)"#,
                r#"CREATE UNIQUE INDEX i ON public."t(1)" USING btree (a, lower(b)) INCLUDE (c) NULLS NOT DISTINCT WITH (fillfactor='70') TABLESPACE "fast disk" WHERE (b <> ')'::text)"#,
                Some("WITH (fillfactor='70')"),
            ),
            (
                r#"CREATE INDEX i ON ONLY public."t(1)" USING btree ((a || '(''"'::text)) WITH (deduplicate_items='off')"#,
                r#"CREATE INDEX i ON ONLY public."t(1)" USING btree ((a || '(''"'::text)) WITH (deduplicate_items='off') TABLESPACE "fast disk""#,
                Some("WITH (deduplicate_items='off')"),
            ),
        ] {
            assert_eq!(with_tablespace(plain, &table, "fast disk").as_deref(), Some(placed), "{plain}");
            assert_eq!(index_storage_clause(plain, &table), with, "{plain}");
        }
        // Text of another shape (another table, or a clause this code does not know) is refused.
        let other = r#"CREATE INDEX i ON public.u USING btree (a)"#;
        assert_eq!(with_tablespace(other, &table, "x"), None);
        let unknown = r#"CREATE INDEX i ON public."t(1)" USING btree (a) SOMETHING ELSE"#;
        assert_eq!(with_tablespace(unknown, &table, "x"), None);
    }

    use super::*;

    #[test]
    fn keyword_list_is_sorted_for_binary_search() {
        let mut sorted = NON_UNRESERVED_KEYWORDS.to_vec();
        sorted.sort();
        assert_eq!(sorted, NON_UNRESERVED_KEYWORDS);
    }

    #[test]
    fn plain_names_stay_bare() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("issue_comments2"), "issue_comments2");
        assert_eq!(quote_ident("_x"), "_x");
    }

    #[test]
    fn names_that_need_quotes_get_them() {
        assert_eq!(quote_ident("Users"), "\"Users\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a b"), "\"a b\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_ident("1abc"), "\"1abc\"");
        assert_eq!(quote_ident("bıgınt"), "\"bıgınt\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn unreserved_keywords_stay_bare_like_postgres_does() {
        // `name`, `key` and `action` are unreserved: PostgreSQL prints them bare.
        assert_eq!(quote_ident("name"), "name");
        assert_eq!(quote_ident("key"), "key");
        assert_eq!(quote_ident("action"), "action");
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("abc"), "'abc'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(comment("step public.users"), "-- step public.users");
        let hostile = comment("nl\nDROP TABLE victim; --\r\\n");
        assert_eq!(hostile, "-- nl\\nDROP TABLE victim; --\\r\\\\n");
        assert!(!hostile.contains('\n') && !hostile.contains('\r'));
    }

    #[test]
    fn dollar_quotes_pick_a_tag_the_body_lacks() {
        assert_eq!(dollar_quote(" x "), "$tenantize$ x $tenantize$");
        assert_eq!(dollar_quote("a$tenantize$; DROP"), "$tenantize_1$a$tenantize$; DROP$tenantize_1$");
        assert_eq!(
            dollar_quote("$tenantize$ $tenantize_1$"),
            "$tenantize_2$$tenantize$ $tenantize_1$$tenantize_2$"
        );
        // A body ending in the start of the tag would run into the closing tag.
        assert_eq!(dollar_quote("x$tenantize"), "$tenantize_1$x$tenantize$tenantize_1$");
    }

    #[test]
    fn qualified_names_quote_each_part() {
        let q = QualifiedName::new("Sales", "order items");
        assert_eq!(q.to_string(), "\"Sales\".\"order items\"");
        assert_eq!(q.display_plain(), "Sales.order items");
        assert_eq!(QualifiedName::parse_plain("app.users", "public"), QualifiedName::new("app", "users"));
        assert_eq!(QualifiedName::parse_plain("users", "public"), QualifiedName::new("public", "users"));
    }

    #[test]
    fn qualified_names_round_trip_through_their_sql_form() {
        for (schema, name) in
            [("public", "users"), ("Sales", "order.items"), ("we\"ird", "select"), ("ü", "a b")]
        {
            let q = QualifiedName::new(schema, name);
            assert_eq!(QualifiedName::parse_sql(&q.to_string()), Some(q.clone()), "{q}");
        }
        assert_eq!(QualifiedName::parse_sql("public"), None);
        assert_eq!(QualifiedName::parse_sql("public.Users"), None);
        assert_eq!(QualifiedName::parse_sql("\"a.b"), None);
    }

    #[test]
    fn bounded_names_stay_within_63_bytes_and_distinct() {
        let short = bounded_name("users_tenant_id_fkey");
        assert_eq!(short, "users_tenant_id_fkey");
        let a = bounded_name(&format!("{}_a_idx", "x".repeat(70)));
        let b = bounded_name(&format!("{}_b_idx", "x".repeat(70)));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        let unicode = bounded_name(&"é".repeat(40));
        assert!(unicode.len() <= 63);
        assert!(unicode.is_char_boundary(unicode.len()));
    }
}
