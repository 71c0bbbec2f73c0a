//! Hostile input: arbitrary identifiers through the quoting function into a real server and
//! back; a schema of quotes, spaces, unicode, reserved words and 63-byte names through the
//! whole conversion; a plan meant for another database; exported migrations of hostile names
//! run with psql, changing nothing outside the plan.

mod common;
use common::*;

use proptest::prelude::*;
use tenantize::sql::{QualifiedName, quote_ident, quote_literal};

/// Identifiers PostgreSQL accepts unchanged: no NUL, at most 63 bytes (longer ones it would
/// truncate, which is what `bounded_name` is for).
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_$]{0,20}",
        "[A-Za-z0-9 _\"'.;,()$-]{1,30}",
        "\\PC{1,20}",
        prop::sample::select(vec![
            "select", "user", "table", "order", "group", "all", "limit", "check", "name"
        ])
        .prop_map(String::from),
    ]
    .prop_filter("PostgreSQL identifiers: no NUL, 1 to 63 bytes", |s| {
        !s.is_empty() && !s.contains('\0') && s.len() <= 63
    })
}

/// Schema names: identifiers, less the `pg_` prefix PostgreSQL reserves for system schemas
/// (`CREATE SCHEMA pg_x` is refused whatever the quoting) and the schemas every database has.
fn schema_name() -> impl Strategy<Value = String> {
    identifier().prop_filter("not a reserved or existing schema", |s| {
        !s.starts_with("pg_") && !["public", "information_schema", "tenantize"].contains(&s.as_str())
    })
}

/// Column names: identifiers, less the system columns every table already has.
fn column_name() -> impl Strategy<Value = String> {
    identifier().prop_filter("not a system column", |s| {
        !["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"].contains(&s.as_str())
    })
}

/// The server's own message (tokio-postgres's Display says only "db error").
fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[test]
fn arbitrary_identifiers_survive_quoting_into_a_real_server_and_back() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = runtime.block_on(fresh_db("quoting"));
    let client = runtime.block_on(db.connect());
    let cases = std::sync::atomic::AtomicU32::new(0);
    proptest!(ProptestConfig::with_cases(300), |(schema in schema_name(), table in identifier(), column in column_name(), text in "\\PC{0,40}")| {
        cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = QualifiedName::new(schema.clone(), table.clone());
        // The quoted SQL form parses back to the same name.
        prop_assert_eq!(QualifiedName::parse_sql(&name.to_string()), Some(name.clone()));
        let sql = format!(
            "BEGIN; CREATE SCHEMA {s}; CREATE TABLE {name} ({c} text); ",
            s = quote_ident(&schema),
            c = quote_ident(&column)
        );
        // A failed case leaves its transaction aborted; end it before the next case (and every
        // shrinking step) begins, or each later case fails for the first one's reason.
        runtime.block_on(client.batch_execute("ROLLBACK")).unwrap();
        runtime
            .block_on(client.batch_execute(&sql))
            .map_err(|e| TestCaseError::fail(format!("{sql}: {}", server_message(&e))))?;
        let row = runtime
            .block_on(client.query_one(
                "SELECT n.nspname::text, c.relname::text, a.attname::text
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
                  WHERE c.oid = to_regclass($1)",
                &[&name.to_string()],
            ))
            .map_err(|e| TestCaseError::fail(server_message(&e)))?;
        let (s, t, c): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        prop_assert_eq!(&s, &schema);
        prop_assert_eq!(&t, &table);
        prop_assert_eq!(&c, &column);
        // Literals too.
        let echoed: String = runtime
            .block_on(client.query_one(&format!("SELECT {}::text", quote_literal(&text)), &[]))
            .map_err(|e| TestCaseError::fail(server_message(&e)))?
            .get(0);
        prop_assert_eq!(&echoed, &text);
        runtime.block_on(client.batch_execute("ROLLBACK")).unwrap();
    });
    let n = cases.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 300, "the property ran {n} cases");
}

