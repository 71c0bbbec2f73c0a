//! The probe's table phases, in the order `run` calls them.

use serde_json::Value;

use super::rows::RowSpec;
use super::{FK_VIOLATION, Outcome, Prober, RLS_VIOLATION, Refusal, UNIQUE_VIOLATION};
use crate::catalog::{Table, TableKind, UniqueIndex};
use crate::checks::{CheckError, query_error};
use crate::db::describe_pg_error;
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// How an attempt that must be refused with `expected` (and, when given, by one of `names`)
/// ended.
fn judged(outcome: &Result<u64, Refusal>, expected: &str, names: Option<&[String]>) -> (Outcome, String) {
    match outcome {
        Ok(n) => (Outcome::Leak, format!("was allowed ({n} rows)")),
        Err(r) if r.code == expected => match (names, &r.constraint) {
            (Some(names), Some(c)) if !names.contains(c) => (
                Outcome::NotProven,
                format!(
                    "refused by {c}, not by {} (another rule came first): {}",
                    names.join(" or "),
                    r.message
                ),
            ),
            _ => (Outcome::Ok, format!("refused: {}", r.message)),
        },
        Err(r) => {
            (Outcome::NotProven, format!("refused for another reason than the one tested: {}", r.message))
        }
    }
}

/// What the probe role may do: read and write every table and sequence of `schemas`.
pub(super) fn grants(role: &str, schemas: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for schema in schemas {
        let s = quote_ident(schema);
        out.push(format!("GRANT USAGE ON SCHEMA {s} TO {role}"));
        out.push(format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role}"));
        out.push(format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {role}"));
    }
    out
}

impl Prober<'_> {
    /// The temporary tenants A, B and C.
    pub(super) fn tenants_insert(&self) -> String {
        let ty = self.tenancy.key_type.sql();
        format!(
            "INSERT INTO {t} ({k}, name) VALUES ({}::{ty}, 'isolation probe A'), ({}::{ty}, 'isolation probe B'), \
             ({}::{ty}, 'isolation probe C')",
            quote_literal(&self.a),
            quote_literal(&self.b),
            quote_literal(&self.c),
            t = self.tenancy.tenant_table,
            k = quote_ident(&self.tenancy.key_column),
        )
    }

    /// The statements that create the probe role, the two tenants and the grants.
    pub(super) fn setup_sql(&self) -> String {
        let mut setup = format!(
            "SET LOCAL row_security = on;\nCREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;\n{};\n",
            self.role,
            self.tenants_insert()
        );
        for grant in grants(&self.role, &self.schemas) {
            setup.push_str(&grant);
            setup.push_str(";\n");
        }
        setup
    }

    /// The temporary role, the two tenants, and grants on every schema involved (on Citus the
    /// role and its grants exist already, and the probe role makes the tenants itself).
    pub(super) async fn setup(&mut self) -> Result<(), CheckError> {
        let commands: Vec<String> = if self.citus {
            super::citus::transaction_setup(self)
        } else {
            self.setup_sql().lines().map(str::to_string).collect()
        };
        // One command at a time: Citus cannot run some commands of a multi-command string
        // (it refuses the grants as nested distributed execution).
        for command in commands {
            self.client.batch_execute(&command).await.map_err(|e| {
                query_error(format!("setting up the isolation probe: {}", describe_pg_error(&e)))
            })?;
        }
        Ok(())
    }

    /// The leaf partitions of `name` (itself for an ordinary table).
    fn leaves(&self, name: &QualifiedName) -> Vec<QualifiedName> {
        let table = self.table(name);
        if table.kind == TableKind::Ordinary {
            return vec![name.clone()];
        }
        let leaves = self.catalog.partition_descendants(name).into_iter();
        leaves.filter(|t| t.kind == TableKind::Ordinary).map(|t| t.name.clone()).collect()
    }

    /// How many of `tenant`'s cloned rows live in `name` (and its partitions).
    fn own_rows(&self, name: &QualifiedName, tenant: char) -> i64 {
        self.leaves(name).into_iter().filter(|l| self.clones.contains_key(&(l.clone(), tenant))).count()
            as i64
    }

    async fn count_as(
        &self,
        tenant: Option<char>,
        sql: &str,
    ) -> Result<Result<(i64, i64), String>, CheckError> {
        self.as_probe(tenant).await?;
        let read = self.read_one(sql).await?;
        self.as_admin(None).await?;
        Ok(read.map(|r| (r.get(0), r.get(1))).map_err(|r| r.message))
    }

    /// Reads: each tenant sees exactly its own rows; no tenant, nothing.
    pub(super) async fn probe_reads(&mut self) -> Result<(), CheckError> {
        let ty = self.tenancy.key_type.sql();
        for name in &self.tenancy.tables.clone() {
            let object = name.display_plain();
            for (key, other) in [('a', 'b'), ('b', 'a')] {
                let id = quote_literal(self.tenant_id(key));
                let probe = format!("tenant {} reads only its rows", key.to_ascii_uppercase());
                let sql = format!(
                    "SELECT count(*), count(*) FILTER (WHERE {c} IS DISTINCT FROM {id}::{ty}) FROM {name}",
                    c = self.qcol
                );
                let (own, others) = (self.own_rows(name, key), self.own_rows(name, other));
                let (outcome, detail) = match self.count_as(Some(key), &sql).await? {
                    Ok((_, foreign)) if foreign > 0 => {
                        (Outcome::Leak, format!("saw {foreign} rows of other tenants"))
                    }
                    Ok(_) if others == 0 => (
                        Outcome::NotProven,
                        format!(
                            "tenant {} has no row here, so there was nothing to hide",
                            other.to_ascii_uppercase()
                        ),
                    ),
                    Ok((seen, _)) if seen != own => {
                        (Outcome::NotProven, format!("saw {seen} of its own {own} rows and none of others"))
                    }
                    Ok((seen, _)) => (Outcome::Ok, format!("saw its {seen} rows, none of other tenants")),
                    Err(e) => (Outcome::NotProven, format!("reading failed: {e}")),
                };
                let repro = format!("SELECT * FROM {name} WHERE {} IS DISTINCT FROM {id}::{ty}", self.qcol);
                self.record_sql(&object, false, &probe, outcome, detail, Some((key, &repro)));
            }
            let sql = format!("SELECT count(*), 0::bigint FROM {name}");
            let rows = self.own_rows(name, 'a') + self.own_rows(name, 'b');
            let (outcome, detail) = match self.count_as(None, &sql).await? {
                Ok((seen, _)) if seen > 0 => (Outcome::Leak, format!("saw {seen} rows")),
                Ok(_) if rows == 0 => (Outcome::NotProven, "no row here to hide".to_string()),
                Ok(_) => (Outcome::Ok, format!("saw 0 of {rows} rows")),
                Err(e) => (Outcome::NotProven, format!("reading failed: {e}")),
            };
            let repro = format!("SET LOCAL {} = '';\nSELECT * FROM {name}", self.setting_name());
            self.record_sql(
                &object,
                false,
                "no tenant set reads nothing",
                outcome,
                detail,
                Some(('a', &repro)),
            );
        }
        Ok(())
    }

    /// Run `sql` as the probe role with `tenant` set.
    async fn attempt_as(&mut self, tenant: char, sql: &str) -> Result<Result<u64, Refusal>, CheckError> {
        self.as_probe(Some(tenant)).await?;
        let outcome = self.attempt(sql).await;
        self.as_admin(None).await?;
        Ok(outcome)
    }

    /// Writes into the other tenant (on the table and on each partition directly), then each
    /// foreign key and each unique, for one root.
    pub(super) async fn probe_writes(&mut self, name: &QualifiedName) -> Result<(), CheckError> {
        let mut relations = vec![name.clone()];
        relations.extend(self.catalog.partition_descendants(name).iter().map(|t| t.name.clone()));
        relations.retain(|r| self.is_scoped(r));
        for relation in &relations {
            let object = relation.display_plain();
            let Some(row_a) = self.clones.get(&(relation.clone(), 'a')).cloned() else {
                let why = "no row of tenant A to write with".to_string();
                self.record(
                    &object,
                    false,
                    "writes into another tenant are refused",
                    Outcome::NotProven,
                    why,
                );
                continue;
            };
            let target = self.table(relation);
            let spec =
                RowSpec { target, source: &row_a, tenant: 'b', parents: 'b', cross: None, fresh: Vec::new() };
            match self.row_insert(&spec).await {
                Ok(sql) => {
                    let outcome = self.attempt_as('a', &sql).await?;
                    let (outcome, detail) = judged(&outcome, RLS_VIOLATION, None);
                    let probe = "inserting a row of another tenant is refused";
                    self.record_sql(&object, false, probe, outcome, detail, Some(('a', &sql)));
                }
                Err(why) => {
                    let probe = "inserting a row of another tenant is refused";
                    self.record(&object, false, probe, Outcome::NotProven, why);
                }
            }
            let sql = format!(
                "UPDATE {relation} SET {c} = {b} WHERE {c} = {a}",
                c = self.qcol,
                b = self.tenant_literal('b'),
                a = self.tenant_literal('a')
            );
            let outcome = match self.attempt_as('a', &sql).await? {
                Ok(0) => (Outcome::NotProven, "tenant A's row was not visible to move".to_string()),
                // Citus refuses any change of a row's distribution column, whatever the row.
                Err(r) if self.citus && r.code == super::views::NOT_SUPPORTED => (
                    Outcome::Ok,
                    format!("refused by Citus (tenant column distributes the table): {}", r.message),
                ),
                other => judged(&other, RLS_VIOLATION, None),
            };
            let probe = "moving a row to another tenant is refused";
            self.record_sql(&object, false, probe, outcome.0, outcome.1, Some(('a', &sql)));
        }
        let Some(row_a) = self.clones.get(&(name.clone(), 'a')).cloned() else { return Ok(()) };
        self.probe_cross_references(name, &row_a).await?;
        let table = self.table(name);
        for unique in table.uniques.iter().filter(|u| !u.is_partition_child) {
            if self.implied_by_primary_key(table, unique) {
                continue;
            }
            self.probe_unique(table, unique, &row_a).await?;
        }
        Ok(())
    }

    /// A unique whose columns include the whole primary key can never repeat with a fresh key.
    fn implied_by_primary_key(&self, table: &Table, unique: &UniqueIndex) -> bool {
        let Some(pk) = &table.primary_key else { return false };
        let Some(columns) = &unique.key_column_names else { return false };
        pk.columns.iter().filter(|c| **c != self.tenancy.column).all(|c| columns.contains(c))
    }

    /// Plain columns of every unique (and the primary key) of `table` outside `keep`.
    fn unique_columns(&self, table: &Table, keep: &[String]) -> Vec<String> {
        let mut out: Vec<String> =
            table.uniques.iter().flat_map(|u| u.key_column_names.clone().unwrap_or_default()).collect();
        out.retain(|c| !keep.contains(c) && *c != self.tenancy.column);
        out.sort();
        out.dedup();
        out
    }

    /// For every foreign key to a tenant table: a row of A made for it, pointing at B's parent,
    /// is refused by that foreign key.
    async fn probe_cross_references(
        &mut self,
        name: &QualifiedName,
        row_a: &Value,
    ) -> Result<(), CheckError> {
        let table = self.table(name);
        let object = name.display_plain();
        let mut tree = vec![table];
        tree.extend(self.catalog.partition_descendants(name));
        let mut foreign_keys: Vec<crate::catalog::ForeignKey> = Vec::new();
        for fk in tree.iter().flat_map(|t| t.foreign_keys.iter()) {
            if !fk.inherited
                && self.is_scoped(&fk.referenced_table)
                && !foreign_keys.iter().any(|f| f.columns == fk.columns)
            {
                foreign_keys.push(fk.clone());
            }
        }
        for fk in foreign_keys {
            let probe = format!(
                "a row pointing at another tenant's {} is refused",
                fk.referenced_table.display_plain()
            );
            if !self.clones.contains_key(&(fk.referenced_table.clone(), 'b')) {
                let why =
                    format!("tenant B has no row in {} to point at", fk.referenced_table.display_plain());
                self.record(&object, false, &probe, Outcome::NotProven, why);
                continue;
            }
            let names: Vec<String> = tree
                .iter()
                .flat_map(|t| t.foreign_keys.iter())
                .filter(|f| f.columns == fk.columns)
                .map(|f| f.name.clone())
                .collect();
            if let Some(why) = self.same_key_in_a(&fk).await? {
                self.record(&object, false, &probe, Outcome::NotProven, why);
                continue;
            }
            match self.cross_reference_sql(table, &fk, row_a).await {
                Ok(sql) => {
                    let outcome = self.attempt_as('a', &sql).await?;
                    let (outcome, detail) = judged(&outcome, FK_VIOLATION, Some(&names));
                    self.record_sql(
                        &object,
                        false,
                        &probe,
                        outcome,
                        format!("{detail} [{}]", fk.name),
                        Some(('a', &sql)),
                    );
                }
                Err(why) => self.record(&object, false, &probe, Outcome::NotProven, why),
            }
        }
        Ok(())
    }

    /// When A has a parent with the very key B's parent has (a generated key, or one copied as
    /// is because the probe cannot change it), a row of A pointing at that key points at A's
    /// own parent: the probe cannot tell the tenants apart through `fk`, so it proves nothing.
    async fn same_key_in_a(&self, fk: &crate::catalog::ForeignKey) -> Result<Option<String>, CheckError> {
        let parent = &self.clones[&(fk.referenced_table.clone(), 'b')];
        let mut conditions = vec![format!("{} = {}", self.qcol, self.tenant_literal('a'))];
        let table = self.catalog.table(&fk.referenced_table);
        for r in fk.referenced_columns.iter().filter(|r| **r != self.tenancy.column) {
            // A NULL key references nothing: the probe's own judgement applies.
            let Some(value) = parent.get(r.as_str()).filter(|v| !v.is_null()) else { return Ok(None) };
            let ty =
                table.and_then(|t| t.column(r)).map(|c| c.data_type.clone()).unwrap_or_else(|| "text".into());
            conditions.push(format!("{} = {}::{ty}", quote_ident(r), super::literal_for(value)));
        }
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
            fk.referenced_table,
            conditions.join(" AND ")
        );
        let found: bool = if self.citus {
            // Only the probe role can read A's new rows (see citus.rs); the query filters on A.
            self.as_probe(Some('a')).await?;
            let read = self.read_one(&sql).await?;
            self.as_admin(None).await?;
            read.map(|r| r.get(0)).map_err(|r| query_error(r.message))?
        } else {
            self.client.query_one(sql.as_str(), &[]).await.map_err(super::db_error)?.get(0)
        };
        Ok(found.then(|| {
            format!(
                "tenant A has a row in {} with the key B's row has ({}: generated or kept as is), so \
                 pointing at it points at A's own",
                fk.referenced_table.display_plain(),
                fk.referenced_columns.join(", ")
            )
        }))
    }

    /// The write that points a row of A at B's parent through `fk`. A's own row, with only the
    /// foreign key's columns changed: every other value stays as it is, so no unique (scoped to
    /// A, which has no row pointing at B's parent) and no CHECK on other columns can refuse it
    /// first. When the primary key holds the foreign key's columns (it is global: B's own row
    /// may hold the new value), a new row instead, its other key columns fresh.
    async fn cross_reference_sql(
        &mut self,
        table: &Table,
        fk: &crate::catalog::ForeignKey,
        row_a: &Value,
    ) -> Result<String, String> {
        let in_pk = table
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.columns.iter().any(|c| *c != self.tenancy.column && fk.columns.contains(c)));
        if in_pk {
            let fresh = self.unique_columns(table, &fk.columns);
            let spec = RowSpec {
                target: table,
                source: row_a,
                tenant: 'a',
                parents: 'a',
                cross: Some(&fk.name),
                fresh,
            };
            return self.row_insert(&spec).await;
        }
        let parent = &self.clones[&(fk.referenced_table.clone(), 'b')];
        let mut sets: Vec<String> = fk
            .columns
            .iter()
            .zip(fk.referenced_columns.iter())
            .filter(|(c, _)| **c != self.tenancy.column)
            .map(|(c, r)| {
                let ty = table.column(c).map(|c| c.data_type.clone()).unwrap_or_else(|| "text".into());
                format!("{} = {}::{ty}", quote_ident(c), super::literal_for(&parent[r.as_str()]))
            })
            .collect();
        // The other nullable references a CHECK reads go NULL: "at most one of these
        // references" would refuse the row before the foreign key under test could.
        let pinned = self.pinned_columns(table);
        let mut others: Vec<String> = self
            .fk_columns(table)
            .into_iter()
            .map(|(c, _, _)| c)
            .filter(|c| {
                !fk.columns.contains(c)
                    && *c != self.tenancy.column
                    && pinned.contains(c)
                    && table.column(c).is_some_and(|col| !col.not_null)
            })
            .collect();
        others.dedup();
        sets.extend(others.iter().map(|c| format!("{} = NULL", quote_ident(c))));
        Ok(format!(
            "UPDATE {} SET {} WHERE {}",
            table.name,
            sets.join(", "),
            self.where_row(table, row_a, "")
        ))
    }

    /// Names a violation of `unique` may carry: its own, or its partitions' indexes'.
    fn unique_names(&self, table: &Table, unique: &UniqueIndex) -> Vec<String> {
        let mut names = vec![unique.index_name.clone()];
        // An identical unique of the same table enforces the same rule: whichever PostgreSQL
        // checks first refuses the row.
        names.extend(
            table
                .uniques
                .iter()
                .filter(|u| {
                    u.index_name != unique.index_name
                        && u.key_columns == unique.key_columns
                        && u.predicate == unique.predicate
                        && u.nulls_not_distinct == unique.nulls_not_distinct
                })
                .map(|u| u.index_name.clone()),
        );
        for part in self.catalog.partition_descendants(&table.name) {
            names.extend(
                part.uniques
                    .iter()
                    .filter(|u| {
                        u.is_partition_child
                            && u.key_columns == unique.key_columns
                            && u.predicate == unique.predicate
                    })
                    .map(|u| u.index_name.clone()),
            );
        }
        names
    }

    /// A row of A that `unique` covers (its predicate holds, its key values are not NULL):
    /// A's clone when it qualifies, else a copy of a row that does.
    async fn row_for_unique(
        &mut self,
        table: &Table,
        unique: &UniqueIndex,
        row_a: &Value,
    ) -> Result<Value, String> {
        let mut conditions: Vec<String> = unique.predicate.iter().cloned().collect();
        if !unique.nulls_not_distinct {
            conditions.extend(
                unique
                    .key_columns
                    .iter()
                    .filter(|c| **c != self.qcol && **c != self.tenancy.column)
                    .map(|c| format!("({c}) IS NOT NULL")),
            );
        }
        let mut own = conditions.clone();
        own.push(self.where_row(table, row_a, ""));
        if let Some(found) = self.fetch_row_of_a(table, &own).await? {
            return Ok(found);
        }
        let Some(source) = self.fetch_row(table, &conditions).await? else {
            return Err(format!(
                "no row has values {} covers (predicate true, keys not NULL)",
                unique.index_name
            ));
        };
        let spec = RowSpec {
            target: table,
            source: &source,
            tenant: 'a',
            parents: 'a',
            cross: None,
            fresh: Vec::new(),
        };
        self.as_admin(Some('a')).await.map_err(|e| e.to_string())?;
        let made = self.make_row(&spec).await;
        self.as_admin(None).await.map_err(|e| e.to_string())?;
        made.map_err(|r| format!("making a row {} covers: {}", unique.index_name, r.message))
    }

    /// `unique`: a copy of A's row (fresh key, other uniques' columns fresh) is refused within
    /// A by this unique, and accepted in tenant C, which has no row of its own (or refused by a
    /// foreign key, never by the unique).
    async fn probe_unique(
        &mut self,
        table: &Table,
        unique: &UniqueIndex,
        row_a: &Value,
    ) -> Result<(), CheckError> {
        let object = table.name.display_plain();
        let (within, across) =
            ("a unique value cannot repeat within a tenant", "a unique value may repeat in another tenant");
        let mark = self.script.len();
        self.client.batch_execute("SAVEPOINT unique_probe").await?;
        let first = match self.row_for_unique(table, unique, row_a).await {
            Ok(row) => row,
            Err(why) => {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT unique_probe; RELEASE SAVEPOINT unique_probe")
                    .await?;
                self.script.truncate(mark);
                self.record(&object, false, within, Outcome::NotProven, why.clone());
                self.record(&object, false, across, Outcome::NotProven, why);
                return Ok(());
            }
        };
        let names = self.unique_names(table, unique);
        let keep = unique.key_column_names.clone().unwrap_or_default();
        let fresh = self.unique_columns(table, &keep);
        for (tenant, probe) in [('a', within), ('c', across)] {
            let spec = RowSpec {
                target: table,
                source: &first,
                tenant,
                parents: 'a',
                cross: None,
                fresh: fresh.clone(),
            };
            let sql = match self.row_insert(&spec).await {
                Ok(sql) => sql,
                Err(why) => {
                    self.record(&object, false, probe, Outcome::NotProven, why);
                    continue;
                }
            };
            let outcome = self.attempt_as(tenant, &sql).await?;
            let (outcome, detail) = if tenant == 'a' {
                judged(&outcome, UNIQUE_VIOLATION, Some(&names))
            } else {
                match &outcome {
                    Ok(_) => (Outcome::Ok, "accepted".to_string()),
                    Err(r) if r.code == FK_VIOLATION => (
                        Outcome::Ok,
                        format!("the unique let it through (a foreign key then refused it: {})", r.message),
                    ),
                    Err(r)
                        if r.code == UNIQUE_VIOLATION
                            && r.constraint.as_ref().is_some_and(|c| names.contains(c)) =>
                    {
                        (Outcome::Leak, format!("refused: {}", r.message))
                    }
                    Err(r) => (
                        Outcome::NotProven,
                        format!("refused for another reason than the one tested: {}", r.message),
                    ),
                }
            };
            let detail = format!("{detail} [{}]", unique.index_name);
            self.record_sql(&object, false, probe, outcome, detail, Some((tenant, &sql)));
        }
        self.client
            .batch_execute("ROLLBACK TO SAVEPOINT unique_probe; RELEASE SAVEPOINT unique_probe")
            .await?;
        self.script.truncate(mark);
        Ok(())
    }
}
