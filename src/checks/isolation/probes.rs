//! The probe's phases, in the order `run` calls them.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::error::SqlState;

use super::{PROBE_ROLE, Prober, literal_for, refused_by};
use crate::checks::{CheckError, query_error};
use crate::db::describe_pg_error;
use crate::sql::{QualifiedName, quote_ident, quote_literal};

impl Prober<'_> {
    /// The temporary role, the two tenants, and grants on every schema involved.
    pub(super) async fn setup(&mut self) -> Result<(), CheckError> {
        let ty = self.tenancy.key_type.sql();
        let schemas: std::collections::BTreeSet<&str> = self
            .tenancy
            .tables
            .iter()
            .map(|t| t.schema.as_str())
            .chain(std::iter::once(self.tenancy.tenant_table.schema.as_str()))
            .chain(self.catalog.views.iter().map(|v| v.name.schema.as_str()))
            .collect();
        let mut setup = format!(
            "SET LOCAL row_security = on; CREATE ROLE {PROBE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;\n\
             INSERT INTO {t} ({k}, name) VALUES ({}::{ty}, 'isolation probe A'), ({}::{ty}, 'isolation probe B');\n",
            quote_literal(&self.a),
            quote_literal(&self.b),
            t = self.tenancy.tenant_table,
            k = quote_ident(&self.tenancy.key_column),
        );
        for schema in schemas {
            let s = quote_ident(schema);
            setup.push_str(&format!(
                "GRANT USAGE ON SCHEMA {s} TO {PROBE_ROLE};\n\
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {PROBE_ROLE};\n\
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {PROBE_ROLE};\n"
            ));
        }
        self.client
            .batch_execute(&setup)
            .await
            .map_err(|e| query_error(format!("setting up the isolation probe: {}", describe_pg_error(&e))))?;

        Ok(())
    }

    /// One row per table for A and for B, parents first. Returns the clones a unique refused.
    pub(super) async fn clone_rows(&mut self, roots: &[QualifiedName]) -> BTreeMap<QualifiedName, String> {
        // One row per table for A and for B, parents first (the plan's order: stage 3's).
        // Clones refused by a unique: (table → the error).
        let mut b_refused: BTreeMap<QualifiedName, String> = BTreeMap::new();
        let (a, b) = (self.a.clone(), self.b.clone());
        for (tenant, key) in [(a.as_str(), 'a'), (b.as_str(), 'b')] {
            for name in roots {
                let table = self.table(name);
                match self.clone_into(table, tenant, key).await {
                    Ok(()) => {}
                    // A copies a value the existing tenant holds: refused means a unique is global.
                    Err(why) if why.contains("duplicate key") => {
                        b_refused.entry(name.clone()).or_insert(why);
                    }
                    Err(why) if key == 'a' => {
                        self.report
                            .notes
                            .push(format!("{}: not probed with its own rows ({why})", name.display_plain()));
                    }
                    Err(_) => {}
                }
            }
        }

        b_refused
    }

    /// Reads: each tenant sees exactly its own rows; no tenant, nothing.
    pub(super) async fn probe_reads(&mut self) -> Result<(), CheckError> {
        let (a, b) = (self.a.clone(), self.b.clone());
        let ty = self.tenancy.key_type.sql();
        // Reads: each tenant sees exactly its own rows; no tenant, nothing.
        for name in &self.tenancy.tables.clone() {
            let object = name.display_plain();
            for (tenant, key) in [(a.as_str(), 'a'), (b.as_str(), 'b')] {
                self.as_probe(Some(tenant)).await?;
                let sql = format!(
                    "SELECT count(*), count(*) FILTER (WHERE {c} IS DISTINCT FROM {}::{ty}) FROM {name}",
                    quote_literal(tenant),
                    c = self.qcol
                );
                let read = self.client.query_one(sql.as_str(), &[]).await;
                self.as_admin().await?;
                match read {
                    Ok(row) => {
                        let (seen, foreign): (i64, i64) = (row.get(0), row.get(1));
                        let partition = self.table(name).is_partition();
                        let own = self.clones.contains_key(&(name.clone(), key)) as i64;
                        let passed = foreign == 0 && (partition || seen == own);
                        self.record(
                            &object,
                            false,
                            &format!("tenant {} reads only its rows", key.to_ascii_uppercase()),
                            passed,
                            format!("saw {seen} rows, {foreign} of other tenants"),
                        );
                    }
                    Err(e) => self.record(&object, false, "reads", false, describe_pg_error(&e)),
                }
            }
            self.as_probe(None).await?;
            let read = self.client.query_one(format!("SELECT count(*) FROM {name}").as_str(), &[]).await;
            self.as_admin().await?;
            match read {
                Ok(row) => {
                    let seen: i64 = row.get(0);
                    self.record(
                        &object,
                        false,
                        "no tenant set reads nothing",
                        seen == 0,
                        format!("saw {seen} rows"),
                    );
                }
                Err(e) => {
                    self.record(&object, false, "no tenant set reads nothing", false, describe_pg_error(&e))
                }
            }
        }

        Ok(())
    }

    /// Writes into the other tenant, cross-tenant references, unique values, for one root.
    pub(super) async fn probe_writes(
        &mut self,
        name: &QualifiedName,
        refused: Option<&String>,
    ) -> Result<(), CheckError> {
        let (a, b) = (self.a.clone(), self.b.clone());
        let ty = self.tenancy.key_type.sql();
        let table = self.table(name);
        let object = name.display_plain();
        if let Some(why) = refused {
            // A new tenant copied another tenant's unique values and was refused: a unique is
            // still global (tenant A's insert fails on tenant B's value).
            self.record(
                &object,
                false,
                "a unique value may repeat in another tenant",
                false,
                format!("refused: {why}"),
            );
        }
        let Some(row_a) = self.clones.get(&(name.clone(), 'a')).cloned() else { return Ok(()) };
        // A inserts a row labelled B.
        if let Ok(sql) = self.clone_sql(table, &b, 'b', None, None, 7).await {
            self.as_probe(Some(&a)).await?;
            let outcome = self.attempt(&sql).await;
            self.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::INSUFFICIENT_PRIVILEGE);
            self.record(&object, false, "inserting a row of another tenant is refused", passed, detail);
        }
        // A moves its row to B.
        if let Some(key) = self.where_key(table, &row_a, "") {
            self.as_probe(Some(&a)).await?;
            let sql = format!("UPDATE {name} SET {} = {}::{ty} WHERE {key}", self.qcol, quote_literal(&b));
            let outcome = self.attempt(&sql).await;
            self.as_admin().await?;
            let (passed, detail) = match outcome {
                Ok(0) => (false, "the row to move was not visible (nothing to test)".to_string()),
                other => refused_by(other, &SqlState::INSUFFICIENT_PRIVILEGE),
            };
            self.record(&object, false, "moving a row to another tenant is refused", passed, detail);
        }
        self.probe_cross_references(name, &row_a).await?;
        self.probe_uniques(name, &row_a).await
    }

    /// A's own row, pointed at a parent of another tenant, for every foreign key: refused.
    async fn probe_cross_references(
        &mut self,
        name: &QualifiedName,
        row_a: &Value,
    ) -> Result<(), CheckError> {
        let (a, ty) = (self.a.clone(), self.tenancy.key_type.sql());
        let table = self.table(name);
        let object = name.display_plain();
        // A inserts a child pointing at B's parent.
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
            if fk.referenced_table == *name || !self.clones.contains_key(&(fk.referenced_table.clone(), 'b'))
            {
                continue;
            }
            // A's own row, updated to point at a parent of another tenant (an INSERT could trip
            // over a unique before the foreign key is even checked). The parent's key must not
            // exist in A: a scoped unique lets B repeat A's value, and pointing at that value
            // would land on A's own parent.
            let Some(key) = self.where_key(table, row_a, "") else { continue };
            let pairs: Vec<(&String, &String)> = fk
                .columns
                .iter()
                .zip(fk.referenced_columns.iter())
                .filter(|(c, _)| **c != self.tenancy.column)
                .collect();
            let parent = &fk.referenced_table;
            let in_a: Vec<String> =
                pairs.iter().map(|(_, r)| format!("q.{r} = o.{r}", r = quote_ident(r))).collect();
            let find = format!(
                "SELECT to_jsonb(o.*) FROM {parent} o WHERE o.{c} <> {a}::{ty} AND NOT EXISTS \
                 (SELECT 1 FROM {parent} q WHERE q.{c} = {a}::{ty} AND {}) LIMIT 1",
                in_a.join(" AND "),
                c = self.qcol,
                a = quote_literal(&a),
            );
            let Ok(Some(other)) = self.client.query_opt(find.as_str(), &[]).await else {
                self.report.notes.push(format!(
                    "{object}: no parent in {} outside tenant A to point at",
                    parent.display_plain()
                ));
                continue;
            };
            let other: Value = other.get(0);
            let sets: Vec<String> = pairs
                .iter()
                .map(|(c, r)| {
                    let ty = table.column(c).map(|c| c.data_type.clone()).unwrap_or_default();
                    format!("{} = {}::{ty}", quote_ident(c), literal_for(&other[r.as_str()]))
                })
                .collect();
            let cross = format!("UPDATE {name} SET {} WHERE {key}", sets.join(", "));
            self.as_probe(Some(&a)).await?;
            let outcome = self.attempt(&cross).await;
            self.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::FOREIGN_KEY_VIOLATION);
            self.record(
                &object,
                false,
                &format!(
                    "a row pointing at another tenant's {} is refused",
                    fk.referenced_table.display_plain()
                ),
                passed,
                detail,
            );
        }
        Ok(())
    }

    /// Uniques: a value may repeat in another tenant, never within one.
    async fn probe_uniques(&mut self, name: &QualifiedName, row_a: &Value) -> Result<(), CheckError> {
        let a = self.a.clone();
        let table = self.table(name);
        let object = name.display_plain();
        // Uniques: B's clone repeated A's values (it exists, so that worked); a second copy in A
        // with the same values must be refused.
        // Tenant-scoped versions of the table's own uniques (not the (tenant, primary key) ones
        // added for foreign keys: a fresh key never repeats those).
        let pk_columns: Vec<String> =
            table.primary_key.as_ref().map(|k| k.columns.clone()).unwrap_or_default();
        let scoped_uniques: Vec<String> = table
            .uniques
            .iter()
            .filter(|u| !u.is_partition_child)
            .filter(|u| u.key_columns.first().is_some_and(|c| *c == self.tenancy.column || *c == self.qcol))
            .filter(|u| {
                let rest: Vec<String> = u.key_columns.iter().skip(1).cloned().collect();
                let mut rest_sorted = rest.clone();
                rest_sorted.sort();
                let mut pk_sorted = pk_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
                pk_sorted.sort();
                rest_sorted != pk_sorted
            })
            .map(|u| u.index_name.clone())
            .collect();
        if scoped_uniques.is_empty() {
            return Ok(());
        }
        if self.clones.contains_key(&(name.clone(), 'b')) {
            self.record(
                &object,
                false,
                "a unique value may repeat in another tenant",
                true,
                format!("tenants A and B hold the same {}", scoped_uniques.join(", ")),
            );
        }
        // A second copy of A's own row (same unique values, fresh key) in A.
        let own_row = self.where_key(table, row_a, "src.");
        if let Ok(sql) = self.clone_sql(table, &a, 'a', None, own_row, 13).await {
            self.as_probe(Some(&a)).await?;
            let outcome = self.attempt(&sql).await;
            self.as_admin().await?;
            let (passed, detail) = refused_by(outcome, &SqlState::UNIQUE_VIOLATION);
            self.record(&object, false, "a unique value cannot repeat within a tenant", passed, detail);
        }
        Ok(())
    }

    /// Views: a view that shows the same rows whatever the tenant reads across tenants.
    pub(super) async fn probe_views(&mut self) -> Result<(), CheckError> {
        let (a, b) = (self.a.clone(), self.b.clone());
        // Views: a view that shows the same rows whatever the tenant reads across tenants.
        for view in self.catalog.views.iter().filter(|v| !v.materialized) {
            if !view.reads_tables.iter().any(|t| self.is_scoped(t)) {
                continue;
            }
            let object = view.name.display_plain();
            let mut counts = Vec::new();
            for tenant in [a.as_str(), b.as_str()] {
                self.as_probe(Some(tenant)).await?;
                let read =
                    self.client.query_one(format!("SELECT count(*) FROM {}", view.name).as_str(), &[]).await;
                self.as_admin().await?;
                counts.push(read.map(|r| r.get::<_, i64>(0)));
            }
            let all = self
                .client
                .query_one(format!("SELECT count(*) FROM {}", view.name).as_str(), &[])
                .await
                .map(|r| r.get::<_, i64>(0));
            match (&counts[0], &counts[1], all) {
                (Ok(ca), Ok(cb), Ok(all)) => {
                    let leaks = all > 2 && (*ca == all || *cb == all);
                    self.record(
                        &object,
                        true,
                        "reading through the view shows only the tenant's rows",
                        !leaks,
                        format!("tenant A sees {ca} rows, B {cb}, all tenants together {all}"),
                    );
                }
                (Err(e), _, _) | (_, Err(e), _) => {
                    self.record(&object, true, "reading through the view", false, describe_pg_error(e));
                }
                (_, _, Err(e)) => self.report.notes.push(format!("{object}: {}", describe_pg_error(&e))),
            }
        }
        Ok(())
    }
}
