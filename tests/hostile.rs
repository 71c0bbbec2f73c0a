//! Hostile input: arbitrary identifiers through the quoting function into a real server and
//! back; a schema of quotes, spaces, unicode, reserved words and 63-byte names through the
//! whole conversion; a plan meant for another database.

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

#[test]
fn arbitrary_identifiers_survive_quoting_into_a_real_server_and_back() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = runtime.block_on(fresh_db("quoting"));
    let client = runtime.block_on(db.connect());
    let cases = std::sync::atomic::AtomicU32::new(0);
    proptest!(ProptestConfig::with_cases(300), |(schema in identifier(), table in identifier(), column in identifier(), text in "\\PC{0,40}")| {
        cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = QualifiedName::new(schema.clone(), table.clone());
        // The quoted SQL form parses back to the same name.
        prop_assert_eq!(QualifiedName::parse_sql(&name.to_string()), Some(name.clone()));
        let sql = format!(
            "BEGIN; CREATE SCHEMA {s}; CREATE TABLE {name} ({c} text); ",
            s = quote_ident(&schema),
            c = quote_ident(&column)
        );
        runtime.block_on(client.batch_execute(&sql)).map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
        let row = runtime
            .block_on(client.query_one(
                "SELECT n.nspname::text, c.relname::text, a.attname::text
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
                  WHERE c.oid = to_regclass($1)",
                &[&name.to_string()],
            ))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (s, t, c): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        prop_assert_eq!(&s, &schema);
        prop_assert_eq!(&t, &table);
        prop_assert_eq!(&c, &column);
        // Literals too.
        let echoed: String = runtime
            .block_on(client.query_one(&format!("SELECT {}::text", quote_literal(&text)), &[]))
            .map_err(|e| TestCaseError::fail(e.to_string()))?
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
    db.tenantize(&["verify", "--isolation", path.to_str().unwrap()]).expect_ok().expect_output("no leak");
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
        .expect_output(&format!("this plan was built for database \"{}\"", sample.name))
        .expect_output("table public.users is gone");
    assert_eq!(before, other.schema_dump());
    assert_eq!(other.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
}
