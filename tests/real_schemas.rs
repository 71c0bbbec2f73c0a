//! Real schemas from public open-source projects (tests/fixtures/real/, each file names its
//! source, commit and licence), with generated rows: for each, with both backfills,
//! plan → apply → verify → verify --isolation → every pre-existing row unchanged but for the
//! tenant column → a plain application role with a tenant that owns no rows reads 0 rows
//! through every view (in any schema) over converted tables → rollback --all → schema and rows
//! as before.
//!
//! Every phase runs and is recorded even when an earlier one failed (after a failed plan
//! nothing can run; after a failed apply the rollback and the comparisons still run), and the
//! test fails at the end listing every failed phase with its exit code and first error line.

mod common;
use common::*;

use std::collections::BTreeMap;

use tenantize::db::{ConnSpec, ProcessEnv};

struct Fixture {
    /// File under tests/fixtures/real/.
    file: &'static str,
    /// The converted schemas (`--schema`, in order: the tenant table goes in the first).
    schemas: &'static [&'static str],
    /// Further `plan` arguments.
    extra: &'static [&'static str],
    /// Extensions the file creates: they must be installed on the machine (never skipped).
    extensions: &'static [&'static str],
    /// What `verify --isolation` can say on this schema: proven (exit 0), or, where the probe
    /// cannot build the rows a proof needs, no leak found but not proven (exit 3 with that
    /// message), for the reason given.
    isolation: Isolation,
    /// The database's search_path as the application's deployment sets it (`ALTER DATABASE …
    /// SET search_path`): the application's triggers and functions name tables without schema.
    search_path: Option<&'static str>,
    /// What the operator chose for an acknowledged materialized view: the application's
    /// role may not read it (SELECT revoked), so the application-role check leaves it out.
    revoked: &'static [&'static str],
}

const ADVENTUREWORKS: Fixture = Fixture {
    file: "adventureworks.sql",
    schemas: &["person", "humanresources"],
    // RLS cannot cover the materialized view (it holds every tenant's rows): the operator
    // accepts it and revokes the application's access to it.
    extra: &["--acknowledge", "materialized-view:person.vstateprovincecountryregion"],
    extensions: &["uuid-ossp"],
    revoked: &["person.vstateprovincecountryregion"],
    search_path: None,
    isolation: Isolation::NoLeakNotProven(
        "not proven for 0 of 19 tables and 2 of 26 views",
        "the two job-candidate views read XML resumes the generated rows do not have, so they show \
         no row to hide",
    ),
};

const PGSTAC: Fixture = Fixture {
    file: "pgstac.sql",
    // pgstac's search_path is "pgstac, public": PostGIS (and its spatial_ref_sys) is in public.
    schemas: &["pgstac", "public"],
    // Bookkeeping shared by every tenant, as an operator would choose.
    // items_delete_log_trigger() is SECURITY DEFINER so that deleting an item can write the
    // deletion log: accepted after reading it.
    extra: &[
        "--exclude",
        "pgstac.migrations",
        "--exclude",
        "pgstac.pgstac_settings",
        "--acknowledge",
        "security-definer:pgstac.items_delete_log_trigger()",
    ],
    extensions: &["postgis"],
    revoked: &[],
    // pgstac's functions and triggers rely on it (pypgstac sets it for its roles).
    search_path: Some("pgstac, public"),
    isolation: Isolation::NoLeakNotProven(
        "not proven for 8 of 13 tables and 1 of 1 views",
        "collections' id is generated from its content, so the probe's two tenants hold the same \
         key and a reference cannot tell them apart; items is list-partitioned by that key, so a \
         cloned item lands where the probe does not read it",
    ),
};

const HARNESS: Fixture = Fixture {
    file: "harness.sql",
    schemas: &["public"],
    extra: &["--exclude", "migrations", "--exclude", "gc_review_after_defaults"],
    extensions: &["uuid-ossp"],
    revoked: &[],
    search_path: None,
    isolation: Isolation::Proven,
};

const DANBOORU: Fixture = Fixture {
    file: "danbooru.sql",
    schemas: &["public"],
    // Its Rails tables (schema_migrations, ar_internal_metadata) are shared by default.
    extra: &[],
    extensions: &["btree_gin", "fuzzystrmatch", "pg_trgm", "pgcrypto", "pgstattuple"],
    revoked: &[],
    search_path: None,
    isolation: Isolation::Proven,
};

