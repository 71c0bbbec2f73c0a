//! The application's own plain btree indexes that do not hold the tenant column. After stage 8
//! every query of a table carries the policy's `tenant_id = …`, which such an index cannot
//! answer, so an index-only scan of it has to read each row's heap tuple too (the sample's
//! count of a project's comments: an index-only scan of `(issue_id)` before, a sequential scan
//! after, see README). By default the plan names them; with `--cover-indexes` it rebuilds each
//! on an ordinary table as the same index `INCLUDE (tenant_id)`, under its own name.

use std::collections::BTreeMap;

use super::names::NameBook;
use super::{Findings, Scope};
use crate::catalog::{Index, TableKind};
use crate::plan::model::Severity;
use crate::sql::{QualifiedName, quote_ident, with_included_column, with_tablespace};

/// An application index the plan rebuilds with the tenant column included.
#[derive(Debug, Clone)]
pub(in crate::plan) struct CoveredIndex {
    pub original: Index,
    /// The covering copy's `CREATE INDEX CONCURRENTLY` (no `;`), under `temp_name`.
    pub cover_definition: String,
    /// The original's `CREATE INDEX CONCURRENTLY` (no `;`) under `restore_name`: the rollback's.
    pub restore_definition: String,
    /// Name the covering copy is built under before it takes the original's.
    pub temp_name: String,
    /// Name the original is renamed to before it is dropped concurrently.
    pub retired_name: String,
    /// Name the rollback rebuilds the original under.
    pub restore_name: String,
}

/// Per table, the indexes `--cover-indexes` rebuilds; an `index-only-scan` finding for each
/// of the others (all of them without the flag).
pub(super) fn decide(
    scope: &Scope,
    book: &mut NameBook,
    findings: &mut Findings,
) -> BTreeMap<QualifiedName, Vec<CoveredIndex>> {
    let column = &scope.tenant.column;
    let mut covers: BTreeMap<QualifiedName, Vec<CoveredIndex>> = BTreeMap::new();
    for name in &scope.scoped {
        let table = scope.table(name);
        // None holds the tenant column: a table that has it already is refused (preconditions).
        // An index with an expression key rarely gave an index-only scan before either.
        let lacking = table.indexes.iter().filter(|i| {
            i.valid
                && !i.is_partition_child
                && i.definition.contains(" USING btree (")
                && i.key_column_names.is_some()
        });
        for index in lacking {
            let cover = |temp: &str| with_included_column(&renamed(index, name, temp)?, name, column);
            let refused = if table.kind == TableKind::Partitioned {
                // PostgreSQL cannot build a partitioned index concurrently, nor drop one.
                Some(
                    "CREATE INDEX CONCURRENTLY on each partition, CREATE INDEX ON ONLY the parent \
                     and ALTER INDEX … ATTACH PARTITION each; dropping the old one takes ACCESS \
                     EXCLUSIVE on the parent and every partition; --cover-indexes leaves \
                     partitioned tables alone"
                        .to_string(),
                )
            } else if !scope.options.cover_indexes {
                Some(
                    "--cover-indexes does it: CREATE INDEX CONCURRENTLY, swap the names, DROP \
                     INDEX CONCURRENTLY the old one"
                        .to_string(),
                )
            } else if cover("t").is_none() {
                Some("by hand: --cover-indexes could not read its definition".to_string())
            } else {
                None
            };
            if let Some(how) = refused {
                report(scope, name, index, &how, findings);
                continue;
            }
            let temp_name = book.fresh(&name.schema, &format!("{}_{column}", index.name));
            let retired_name = book.fresh(&name.schema, &format!("{}_retired", index.name));
            let restore_name = book.fresh(&name.schema, &format!("{}_plain", index.name));
            covers.entry(name.clone()).or_default().push(CoveredIndex {
                original: index.clone(),
                cover_definition: cover(&temp_name).expect("its shape was checked above"),
                restore_definition: renamed(index, name, &restore_name).expect("its shape was checked above"),
                temp_name,
                retired_name,
                restore_name,
            });
        }
    }
    covers
}

/// The index's definition as `CREATE INDEX CONCURRENTLY new_name …`, in the index's own
/// tablespace (which `pg_get_indexdef()` leaves out); `None` when the printed definition does
/// not have the shape expected of a non-unique index (the finding stays instead).
fn renamed(index: &Index, table: &QualifiedName, new_name: &str) -> Option<String> {
    let head = format!("CREATE INDEX {} ON ", quote_ident(&index.name));
    let rest = index.definition.strip_prefix(&head)?;
    let definition = format!("CREATE INDEX CONCURRENTLY {} ON {rest}", quote_ident(new_name));
    match &index.tablespace {
        Some(tablespace) => with_tablespace(&definition, table, tablespace),
        None => Some(definition),
    }
}

fn report(scope: &Scope, name: &QualifiedName, index: &Index, how: &str, findings: &mut Findings) {
    let col = quote_ident(&scope.tenant.column);
    // One finding per index, with one message per kind of table: the wizard lists them
    // together.
    findings.add(
        Severity::Info,
        "index-only-scan",
        format!("{} ({}) on {}", index.name, index.key_columns.join(", "), name.display_plain()),
        format!(
            "no {col} in the index: once the policy filters every query, an index-only scan of \
             it reads the table too; where the application relies on one (EXPLAIN shows Index \
             Only Scan), rebuild it with INCLUDE ({col}) ({how})"
        ),
    );
}
