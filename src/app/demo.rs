//! The demo: a throwaway cluster with the sample application loaded.

use crate::db::ConnSpec;
use crate::plan::{BackfillMode, PlanOptions};
use crate::sandbox::{Cluster, ClusterOptions};

use super::exit::Failure;

pub struct Demo {
    pub cluster: Cluster,
    pub database: String,
    pub spec: ConnSpec,
    /// The demo's plan options (its lookup table shared).
    pub options: PlanOptions,
}

/// Start a throwaway cluster and load the sample with `rows` in its largest table; `say`
/// hears each phase.
pub async fn start(rows: u64, backfill: Option<BackfillMode>, say: &dyn Fn(String)) -> Result<Demo, Failure> {
    say("starting a throwaway PostgreSQL cluster…".into());
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await
        .map_err(|e| Failure::usage(e.to_string()))?
        .map_err(|e| Failure::usage(format!("cannot start the demo database: {e}")))?;
    let database =
        cluster.create_database("tenantize_demo", None).await.map_err(|e| Failure::usage(e.to_string()))?;
    let spec = cluster.conn_spec(&database);
    say(format!("loading the sample issue tracker ({rows} rows in issue_comments)…"));
    let client = spec.connect("tenantize demo").await?;
    crate::sample::load(&client, rows).await.map_err(|e| {
        Failure::usage(format!("loading the sample failed: {}", crate::db::describe_pg_error(&e)))
    })?;
    let options = PlanOptions {
        exclude: vec!["public.issue_statuses".to_string()],
        backfill,
        ..PlanOptions::default()
    };
    Ok(Demo { cluster, database, spec, options })
}