const KILLBILL: Fixture = Fixture {
    file: "killbill.sql",
    schemas: &["public"],
    // Kill Bill has a table named tenants of its own (its tenant registry: shared), so the
    // tenant table needs another name; see killbill_default_tenant_table_is_refused.
    extra: &["--tenant-table", "tenantize_tenants", "--exclude", "tenants"],
    extensions: &[],
    revoked: &[],
    search_path: None,
    isolation: Isolation::Proven,
};

const SANBASE: Fixture = Fixture {
    file: "sanbase.sql",
    schemas: &["public"],
    // Its Ecto table (schema_migrations) is shared by default; Oban's tables are converted,
    // with a job-queue warning (checked in sanbase_job_queue_is_converted_with_a_warning).
    extra: &[],
    extensions: &[],
    revoked: &[],
    search_path: None,
    isolation: Isolation::Proven,
};

#[derive(Clone, Copy)]
enum Isolation {
    Proven,
    /// The summary's "not proven for N of M tables and K of L views", and why.
    NoLeakNotProven(&'static str, &'static str),
}

/// The tenant setting's value for the application role: a tenant that owns no rows.
const EMPTY_TENANT: &str = "00000000-0000-0000-0000-0000000000ee";

/// Views whose only dependency on a converted table is not a read of its rows.
const CATALOG_ONLY_VIEWS: &[&str] = &[
    // pg_partition_tree('items'): the regclass constant is a dependency; the view lists
    // partitions from the catalog, never a row of items.
    "pgstac.partition_sys_meta",
];

struct Phase {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Default)]
struct Phases(Vec<Phase>);

impl Phases {
    fn record(&mut self, name: &str, ok: bool, detail: impl Into<String>) -> bool {
        self.0.push(Phase { name: name.to_string(), ok, detail: detail.into() });
        ok
    }

    /// A tenantize run: ok on exit 0 (and `needle` in its output when given).
    fn run(&mut self, name: &str, run: &Run, needle: Option<&str>) -> bool {
        let found = needle.is_none_or(|n| run.stdout.contains(n) || run.stderr.contains(n));
        let ok = run.code == 0 && found;
        let detail = if ok {
            "exit 0".to_string()
        } else {
            let mut d = format!("exit {}: {}", run.code, first_error_line(run));
            let leaks = leak_lines(run);
            if !leaks.is_empty() {
                d.push_str(&format!(" [{leaks}]"));
            }
            // A refused plan: the error findings that refused it.
            for finding in run.stdout.lines().map(str::trim).filter(|l| l.starts_with("error ")) {
                d.push_str(&format!("\n      {finding}"));
            }
            if run.code == 0 {
                d.push_str(&format!(" (output lacks {:?})", needle.unwrap()));
            }
            d
        };
        self.record(name, ok, detail)
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.record(name, false, format!("not run: {why}"));
    }

    fn report(&self, title: &str) -> String {
        let mut out = format!("{title}\n");
        for p in &self.0 {
            out.push_str(&format!("  {:<4} {:<28} {}\n", if p.ok { "ok" } else { "FAIL" }, p.name, p.detail));
        }
        out
    }

    fn all_ok(&self) -> bool {
        self.0.iter().all(|p| p.ok)
    }
}

/// The line that says what went wrong: the first naming an error, a failure or a leak, else the
/// first non-empty line of stderr, else of stdout.
fn first_error_line(run: &Run) -> String {
    let lines = || run.stderr.lines().chain(run.stdout.lines()).map(str::trim).filter(|l| !l.is_empty());
    let wanted = |l: &&str| {
        let lower = l.to_lowercase();
        ["error", "fail", "leak", "refus", "mismatch"].iter().any(|w| lower.contains(w))
    };
    lines().find(wanted).or_else(|| lines().next()).unwrap_or("(no output)").chars().take(300).collect()
}

/// The probe's findings, short: each leaking relation with its first failed probe.
fn leak_lines(run: &Run) -> String {
    let mut out = Vec::new();
    let mut lines = run.stdout.lines().chain(run.stderr.lines()).map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if let Some(rel) = line.strip_prefix("LEAK ") {
            let first = lines.peek().filter(|l| l.starts_with('✗')).map(|l| l.trim_start_matches('✗').trim());
            out.push(format!("{rel}: {}", first.unwrap_or("?")));
        }
    }
    out.join("; ")
}

