//! The cutover's preflight: which sessions of the legacy roles are connected to this database
//! right now. They opened with the default tenant as their setting and keep it until they
//! reconnect: the application behind them still relies on the legacy default. A warning, not
//! a refusal (the cutover only changes what sessions opened after it start with).

use tokio_postgres::Client;

use super::EngineError;
use crate::plan::{Finding, Plan, Severity};

/// One warning per (role, application_name) with its session count.
pub(super) async fn legacy_sessions(client: &Client, plan: &Plan) -> Result<Vec<Finding>, EngineError> {
    let roles = &plan.options.legacy_roles;
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT a.usename::text AS role, coalesce(a.application_name, '') AS application,
                    count(*)::int8 AS sessions
               FROM pg_catalog.pg_stat_activity a
              WHERE a.datname = pg_catalog.current_database() AND a.usename = ANY ($1::text[])
                AND a.pid <> pg_catalog.pg_backend_pid() AND a.backend_type = 'client backend'
              GROUP BY 1, 2 ORDER BY 1, 2",
            &[roles],
        )
        .await
        .map_err(super::db_error)?;
    let setting = &plan.tenant.setting;
    Ok(rows
        .iter()
        .map(|row| {
            let role: String = row.get("role");
            let application: String = row.get("application");
            let sessions: i64 = row.get("sessions");
            let named = if application.is_empty() { "no application_name".to_string() } else { application };
            Finding {
                severity: Severity::Warning,
                code: "legacy-sessions".into(),
                object: role.clone(),
                message: format!(
                    "{sessions} session(s) of role {role} ({named}) are connected and still rely on \
                     the legacy default tenant: they keep {setting} = the default tenant until they \
                     reconnect; after that, without SET LOCAL {setting}, they read no row and \
                     cannot insert"
                ),
            }
        })
        .collect())
}
