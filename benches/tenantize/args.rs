//! The benchmark's command line.

pub struct Args {
    pub rows: u64,
    pub writes_per_second: u64,
    pub planning_tables: usize,
    pub json: String,
    /// Which conversions to run (a, b, c); the ratios need all three.
    pub runs: String,
    pub skip_planning: bool,
}

pub fn args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        writes_per_second: 200,
        planning_tables: 2000,
        json: "target/bench.json".into(),
        runs: "abc".into(),
        skip_planning: false,
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
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "cargo bench --bench tenantize -- [--rows N (2000000)] [--writes-per-second N (200)] \
                     [--planning-tables N (2000)] [--json FILE (target/bench.json)] \
                     [--runs abc] [--skip-planning]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}
