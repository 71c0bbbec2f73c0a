//! Stage 8, first: each `--legacy-role` gets the default tenant as its setting for this
//! database, so the application as it is today (which sets no tenant) keeps seeing and writing
//! the default tenant once the policies are on. A transaction's `SET LOCAL` overrides it.
//! The cutover (stage 10, `cutover.rs`) empties it again.

use crate::catalog::LegacyRole;
use crate::plan::analysis::{Analysis, Scope};
use crate::plan::ddl::{check, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{Finding, LockMode, Part, Severity, Stage, Statement, Step};
use crate::plan::probe::{holds, role_setting_is};
use crate::sql::{quote_ident, quote_literal};

/// The value the cutover leaves: an empty tenant, which the policies read as none.
pub(in crate::plan) const NO_TENANT: &str = "";

/// One step per legacy role, in the order given.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let s = &a.scope;
    s.catalog.legacy_roles.iter().map(|role| step(s, role)).collect()
}

/// A legacy role the policies do not apply to: its default tenant changes nothing for it. A
/// legacy role whose setting the tool's role may not change: refused before anything changes.
pub(in crate::plan) fn findings(a: &Analysis) -> Vec<Finding> {
    let s = &a.scope;
    let refused = s.catalog.legacy_roles.iter().filter(|r| !r.may_alter).map(|r| Finding {
        severity: Severity::Error,
        code: "legacy-role-privilege".into(),
        object: r.name.clone(),
        message: format!(
            "role {} may not ALTER ROLE {} IN DATABASE {} SET {}: that takes a superuser, or \
             CREATEROLE for a role that is not a superuser (on PostgreSQL 16+ also ADMIN OPTION \
             on it); run the plan as such a role or leave --legacy-role {} out",
            s.catalog.role.name, r.name, s.catalog.server.database, s.tenant.setting, r.name
        ),
    });
    let bypassing = s.catalog.legacy_roles.iter().filter(|r| r.superuser || r.bypass_rls).map(|r| Finding {
        severity: Severity::Warning,
        code: "legacy-role-bypasses-rls".into(),
        object: r.name.clone(),
        message: format!(
            "{} is {}: row-level security does not apply to it, so it sees every tenant \
                 whatever its {}; the application should connect as a role that is neither \
                 superuser nor BYPASSRLS (and not the tables' owner)",
            r.name,
            if r.superuser { "a superuser" } else { "BYPASSRLS" },
            s.tenant.setting
        ),
    });
    refused.chain(bypassing).collect()
}

/// `ALTER ROLE … IN DATABASE … SET setting = value` (`None`: `RESET setting`). Takes no
/// table lock; it changes what sessions of the role opened from then on start with.
pub(in crate::plan) fn set_role_setting(s: &Scope, role: &str, value: Option<&str>) -> Statement {
    let setting: Vec<String> = s.tenant.setting.to_ascii_lowercase().split('.').map(quote_ident).collect();
    let setting = setting.join(".");
    let head =
        format!("ALTER ROLE {} IN DATABASE {}", quote_ident(role), quote_ident(&s.catalog.server.database));
    let sql = match value {
        Some(value) => format!("{head} SET {setting} = {};\n", quote_literal(value)),
        None => format!("{head} RESET {setting};\n"),
    };
    stmt(LockMode::None, &[], sql)
}

/// A check that the role's setting in this database is `value`.
pub(in crate::plan) fn setting_check(s: &Scope, role: &str, what: &str, value: &str) -> crate::plan::Check {
    check(
        format!("{what} for role {role} in this database"),
        1,
        format!("SELECT ({})::int::int8", role_setting_is(role, &s.tenant.setting, Some(value))),
    )
}

fn step(s: &Scope, role: &LegacyRole) -> Step {
    let default = s.tenant.default_id.as_str();
    let setting = &s.tenant.setting;
    let before = role.setting.as_deref();
    let restore = set_role_setting(s, &role.name, before);
    let mut undone = vec!["as before"];
    if before == Some(default) {
        // Already the default tenant: nothing to do either way.
        undone.push("default tenant");
    }
    let part = Part {
        name: format!("{setting} of role {}", role.name),
        states: vec![
            state("default tenant", holds(role_setting_is(&role.name, setting, Some(default)))),
            // Where the cutover leaves it: still this step's work, since stage 10 undoes it.
            state("no tenant (cut over)", holds(role_setting_is(&role.name, setting, Some(NO_TENANT)))),
            state("as before", holds(role_setting_is(&role.name, setting, before))),
        ],
        done: names(&["default tenant", "no tenant (cut over)"]),
        undone: names(&undone),
        rollback_from: None,
        transitions: vec![
            transition("as before", "default tenant", set_role_setting(s, &role.name, Some(default))),
            transition("default tenant", "as before", restore.clone()),
            transition("no tenant (cut over)", "as before", restore),
        ],
        guards: Vec::new(),
    };
    let was = match before {
        Some(value) => format!("it had {setting} = {value:?} here, which the rollback restores"),
        None => format!("it had no {setting} here; the rollback resets it"),
    };
    Step {
        id: format!("8.legacy-role:{}", role.name),
        stage: Stage::Rls,
        title: format!("Give legacy role {} the default tenant", role.name),
        note: format!(
            "Sessions of {} opened from now on start with {setting} set to the default tenant, so \
             the application as it is keeps reading and writing it once the policies are on; a \
             transaction's SET LOCAL overrides it. Sessions already open keep what they started \
             with. The cutover (stage 10) takes it away. Before: {was}.",
            role.name
        ),
        tables: Vec::new(),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![setting_check(s, &role.name, "default tenant", default)],
        backfill: None,
        parts: vec![part],
        hash: String::new(),
    }
}