async fn load(fixture: &Fixture, prefix: &str) -> TestDb {
    let db = fresh_db(prefix).await;
    for ext in fixture.extensions {
        let n =
            db.query_i64(&format!("SELECT count(*) FROM pg_available_extensions WHERE name = '{ext}'")).await;
        assert_eq!(n, 1, "extension {ext} is not installed on this machine ({} needs it)", fixture.file);
    }
    let path = fixtures_dir().join("real").join(fixture.file);
    cluster().run_sql_file(&db.name, &path).unwrap_or_else(|e| panic!("load {}: {e}", fixture.file));
    if let Some(path) = fixture.search_path {
        db.exec(&format!("ALTER DATABASE {} SET search_path = {path}", db.name)).await;
    }
    db
}

/// Per table: row count and checksum; the schemas given and every other schema the fixture made
/// (so a trigger writing elsewhere is seen too).
async fn all_rows(db: &TestDb) -> BTreeMap<String, (i64, String)> {
    let client = db.connect().await;
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'tenantize') \
             AND nspname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let refs: Vec<&str> = schemas.iter().map(String::as_str).collect();
    db.row_checksums(&refs, "tenant_id").await
}

fn describe_row_changes(
    before: &BTreeMap<String, (i64, String)>,
    after: &BTreeMap<String, (i64, String)>,
) -> String {
    let mut changed = Vec::new();
    for (table, b) in before {
        match after.get(table) {
            None => changed.push(format!("{table} gone")),
            Some(a) if a.0 != b.0 => changed.push(format!("{table}: {} rows, then {}", b.0, a.0)),
            Some(a) if a.1 != b.1 => changed.push(format!("{table}: same {} rows, other values", a.0)),
            _ => {}
        }
    }
    changed.join("; ")
}

/// Every view and materialized view (any schema) that reads, directly or through other views,
/// a table that now has the tenant column; and those tables themselves.
async fn relations_over_converted_tables(db: &TestDb) -> (Vec<String>, Vec<String>) {
    let client = db.connect().await;
    let views = client
        .query(
            "WITH RECURSIVE converted AS (
                 SELECT c.oid FROM pg_class c
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                  WHERE c.relkind IN ('r', 'p')
             ), readers(oid) AS (
                 SELECT r.ev_class FROM pg_rewrite r
                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM converted)
                    AND r.ev_class <> d.refobjid
                 UNION
                 SELECT r.ev_class FROM pg_rewrite r
                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                   JOIN readers ON d.refobjid = readers.oid
                  WHERE r.ev_class <> d.refobjid
             )
             SELECT format('%I.%I', n.nspname, c.relname)
               FROM readers JOIN pg_class c ON c.oid = readers.oid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('v', 'm') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|v| !CATALOG_ONLY_VIEWS.contains(&v.as_str()))
        .collect();
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
              WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'tenantize' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    (views, tables)
}

