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

#[cfg(test)]
mod tests {
    use super::printed_constant;
    use crate::catalog::{Catalog, LegacyRole};
    use crate::plan::test_support::*;
    use crate::plan::{KeyType, PlanError, PlanOptions, Stage, build};

    fn with_roles(mut catalog: Catalog, roles: &[(&str, Option<&str>)]) -> Catalog {
        catalog.legacy_roles = roles
            .iter()
            .map(|(name, setting)| LegacyRole {
                name: name.to_string(),
                setting: setting.map(str::to_string),
                superuser: false,
                bypass_rls: false,
                can_login: true,
                may_alter: true,
            })
            .collect();
        catalog
    }

    fn legacy(names: &[&str]) -> PlanOptions {
        PlanOptions { legacy_roles: names.iter().map(|n| n.to_string()).collect(), ..PlanOptions::default() }
    }

    #[test]
    fn stage10_switches_each_roots_default_to_the_setting_and_back() {
        let plan = plan_of(&with_events(saas(PG15)).build());
        let events = step(&plan, "10.cutover:public.events");
        assert_eq!(events.tables.len(), 5, "the root and its partitions");
        assert_eq!(
            forward_sql(events),
            "ALTER TABLE public.events ALTER COLUMN tenant_id SET DEFAULT \
             nullif(current_setting('app.tenant_id', true), '')::uuid;\n"
        );
        assert_eq!(
            rollback_sql(events),
            format!("ALTER TABLE public.events ALTER COLUMN tenant_id SET DEFAULT {DEFAULT_TENANT};\n")
        );
        assert_eq!(events.forward().len(), 1, "one metadata statement");
        assert_eq!(events.checks[0].expect, 5);
        // Every state query names the column default of each relation.
        let states: Vec<&str> = events.parts[0].states.iter().map(|s| s.when.as_str()).collect();
        assert!(states[0].contains("current_setting(''app.tenant_id''::text, true)"), "{}", states[0]);
        assert!(states[1].contains("'''00000000-0000-0000-0000-000000000001''::uuid'"), "{}", states[1]);
        assert!(states.iter().all(|s| s.contains("public.events_2025_p1")));
        // Stage 10 comes last, one step per root, and there is no stage 9.
        let roots = plan.steps_in(Stage::Rls).filter(|s| s.id != "8.rls:views").count();
        assert_eq!(plan.steps_in(Stage::Cutover).count(), roots);
        let first = plan.steps.iter().position(|s| s.stage == Stage::Cutover).unwrap();
        assert!(plan.steps[first..].iter().all(|s| s.stage == Stage::Cutover));
        assert!(plan.steps.iter().all(|s| s.stage.number() != 9));
    }

    #[test]
    fn legacy_roles_get_the_default_tenant_in_stage_8_before_the_policies_and_lose_it_in_stage_10() {
        let catalog = with_roles(saas(PG15).build(), &[("legacy_app", None), ("Billing", Some("t-7"))]);
        let plan = plan_with(&catalog, &legacy(&["legacy_app", "Billing"]));
        let fresh = step(&plan, "8.legacy-role:legacy_app");
        assert_eq!(
            forward_sql(fresh),
            format!(
                "ALTER ROLE legacy_app IN DATABASE app SET app.tenant_id = '{}';\n",
                KeyType::Uuid.default_tenant_id()
            )
        );
        assert_eq!(rollback_sql(fresh), "ALTER ROLE legacy_app IN DATABASE app RESET app.tenant_id;\n");
        let kept = step(&plan, "8.legacy-role:Billing");
        assert_eq!(rollback_sql(kept), "ALTER ROLE \"Billing\" IN DATABASE app SET app.tenant_id = 't-7';\n");
        assert!(
            kept.parts[0].states.iter().any(|s| s.when.contains("'t-7'")),
            "the state before is recognised"
        );
        // Before every policy of stage 8.
        let first_policy = plan.steps.iter().position(|s| s.id.starts_with("8.rls:")).unwrap();
        assert!(position(&plan, "8.legacy-role:Billing") < first_policy);
        assert!(fresh.forward()[0].on.is_empty(), "no table lock");

        // Stage 10: the tables first, then each role gets an empty tenant; back to the default.
        let cut = step(&plan, "10.legacy-role:legacy_app");
        assert_eq!(forward_sql(cut), "ALTER ROLE legacy_app IN DATABASE app SET app.tenant_id = '';\n");
        assert_eq!(
            rollback_sql(cut),
            format!(
                "ALTER ROLE legacy_app IN DATABASE app SET app.tenant_id = '{}';\n",
                KeyType::Uuid.default_tenant_id()
            )
        );
        let last_table = plan.steps.iter().rposition(|s| s.id.starts_with("10.cutover:")).unwrap();
        assert!(position(&plan, "10.legacy-role:legacy_app") > last_table);
        // Stage 8's part counts the cut-over state as done: applying again never re-gives it.
        assert!(fresh.parts[0].is_done("no tenant (cut over)"));
        assert!(cut.parts[0].is_done("no tenant"));

        // Without --legacy-role nothing changes before stage 10: the same steps, same hashes.
        let plain = plan_of(&saas(PG15).build());
        let without_roles: Vec<(&str, &str)> = plan
            .steps
            .iter()
            .filter(|s| !s.id.contains("legacy-role"))
            .map(|s| (s.id.as_str(), s.hash.as_str()))
            .collect();
        let plain_steps: Vec<(&str, &str)> =
            plain.steps.iter().map(|s| (s.id.as_str(), s.hash.as_str())).collect();
        assert_eq!(without_roles, plain_steps);
    }

