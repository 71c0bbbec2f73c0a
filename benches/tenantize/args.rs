//! The benchmark's command line.

pub struct Args {
    pub rows: u64,
    pub writes_per_second: u64,
    pub planning_tables: usize,
    pub json: String,
    /// Which runs to make (a, b, c, p; d is not in the default); the ratios need a, b and c.
    pub runs: String,
    pub skip_planning: bool,
    /// Run `p` (what the application pays afterwards): pgbench's scale, the sample's size,
    /// rounds per workload, seconds per pgbench run, clients.
    pub app_scale: u64,
    pub app_rows: u64,
    pub app_rounds: u64,
    pub app_seconds: u64,
    pub app_clients: u64,
    /// Run `d` (stage 9 on Citus): the sample's size (rows in issue_comments) and the shards
    /// per distributed table.
    pub dist_rows: u64,
    pub dist_shard_count: u32,
    /// Seconds stage 9 may take before run `d` stops it and reports it unfinished.
    pub dist_timeout: u64,
    /// Extra `postgresql.conf` lines for the single-node cluster (`--server-setting`,
    /// repeatable), to try a server configuration against the default one.
    pub server_settings: Vec<String>,
    /// Seconds of the writer alone before runs a, b and c (their baseline).
    pub idle_seconds: u64,
    /// Run `p`: the tenant key's type in the converted copies (`--app-tenant-key-type`), to
    /// measure what a narrower key saves per lookup.
    pub app_tenant_key_type: tenantize::plan::KeyType,
    /// Run `p`: convert the copies with `--cover-indexes` (`--app-cover-indexes`).
    pub app_cover_indexes: bool,
}

pub fn args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        writes_per_second: 200,
        planning_tables: 2000,
        json: "target/bench.json".into(),
        runs: "abcp".into(),
        skip_planning: false,
        app_scale: 10,
        app_rows: 100_000,
        app_rounds: 3,
        app_seconds: 5,
        app_clients: 2,
        dist_rows: 200_000,
        dist_shard_count: 8,
        dist_timeout: 600,
        server_settings: Vec::new(),
        idle_seconds: 30,
        app_tenant_key_type: tenantize::plan::KeyType::Uuid,
        app_cover_indexes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--writes-per-second" => args.writes_per_second = value().parse().expect("--writes-per-second N"),
            "--planning-tables" => args.planning_tables = value().parse().expect("--planning-tables N"),
            "--json" => args.json = value(),
            "--runs" => args.runs = value(),
            "--skip-planning" => args.skip_planning = true,
            "--app-cover-indexes" => args.app_cover_indexes = true,
            "--app-scale" => args.app_scale = value().parse().expect("--app-scale N"),
            "--app-rows" => args.app_rows = value().parse().expect("--app-rows N"),
            "--app-rounds" => args.app_rounds = value().parse().expect("--app-rounds N"),
            "--app-seconds" => args.app_seconds = value().parse().expect("--app-seconds N"),
            "--app-clients" => args.app_clients = value().parse().expect("--app-clients N"),
            "--dist-rows" => args.dist_rows = value().parse().expect("--dist-rows N"),
            "--dist-shard-count" => args.dist_shard_count = value().parse().expect("--dist-shard-count N"),
            "--dist-timeout" => args.dist_timeout = value().parse().expect("--dist-timeout SECONDS"),
            "--server-setting" => args.server_settings.push(value()),
            "--idle-seconds" => args.idle_seconds = value().parse().expect("--idle-seconds N"),
            "--app-tenant-key-type" => {
                args.app_tenant_key_type =
                    tenantize::plan::KeyType::parse(&value()).expect("--app-tenant-key-type uuid|bigint|text")
            }
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "cargo bench --bench tenantize -- [--rows N (2000000)] [--writes-per-second N (200)] \
                     [--planning-tables N (2000)] [--json FILE (target/bench.json)] \
                     [--runs abcp] [--skip-planning] [--app-scale N (10)] [--app-rows N (100000)] \
                     [--app-rounds N (3)] [--app-seconds N (5)] [--app-clients N (2)] \
                     [--dist-rows N (200000)] [--dist-shard-count N (8)] [--dist-timeout S (600)] \
                     [--server-setting 'NAME = VALUE' (repeatable)] [--idle-seconds N (30)] \
                     [--app-tenant-key-type uuid|bigint|text (uuid)] [--app-cover-indexes]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}
