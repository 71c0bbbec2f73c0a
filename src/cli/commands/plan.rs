//! `tenantize plan`: build and write a plan, `plan --check`, `plan seal`.

use std::path::Path;

use crate::app::{Failure, exit, identity, live};
use crate::cli::args::{ConnArgs, PlanAction, PlanArgs};
use crate::plan::{self, Plan, Stage};

pub async fn run(args: PlanArgs) -> Result<(), Failure> {
    match &args.action {
        Some(PlanAction::Seal { file }) => return seal(file),
        Some(PlanAction::Retarget { file }) => return retarget(file, &args.conn).await,
        None => {}
    }
    if let Some(file) = &args.check {
        return check(file, &args.conn).await;
    }
    let out = args.out.clone().expect("clap requires --out without --check");
    if !args.force
        && let Ok(existing) = plan::file::read_unverified(&out)
        && existing.edited
    {
        return Err(Failure::usage(format!(
            "{} holds a plan edited by hand and sealed after review; writing a new plan there \
             would lose that edit: choose another --out, or pass --force to overwrite it",
            out.display()
        )));
    }
    let spec = args.conn.spec()?;
    let plan = live::build_plan(&spec, &args.options.to_options()).await?;
    out!("{}", summarize(&plan));
    if plan.errors().next().is_some() {
        return Err(Failure::new(
            exit::PREFLIGHT_REFUSED,
            "the plan has errors (see Findings); nothing was written",
        ));
    }
    plan::file::save(&plan, &out)?;
    outln!("Wrote {}", out.display());
    Ok(())
}

fn seal(file: &Path) -> Result<(), Failure> {
    let mut plan = plan::file::read_unverified(file)?;
    let edited: Vec<String> =
        plan.steps.iter().filter(|s| plan::file::step_hash(s) != s.hash).map(|s| s.id.clone()).collect();
    let whole_plan_changed = plan::file::plan_hash(&plan) != plan.plan_hash;
    if edited.is_empty() && !whole_plan_changed {
        outln!("{}: checksums already match; nothing to seal", file.display());
        return Ok(());
    }
    plan::file::seal(&mut plan);
    plan::file::save(&plan, file)?;
    if edited.is_empty() {
        outln!("sealed {}: the plan was edited outside its steps (options, tables or order)", file.display());
    } else {
        outln!("sealed {}: edited steps {}", file.display(), edited.join(", "));
    }
    outln!("the plan now records edited = true; new plan hash {:.12}", plan.plan_hash);
    Ok(())
}

/// `plan retarget`: record the connected database as the plan's own.
async fn retarget(file: &Path, conn: &ConnArgs) -> Result<(), Failure> {
    let mut plan = plan::file::load(file)?;
    let client = conn.spec()?.connect("tenantize plan retarget").await?;
    let found = identity::read(&client).await?;
    let before = plan.source.database.clone();
    identity::stamp(&mut plan, &found);
    plan::file::save(&plan, file)?;
    outln!(
        "{}: now the plan of database {:?} (OID {}); it was built for {before:?}",
        file.display(),
        found.database,
        found.oid
    );
    Ok(())
}

/// `plan --check`: exit 0 when the live database would still produce the plan, 3 when not.
async fn check(file: &Path, conn: &ConnArgs) -> Result<(), Failure> {
    let saved = plan::file::load(file)?;
    let found = live::check_against_live(&conn.spec()?, &saved).await?;
    if found.differences.is_empty() {
        outln!("{}: the database {} would still produce this plan", file.display(), found.database);
        return Ok(());
    }
    outln!("{}: the database {} has drifted from this plan:", file.display(), found.database);
    for line in &found.differences {
        outln!("  {line}");
    }
    Err(Failure::new(
        exit::VERIFY_FAILED,
        crate::event::describe::count(found.differences.len() as u64, "difference", "differences"),
    ))
}

/// What `plan` prints: tables, steps per stage with their strongest lock, findings.
pub fn summarize(plan: &Plan) -> String {
    let scoped = plan.tables.iter().filter(|t| t.scoped && t.partition_of.is_none()).count();
    let partitions = plan.tables.iter().filter(|t| t.scoped && t.partition_of.is_some()).count();
    let shared = plan.tables.iter().filter(|t| !t.scoped).count();
    let mut out = format!(
        "Plan for database {} ({}): {} tenant-scoped tables{}, {} shared, {} steps, plan {:.12}\n",
        plan.source.database,
        plan.source.server_version.split(" on ").next().unwrap_or(""),
        scoped,
        if partitions > 0 { format!(" (+{partitions} partitions)") } else { String::new() },
        shared,
        plan.steps.len(),
        plan.plan_hash
    );
    for stage in Stage::ALL {
        let steps: Vec<_> = plan.steps_in(stage).collect();
        if stage == Stage::Distribute && steps.is_empty() {
            continue;
        }
        let strongest = steps.iter().map(|s| s.strongest_lock()).max();
        out.push_str(&format!(
            "  {} {:<15} {:>4} steps  strongest lock: {}\n",
            stage.number(),
            stage.name(),
            steps.len(),
            strongest.map(|l| l.label()).unwrap_or("-")
        ));
    }
    if !plan.findings.is_empty() {
        out.push_str("Findings:\n");
        for f in &plan.findings {
            out.push_str(&format!("  {:<7} {} {}: {}\n", f.severity.label(), f.code, f.object, f.message));
        }
    }
    out
}
