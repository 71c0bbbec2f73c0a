//! What about `PlanOptions` is more than plain data: which options are valid, and what they
//! mean for the tenant on a given server.

use super::model::{BackfillMode, KeyType, PlanOptions, PrimaryKeyScope, TenantSpec};
use crate::catalog::Catalog;
use crate::sql::QualifiedName;

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            schemas: vec!["public".to_string()],
            exclude: Vec::new(),
            tenant_table: QualifiedName::new("public", "tenants"),
            tenant_column: "tenant_id".to_string(),
            tenant_key_type: KeyType::Uuid,
            default_tenant_id: KeyType::Uuid.default_tenant_id().to_string(),
            default_tenant_name: "Default tenant".to_string(),
            tenant_setting: "app.tenant_id".to_string(),
            backfill: None,
            batch_rows: 5000,
            acknowledge: Vec::new(),
            scope_primary_keys: PrimaryKeyScope::Natural,
            index_foreign_keys: false,
            cover_indexes: false,
            legacy_roles: Vec::new(),
            distribute: None,
        }
    }
}

/// PostgreSQL 11 made adding a column with a constant default metadata only.
const FAST_DEFAULT_SERVER_VERSION_NUM: i32 = 110000;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

pub(super) fn validate(options: &PlanOptions) -> Result<(), PlanError> {
    let bad = |m: String| Err(PlanError::InvalidOption(m));
    if options.schemas.is_empty() {
        return bad("at least one --schema is needed".into());
    }
    if options.schemas.iter().any(|s| s == "tenantize") {
        return bad("the schema `tenantize` holds tenantize's own journal and cannot be converted".into());
    }
    for (what, name) in [
        ("--tenant-column", options.tenant_column.as_str()),
        ("--tenant-table", options.tenant_table.name.as_str()),
        ("--tenant-table schema", options.tenant_table.schema.as_str()),
    ] {
        if name.is_empty() || name.len() > crate::sql::MAX_IDENTIFIER_BYTES || name.contains('\0') {
            return bad(format!("{what} must be 1 to 63 bytes: {name:?}"));
        }
    }
    let setting = &options.tenant_setting;
    let valid_setting = setting.split('.').count() >= 2
        && setting
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !valid_setting {
        return bad(format!(
            "--tenant-setting must be a custom setting name like app.tenant_id (prefix.name): {setting:?}"
        ));
    }
    let id = &options.default_tenant_id;
    match options.tenant_key_type {
        KeyType::Uuid => {
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return bad(format!("--default-tenant-id {id:?} is not a UUID"));
            }
        }
        KeyType::Bigint => {
            if id.parse::<i64>().is_err() {
                return bad(format!("--default-tenant-id {id:?} is not a bigint"));
            }
        }
        KeyType::Text => {
            if id.is_empty() {
                return bad("--default-tenant-id must not be empty".into());
            }
        }
    }
    if options.batch_rows == 0 {
        return bad("--batch-rows must be at least 1".into());
    }
    if let Some(distribution) = &options.distribute {
        if options.scope_primary_keys != PrimaryKeyScope::All {
            return bad("--distribute citus needs the tenant column in every primary key: \
                 --scope-primary-keys all (implied when not given)"
                .into());
        }
        if distribution.shard_count.is_some_and(|n| !(1..=64_000).contains(&n)) {
            return bad("--shard-count must be 1 to 64000".into());
        }
    }
    Ok(())
}

/// Every `--legacy-role` names a role the catalog found (`catalog::read_legacy_roles`), once.
pub(super) fn validate_legacy_roles(catalog: &Catalog, options: &PlanOptions) -> Result<(), PlanError> {
    for (i, name) in options.legacy_roles.iter().enumerate() {
        if options.legacy_roles[..i].contains(name) {
            return Err(PlanError::InvalidOption(format!("--legacy-role {name:?} is given twice")));
        }
        if !catalog.legacy_roles.iter().any(|r| r.name == *name) {
            return Err(PlanError::InvalidOption(format!(
                "--legacy-role {name:?}: no such role on this server; nothing was changed"
            )));
        }
    }
    Ok(())
}

/// What the application runs in every transaction once the cutover is done, in one line. On
/// Citus (`distributed`) only SET LOCAL reaches the workers: set_config() is not propagated.
pub fn set_local_snippet(setting: &str, distributed: bool) -> String {
    if distributed {
        return format!(
            "BEGIN; SET LOCAL {setting} = '<tenant id>'; … COMMIT;  (on Citus only SET LOCAL reaches \
             the workers, not set_config(); filter on the tenant column to route to one shard)"
        );
    }
    format!(
        "BEGIN; SET LOCAL {setting} = '<tenant id>'; … COMMIT;  (or SELECT set_config({}, $1, true) after BEGIN)",
        crate::sql::quote_literal(setting)
    )
}

/// The tenant the plan creates: the options, with the backfill mode resolved for `catalog`'s
/// server (fast where adding a defaulted column is metadata only).
pub(super) fn tenant_spec(catalog: &Catalog, options: &PlanOptions) -> TenantSpec {
    let backfill =
        options.backfill.unwrap_or(if catalog.server.version_num >= FAST_DEFAULT_SERVER_VERSION_NUM {
            BackfillMode::Fast
        } else {
            BackfillMode::Batched
        });
    TenantSpec {
        table: options.tenant_table.clone(),
        key_column: "id".to_string(),
        key_type: options.tenant_key_type,
        column: options.tenant_column.clone(),
        default_id: options.default_tenant_id.clone(),
        default_name: options.default_tenant_name.clone(),
        setting: options.tenant_setting.clone(),
        backfill,
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;
    use crate::plan::{KeyType, PlanError, PlanOptions, build};

    #[test]
    fn rejects_invalid_options() {
        let catalog = saas(PG15).build();
        let cases = [
            ("bad uuid", PlanOptions { default_tenant_id: "not-a-uuid".into(), ..PlanOptions::default() }),
            (
                "uuid one digit short",
                PlanOptions {
                    default_tenant_id: "00000000-0000-0000-0000-00000000001".into(),
                    ..PlanOptions::default()
                },
            ),
            (
                "setting without a dot",
                PlanOptions { tenant_setting: "tenant_id".into(), ..PlanOptions::default() },
            ),
            (
                "setting with an empty part",
                PlanOptions { tenant_setting: "app.".into(), ..PlanOptions::default() },
            ),
            ("journal schema", PlanOptions { schemas: vec!["tenantize".into()], ..PlanOptions::default() }),
            ("no schema", PlanOptions { schemas: Vec::new(), ..PlanOptions::default() }),
            ("zero batch", PlanOptions { batch_rows: 0, ..PlanOptions::default() }),
            (
                "bigint key with a uuid id",
                PlanOptions { tenant_key_type: KeyType::Bigint, ..PlanOptions::default() },
            ),
        ];
        for (what, options) in cases {
            match build(&catalog, &options, GENERATED_AT) {
                Err(PlanError::InvalidOption(_)) => {}
                Ok(_) => panic!("{what}: accepted"),
            }
        }
        let fine = PlanOptions {
            tenant_key_type: KeyType::Bigint,
            default_tenant_id: "1".into(),
            tenant_setting: "myapp.current_tenant".into(),
            ..PlanOptions::default()
        };
        let plan = plan_with(&catalog, &fine);
        offset(&all_forward_sql(&plan), "ADD COLUMN tenant_id bigint DEFAULT '1'::bigint;");
        offset(
            &all_forward_sql(&plan),
            "(SELECT nullif(current_setting('myapp.current_tenant', true), '')::bigint)",
        );
    }
}