const HOSTILE_SCHEMA: &str = r#"
CREATE SCHEMA "We ""Quote"" Everything";
CREATE TABLE "We ""Quote"" Everything"."select" (
    "id" integer PRIMARY KEY,
    "order" text NOT NULL,
    "Ünïcödé naïve" text,
    CONSTRAINT "select_order_key" UNIQUE ("order")
);
CREATE TABLE "We ""Quote"" Everything"."group items; DROP TABLE x; --" (
    "the id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "select id" integer NOT NULL REFERENCES "We ""Quote"" Everything"."select" ("id") ON DELETE CASCADE,
    "order ref" text REFERENCES "We ""Quote"" Everything"."select" ("order"),
    "note" text
);
CREATE UNIQUE INDEX "ünïque ""note"" per select" ON "We ""Quote"" Everything"."group items; DROP TABLE x; --" (lower("note"), "select id") WHERE "note" <> '';
CREATE TABLE "We ""Quote"" Everything"."ααααααααααααααααααααααααααααααα" (
    "β" integer PRIMARY KEY,
    "select id" integer REFERENCES "We ""Quote"" Everything"."select" ("id")
);
INSERT INTO "We ""Quote"" Everything"."select" SELECT g, 'o' || g, 'ñ' || g FROM generate_series(1, 40) g;
INSERT INTO "We ""Quote"" Everything"."group items; DROP TABLE x; --" ("select id", "order ref", "note")
SELECT 1 + g % 40, 'o' || (1 + g % 40), 'n' || g FROM generate_series(1, 200) g;
INSERT INTO "We ""Quote"" Everything"."ααααααααααααααααααααααααααααααα" SELECT g, 1 + g % 40 FROM generate_series(1, 30) g;
ANALYZE;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn quotes_spaces_unicode_reserved_words_and_63_byte_names_convert_and_roll_back() {
    let db = fresh_db("hostile_names").await;
    db.exec(HOSTILE_SCHEMA).await;
    let schema = "We \"Quote\" Everything";
    let plan = full_cycle(&db, &["--schema", schema], &[schema]).await;
    // 31 two-byte letters make a 62-byte table name: generated names must be cut with a hash,
    // at a character boundary, and stay distinct.
    let parsed: tenantize::plan::Plan = toml::from_str(&plan).unwrap();
    for name in &parsed.drift.owned_names {
        assert!(name.len() <= 63, "{name} is longer than PostgreSQL keeps");
    }
    let mut sorted = parsed.drift.owned_names.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), parsed.drift.owned_names.len(), "generated names collide");
    // And the converted schema isolates.
    let dir = scratch_dir();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, &plan).unwrap();
    db.tenantize(&["apply", path.to_str().unwrap(), "--yes"]).expect_ok();
    // Proven, the reference through the unique "order" too: the probe's clones get fresh
    // values in that key (before stop 27 they copied it, and the reference was not proven).
    db.tenantize(&["verify", "--isolation", path.to_str().unwrap()])
        .expect_ok()
        .expect_output("no leak; proven for 3 of 3 tables");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_for_another_database_is_refused_and_changes_nothing() {
    let sample = sample_db("plan_for_sample", 500).await;
    let other = chinook_db("other_database").await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    sample.plan_sample(&plan, &[]);
    let before = other.schema_dump();
    other
        .tenantize(&["apply", plan.to_str().unwrap(), "--yes"])
        .expect_code(5)
        .expect_output(&format!("this plan was built for database \"{}\"", sample.name));
    assert_eq!(before, other.schema_dump());
    assert_eq!(other.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_for_another_database_with_the_same_schema_is_refused_until_retargeted() {
    // Two copies of one template: the same schema, the same rows, another database.
    let built_on = sample_db("identity_home", 300).await;
    let twin = sample_db("identity_twin", 300).await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml");
    let plan = built_on.plan_sample(&plan, &[]);
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains("database_oid = ") && text.contains("system_identifier = "), "{text}");
    let before = twin.schema_dump();
    let foreign = format!("this plan was built for database \"{}\"", built_on.name);
    for args in [
        vec!["apply", plan.as_str(), "--yes"],
        vec!["apply", plan.as_str(), "--dry-run"],
        vec!["rollback", plan.as_str(), "--all", "--yes"],
        vec!["status", plan.as_str()],
        vec!["verify", plan.as_str()],
    ] {
        twin.tenantize(&args)
            .expect_code(5)
            .expect_output(&foreign)
            .expect_output(&format!("this is \"{}\"", twin.name))
            .expect_output("even where another has the same schema");
    }
    assert_eq!(before, twin.schema_dump());
    assert_eq!(twin.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
    // The plan still works where it was built, and a database moved on purpose takes it over.
    built_on.tenantize(&["status", &plan]).expect_ok();
    twin.tenantize(&["plan", "retarget", &plan]).expect_ok();
    twin.tenantize(&["apply", &plan, "--through", "3", "--yes"]).expect_ok();
    built_on
        .tenantize(&["status", &plan])
        .expect_code(5)
        .expect_output(&format!("this is \"{}\"", built_on.name));
}

/// A table the plan leaves alone (`--exclude victim`): exported files must not touch it.
const VICTIM: &str = "CREATE TABLE public.victim (id int PRIMARY KEY, note text);
INSERT INTO public.victim SELECT g, 'row ' || g FROM generate_series(1, 3) g;";

/// Plan `db` with a batched backfill (its export is a DO block naming each table), export it
/// as plain SQL and run every up file with psql, then every down file; after each direction
/// the victim table must still be there with its rows.
async fn export_and_run(db: &TestDb, dir: &std::path::Path) -> Result<(), String> {
    let plan = dir.join("plan.toml");
    let out = dir.join("sql");
    let plan_path = plan.to_str().unwrap();
    let run = db.tenantize(&["plan", "--out", plan_path, "--exclude", "victim", "--backfill", "batched"]);
    if run.code != 0 {
        return Err(format!("plan failed\n{}", run.text()));
    }
    let run = run_tenantize(&["export", plan_path, "--format", "sql", "--out", out.to_str().unwrap()], &[]);
    if run.code != 0 {
        return Err(format!("export failed\n{}", run.text()));
    }
    let victim = "SELECT count(*) FROM pg_class WHERE oid = to_regclass('public.victim')";
    let rows = "SELECT count(*) FROM public.victim WHERE note = 'row ' || id";
    for direction in ["up", "down"] {
        let ran = std::panic::catch_unwind(|| run_files(&db.url, &out, "sql", direction));
        if let Err(panic) = ran {
            let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            return Err(format!("the {direction} files did not run cleanly: {text}"));
        }
        if db.query_i64(victim).await != 1 || db.query_i64(rows).await != 3 {
            return Err(format!("the {direction} files changed the victim table"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_files_never_run_what_a_table_name_says() {
    // Reproduced in issue 12: a newline ended the `-- ` comment naming the step, and a
    // `$tenantize$` ended the backfill's DO body; the rest of each name then ran as SQL.
    let db = fresh_db("hostile_export").await;
    db.exec(&format!(
        "{VICTIM}
         CREATE TABLE public.\"nl\nDROP TABLE victim; --\" (id int PRIMARY KEY, v text);
         CREATE TABLE public.\"a$tenantize$; DROP TABLE victim; --\" (id int PRIMARY KEY, v text);
         CREATE TABLE public.\"cr\rDROP TABLE victim; -- \\! touch /tmp/tenantize-pwned\" (id int PRIMARY KEY);
         INSERT INTO public.\"nl\nDROP TABLE victim; --\" SELECT g, 'x' FROM generate_series(1, 20) g;
         INSERT INTO public.\"a$tenantize$; DROP TABLE victim; --\" SELECT g, 'x' FROM generate_series(1, 20) g;"
    ))
    .await;
    let dir = scratch_dir();
    if let Err(e) = export_and_run(&db, dir.path()).await {
        panic!("{e}");
    }
    assert!(!std::path::Path::new("/tmp/tenantize-pwned").exists(), "a psql meta-command ran");
    // The up files did convert the hostile tables, and the down files undid it.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id' AND NOT attisdropped")
            .await,
        0
    );
}

/// Names built from the pieces that end comments, dollar bodies, literals and identifiers.
fn hostile_name() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\n",
        "\r",
        "\r\n",
        "$tenantize$",
        "$tenantize",
        "$tenantize_1$",
        "$$",
        "--",
        "/*",
        "*/",
        "'",
        "\"",
        "\\",
        "\\! true",
        ";DROP TABLE victim;",
        " ",
        "x",
        "Ä",
    ]);
    prop::collection::vec(pieces, 1..6)
        .prop_map(|p| p.concat())
        .prop_filter("a new name PostgreSQL keeps as written", |s| {
            s.len() <= 63 && s != "victim" && s != "tenants" && s.trim() != ""
        })
}

#[test]
fn exported_files_of_arbitrary_hostile_names_change_nothing_outside_the_plan() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cases = std::sync::atomic::AtomicU32::new(0);
    proptest!(ProptestConfig::with_cases(12), |(table in hostile_name(), column in hostile_name())| {
        cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let outcome = runtime.block_on(async {
            let db = fresh_db("hostile_prop").await;
            let (t, c) = (quote_ident(&table), quote_ident(&column));
            db.exec(&format!(
                "{VICTIM}
                 CREATE TABLE public.{t} (id int PRIMARY KEY, {c} text UNIQUE);
                 CREATE TABLE public.child (id int PRIMARY KEY, parent int REFERENCES public.{t} (id));
                 INSERT INTO public.{t} SELECT g, 'v' || g FROM generate_series(1, 30) g;
                 INSERT INTO public.child SELECT g, g FROM generate_series(1, 30) g;"
            ))
            .await;
            let dir = scratch_dir();
            let outcome = export_and_run(&db, dir.path()).await;
            db.drop().await;
            outcome
        });
        prop_assert!(outcome.is_ok(), "table {:?}, column {:?}: {}", table, column, outcome.unwrap_err());
    });
    assert!(cases.load(std::sync::atomic::Ordering::SeqCst) >= 12);
}
