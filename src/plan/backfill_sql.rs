//! The SQL of a batched backfill, built from the step's [`Backfill`] parameters.
//!
//! Keys travel as text (`$n::text::<type>`), which is also how the last key done is journaled,
//! so any key type that has a text form works (integers, uuids, enums, composite keys).

use super::model::{Backfill, BackfillKey};
use crate::sql::{ident_list, quote_ident, quote_literal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillSql {
    /// Keyset: the last key of the first batch of `$1` rows (no lower bound). Returns the key
    /// as text columns.
    pub upper_first: String,
    /// Keyset: the last key of the batch of `$k+1` rows after `$1..$k` (the previous batch's
    /// last key). The engine sizes each batch itself (see `engine::backfill`).
    pub upper_next: String,
    /// Keyset: fill the rows up to and including `$1..$k`.
    pub update_first: String,
    /// Keyset: fill the rows after `$1..$k` up to and including `$k+1..$2k`.
    /// Ctid: fill the rows in heap blocks `[$1, $2)`.
    pub update_next: String,
    /// Keyset: read back the rows `update_first` / `update_next` just filled (same parameters),
    /// so their pages get their hint bits while still in shared buffers (see `engine::backfill`).
    pub read_back_first: String,
    pub read_back_next: String,
    /// Ctid: the number of heap blocks.
    pub block_count: String,
    /// Rows still without a tenant.
    pub remaining: String,
}

pub fn backfill_sql(b: &Backfill) -> BackfillSql {
    let table = &b.table;
    let column = quote_ident(&b.column);
    let set = format!("UPDATE {table} SET {column} = {}", b.value_sql);
    let remaining = format!("SELECT count(*) FROM {table} WHERE {column} IS NULL");
    match &b.key {
        BackfillKey::Keyset { columns, types } => {
            let key_list = ident_list(columns);
            let params = |offset: usize| -> String {
                let list: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| format!("${}::text::{ty}", offset + i + 1))
                    .collect();
                list.join(", ")
            };
            let wrap = |text: String| if columns.len() > 1 { format!("({text})") } else { text };
            let keys = wrap(key_list.clone());
            let after = |offset: usize| format!("{keys} > {}", wrap(params(offset)));
            let up_to = |offset: usize| format!("{keys} <= {}", wrap(params(offset)));
            let as_text: Vec<String> = columns.iter().map(|c| format!("{}::text", quote_ident(c))).collect();
            let descending: Vec<String> =
                columns.iter().map(|c| format!("{} DESC", quote_ident(c))).collect();
            let upper = |filter: String, rows_param: usize| {
                format!(
                    "SELECT {} FROM (SELECT {key_list} FROM {table}{filter} ORDER BY {key_list} LIMIT ${rows_param}::text::int8) batch ORDER BY {} LIMIT 1",
                    as_text.join(", "),
                    descending.join(", ")
                )
            };
            let k = columns.len();
            BackfillSql {
                upper_first: upper(String::new(), 1),
                upper_next: upper(format!(" WHERE {}", after(0)), k + 1),
                update_first: format!("{set}\n WHERE {} AND {column} IS NULL", up_to(0)),
                update_next: format!("{set}\n WHERE {} AND {} AND {column} IS NULL", after(0), up_to(k)),
                read_back_first: format!("SELECT count(*) FROM {table} WHERE {}", up_to(0)),
                read_back_next: format!("SELECT count(*) FROM {table} WHERE {} AND {}", after(0), up_to(k)),
                block_count: String::new(),
                remaining,
            }
        }
        BackfillKey::Ctid => BackfillSql {
            upper_first: String::new(),
            upper_next: String::new(),
            update_first: String::new(),
            read_back_first: String::new(),
            read_back_next: String::new(),
            update_next: format!(
                "{set}\n WHERE ctid >= ('(' || $1::text || ',0)')::tid AND ctid < ('(' || $2::text || ',0)')::tid AND {column} IS NULL"
            ),
            block_count: format!(
                "SELECT (pg_catalog.pg_relation_size({}::pg_catalog.regclass) / current_setting('block_size')::int8)::int8",
                quote_literal(&table.to_string())
            ),
            remaining,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::QualifiedName;

    fn spec(key: BackfillKey) -> Backfill {
        Backfill {
            table: QualifiedName::new("app", "Order Lines"),
            column: "tenant_id".into(),
            value_sql: "'1'::bigint".into(),
            key,
            batch_rows: 1000,
            batch_blocks: 20,
            suppress_triggers: false,
        }
    }

    #[test]
    fn composite_keys_compare_as_rows() {
        let sql = backfill_sql(&spec(BackfillKey::Keyset {
            columns: vec!["order_id".into(), "line".into()],
            types: vec!["bigint".into(), "integer".into()],
        }));
        assert_eq!(
            sql.update_next,
            "UPDATE app.\"Order Lines\" SET tenant_id = '1'::bigint\n WHERE (order_id, line) > ($1::text::bigint, $2::text::integer) AND (order_id, line) <= ($3::text::bigint, $4::text::integer) AND tenant_id IS NULL"
        );
        assert_eq!(
            sql.upper_next,
            "SELECT order_id::text, line::text FROM (SELECT order_id, line FROM app.\"Order Lines\" WHERE (order_id, line) > ($1::text::bigint, $2::text::integer) ORDER BY order_id, line LIMIT $3::text::int8) batch ORDER BY order_id DESC, line DESC LIMIT 1"
        );
    }

    #[test]
    fn single_keys_are_not_wrapped() {
        let sql = backfill_sql(&spec(BackfillKey::Keyset {
            columns: vec!["id".into()],
            types: vec!["uuid".into()],
        }));
        assert!(sql.update_first.contains("WHERE id <= $1::text::uuid AND tenant_id IS NULL"));
    }

    #[test]
    fn tables_without_keys_use_block_ranges() {
        let sql = backfill_sql(&spec(BackfillKey::Ctid));
        assert!(sql.update_next.contains("ctid >= ('(' || $1::text || ',0)')::tid"));
        assert!(sql.block_count.contains("'app.\"Order Lines\"'::pg_catalog.regclass"));
    }
}
