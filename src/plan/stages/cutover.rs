//! Stage 10, the cutover: once the application sets the tenant per transaction, the tenant
//! column's default stops being the default tenant and becomes the session's setting, and each
//! legacy role loses its default tenant, so a session that sets no tenant fails closed (reads
//! nothing, inserts are refused). `apply` stops before this stage unless asked for it
//! (`tenantize cutover`). Metadata only; each step has its rollback.

use super::legacy_role::{NO_TENANT, set_role_setting, setting_check};
use crate::catalog::LegacyRole;
use crate::plan::analysis::{Analysis, Scope};
use crate::plan::ddl::{check, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{KeyType, LockMode, Part, Stage, Step};
use crate::plan::probe::{self, all, holds, role_setting_is};
use crate::sql::QualifiedName;

/// One step per root (covering its partitions), then one per legacy role.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    let tables = s.roots.iter().map(|root| column_step(s, root));
    let roles = s.catalog.legacy_roles.iter().map(|role| role_step(s, role));
    tables.chain(roles).collect()
}

/// The default tenant's key as `pg_get_expr` prints the constant default stage 3 set (how
/// the catalog tells that default from any other).
pub(in crate::plan) fn printed_constant(key_type: KeyType, id: &str) -> String {
    let canonical = match key_type {
        KeyType::Uuid => {
            let hex: String =
                id.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_lowercase();
            if hex.len() == 32 {
                format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
            } else {
                id.to_string()
            }
        }
        KeyType::Bigint => id.parse::<i64>().map(|n| n.to_string()).unwrap_or_else(|_| id.to_string()),
        KeyType::Text => id.to_string(),
    };
    // pg_get_expr doubles quotes and leaves backslashes as they are (standard strings).
    format!("'{}'::{}", canonical.replace('\'', "''"), key_type.sql())
}

fn column_step(s: &Scope, root: &QualifiedName) -> Step {
    let col = s.col();
    let column = &s.tenant.column;
    let mut relations = vec![root.clone()];
    relations.extend(s.catalog.partition_descendants(root).into_iter().map(|t| t.name.clone()));
    let constant = printed_constant(s.tenant.key_type, &s.tenant.default_id);
    let reads: Vec<String> =
        relations.iter().map(|r| probe::column_default_reads(r, column, &s.tenant.setting)).collect();
    let constants: Vec<String> =
        relations.iter().map(|r| probe::column_default_is(r, column, &constant)).collect();
    // SET DEFAULT on a partitioned table reaches every partition (no ONLY).
    let set = |value: String| {
        stmt(
            LockMode::AccessExclusive,
            &[root],
            format!("ALTER TABLE {root} ALTER COLUMN {col} SET DEFAULT {value};\n"),
        )
    };
    let part = Part {
        name: format!("default of {column} on {}", root.display_plain()),
        states: vec![
            state("reads the setting", holds(all(&reads))),
            state("default tenant", holds(all(&constants))),
        ],
        done: names(&["reads the setting"]),
        undone: names(&["default tenant"]),
        rollback_from: None,
        transitions: vec![
            transition("default tenant", "reads the setting", set(s.setting_expression())),
            transition("reads the setting", "default tenant", set(s.tenant_value())),
        ],
        guards: Vec::new(),
    };
    let partitions = match relations.len() {
        1 => String::new(),
        n => format!(" and its {} partitions", n - 1),
    };
    let sum: Vec<String> = reads.iter().map(|r| format!("({r})::int::int8")).collect();
    Step {
        id: format!("{}.{}:{root}", Stage::Cutover.number(), Stage::Cutover.name()),
        stage: Stage::Cutover,
        title: format!("{column} of {}{partitions} defaults to the session's tenant", root.display_plain()),
        note: format!(
            "A row inserted without {column} gets the tenant the transaction set ({}), no longer \
             the default tenant; with none set it gets NULL, which NOT NULL and the policy refuse \
             (fails closed). Metadata only; the rollback puts the default tenant back.",
            s.tenant.setting
        ),
        tables: relations.clone(),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check(
            format!("{column} defaults to the setting on {} relations", relations.len()),
            relations.len() as i64,
            format!("SELECT {}", sum.join(" + ")),
        )],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }
}

fn role_step(s: &Scope, role: &LegacyRole) -> Step {
    let default = s.tenant.default_id.as_str();
    let setting = &s.tenant.setting;
    let part = Part {
        name: format!("{setting} of role {}", role.name),
        states: vec![
            state("no tenant", holds(role_setting_is(&role.name, setting, Some(NO_TENANT)))),
            state("default tenant", holds(role_setting_is(&role.name, setting, Some(default)))),
        ],
        done: names(&["no tenant"]),
        undone: names(&["default tenant"]),
        rollback_from: None,
        transitions: vec![
            transition("default tenant", "no tenant", set_role_setting(s, &role.name, Some(NO_TENANT))),
            transition("no tenant", "default tenant", set_role_setting(s, &role.name, Some(default))),
        ],
        guards: Vec::new(),
    };
    Step {
        id: format!("{}.legacy-role:{}", Stage::Cutover.number(), role.name),
        stage: Stage::Cutover,
        title: format!("Take the default tenant away from legacy role {}", role.name),
        note: format!(
            "Sessions of {} opened from now on start with an empty {setting}: no tenant, so \
             without SET LOCAL they read nothing and cannot insert. An empty value rather than \
             RESET, so that no role-wide or database-wide {setting} can stand in for it. Sessions \
             already open keep the default tenant until they reconnect (the preflight names \
             them). The rollback gives the role the default tenant back.",
            role.name
        ),
        tables: Vec::new(),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![setting_check(s, &role.name, "no tenant", NO_TENANT)],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }
}
