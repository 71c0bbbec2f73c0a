//! Plans from the live catalog: build one, or tell whether a saved one still matches.

use crate::catalog::{Catalog, introspect, read_citus, read_legacy_roles};
use crate::db::ConnSpec;
use crate::engine;
use crate::plan::{self, Plan, PlanOptions};

use super::exit::Failure;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Introspect and build a plan (shared by `plan`, the wizard, the demo, rehearsals and the
/// benchmark).
pub async fn build_plan(spec: &ConnSpec, options: &PlanOptions) -> Result<Plan, Failure> {
    let client = spec.connect("tenantize plan").await?;
    missing_schemas(&client, &options.schemas).await?;
    let catalog = read_catalog(&client, options).await?;
    let mut plan =
        plan::build(&catalog, options, &now_rfc3339()).map_err(|e| Failure::usage(e.to_string()))?;
    super::identity::stamp(&mut plan, &super::identity::read(&client).await?);
    Ok(plan)
}

/// The catalog a plan with `options` is built from: the schemas, the `--legacy-role`s and,
/// for `--distribute citus`, what the server says about Citus.
pub async fn read_catalog(
    client: &tokio_postgres::Client,
    options: &PlanOptions,
) -> Result<Catalog, Failure> {
    let mut catalog =
        introspect(client, &options.schemas, std::slice::from_ref(&options.tenant_table.schema)).await?;
    catalog.legacy_roles = read_legacy_roles(client, &options.legacy_roles, &options.tenant_setting).await?;
    if options.distribute.is_some() {
        catalog.citus = Some(read_citus(client).await?);
    }
    Ok(catalog)
}

/// Refuse (exit 5) a `--schema` the database does not have, naming it: otherwise the plan
/// would only say it found no tables.
async fn missing_schemas(client: &tokio_postgres::Client, schemas: &[String]) -> Result<(), Failure> {
    let rows = client
        .query(
            "SELECT s FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n)
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = s) ORDER BY n",
            &[&schemas],
        )
        .await
        .map_err(|e| Failure::usage(crate::db::describe_pg_error(&e)))?;
    let missing: Vec<String> = rows.iter().map(|r| format!("{:?}", r.get::<_, String>(0))).collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(Failure::usage(format!("no such schema {} in this database", missing[0]))),
        _ => Err(Failure::usage(format!("no such schemas {} in this database", missing.join(", ")))),
    }
}

/// What `plan --check` found: the database's name and every difference, in words.
pub struct LiveCheck {
    pub database: String,
    pub differences: Vec<String>,
}

/// Step ids only in `new`, only in `old`, and in both with another hash.
pub fn step_changes(old: &Plan, new: &Plan) -> (Vec<String>, Vec<String>, Vec<String>) {
    let has = |p: &Plan, id: &str| p.steps.iter().any(|s| s.id == id);
    let added = new.steps.iter().filter(|s| !has(old, &s.id)).map(|s| s.id.clone()).collect();
    let removed = old.steps.iter().filter(|s| !has(new, &s.id)).map(|s| s.id.clone()).collect();
    let changed = new
        .steps
        .iter()
        .filter(|s| old.step(&s.id).is_some_and(|o| o.hash != s.hash))
        .map(|s| s.id.clone())
        .collect();
    (added, removed, changed)
}

/// The drift of every table (what changed) and, while nothing is applied, whether planning
/// again would give the same steps.
pub async fn check_against_live(spec: &ConnSpec, saved: &Plan) -> Result<LiveCheck, Failure> {
    let client = spec.connect("tenantize plan --check").await?;
    let catalog = read_catalog(&client, &saved.options).await?;
    let mut differences = engine::drift(saved, &catalog, None).lines();
    let status = engine::status(spec, saved).await?;
    let nothing_applied = status.steps.iter().all(|s| !s.state.has_effects());
    if nothing_applied && differences.is_empty() {
        let fresh = plan::build(&catalog, &saved.options, &now_rfc3339())
            .map_err(|e| Failure::usage(e.to_string()))?;
        if plan::file::canonical_text(&fresh) != plan::file::canonical_text(saved) {
            let (added, removed, changed) = step_changes(saved, &fresh);
            differences.push(format!(
                "planning again gives other steps: {} added {:?}, {} removed {:?}, {} changed {:?}",
                added.len(),
                added,
                removed.len(),
                removed,
                changed.len(),
                changed
            ));
            if saved.edited {
                differences.push(
                    "(the saved plan was edited by hand and sealed; its steps differ by design)".into(),
                );
            }
        }
    }
    Ok(LiveCheck { database: catalog.server.database, differences })
}
