//! Counting as a role that cannot bypass row-level security: a managed database's admin role
//! (the tables' owner, not superuser, no BYPASSRLS). Under FORCE ROW LEVEL SECURITY such a
//! role sees only the rows of the tenant its setting names, and `row_security = off` makes
//! every query fail. So each count runs once per tenant, with the setting set for that tenant
//! alone, and the counts are summed. Rows with no tenant, or with an unknown one, are visible
//! to no tenant: the NOT NULL column and the validated foreign key to the tenant table prove
//! there are none (directly, or through a NOT NULL validated composite key to a table that
//! has it), and without that proof the count is refused, never reported as 0.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::catalog::{Catalog, Table};
use crate::plan::Plan;
use crate::sql::QualifiedName;

/// Whether the counting role sees every row, and the tenants to count one by one when not.
pub struct Visibility {
    pub bypasses_rls: bool,
    pub tenants: Vec<String>,
    /// Tables whose constraints prove every row has a known tenant.
    pub keyed: BTreeSet<QualifiedName>,
}

pub async fn visibility(
    client: &Client,
    plan: &Plan,
    catalog: &Catalog,
    tenant_table_exists: bool,
) -> Result<Visibility, String> {
    let role = &catalog.role;
    let bypasses_rls = role.superuser || role.bypass_rls;
    let mut tenants = Vec::new();
    if !bypasses_rls && tenant_table_exists {
        let sql = format!(
            "SELECT {}::text FROM {} ORDER BY 1",
            crate::sql::quote_ident(&plan.tenant.key_column),
            plan.tenant.table
        );
        let rows = client.query(sql.as_str(), &[]).await.map_err(|e| crate::db::describe_pg_error(&e))?;
        tenants = rows.iter().map(|r| r.get(0)).collect();
    }
    Ok(Visibility { bypasses_rls, tenants, keyed: keyed(plan, catalog) })
}

/// Tables whose every row has a tenant the tenant table holds: the tenant column NOT NULL
/// and a validated key to the tenant table, or a validated key whose columns are all NOT
/// NULL, the tenant column among them, to a table that is keyed itself (stage 3 leaves
/// such a table without a tenant key of its own).
fn keyed(plan: &Plan, catalog: &Catalog) -> BTreeSet<QualifiedName> {
    let column = &plan.tenant.column;
    let not_null = |t: &Table, c: &String| t.column(c).is_some_and(|c| c.not_null);
    let mut keyed = BTreeSet::new();
    loop {
        let before = keyed.len();
        for table in &catalog.tables {
            if !not_null(table, column) || keyed.contains(&table.name) {
                continue;
            }
            let holds = table.foreign_keys.iter().any(|fk| {
                let tenant_at = fk.columns.iter().position(|c| c == column);
                fk.validated
                    && match tenant_at {
                        _ if fk.referenced_table == plan.tenant.table => fk.columns == [column.clone()],
                        Some(i) => {
                            keyed.contains(&fk.referenced_table)
                                && fk.referenced_columns.get(i) == Some(column)
                                && fk.columns.iter().all(|c| not_null(table, c))
                        }
                        None => false,
                    }
            });
            if holds {
                keyed.insert(table.name.clone());
            }
        }
        if keyed.len() == before {
            return keyed;
        }
    }
}

impl Visibility {
    /// The table's rows are hidden from this role except for the tenant its setting names.
    pub fn filtered(&self, table: &Table) -> bool {
        !self.bypasses_rls && table.rls_enabled && table.rls_forced
    }
}

/// Run `sql` (one row of `int8` columns) once per tenant, with the tenant setting set for
/// that tenant only: one row of counts per tenant, in `tenants` order.
pub async fn per_tenant(
    client: &Client,
    setting: &str,
    tenants: &[String],
    sql: &str,
) -> Result<Vec<Vec<i64>>, tokio_postgres::Error> {
    client.batch_execute("BEGIN READ ONLY; SET LOCAL row_security = on").await?;
    let result = async {
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            client.execute("SELECT pg_catalog.set_config($1, $2, true)", &[&setting, tenant]).await?;
            let row = client.query_one(sql, &[]).await?;
            out.push((0..row.len()).map(|i| row.get::<_, i64>(i)).collect());
        }
        Ok(out)
    }
    .await;
    let _ = client.batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" }).await;
    result
}

/// Column `column` of [`per_tenant`]'s rows, summed.
pub fn total(rows: &[Vec<i64>], column: usize) -> i64 {
    rows.iter().map(|r| r[column]).sum()
}

/// Why rows without a tenant, or with an unknown one, cannot exist in `table` (`Ok`), or why
/// that cannot be shown to a role that does not see them.
pub fn no_hidden_rows(plan: &Plan, table: &Table, visibility: &Visibility) -> Result<(), String> {
    let column = &plan.tenant.column;
    if !table.column(column).is_some_and(|c| c.not_null) {
        return Err(format!("{column} is not NOT NULL"));
    }
    if !visibility.keyed.contains(&table.name) {
        return Err(format!(
            "{column} has no validated foreign key to {}",
            plan.tenant.table.display_plain()
        ));
    }
    Ok(())
}
