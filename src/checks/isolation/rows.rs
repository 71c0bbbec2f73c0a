//! Rows made for the probe. Every value is read as text by the tool's own (RLS-bypassing)
//! role and written back as a typed literal, so a statement run as the probe role never reads
//! a row under RLS, and a reproduction script carries the exact values.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{ADMIN, Outcome, Prober, Refusal, UNIQUE_VIOLATION, literal_for};
use crate::catalog::{ForeignKey, Table, TableKind};
use crate::checks::CheckError;
use crate::sql::{QualifiedName, ident_list, quote_ident, quote_literal};

/// Keys of a row's JSON that locate it (not columns).
pub(super) const CTID: &str = "tenantize:ctid";
pub(super) const TABLEOID: &str = "tenantize:tableoid";

/// What a new row is made of.
pub(super) struct RowSpec<'s> {
    /// The relation inserted into (a root, or a partition probed directly).
    pub target: &'s Table,
    /// The copied row: text values per column.
    pub source: &'s Value,
    pub tenant: char,
    /// Foreign keys point at this tenant's parents…
    pub parents: char,
    /// …except this one, which points at the other tenant's.
    pub cross: Option<&'s str>,
    /// Columns given fresh values besides the primary key's (other uniques' columns).
    pub fresh: Vec<String>,
    /// Columns that keep the copied row's values even in the primary key (the unique under
    /// test: a fresh value there would test nothing).
    pub keep: Vec<String>,
}

/// The type `format_type()` prints without its modifier and schema: `character varying(255)`
/// is `character varying`, `public.citext` is `citext`, `numeric(10,2)` is `numeric`.
fn base_type(printed: &str) -> &str {
    let bare = printed.split('(').next().unwrap_or(printed).trim_end();
    if printed.ends_with("[]") {
        return printed;
    }
    bare.rsplit('.').next().unwrap_or(bare)
}

/// The identifiers (unquoted words) of a SQL text.
pub(super) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `jsonb_build_object('col', prefix."col"::text, …)`, in chunks (a function takes at most
/// 100 arguments), plus the row's location when the table has no primary key to find it by.
fn text_object(table: &Table, prefix: &str) -> String {
    let parts: Vec<String> = table
        .columns
        .chunks(40)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|c| format!("{}, {prefix}{}::text", quote_literal(&c.name), quote_ident(&c.name)))
                .collect();
            format!("jsonb_build_object({})", pairs.join(", "))
        })
        .collect();
    let mut object = if parts.is_empty() { "'{}'::jsonb".to_string() } else { parts.join(" || ") };
    if table.primary_key.is_none() {
        object.push_str(&format!(
            " || jsonb_build_object({}, {prefix}ctid::text, {}, {prefix}tableoid::oid::text)",
            quote_literal(CTID),
            quote_literal(TABLEOID)
        ));
    }
    object
}

/// What an INSERT returns: every column, and the location without a primary key. No function
/// or cast: Citus refuses any that is not IMMUTABLE in a RETURNING clause (`::text` of a
/// timestamptz is STABLE), so the values are read as text through the simple protocol.
fn returning_list(table: &Table) -> String {
    if table.primary_key.is_none() { "*, ctid, tableoid".into() } else { "*".into() }
}

/// The row a simple-protocol query returned, as the JSON `text_object` builds.
fn row_object(row: &tokio_postgres::SimpleQueryRow) -> Value {
    let mut object = serde_json::Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let key = match column.name() {
            "ctid" => CTID,
            "tableoid" => TABLEOID,
            name => name,
        };
        let value = row.get(i).map(|v| Value::String(v.to_string())).unwrap_or(Value::Null);
        object.insert(key.to_string(), value);
    }
    Value::Object(object)
}

/// One row of `from` matching `conditions` (unqualified columns), as `text_object`'s JSON.
fn row_query(from: &Table, conditions: &[String]) -> String {
    let mut all = vec!["true".to_string()];
    all.extend(conditions.iter().map(|c| format!("({c})")));
    format!("SELECT {} FROM {} src WHERE {} LIMIT 1", text_object(from, "src."), from.name, all.join(" AND "))
}

