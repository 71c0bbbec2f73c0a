//! A real Citus cluster for the tests that distribute: this test binary's cluster is the
//! coordinator, and two more throwaway clusters are its workers, all on 127.0.0.1 with the
//! settings `shared/notes/citus-facts.md` lists. Each test gets a database of the same name on
//! all three, with the extension, the coordinator registered and both workers added.
//! Needs Citus installed into the server (`shared/vendor/citus/build.sh`, which `.ci/run`
//! runs); without it the clusters fail to start and the tests fail, naming it.

use std::sync::OnceLock;

use tenantize::sandbox::{Cluster, ClusterOptions};

use super::{TestDb, cluster, cluster_with_options, db_handle, start};

static WORKERS: OnceLock<Vec<Cluster>> = OnceLock::new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by each test that distributes, for its whole run. Citus names the replication slots
/// of an online copy after the node, the table's owner and an operation number that each
/// database counts from 1, and slots belong to the whole worker cluster: two databases
/// distributing at once on the same workers collide (`replication slot
/// "citus_shard_split_slot_2_10_1" already exists`). A real cluster has one database.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// `postgresql.conf` lines every node needs, and one that makes the tests faster.
fn citus_settings() -> Vec<String> {
    let mut settings = tenantize::sandbox::citus_node_settings().expect("PostgreSQL server binaries");
    // Each online distribution waits for a worker's subscription to start, which the logical
    // replication launcher does up to this long after it is created (5 s by default: half of
    // the distribution time of a small table; measured here).
    settings.push("wal_retrieve_retry_interval = '100ms'".to_string());
    settings
}

fn node_options() -> ClusterOptions {
    ClusterOptions { tcp: true, extra_settings: citus_settings(), ..Default::default() }
}

fn citus_missing_hint() -> &'static str {
    "is Citus installed into this PostgreSQL? run shared/vendor/citus/build.sh (.ci/run does)"
}

/// The coordinator (this binary's cluster) and its two workers, started once.
pub fn nodes() -> (&'static Cluster, &'static [Cluster]) {
    let coordinator = cluster_with_options(&node_options());
    let workers = WORKERS.get_or_init(|| (0..2).map(|_| start(&node_options())).collect());
    (coordinator, workers)
}

async fn admin(node: &Cluster, database: &str) -> tokio_postgres::Client {
    node.conn_spec(database).connect("tenantize-test").await.expect("connect to a Citus node")
}

async fn exec(client: &tokio_postgres::Client, sql: &str) {
    client.batch_execute(sql).await.unwrap_or_else(|e| {
        panic!("{}: {sql} ({})", tenantize::db::describe_pg_error(&e), citus_missing_hint())
    });
}

/// `citus_add_node` for `worker`, from `client` (connected to the coordinator's database).
/// The tests share their nodes, and Citus copies every role of the cluster to a node it adds:
/// a role another test's probe drops meanwhile fails the copy ("failure on connection marked
/// as essential", probably that: seen in two of three runs of this binary here, each time as
/// another test ended). A failed add changes nothing, so it is tried again; each failure is
/// printed with the servers' logs (Citus reports the remote error as a warning, which the
/// client does not keep).
async fn add_node(client: &tokio_postgres::Client, coordinator: &Cluster, worker: &Cluster) {
    let sql = format!("SELECT citus_add_node('127.0.0.1', {})", worker.port());
    for attempt in 1..=3 {
        let Err(e) = client.batch_execute(&sql).await else { return };
        let report = format!(
            "{}: {sql} (attempt {attempt})\ncoordinator's log:\n{}\nworker's log:\n{}",
            tenantize::db::describe_pg_error(&e),
            coordinator.log_tail(40),
            worker.log_tail(40)
        );
        if attempt == 3 {
            panic!("{report}");
        }
        eprintln!("{report}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A fresh database on every node, Citus ready in it.
pub async fn citus_db(prefix: &str) -> TestDb {
    let (coordinator, workers) = nodes();
    let name = coordinator.create_database(prefix, None).await.expect("create a test database");
    for worker in workers {
        exec(&admin(worker, "postgres").await, &format!("CREATE DATABASE {name}")).await;
        exec(&admin(worker, &name).await, "CREATE EXTENSION citus").await;
    }
    let client = admin(coordinator, &name).await;
    exec(&client, "CREATE EXTENSION citus").await;
    exec(&client, &format!("SELECT citus_set_coordinator_host('127.0.0.1', {})", coordinator.port())).await;
    for worker in workers {
        add_node(&client, coordinator, worker).await;
    }
    assert!(std::ptr::eq(cluster(), coordinator));
    db_handle(name)
}

/// Chinook (`../shared/fixtures/chinook`) in a fresh Citus database.
pub async fn citus_chinook_db(prefix: &str) -> TestDb {
    let db = citus_db(prefix).await;
    cluster()
        .run_sql_file(&db.name, &super::fixtures_dir().join("chinook/chinook.sql"))
        .expect("load chinook");
    db.exec("ANALYZE").await;
    db
}

/// pagila (`../shared/fixtures/pagila`, partitioned `payment`) in a fresh Citus database.
pub async fn citus_pagila_db(prefix: &str) -> TestDb {
    let db = citus_db(prefix).await;
    let dir = super::fixtures_dir().join("pagila");
    cluster().run_sql_file(&db.name, &dir.join("pagila-schema.sql")).expect("load pagila schema");
    cluster().run_sql_file(&db.name, &dir.join("pagila-data.sql")).expect("load pagila data");
    db.exec("ANALYZE").await;
    db
}

/// A third worker, started for this test and added to `db` only (each database has its own
/// Citus metadata): the cluster outgrows two workers. Removed when the returned cluster drops.
pub async fn add_worker(db: &TestDb) -> Cluster {
    let worker = start(&node_options());
    exec(&admin(&worker, "postgres").await, &format!("CREATE DATABASE {}", db.name)).await;
    exec(&admin(&worker, &db.name).await, "CREATE EXTENSION citus").await;
    add_node(&db.connect().await, cluster(), &worker).await;
    worker
}

/// The sample application in a fresh Citus database (`rows` in its largest table).
pub async fn citus_sample_db(prefix: &str, rows: u64) -> TestDb {
    let db = citus_db(prefix).await;
    let client = db.connect().await;
    tenantize::sample::load(&client, rows).await.expect("load the sample application");
    db
}

/// Per worker (port): how many shard placements of tables in `schema` it holds.
pub async fn placements_per_worker(db: &TestDb) -> Vec<(i32, i64)> {
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT n.nodeport, count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
              WHERE n.groupid <> 0 GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("placements");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}
