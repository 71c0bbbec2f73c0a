//! `tenantize verify`: every validation count judged against the journal, or, with
//! `--isolation`, the isolation probe.

use crate::app::{Failure, exit};
use crate::catalog::introspect;
use crate::checks;
use crate::cli::args::VerifyArgs;

async fn isolation(args: &VerifyArgs) -> Result<(), Failure> {
    use crate::checks::isolation::{Tenancy, probe};
    let spec = args.conn.spec()?;
    let plan = args.file.as_deref().map(crate::plan::file::load).transpose()?;
    if let Some(plan) = &plan {
        crate::app::identity::check(&spec, plan, "tenantize isolation probe").await?;
    }
    let options = match &plan {
        Some(plan) => plan.options.clone(),
        None => args.options.to_options(),
    };
    let client = spec.connect("tenantize isolation probe").await?;
    let catalog =
        introspect(&client, &options.schemas, std::slice::from_ref(&options.tenant_table.schema)).await?;
    let tenancy = match &plan {
        Some(plan) => Tenancy::from_plan(plan),
        None => Tenancy::discover(
            &catalog,
            options.tenant_table.clone(),
            &options.tenant_column,
            &options.tenant_setting,
        ),
    };
    // On Citus the probe reads existing rows through a second connection (see its module).
    let reader = spec.connect("tenantize isolation probe").await?;
    let report = probe(&client, &reader, &catalog, &tenancy).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_isolation(&catalog.server.database, &report);
    }
    if report.ok {
        Ok(())
    } else if !report.leaks.is_empty() {
        Err(Failure::new(
            exit::VERIFY_FAILED,
            crate::event::describe::count(report.leaks.len() as u64, "leak", "leaks"),
        ))
    } else {
        Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "no leak found, but isolation is not proven for {} of {} tables and {} of {} views",
                report.tables_total - report.tables_proven,
                report.tables_total,
                report.views_total - report.views_proven,
                report.views_total
            ),
        ))
    }
}

fn print_isolation(database: &str, report: &crate::checks::isolation::IsolationReport) {
    use crate::checks::isolation::Outcome;
    let verdict = if !report.leaks.is_empty() {
        "LEAKS FOUND"
    } else if report.ok {
        "no leak"
    } else {
        "no leak found, NOT PROVEN"
    };
    outln!(
        "isolation probe on {database} ({} tables, {} views): {verdict}; proven for {} of {} tables, {} of {} views",
        report.tables_total,
        report.views_total,
        report.tables_proven,
        report.tables_total,
        report.views_proven,
        report.views_total
    );
    for object in report.tables.iter().chain(report.views.iter()) {
        let leaked = object.probes.iter().any(|p| p.outcome == Outcome::Leak);
        let mark = if leaked {
            "LEAK"
        } else if object.proven {
            "ok  "
        } else {
            "??  "
        };
        outln!("  {mark} {} ({} probes)", object.object, object.probes.len());
        for probe in object.probes.iter().filter(|p| p.outcome != Outcome::Ok) {
            let sign = if probe.outcome == Outcome::Leak { "✗" } else { "? not proven:" };
            outln!("       {sign} {}: {}", probe.name, probe.detail);
            if let Some(sql) = &probe.sql {
                outln!("         to see it, run as a superuser:");
                for line in sql.lines() {
                    outln!("           {line}");
                }
            }
        }
    }
    for note in &report.notes {
        outln!("  note: {note}");
    }
    outln!("(everything ran in one transaction that was rolled back: nothing was left behind)");
}

/// Where Citus put the plan's tables: the facts in one line, then the shards per worker.
fn print_distribution(d: &checks::DistributionReport) {
    use crate::event::describe::{bytes, count};
    outln!("  distribution: {}", d.summary());
    for w in &d.workers {
        outln!(
            "    {:<24} {:>11} {:>13}  {:>9}{}",
            w.node,
            count(w.shards.max(0) as u64, "shard", "shards"),
            format!("{} reference", w.reference_shards),
            bytes(w.size_bytes),
            if w.should_have_shards { "" } else { "  (shouldhaveshards = false)" }
        );
    }
}

pub async fn run(args: VerifyArgs) -> Result<(), Failure> {
    if args.isolation {
        return isolation(&args).await;
    }
    let file = args.file.clone().expect("clap requires a plan file without --isolation");
    let plan = crate::plan::file::load(&file)?;
    let spec = args.conn.spec()?;
    crate::app::identity::check(&spec, &plan, "tenantize verify").await?;
    let report = checks::verify(&spec, &plan).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        outln!(
            "verify {} (applied through stage {}): {}",
            report.database,
            report.applied_through,
            if report.ok { "ok" } else { "FAILED" }
        );
        if report.cutover != crate::plan::CutoverState::NotPlanned {
            outln!("  cutover (stage 10): {}", report.cutover.describe());
        }
        outln!("  {:<40} {:>10} {:>8} {:>8} {:>8}  rls", "table", "rows", "no tenant", "unknown", "cross");
        for t in &report.tables {
            let rls = match (t.rls_enabled, t.rls_forced, t.has_policy) {
                (true, true, true) => "on, forced",
                (false, _, _) => "off",
                _ => "partial",
            };
            outln!(
                "  {:<40} {:>10} {:>8} {:>8} {:>8}  {}{}",
                format!("{}{}", t.table, if t.scoped { "" } else { " (shared)" }),
                t.rows,
                t.null_tenant,
                t.unknown_tenant,
                t.cross_tenant,
                if t.scoped { rls } else { "-" },
                if t.unscoped_uniques.is_empty() || !t.scoped {
                    String::new()
                } else {
                    format!("  global uniques: {}", t.unscoped_uniques.join(", "))
                }
            );
        }
        if let Some(d) = &report.distribution {
            print_distribution(d);
        }
        for p in &report.problems {
            outln!("  problem: {p}");
        }
    }
    if !report.ok {
        return Err(Failure::new(
            exit::VERIFY_FAILED,
            format!(
                "{} found",
                crate::event::describe::count(report.problems.len() as u64, "problem", "problems")
            ),
        ));
    }
    Ok(())
}
