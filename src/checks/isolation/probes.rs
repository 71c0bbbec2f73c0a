//! The probe's table phases, in the order `run` calls them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::rows::RowSpec;
use super::{CHECK_VIOLATION, FK_VIOLATION, Outcome, Prober, RLS_VIOLATION, Refusal};
use crate::catalog::{Table, TableKind};
use crate::checks::{CheckError, query_error};
use crate::db::describe_pg_error;
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// How an attempt that must be refused with `expected` (and, when given, by one of `names`)
/// ended.
pub(super) fn judged(
    outcome: &Result<u64, Refusal>,
    expected: &str,
    names: Option<&[String]>,
) -> (Outcome, String) {
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
        let leaves = self.leaves(name);
        let count = |rows: &BTreeMap<(QualifiedName, char), Value>| {
            leaves.iter().filter(|l| rows.contains_key(&((*l).clone(), tenant))).count() as i64
        };
        count(&self.clones) + count(&self.second_parents)
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
                    Ok((seen, _)) if seen != own => (
                        Outcome::NotProven,
                        format!(
                            "saw {seen} of its own {own} rows and none of others{}",
                            self.own_policies_hint(name)
                        ),
                    ),
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

    /// When `name` has row-level security policies of the application's own (any but the tenant
    /// policy, which reads the tenant setting): a note that they may be what hides rows.
    fn own_policies_hint(&self, name: &QualifiedName) -> String {
        let setting = format!("'{}'", self.tenancy.setting);
        let own: Vec<&str> = self
            .table(name)
            .policies
            .iter()
            .filter(|p| !p.definition.contains(&setting))
            .map(|p| p.name.as_str())
            .collect();
        if own.is_empty() {
            return String::new();
        }
        format!(" (the table has policies of its own, {}, that may hide them)", own.join(", "))
    }

    /// Run `sql` as the probe role with `tenant` set.
    pub(super) async fn attempt_as(
        &mut self,
        tenant: char,
        sql: &str,
    ) -> Result<Result<u64, Refusal>, CheckError> {
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
            let spec = RowSpec {
                target,
                source: &row_a,
                tenant: 'b',
                parents: 'b',
                cross: None,
                fresh: Vec::new(),
                keep: Vec::new(),
            };
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
            match self.cross_reference_sql(table, &fk, row_a, false).await {
                Ok(mut sql) => {
                    let mut outcome = self.attempt_as('a', &sql).await?;
                    if matches!(&outcome, Err(r) if r.code == CHECK_VIOLATION) {
                        // A CHECK came first: once more, clearing every column it ties the
                        // reference to.
                        match self.cross_reference_sql(table, &fk, row_a, true).await {
                            Ok(wide) if wide != sql => {
                                outcome = self.attempt_as('a', &wide).await?;
                                sql = wide;
                            }
                            _ => {}
                        }
                    }
                    let (outcome, detail) = match outcome {
                        // An UPDATE that changed no row wrote nothing across: A's row was not
                        // visible to it (a policy of the application's own hides it) or a
                        // trigger skipped it. An INSERT that made no row here is still judged
                        // a leak: a trigger or rule may have written it elsewhere.
                        Ok(0) if sql.starts_with("UPDATE ") => (
                            Outcome::NotProven,
                            "the UPDATE changed no row (tenant A's row was not visible to it, or a \
                             trigger skipped it), so it proves nothing"
                                .to_string(),
                        ),
                        other => judged(&other, FK_VIOLATION, Some(&names)),
                    };
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

    /// One row of `sql`, a query that filters on tenant A's rows itself, in a savepoint (a
    /// query the server refuses is an answer): as the admin, or on Citus as the probe role
    /// (only it can read A's new rows there, see citus.rs).
    pub(super) async fn read_of_a(
        &self,
        sql: &str,
    ) -> Result<Result<tokio_postgres::Row, Refusal>, CheckError> {
        if self.citus {
            self.as_probe(Some('a')).await?;
            let read = self.read_one(sql).await?;
            self.as_admin(None).await?;
            Ok(read)
        } else {
            self.read_one(sql).await
        }
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
        let found: bool = self.read_of_a(&sql).await?.map_err(|r| query_error(r.message))?.get(0);
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
        clear_checked: bool,
    ) -> Result<String, String> {
        let in_pk = table
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.columns.iter().any(|c| *c != self.tenancy.column && fk.columns.contains(c)));
        if in_pk {
            let fresh = self.unique_columns(table, &fk.columns);
            self.second_parents_for_fresh(table, &fresh).await.map_err(|e| e.to_string())?;
            let spec = RowSpec {
                target: table,
                source: row_a,
                tenant: 'a',
                parents: 'a',
                cross: Some(&fk.name),
                fresh,
                keep: Vec::new(),
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
        // Where the reference under test was NULL and a CHECK reads it, the other nullable
        // references that CHECK reads go NULL: "at most one (or exactly one) of these
        // references" would refuse the row before the foreign key under test could. With
        // `clear_checked` (that CHECK refused the first try), its other nullable columns too:
        // "a subscription or a wallet" (Lago's usage_monitoring_alerts); not at first, since
        // "a wallet needs a threshold" would refuse that. A column no such CHECK reads, or a
        // reference already set, changes nothing the CHECK counts, and clearing it would break
        // "exactly one" (Sanbase's timeline_events).
        let partition_keys = self.partition_key_columns(table);
        let references = self.fk_columns(table);
        let mut others: Vec<String> = fk
            .columns
            .iter()
            .filter(|c| **c != self.tenancy.column && row_a.get(c.as_str()).is_none_or(Value::is_null))
            .flat_map(|c| self.read_by_checks_with(table, c))
            .filter(|c| {
                !fk.columns.contains(c)
                    && *c != self.tenancy.column
                    && !partition_keys.contains(c)
                    && (clear_checked || references.iter().any(|(r, _, _)| r == c))
                    && table.column(c).is_some_and(|col| !col.not_null && col.generated.is_none())
            })
            .collect();
        others.sort();
        others.dedup();
        sets.extend(others.iter().map(|c| format!("{} = NULL", quote_ident(c))));
        Ok(format!(
            "UPDATE {} SET {} WHERE {}",
            table.name,
            sets.join(", "),
            self.where_row(table, row_a, "")
        ))
    }
}