    #[test]
    fn an_unknown_or_repeated_legacy_role_is_an_invalid_option() {
        let catalog = with_roles(saas(PG15).build(), &[("legacy_app", None)]);
        for options in [legacy(&["nobody"]), legacy(&["legacy_app", "legacy_app"])] {
            match build(&catalog, &options, GENERATED_AT) {
                Err(PlanError::InvalidOption(message)) => {
                    assert!(message.contains("--legacy-role"), "{message}")
                }
                Ok(_) => panic!("{:?} accepted", options.legacy_roles),
            }
        }
    }

    #[test]
    fn a_legacy_role_that_bypasses_rls_is_a_warning() {
        let mut catalog = with_roles(saas(PG15).build(), &[("admin_app", None), ("legacy_app", None)]);
        catalog.legacy_roles[0].bypass_rls = true;
        let plan = plan_with(&catalog, &legacy(&["admin_app", "legacy_app"]));
        assert!(has_finding(&plan, crate::plan::Severity::Warning, "legacy-role-bypasses-rls", "admin_app"));
        assert!(!has_finding(
            &plan,
            crate::plan::Severity::Warning,
            "legacy-role-bypasses-rls",
            "legacy_app"
        ));
    }

    #[test]
    fn a_legacy_role_the_tool_may_not_alter_is_refused_by_name() {
        let mut catalog = with_roles(saas(PG15).build(), &[("legacy_app", None), ("other_app", None)]);
        catalog.legacy_roles[1].may_alter = false;
        let plan = plan_with(&catalog, &legacy(&["legacy_app", "other_app"]));
        assert!(has_finding(&plan, crate::plan::Severity::Error, "legacy-role-privilege", "other_app"));
        assert!(!has_finding(&plan, crate::plan::Severity::Error, "legacy-role-privilege", "legacy_app"));
    }

    #[test]
    fn the_constant_default_is_recognised_as_postgres_prints_it() {
        assert_eq!(
            printed_constant(KeyType::Uuid, "00000000-0000-0000-0000-00000000000A"),
            "'00000000-0000-0000-0000-00000000000a'::uuid"
        );
        assert_eq!(
            printed_constant(KeyType::Uuid, "0000000000000000000000000000000a"),
            "'00000000-0000-0000-0000-00000000000a'::uuid"
        );
        assert_eq!(printed_constant(KeyType::Bigint, "007"), "'7'::bigint");
        assert_eq!(printed_constant(KeyType::Text, "o'brien\\x"), "'o''brien\\x'::text");
        let options = PlanOptions {
            tenant_key_type: KeyType::Bigint,
            default_tenant_id: "1".into(),
            tenant_setting: "myapp.current_tenant".into(),
            ..PlanOptions::default()
        };
        let plan = plan_with(&saas(PG15).build(), &options);
        assert_eq!(
            forward_sql(step(&plan, "10.cutover:public.users")),
            "ALTER TABLE public.users ALTER COLUMN tenant_id SET DEFAULT \
             nullif(current_setting('myapp.current_tenant', true), '')::bigint;\n"
        );
    }
}