/// Tables that belong to an extension (PostGIS's spatial_ref_sys) but got a tenant column or
/// row-level security: the extension's own code reads them without any tenant set.
async fn converted_extension_tables(db: &TestDb) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT format('%I.%I (extension %s)', n.nspname, c.relname, e.extname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
               JOIN pg_extension e ON e.oid = d.refobjid
              WHERE c.relkind IN ('r', 'p') AND (c.relrowsecurity OR EXISTS (
                    SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Tenant-scoped tables whose primary key is natural (a textual column, no integer one: a code, a
/// name, a version) and lacks the tenant column: two tenants cannot both have the same code.
async fn global_natural_keys(db: &TestDb) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT format('%s PRIMARY KEY (%s)', k.conrelid::regclass,
                           string_agg(a.attname, ', ' ORDER BY array_position(k.conkey, a.attnum)))
               FROM pg_constraint k
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
              WHERE k.contype = 'p'
                AND EXISTS (SELECT FROM pg_attribute t WHERE t.attrelid = k.conrelid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
                AND k.conrelid::regclass::text NOT LIKE 'tenantize.%'
              GROUP BY k.oid, k.conrelid
             HAVING bool_and(a.attname <> 'tenant_id')
                AND bool_and(a.atttypid NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
                AND bool_or(EXISTS (SELECT FROM pg_type ty WHERE ty.oid = a.atttypid
                        AND (ty.typcategory = 'S' OR (ty.typtype = 'd'
                             AND (SELECT b.typcategory FROM pg_type b WHERE b.oid = ty.typbasetype) = 'S'))))
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// As a plain application role (LOGIN, no BYPASSRLS, SELECT granted everywhere) with the tenant
/// setting naming a tenant that owns no rows: what each view and converted table returns.
/// The role is dropped afterwards.
async fn rows_seen_by_an_application_role(
    db: &TestDb,
    revoked: &[&str],
) -> Result<Vec<(String, i64)>, String> {
    let role = format!("app_{}", db.name);
    let (views, tables) = relations_over_converted_tables(db).await;
    let views: Vec<String> = views.into_iter().filter(|v| !revoked.contains(&v.as_str())).collect();
    let admin = db.connect().await;
    let schemas: Vec<String> = admin
        .query(
            "SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'tenantize') \
             AND nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut grants = format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS;");
    for s in &schemas {
        grants.push_str(&format!(
            "GRANT USAGE ON SCHEMA {s} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role};"
        ));
    }
    for rel in revoked {
        grants.push_str(&format!("REVOKE SELECT ON {rel} FROM {role};"));
    }
    admin.batch_execute(&grants).await.map_err(|e| tenantize::db::describe_pg_error(&e))?;
    let result = async {
        let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
        let spec = ConnSpec::resolve(Some(&url), &ProcessEnv).unwrap();
        let app = spec.connect("tenantize-test").await.map_err(|e| e.to_string())?;
        app.batch_execute(&format!("SET app.tenant_id = '{EMPTY_TENANT}'"))
            .await
            .map_err(|e| tenantize::db::describe_pg_error(&e))?;
        let mut seen = Vec::new();
        for (kind, rel) in views.iter().map(|v| ("view", v)).chain(tables.iter().map(|t| ("table", t))) {
            let n: i64 = app
                .query_one(&format!("SELECT count(*) FROM {rel}"), &[])
                .await
                .map_err(|e| format!("{kind} {rel}: {}", tenantize::db::describe_pg_error(&e)))?
                .get(0);
            seen.push((format!("{kind} {rel}"), n));
        }
        Ok(seen)
    }
    .await;
    let cleanup = format!("DROP OWNED BY {role}; DROP ROLE {role};");
    admin.batch_execute(&cleanup).await.unwrap();
    result
}

async fn round_trip(fixture: &Fixture, prefix: &str, backfill: &str) {
    let db = load(fixture, prefix).await;
    let dir = scratch_dir();
    let plan_path = dir.path().join("plan.toml");
    let plan = plan_path.to_str().unwrap();
    let dump_before = db.schema_dump();
    let rows_before = all_rows(&db).await;
    let mut phases = Phases::default();

    let mut args = vec!["plan", "--out", plan, "--backfill", backfill];
    if backfill == "batched" {
        args.extend(["--batch-rows", "500"]);
    }
    for s in fixture.schemas {
        args.extend(["--schema", s]);
    }
    args.extend_from_slice(fixture.extra);
    if !phases.run("plan", &db.tenantize(&args), None) {
        panic!("{}", phases.report(&format!("{} --backfill {backfill}", fixture.file)));
    }
    // A migration tool's bookkeeping table in the fixture is shared, never converted.
    let text = std::fs::read_to_string(plan).unwrap();
    let sql = std::fs::read_to_string(fixtures_dir().join("real").join(fixture.file)).unwrap();
    for name in tenantize::plan::migration_table_names() {
        if sql.contains(&format!("CREATE TABLE public.{name} (")) {
            let entry = format!("name = \"public.{name}\"\nscoped = false\n");
            assert!(text.contains(&entry), "{}: public.{name} is not shared", fixture.file);
        }
    }

    let applied = phases.run("apply", &db.tenantize(&["apply", plan, "--yes"]), None);
    if applied {
        phases.run("verify", &db.tenantize(&["verify", plan]), Some("(applied through stage 8): ok"));
        let probe = db.tenantize(&["verify", "--isolation", plan]);
        match fixture.isolation {
            Isolation::Proven => {
                phases.run("verify --isolation", &probe, None);
            }
            Isolation::NoLeakNotProven(summary, why) => {
                let said = probe.code == 3
                    && probe.stderr.contains(&format!("no leak found, but isolation is {summary}"))
                    && !probe.stdout.contains("LEAK ");
                let detail = format!(
                    "exit {}: {} (expected: no leak, not proven: {why})",
                    probe.code,
                    first_error_line(&probe)
                );
                phases.record("verify --isolation", said, detail);
            }
        }
        let mut rows_after = all_rows(&db).await;
        rows_after.retain(|table, _| rows_before.contains_key(table));
        let changes = describe_row_changes(&rows_before, &rows_after);
        phases.record("rows unchanged", changes.is_empty(), changes);
        let extension_tables = converted_extension_tables(&db).await;
        phases.record("extension tables untouched", extension_tables.is_empty(), extension_tables.join(", "));
        let natural = global_natural_keys(&db).await;
        phases.record("natural keys per tenant", natural.is_empty(), natural.join(", "));
        match rows_seen_by_an_application_role(&db, fixture.revoked).await {
            Ok(seen) => {
                let views = seen.iter().filter(|(r, _)| r.starts_with("view")).count();
                let leaks: Vec<String> =
                    seen.iter().filter(|(_, n)| *n != 0).map(|(r, n)| format!("{r}: {n} rows")).collect();
                phases.record(
                    "app role reads 0 rows",
                    leaks.is_empty(),
                    if leaks.is_empty() {
                        format!("{views} views, {} tables", seen.len() - views)
                    } else {
                        format!("{} of {} leak: {}", leaks.len(), seen.len(), leaks.join(", "))
                    },
                );
            }
            Err(e) => {
                phases.record("app role reads 0 rows", false, e);
            }
        }
    } else {
        for name in [
            "verify",
            "verify --isolation",
            "rows unchanged",
            "extension tables untouched",
            "natural keys per tenant",
            "app role reads 0 rows",
        ] {
            phases.skip(name, "apply failed");
        }
    }

    phases.run("rollback --all", &db.tenantize(&["rollback", plan, "--all", "--yes"]), None);
    let dump_after = db.schema_dump();
    phases.record(
        "schema as before",
        dump_before == dump_after,
        if dump_before == dump_after { String::new() } else { text_diff(&dump_before, &dump_after) },
    );
    let rows_rolled_back = all_rows(&db).await;
    let changes = describe_row_changes(&rows_before, &rows_rolled_back);
    let extra: Vec<&String> = rows_rolled_back.keys().filter(|t| !rows_before.contains_key(*t)).collect();
    let detail = if extra.is_empty() { changes } else { format!("{changes}; new tables {extra:?}") };
    phases.record("rows as before", detail.is_empty(), detail);

    let report = phases.report(&format!("{} --backfill {backfill}", fixture.file));
    eprintln!("{report}");
    assert!(phases.all_ok(), "{report}");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adventureworks_fast() {
    round_trip(&ADVENTUREWORKS, "aw_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adventureworks_batched() {
    round_trip(&ADVENTUREWORKS, "aw_batched", "batched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgstac_fast() {
    round_trip(&PGSTAC, "pgstac_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgstac_batched() {
    round_trip(&PGSTAC, "pgstac_batched", "batched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn harness_fast() {
    round_trip(&HARNESS, "harness_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn harness_batched() {
    round_trip(&HARNESS, "harness_batched", "batched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn danbooru_fast() {
    round_trip(&DANBOORU, "danbooru_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn danbooru_batched() {
    round_trip(&DANBOORU, "danbooru_batched", "batched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killbill_fast() {
    round_trip(&KILLBILL, "killbill_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killbill_batched() {
    round_trip(&KILLBILL, "killbill_batched", "batched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sanbase_fast() {
    round_trip(&SANBASE, "sanbase_fast", "fast").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sanbase_batched() {
    round_trip(&SANBASE, "sanbase_batched", "batched").await;
}

/// Oban's workers fetch jobs without a tenant: the plan says so before anything changes.
#[tokio::test(flavor = "multi_thread")]
async fn sanbase_job_queue_is_converted_with_a_warning() {
    let db = load(&SANBASE, "sanbase_queue").await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    db.tenantize(&["plan", "--out", plan.to_str().unwrap()])
        .expect_ok()
        .expect_output("warning job-queue public.oban_jobs: a table of the Oban job queue");
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains("name = \"public.oban_jobs\"\nscoped = true\n"), "oban_jobs is converted");
    db.drop().await;
}

/// Kill Bill's own `tenants` table takes the default tenant table's name: plan refuses, names
/// the clash, writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn killbill_default_tenant_table_is_refused() {
    let db = load(&KILLBILL, "killbill_default").await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    db.tenantize(&["plan", "--out", plan.to_str().unwrap()])
        .expect_code(1)
        .expect_output("tenant-table-exists public.tenants");
    assert!(!plan.exists(), "a refused plan writes no file");
    db.drop().await;
}
