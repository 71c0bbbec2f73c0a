//! Counting as a role that cannot bypass row-level security: a managed database's admin role
//! (the tables' owner, not superuser, no BYPASSRLS). Under FORCE ROW LEVEL SECURITY such a
//! role sees only the rows of the tenant its setting names, and `row_security = off` makes
//! every query fail. So each count runs once per tenant, with the setting set for that tenant
//! alone, and the counts are summed. Rows with no tenant, or with an unknown one, are visible
//! to no tenant: the NOT NULL column and the validated foreign key to the tenant table prove
//! there are none, and without that proof the count is refused, never reported as 0.

use tokio_postgres::Client;

use crate::catalog::{RoleInfo, Table};
use crate::plan::Plan;

/// Whether the counting role sees every row, and the tenants to count one by one when not.
pub struct Visibility {
    pub bypasses_rls: bool,
    pub tenants: Vec<String>,
}

pub async fn visibility(
    client: &Client,
    plan: &Plan,
    role: &RoleInfo,
    tenant_table_exists: bool,
) -> Result<Visibility, String> {
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
    Ok(Visibility { bypasses_rls, tenants })
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
pub fn no_hidden_rows(plan: &Plan, table: &Table) -> Result<(), String> {
    let column = &plan.tenant.column;
    if !table.column(column).is_some_and(|c| c.not_null) {
        return Err(format!("{column} is not NOT NULL"));
    }
    let keyed = table.foreign_keys.iter().any(|fk| {
        fk.validated
            && fk.referenced_table == plan.tenant.table
            && fk.columns.len() == 1
            && fk.columns[0] == *column
    });
    if !keyed {
        return Err(format!(
            "{column} has no validated foreign key to {}",
            plan.tenant.table.display_plain()
        ));
    }
    Ok(())
}
