//! `tenantize wizard`, `tenantize demo` and `tenantize replay`: the terminal UI.

use crate::app::wizard::Opening;
use crate::app::{Failure, demo as demo_app, wizard as wizard_app};
use crate::cli::args::{DemoArgs, ReplayArgs, WizardArgs};
use crate::db::ConnSpec;
use crate::engine::RunSettings;
use crate::plan::{BackfillMode, Severity};
use crate::tui::state::{Model, ServerSummary};

pub async fn wizard(args: WizardArgs) -> Result<(), Failure> {
    let spec = args.conn.spec()?;
    let opening = wizard_app::prepare(&spec, args.plan.as_deref(), args.options.to_options()).await?;
    open(spec, model_of(opening), args.run.settings("wizard")).await
}

/// The wizard's model from what `app::wizard::prepare` found.
fn model_of(opening: Opening) -> Model {
    let catalog = opening.catalog;
    let server = ServerSummary {
        connection: opening.connection,
        database: catalog.server.database.clone(),
        version: catalog.server.version.clone(),
        role: catalog.role.name.clone(),
        superuser: catalog.role.superuser,
        bypass_rls: catalog.role.bypass_rls,
        can_create_schema: catalog.journal_exists || catalog.role.can_create_in_database,
        owns_all_tables: opening.owns_all_tables,
    };
    let mut model = Model::new(opening.plan, opening.options, server, std::time::Instant::now());
    model.plan_path = opening.plan_path;
    model.catalog = Some(catalog);
    model.plan_check = opening.plan_check;
    model.apply_journal(&opening.journal);
    if let Some(reason) = opening.read_only_reason {
        model.read_only = true;
        model.message = Some((Severity::Error, format!("read-only: {reason}")));
    }
    model
}

async fn open(spec: ConnSpec, model: Model, settings: RunSettings) -> Result<(), Failure> {
    crate::tui::runtime::run(Some(spec), model, settings).await.map_err(Failure::usage)
}

pub async fn demo(args: DemoArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let say = |line: String| errln!("tenantize demo: {line}");
    let demo = demo_app::start(args.rows, args.backfill.map(BackfillMode::from), &say).await?;
    say(format!("ready in {:.1} s; opening the wizard", started.elapsed().as_secs_f64()));
    let cluster = demo.cluster;
    let result = match wizard_app::prepare(&demo.spec, None, demo.options.clone()).await {
        Ok(opening) => {
            let mut model = model_of(opening);
            // A plan the wizard writes names a database the demo removes at its end: it goes
            // with the cluster, not into the directory the demo was started from.
            if !args.keep {
                model.plan_dir = cluster.socket_dir().to_path_buf();
            }
            open(demo.spec.clone(), model, args.run.settings("demo")).await
        }
        Err(e) => Err(e),
    };
    if args.keep {
        cluster.keep_running();
        outln!("The demo database is still running: {}", cluster.url(&demo.database));
        outln!(
            "Stop and remove it with: runuser -u postgres -- {}/pg_ctl -D {} stop && rm -rf {}",
            cluster.bin_dir().display(),
            cluster.data_dir().display(),
            cluster.socket_dir().display()
        );
    } else {
        let wrote_plan = std::fs::read_dir(cluster.socket_dir())
            .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".plan.toml")))
            .unwrap_or(false);
        let plan =
            if wrote_plan { " and the plan file the wizard wrote in it (--keep keeps both)" } else { "" };
        say(format!("removing the demo cluster{plan}"));
    }
    drop(cluster);
    result
}

pub async fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let log = crate::runlog::read(&args.runlog).map_err(|e| Failure::usage(e.to_string()))?;
    if args.print {
        out!("{}", crate::report::markdown_run(&log));
        return Ok(());
    }
    let model = crate::tui::replay::model(&log, std::time::Instant::now());
    crate::tui::runtime::run(None, model, RunSettings::default()).await.map_err(Failure::usage)
}
