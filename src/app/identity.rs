//! Which database a plan is for. A plan records the identity of the database it was built on
//! (the cluster's system identifier and the database's OID, with its name); apply, rollback,
//! verify and status refuse it on any other database, even one with the same schema (a
//! staging copy, a sibling tenant database). A database moved on purpose (restored, upgraded)
//! takes the plan over explicitly with `tenantize plan retarget`; a rehearsal re-targets its
//! plan to the copy it runs on.

use tokio_postgres::Client;

use super::exit::Failure;
use crate::db::{ConnSpec, describe_pg_error};
use crate::plan::Plan;

/// What identifies a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `pg_control_system().system_identifier`; `None` where the role may not read it.
    pub system_identifier: Option<String>,
    pub database: String,
    pub oid: u32,
}

impl Identity {
    fn describe(name: &str, oid: Option<u32>, system: Option<&str>) -> String {
        let mut text = format!("{name:?}");
        match (oid, system) {
            (Some(oid), Some(system)) => text.push_str(&format!(" (OID {oid} in cluster {system})")),
            (Some(oid), None) => text.push_str(&format!(" (OID {oid})")),
            _ => {}
        }
        text
    }
}

pub async fn read(client: &Client) -> Result<Identity, Failure> {
    let row = client
        .query_one(
            "SELECT current_database()::text, oid FROM pg_catalog.pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Failure::usage(describe_pg_error(&e)))?;
    // Readable by every role on current servers; a role refused it still has name and OID.
    let system_identifier = client
        .query_one("SELECT system_identifier::text FROM pg_catalog.pg_control_system()", &[])
        .await
        .ok()
        .map(|r| r.get::<_, String>(0));
    Ok(Identity { system_identifier, database: row.get(0), oid: row.get(1) })
}

/// Record `identity` as the plan's database. The identity is not covered by the plan's
/// checksums (like where and when it was built), so this needs no new seal.
pub fn stamp(plan: &mut Plan, identity: &Identity) {
    plan.source.database = identity.database.clone();
    plan.source.database_oid = Some(identity.oid);
    plan.source.system_identifier = identity.system_identifier.clone();
}

/// Why `plan` is not for the database `found`, if it is not. A renamed database keeps its OID
/// and is the same database; a plan that recorded no identity is judged by its name alone
/// (as before, drift detection compares its shape).
pub fn foreign(plan: &Plan, found: &Identity) -> Option<String> {
    let source = &plan.source;
    let other_cluster = matches!(
        (&source.system_identifier, &found.system_identifier),
        (Some(a), Some(b)) if a != b
    );
    let other_oid = source.database_oid.is_some_and(|oid| oid != found.oid);
    let other_name = source.database_oid.is_none() && source.database != found.database;
    if !(other_cluster || other_oid || other_name) {
        return None;
    }
    Some(format!(
        "this plan was built for database {}; this is {}: a plan is for the database it was built \
         on only, even where another has the same schema. Build a plan here with `tenantize plan`; \
         if this is that database moved (restored or upgraded), `tenantize plan retarget FILE` \
         makes the plan this database's",
        Identity::describe(&source.database, source.database_oid, source.system_identifier.as_deref()),
        Identity::describe(&found.database, Some(found.oid), found.system_identifier.as_deref()),
    ))
}

/// Refuse (exit 5) when `plan` was built for another database than the one `spec` names.
pub async fn check(spec: &ConnSpec, plan: &Plan, application: &str) -> Result<(), Failure> {
    let client = spec.connect(application).await?;
    let found = read(&client).await?;
    match foreign(plan, &found) {
        Some(reason) => Err(Failure::usage(reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        let text = include_str!("../../plans/sample.plan.toml");
        crate::plan::file::parse(text, "plans/sample.plan.toml").expect("the sample plan parses")
    }

    fn plan_for(identity: &Identity) -> Plan {
        let mut plan = sample();
        stamp(&mut plan, identity);
        plan
    }

    #[test]
    fn another_oid_or_cluster_is_another_database_and_a_rename_is_not() {
        let here = Identity { system_identifier: Some("7".into()), database: "app".into(), oid: 16384 };
        let plan = plan_for(&here);
        assert_eq!(foreign(&plan, &here), None);
        let renamed = Identity { database: "app_old".into(), ..here.clone() };
        assert_eq!(foreign(&plan, &renamed), None);
        let copy = Identity { database: "app_copy".into(), oid: 16999, ..here.clone() };
        let why = foreign(&plan, &copy).expect("a copy on the same server is another database");
        assert!(why.contains("built for database \"app\" (OID 16384 in cluster 7)"), "{why}");
        let elsewhere = Identity { system_identifier: Some("8".into()), ..here.clone() };
        assert!(foreign(&plan, &elsewhere).is_some(), "same name and OID in another cluster");
        let unreadable = Identity { system_identifier: None, ..here.clone() };
        assert_eq!(foreign(&plan, &unreadable), None, "no system identifier to compare");
    }

    #[test]
    fn a_plan_without_an_identity_is_judged_by_its_database_name() {
        let mut plan = sample();
        plan.source.database = "app".into();
        let found = Identity { system_identifier: Some("7".into()), database: "app".into(), oid: 1 };
        assert_eq!(foreign(&plan, &found), None);
        assert!(foreign(&plan, &Identity { database: "other".into(), ..found }).is_some());
    }
}
