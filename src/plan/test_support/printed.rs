//! Texts as PostgreSQL itself makes them, for the catalog builder: default object names and
//! `pg_get_constraintdef()` of a foreign key.

use crate::catalog::ForeignKey;
use crate::sql::{MAX_IDENTIFIER_BYTES, ident_list};

/// PostgreSQL's `makeObjectName()`: `name1_name2_label`, shortening the longer of the two names
/// until the whole fits in 63 bytes (the names PostgreSQL gives keys and indexes by default).
pub(crate) fn pg_object_name(name1: &str, name2: &str, label: &str) -> String {
    let (mut a, mut b) = (name1.to_string(), name2.to_string());
    let total = |a: &str, b: &str| a.len() + label.len() + 1 + if b.is_empty() { 0 } else { b.len() + 1 };
    while total(&a, &b) > MAX_IDENTIFIER_BYTES {
        if a.len() >= b.len() {
            a.pop()
        } else {
            b.pop()
        };
    }
    if b.is_empty() { format!("{a}_{label}") } else { format!("{a}_{b}_{label}") }
}

/// `pg_get_constraintdef()` of a foreign key.
pub(crate) fn fk_definition(fk: &ForeignKey) -> String {
    let action = |code: &str| match code {
        "r" => Some("RESTRICT"),
        "c" => Some("CASCADE"),
        "n" => Some("SET NULL"),
        "d" => Some("SET DEFAULT"),
        _ => None,
    };
    let mut out = format!(
        "FOREIGN KEY ({}) REFERENCES {}({})",
        ident_list(&fk.columns),
        fk.referenced_table,
        ident_list(&fk.referenced_columns)
    );
    if fk.match_type == "f" {
        out.push_str(" MATCH FULL");
    }
    if let Some(a) = action(&fk.on_update) {
        out.push_str(&format!(" ON UPDATE {a}"));
    }
    if let Some(a) = action(&fk.on_delete) {
        out.push_str(&format!(" ON DELETE {a}"));
        if !fk.on_delete_columns.is_empty() {
            out.push_str(&format!(" ({})", ident_list(&fk.on_delete_columns)));
        }
    }
    if fk.deferrable {
        out.push_str(" DEFERRABLE");
    }
    if fk.initially_deferred {
        out.push_str(" INITIALLY DEFERRED");
    }
    if !fk.validated {
        out.push_str(" NOT VALID");
    }
    out
}
