//! The unique probes: a copy of a row of A repeating a unique's values is refused within A by
//! that unique, and let through in tenant C.

use serde_json::Value;

use super::probes::judged;
use super::rows::RowSpec;
use super::{FK_VIOLATION, Outcome, Prober, Refusal, UNIQUE_VIOLATION};
use crate::catalog::{Table, UniqueIndex};
use crate::checks::CheckError;

/// The columns `unique` reads: its key's, or those its expressions name (`lower(name)` reads
/// name).
pub(super) fn columns_read(table: &Table, unique: &UniqueIndex) -> Vec<String> {
    unique.key_column_names.clone().unwrap_or_else(|| {
        let mut read: Vec<String> = unique
            .key_columns
            .iter()
            .flat_map(|k| super::rows::words(k))
            .filter(|c| table.column(c).is_some())
            .collect();
        read.dedup();
        read
    })
}

impl Prober<'_> {
    /// A unique whose columns include the whole primary key can never repeat with a fresh key.
    pub(super) fn implied_by_primary_key(&self, table: &Table, unique: &UniqueIndex) -> bool {
        let Some(pk) = &table.primary_key else { return false };
        let Some(columns) = &unique.key_column_names else { return false };
        pk.columns.iter().filter(|c| **c != self.tenancy.column).all(|c| columns.contains(c))
    }

    /// The columns every unique (and the primary key) of `table` reads, outside `keep`: an
    /// expression unique's too (`lower(address)` beside `UNIQUE (normalized_address)`: kept,
    /// it refused the copy before the unique under test could).
    pub(super) fn unique_columns(&self, table: &Table, keep: &[String]) -> Vec<String> {
        let mut out: Vec<String> = table.uniques.iter().flat_map(|u| columns_read(table, u)).collect();
        out.retain(|c| !keep.contains(c) && *c != self.tenancy.column);
        out.sort();
        out.dedup();
        out
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
            keep: Vec::new(),
        };
        self.as_admin(Some('a')).await.map_err(|e| e.to_string())?;
        let made = self.make_row(&spec).await;
        self.as_admin(None).await.map_err(|e| e.to_string())?;
        made.map_err(|r| format!("making a row {} covers: {}", unique.index_name, r.message))
    }

    /// Whether tenant A now has two rows with `first`'s values of `unique` (its predicate
    /// true): an accepted copy is a leak only when it really repeats them.
    async fn repeated(
        &self,
        table: &Table,
        unique: &UniqueIndex,
        first: &Value,
    ) -> Result<Result<bool, Refusal>, CheckError> {
        let keys = format!("ROW({})", unique.key_columns.join(", "));
        let predicate = unique.predicate.as_ref().map(|p| format!(" AND ({p})")).unwrap_or_default();
        let sql = format!(
            "SELECT count(*) >= 2 FROM {t} WHERE {tenant} = {a}{predicate} AND {keys} IS NOT DISTINCT FROM \
             (SELECT {keys} FROM {t} WHERE {row})",
            t = table.name,
            tenant = self.qcol,
            a = self.tenant_literal('a'),
            row = self.where_row(table, first, ""),
        );
        Ok(self.read_of_a(&sql).await?.map(|row| row.get(0)))
    }

    /// One copy for `unique`'s probe in `spec.tenant`, judged: within A it must be refused by
    /// that unique, in C not by it.
    async fn unique_attempt(
        &mut self,
        table: &Table,
        unique: &UniqueIndex,
        spec: &RowSpec<'_>,
        names: &[String],
    ) -> Result<(Outcome, String, Option<String>), CheckError> {
        let sql = match self.row_insert(spec).await {
            Ok(sql) => sql,
            Err(why) => return Ok((Outcome::NotProven, why, None)),
        };
        let outcome = self.attempt_as(spec.tenant, &sql).await?;
        let (outcome, detail) = if spec.tenant == 'a' {
            let repeated = match &outcome {
                Ok(_) => self.repeated(table, unique, spec.source).await?,
                Err(_) => Ok(true),
            };
            match repeated {
                Ok(false) => (
                    Outcome::NotProven,
                    "the copy was made without repeating the unique's values (a trigger or a \
                     generated column changed them, or took it out of the predicate), so it \
                     proves nothing"
                        .to_string(),
                ),
                Err(r) => (
                    Outcome::NotProven,
                    format!(
                        "the copy was made, but whether it repeats the unique's values could not be read: {}",
                        r.message
                    ),
                ),
                Ok(true) => judged(&outcome, UNIQUE_VIOLATION, Some(names)),
            }
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
        Ok((outcome, detail, Some(sql)))
    }

    /// `unique`: a copy of A's row (fresh key, other uniques' columns fresh) is refused within
    /// A by this unique, and accepted in tenant C, which has no row of its own (or refused by a
    /// foreign key, never by the unique).
    pub(super) async fn probe_unique(
        &mut self,
        table: &Table,
        unique: &UniqueIndex,
        row_a: &Value,
    ) -> Result<(), CheckError> {
        let object = table.name.display_plain();
        let (within, across) =
            ("a unique value cannot repeat within a tenant", "a unique value may repeat in another tenant");
        // Its predicate's columns too (a fresh value there could take the copy out of it), and
        // those its generated columns are computed from (`lower(slug)`).
        let mut keep = columns_read(table, unique);
        let generated_from: Vec<&String> =
            keep.iter().filter_map(|c| table.column(c)).filter_map(|c| c.generated.as_ref()).collect();
        let read: Vec<String> = unique
            .predicate
            .iter()
            .chain(generated_from)
            .flat_map(|p| super::rows::words(p))
            .filter(|c| table.column(c).is_some())
            .collect();
        keep.extend(read);
        let fresh = self.unique_columns(table, &keep);
        // Before the savepoint, so the second parents stay for later probes.
        self.second_parents_for_fresh(table, &fresh).await?;
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
        for (tenant, probe) in [('a', within), ('c', across)] {
            let spec = RowSpec {
                target: table,
                source: &first,
                tenant,
                parents: 'a',
                cross: None,
                fresh: fresh.clone(),
                keep: keep.clone(),
            };
            let mut tried = self.unique_attempt(table, unique, &spec, &names).await?;
            if tried.0 == Outcome::NotProven {
                // Another rule came first (`UNIQUE (lower(email))` beside the one under test,
                // its column kept for `CHECK (char_length(email) <= 255)`): once more with
                // fresh values in the columns CHECKs read too; a CHECK that refuses those
                // leaves the first answer.
                self.fresh_checked = true;
                let again = self.unique_attempt(table, unique, &spec, &names).await;
                self.fresh_checked = false;
                let again = again?;
                if again.0 != Outcome::NotProven {
                    tried = again;
                }
            }
            let (outcome, detail, sql) = tried;
            let detail = format!("{detail} [{}]", unique.index_name);
            self.record_sql(
                &object,
                false,
                probe,
                outcome,
                detail,
                sql.as_ref().map(|s| (tenant, s.as_str())),
            );
        }
        self.client
            .batch_execute("ROLLBACK TO SAVEPOINT unique_probe; RELEASE SAVEPOINT unique_probe")
            .await?;
        self.script.truncate(mark);
        Ok(())
    }
}