impl Prober<'_> {
    /// A fresh value for `column` as a typed literal, computed as the admin over the whole
    /// partition tree (under RLS a `max()` would see one tenant's rows only), or None when
    /// the type has no obvious fresh value.
    async fn fresh_value(&mut self, table: &Table, column: &str) -> Result<Option<String>, String> {
        let Some(col) = table.column(column) else { return Ok(None) };
        self.counter += 1;
        let q = quote_ident(column);
        let root = self.catalog.partition_root(&table.name);
        let ty = col.data_type.as_str();
        let sql = match base_type(ty) {
            "smallint" | "integer" | "bigint" | "numeric" => {
                format!("SELECT (coalesce(max({q}), 0) + {})::text FROM {root}", 1000 + self.counter)
            }
            "uuid" => "SELECT gen_random_uuid()::text".into(),
            "text" | "character varying" | "citext" => {
                format!("SELECT 'p{}' || left(md5(random()::text), 10)", self.counter)
            }
            _ => return Ok(None),
        };
        let value: String = self
            .reader
            .query_one(sql.as_str(), &[])
            .await
            .map_err(|e| crate::db::describe_pg_error(&e))?
            .get(0);
        Ok(Some(format!("{}::{ty}", quote_literal(&value))))
    }

    /// One existing row of `from` matching `conditions` (unqualified columns), as text values.
    pub(super) async fn fetch_row(
        &self,
        from: &Table,
        conditions: &[String],
    ) -> Result<Option<Value>, String> {
        let sql = row_query(from, conditions);
        match self.reader.query_opt(sql.as_str(), &[]).await {
            Ok(row) => Ok(row.map(|r| r.get(0))),
            Err(e) => Err(crate::db::describe_pg_error(&e)),
        }
    }

    /// One of tenant A's rows of `from` (the probe's own included) matching `conditions`. On
    /// Citus only the probe role can see the rows it made (see citus.rs), so it reads them.
    pub(super) async fn fetch_row_of_a(
        &self,
        from: &Table,
        conditions: &[String],
    ) -> Result<Option<Value>, String> {
        if !self.citus {
            return self.fetch_row(from, conditions).await;
        }
        // One row always (NULL for none): the read is judged by `read_one`.
        let sql = format!("SELECT ({})", row_query(from, conditions));
        let fail = |e: CheckError| e.to_string();
        self.as_probe(Some('a')).await.map_err(fail)?;
        let read = self.read_one(&sql).await.map_err(fail)?;
        self.as_admin(None).await.map_err(fail)?;
        read.map(|r| r.get::<_, Option<Value>>(0)).map_err(|r| r.message)
    }

    /// `prefix.pk = value AND …` for `row`, or its ctid without a primary key.
    pub(super) fn where_row(&self, table: &Table, row: &Value, prefix: &str) -> String {
        match &table.primary_key {
            Some(pk) => pk
                .columns
                .iter()
                .map(|c| {
                    let ty = table.column(c).map(|c| c.data_type.as_str()).unwrap_or("text");
                    format!("{prefix}{} = {}::{ty}", quote_ident(c), literal_for(&row[c]))
                })
                .collect::<Vec<_>>()
                .join(" AND "),
            None => format!(
                "{prefix}tableoid = {}::oid AND {prefix}ctid = {}::tid",
                literal_for(&row[TABLEOID]),
                literal_for(&row[CTID])
            ),
        }
    }

    /// The INSERT for `spec`, with literal values only.
    pub(super) async fn row_insert(&mut self, spec: &RowSpec<'_>) -> Result<String, String> {
        let table = spec.target;
        let pinned = self.pinned_columns(table);
        let fk_columns = self.fk_columns(table);
        let is_fk = |c: &str| fk_columns.iter().any(|(f, _, _)| f.as_str() == c);
        let partition_keys = self.partition_key_columns(table);
        let pk: Vec<String> = table.primary_key.as_ref().map(|p| p.columns.clone()).unwrap_or_default();
        // Fresh key values first: a self-reference may point at the row itself.
        let mut fresh: Vec<(String, String)> = Vec::new();
        for c in pk.iter().chain(spec.fresh.iter()) {
            let keyed = pk.contains(c);
            if *c == self.tenancy.column
                || spec.keep.contains(c)
                || is_fk(c)
                || (pinned.contains(c) && !keyed && (!self.fresh_checked || partition_keys.contains(c)))
                || fresh.iter().any(|(f, _)| f == c)
            {
                continue;
            }
            if keyed && partition_keys.contains(c) {
                continue;
            }
            if let Some(v) = self.fresh_value(table, c).await? {
                fresh.push((c.clone(), v));
            }
        }
        let other = if spec.parents == 'a' { 'b' } else { 'a' };
        let root = self.catalog.partition_root(&table.name).clone();
        let (mut columns, mut values, mut overriding) = (Vec::new(), Vec::new(), false);
        // Per referenced table, the foreign key that points at its first clone; a second
        // foreign key to it points at the second clone, only where this row needs two
        // parents (any other copy must repeat the values of the row it copies: a unique's
        // probe tests exactly those).
        let apart = self.needs_second_parent(table, spec.source);
        let mut first_fk: BTreeMap<QualifiedName, String> = BTreeMap::new();
        for col in &table.columns {
            let own_fresh = fresh.iter().find(|(f, _)| *f == col.name).map(|(_, v)| v.clone());
            if col.generated.is_some() || (col.identity.as_deref() == Some("a") && own_fresh.is_none()) {
                continue;
            }
            let value = if col.name == self.tenancy.column {
                self.tenant_literal(spec.tenant)
            } else if let Some((_, fk, i)) = fk_columns.iter().find(|(f, _, _)| *f == col.name) {
                let from = if spec.cross == Some(fk.name.as_str()) { other } else { spec.parents };
                let referenced = &fk.referenced_columns[*i];
                // NULL where the copied row has NULL: a CHECK such as "at most one of these
                // references" holds for the copy as it holds for the original.
                let null_in_source = spec.source[col.name.as_str()].is_null();
                let first = first_fk.entry(fk.referenced_table.clone()).or_insert_with(|| fk.name.clone());
                let key = (fk.referenced_table.clone(), from);
                let second = self.second_parents.get(&key);
                // A reference a CHECK keeps apart from another stays with the pair's parents.
                let parent = if spec.fresh.contains(&col.name) && !apart.contains(&fk.referenced_table) {
                    // A reference asked fresh (another unique holds it, not the one under
                    // test): the second parent where it differs from the copied row's.
                    let differs = |p: &&Value| spec.source[col.name.as_str()] != p[referenced.as_str()];
                    let first_clone = self.clones.get(&key);
                    second.filter(differs).or(first_clone)
                } else {
                    match second {
                        Some(second) if *first != fk.name && apart.contains(&fk.referenced_table) => {
                            Some(second)
                        }
                        _ => self.clones.get(&key),
                    }
                };
                match parent {
                    _ if !col.not_null && null_in_source && spec.cross != Some(fk.name.as_str()) => {
                        "NULL".into()
                    }
                    Some(parent) => format!("{}::{}", literal_for(&parent[referenced]), col.data_type),
                    None if !col.not_null => "NULL".into(),
                    None if *self.catalog.partition_root(&fk.referenced_table) == root
                        && fresh.iter().any(|(f, _)| f == referenced) =>
                    {
                        // A self-reference with no row of this tenant yet: the row itself.
                        fresh.iter().find(|(f, _)| f == referenced).map(|(_, v)| v.clone()).expect("found")
                    }
                    None => {
                        return Err(format!(
                            "needs a row of {} in this tenant first ({} is NOT NULL)",
                            fk.referenced_table.display_plain(),
                            col.name
                        ));
                    }
                }
            } else if let Some(v) = own_fresh {
                overriding |= col.identity.as_deref() == Some("a");
                v
            } else {
                match &spec.source[col.name.as_str()] {
                    Value::Null => "NULL".into(),
                    v => format!("{}::{}", literal_for(v), col.data_type),
                }
            };
            columns.push(col.name.clone());
            values.push(value);
        }
        Ok(format!(
            "INSERT INTO {} ({}){} VALUES ({})",
            table.name,
            ident_list(&columns),
            if overriding { " OVERRIDING SYSTEM VALUE" } else { "" },
            values.join(", ")
        ))
    }

    /// Insert `sql` as the current role in a savepoint; the new row as text values.
    pub(super) async fn insert_returning(&mut self, table: &Table, sql: &str) -> Result<Value, Refusal> {
        self.savepoints += 1;
        let sp = format!("row_{}", self.savepoints);
        let fail = |e: tokio_postgres::Error| Refusal::from_error(&e);
        self.client
            .batch_execute(&format!("SAVEPOINT {sp}; SET CONSTRAINTS ALL IMMEDIATE"))
            .await
            .map_err(fail)?;
        let returning = format!("{sql} RETURNING {}", returning_list(table));
        let returned = self.client.simple_query(returning.as_str()).await.map(|messages| {
            messages.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row_object(&row)),
                _ => None,
            })
        });
        match returned {
            Ok(row) => {
                self.client.batch_execute(&format!("RELEASE SAVEPOINT {sp}")).await.map_err(fail)?;
                row.ok_or_else(|| Refusal::other("the insert returned no row"))
            }
            Err(e) => {
                self.client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {sp}")).await.map_err(fail)?;
                Err(Refusal::from_error(&e))
            }
        }
    }

    /// Make a row as the admin (with the application's search_path, for its triggers) and
    /// keep its statement for the reproduction scripts.
    pub(super) async fn make_row(&mut self, spec: &RowSpec<'_>) -> Result<Value, Refusal> {
        let sql = self.row_insert(spec).await.map_err(Refusal::other)?;
        let made = self.insert_returning(spec.target, &sql).await;
        if made.is_ok() {
            let root = self.catalog.partition_root(&spec.target.name).clone();
            self.script.push((root, sql.clone()));
        }
        self.last_sql = Some(sql);
        made
    }

    /// One row per table for `tenant` (per leaf partition for partitioned tables), parents
    /// first.
    pub(super) async fn clone_rows(
        &mut self,
        roots: &[QualifiedName],
        tenant: char,
    ) -> Result<(), CheckError> {
        for name in roots {
            let root = self.table(name);
            let leaves: Vec<&Table> = if root.kind == TableKind::Partitioned {
                self.catalog
                    .partition_descendants(name)
                    .into_iter()
                    .filter(|t| t.kind == TableKind::Ordinary)
                    .collect()
            } else {
                vec![root]
            };
            for leaf in leaves {
                self.as_admin(Some(tenant)).await?;
                let made = match self.fetch_row(leaf, &[]).await {
                    Ok(Some(source)) => {
                        for parent in self.needs_second_parent(root, &source) {
                            self.make_second_parent(&parent, tenant).await;
                        }
                        let fresh = self.referenced_columns(root);
                        let retry = !fresh.is_empty();
                        let spec = RowSpec {
                            target: root,
                            source: &source,
                            tenant,
                            parents: tenant,
                            cross: None,
                            fresh,
                            keep: Vec::new(),
                        };
                        match self.make_row(&spec).await {
                            // A fresh value the table refuses (a trigger, a domain): the copy
                            // as is, whose references the probe then reports it cannot tell
                            // apart.
                            Err(_) if retry => self.make_row(&RowSpec { fresh: Vec::new(), ..spec }).await,
                            made => made,
                        }
                    }
                    Ok(None) => Err(Refusal::other("the table has no row to copy")),
                    Err(e) => Err(Refusal::other(e)),
                };
                self.as_admin(None).await?;
                match made {
                    Ok(row) => {
                        let mut at = leaf.name.clone();
                        self.clones.insert((at.clone(), tenant), row.clone());
                        while let Some(parent) = self.table(&at).partition_of.clone() {
                            self.clones.entry((parent.clone(), tenant)).or_insert_with(|| row.clone());
                            at = parent;
                        }
                    }
                    Err(why) => self.clone_refused(root, leaf, tenant, why),
                }
            }
        }
        Ok(())
    }

    /// The tables a copy of `source` needs two different rows of: two foreign keys of `table`
    /// to one table with different values in the source, a CHECK reading one of them
    /// (`user_id <> follower_id`). Pointed at the one clone, the copy would break the CHECK.
    fn needs_second_parent(&self, table: &Table, source: &Value) -> Vec<QualifiedName> {
        let pinned = self.pinned_columns(table);
        let mut fks: Vec<ForeignKey> = Vec::new();
        for (_, fk, _) in self.fk_columns(table) {
            if !fks.iter().any(|f| f.name == fk.name) {
                fks.push(fk);
            }
        }
        let value_of = |fk: &ForeignKey, referenced: &str| {
            let i = fk.referenced_columns.iter().position(|r| r == referenced)?;
            Some(&source[fk.columns[i].as_str()]).filter(|v| !v.is_null())
        };
        let mut out: Vec<QualifiedName> = Vec::new();
        for (i, first) in fks.iter().enumerate() {
            for second in &fks[i + 1..] {
                let read = first.columns.iter().chain(&second.columns).any(|c| pinned.contains(c));
                let differ = first.referenced_columns.iter().any(
                    |r| matches!((value_of(first, r), value_of(second, r)), (Some(a), Some(b)) if a != b),
                );
                if second.referenced_table == first.referenced_table
                    && read
                    && differ
                    && !out.contains(&first.referenced_table)
                {
                    out.push(first.referenced_table.clone());
                }
            }
        }
        out
    }

    /// A reference of `table` asked `fresh` (another unique holds it) cannot take a fresh
    /// value: a copy points it at a second parent of tenant A, made here when there is none.
    pub(super) async fn second_parents_for_fresh(
        &mut self,
        table: &Table,
        fresh: &[String],
    ) -> Result<(), crate::checks::CheckError> {
        for (_, fk, _) in self.fk_columns(table) {
            if fk.columns.iter().any(|c| *c != self.tenancy.column && fresh.contains(c)) {
                self.as_admin(Some('a')).await?;
                self.make_second_parent(&fk.referenced_table, 'a').await;
                self.as_admin(None).await?;
            }
        }
        Ok(())
    }

    /// A second row of `name` for `tenant`, copied from its first clone with fresh values for
    /// its keys and uniques. When it cannot be made the copy falls back to the first clone.
    async fn make_second_parent(&mut self, name: &QualifiedName, tenant: char) {
        let key = (name.clone(), tenant);
        if self.second_parents.contains_key(&key) {
            return;
        }
        let Some(first) = self.clones.get(&key).cloned() else { return };
        let target = self.table(name);
        // Only where the row's table is known (a partitioned parent's lands in some leaf,
        // and the read probes count rows per leaf).
        if target.kind != TableKind::Ordinary || target.partition_of.is_some() {
            return;
        }
        // Every unique's columns, those an expression reads too (`lower(email)`).
        let mut fresh: Vec<String> = target
            .uniques
            .iter()
            .flat_map(|u| super::uniques::columns_read(target, u))
            .filter(|c| *c != self.tenancy.column)
            .collect();
        fresh.sort();
        fresh.dedup();
        let spec =
            RowSpec { target, source: &first, tenant, parents: tenant, cross: None, fresh, keep: Vec::new() };
        if let Ok(row) = self.make_row(&spec).await {
            self.second_parents.insert(key, row);
        }
    }

    /// A clone refused by a unique that is not tenant-scoped is a leak (a new tenant may not
    /// hold a value another tenant holds); any other refusal leaves the table not proven.
    fn clone_refused(&mut self, root: &Table, leaf: &Table, tenant: char, why: Refusal) {
        let global = why.code == UNIQUE_VIOLATION
            && why.constraint.as_ref().is_some_and(|name| {
                [root, leaf].iter().flat_map(|t| t.uniques.iter()).any(|u| {
                    u.index_name == *name
                        && !u.key_columns.iter().any(|c| *c == self.tenancy.column || *c == self.qcol)
                })
            });
        let who = tenant.to_ascii_uppercase();
        if global && tenant == 'b' {
            let statement = self.last_sql.clone();
            self.record_sql(
                &root.name.display_plain(),
                false,
                "a unique value may repeat in another tenant",
                Outcome::Leak,
                format!("refused: {} (copying an existing row into a new tenant)", why.message),
                statement.as_deref().map(|s| (ADMIN, s)),
            );
        } else {
            self.record(
                &leaf.name.display_plain(),
                false,
                &format!("a row of tenant {who} can be made"),
                Outcome::NotProven,
                why.message,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base_types_drop_modifiers_and_schemas() {
        assert_eq!(super::base_type("character varying(255)"), "character varying");
        assert_eq!(super::base_type("public.citext"), "citext");
        assert_eq!(super::base_type("numeric(10,2)"), "numeric");
        assert_eq!(super::base_type("text"), "text");
        assert_eq!(super::base_type("character varying(20)[]"), "character varying(20)[]");
    }
}
