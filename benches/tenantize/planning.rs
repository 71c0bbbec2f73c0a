//! Planning at scale: introspect and plan a generated schema, counting the server's
//! transactions to show the catalog is read in a fixed number of queries.

use std::time::{Duration, Instant};

use tenantize::db::ConnSpec;
use tenantize::plan::PlanOptions;
use tenantize::sandbox::Cluster;

pub async fn planning_scale(cluster: &Cluster, tables: usize) -> (f64, f64, i64) {
    let database = cluster.create_database(&format!("bench_planning_{tables}"), None).await.unwrap();
    let spec = cluster.conn_spec(&database);
    let client = spec.connect("bench planning").await.unwrap();
    let mut sql = String::from("SET search_path = public;\n");
    for i in 0..tables {
        let fk = if i > 0 { format!(", parent_id bigint REFERENCES t{} (id)", i - 1) } else { String::new() };
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now(){fk});\n"
        ));
    }
    client.batch_execute(&sql).await.unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
    drop(client);
    // Transactions the server counted while a connection did `work`, minus those of an idle
    // connection: what the introspection itself cost in round trips that commit. Autovacuum
    // workers visiting the database add to the count now and then, never subtract: the
    // smallest of three readings is the introspection's own.
    let mut baseline = i64::MAX;
    let mut with_introspection = i64::MAX;
    let mut introspect_s = f64::MAX;
    let mut catalog = None;
    for _ in 0..3 {
        baseline = baseline.min(commits_during(&spec, |_| async {}).await);
        let mut elapsed_s = 0.0;
        let counted = commits_during(&spec, |probe| {
            let catalog = &mut catalog;
            let elapsed_s = &mut elapsed_s;
            async move {
                let started = Instant::now();
                *catalog =
                    Some(tenantize::catalog::introspect(&probe, &["public".to_string()], &[]).await.unwrap());
                *elapsed_s = started.elapsed().as_secs_f64();
            }
        })
        .await;
        with_introspection = with_introspection.min(counted);
        // The first (coldest) timing is the one reported.
        if introspect_s == f64::MAX {
            introspect_s = elapsed_s;
        }
    }
    let catalog = catalog.unwrap();
    let plan_started = Instant::now();
    let plan = tenantize::plan::build(&catalog, &PlanOptions::default(), "bench").unwrap();
    let plan_s = plan_started.elapsed().as_secs_f64();
    assert!(plan.steps.len() > tables, "the plan covers the tables");
    (introspect_s, plan_s, with_introspection - baseline)
}

/// xact_commit of the database before and after a fresh connection runs `work` and closes.
/// Statistics are flushed when a backend exits; each reading connection is fresh, so its own
/// transaction is counted once, in both the baseline and the measurement.
async fn commits_during<F, Fut>(spec: &ConnSpec, work: F) -> i64
where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    async fn read(spec: &ConnSpec) -> i64 {
        let reader = spec.connect("bench stats").await.unwrap();
        reader
            .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", &[])
            .await
            .unwrap()
            .get(0)
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = read(spec).await;
    let probe = spec.connect("bench planning").await.unwrap();
    work(probe).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    read(spec).await - before
}
