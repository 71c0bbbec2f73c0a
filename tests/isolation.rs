//! `verify --isolation`: finds no leak in a correct conversion, finds each kind of leak when one
//! is planted, and leaves nothing behind either way.

mod common;
use common::*;

async fn converted_sample(prefix: &str, dir: &tempfile::TempDir) -> (TestDb, String) {
    let db = sample_db(prefix, 800).await;
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    (db, plan)
}

async fn leftovers(db: &TestDb) -> (i64, i64) {
    (
        db.query_i64("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenantize%'").await,
        db.query_i64("SELECT count(*) FROM public.tenants").await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correct_conversion_isolates_and_the_probe_leaves_nothing_behind() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_ok", &dir).await;
    let schema = db.schema_dump();
    let rows = db.row_checksums(&["public"], "none").await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_ok()
        .expect_output("no leak")
        .expect_output("ok   public.issues")
        .expect_output("ok   public.audit_events_2024_02")
        .expect_output("ok   public.open_issues");
    let json = db.tenantize(&["verify", "--isolation", &plan, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let issues =
        report["tables"].as_array().unwrap().iter().find(|t| t["object"] == "public.issues").unwrap();
    let names: Vec<&str> =
        issues["probes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for expected in [
        "tenant A reads only its rows",
        "no tenant set reads nothing",
        "inserting a row of another tenant is refused",
        "moving a row to another tenant is refused",
        "a row pointing at another tenant's public.projects is refused",
        "a unique value may repeat in another tenant",
        "a unique value cannot repeat within a tenant",
    ] {
        assert!(names.contains(&expected), "public.issues lacks probe {expected:?}: {names:?}");
    }
    // Without a plan, the tenancy is read from the database.
    db.tenantize(&["verify", "--isolation"]).expect_ok().expect_output("no leak");
    assert_eq!(leftovers(&db).await, (0, 1), "a probe role or probe tenants were left behind");
    assert_eq!(schema, db.schema_dump());
    assert_eq!(rows, db.row_checksums(&["public"], "none").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_without_its_policy_leaks_and_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_partition", &dir).await;
    db.exec("ALTER TABLE public.audit_events_2024_01 DISABLE ROW LEVEL SECURITY").await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.audit_events_2024_01")
        .expect_output("no tenant set reads nothing");
    assert_eq!(leftovers(&db).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_foreign_key_lets_a_child_point_across_tenants_and_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_fk", &dir).await;
    db.exec(
        "ALTER TABLE public.issue_comments DROP CONSTRAINT issue_comments_issue_id_fkey;
         ALTER TABLE public.issue_comments ADD CONSTRAINT issue_comments_issue_id_fkey
               FOREIGN KEY (issue_id) REFERENCES public.issues (id) ON DELETE CASCADE;",
    )
    .await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.issue_comments")
        .expect_output("a row pointing at another tenant's public.issues is refused: was allowed");
    // The leak comes with a script that shows it again: it runs (the write is allowed) and
    // rolls back; it rebuilds only the rows it needs.
    let report = json_report(&db, &plan);
    let comments =
        report["tables"].as_array().unwrap().iter().find(|t| t["object"] == "public.issue_comments");
    let probes = comments.unwrap()["probes"].as_array().unwrap();
    let leak = probes.iter().find(|p| p["outcome"] == "leak").expect("a leak");
    let sql = leak["sql"].as_str().unwrap();
    assert!(sql.starts_with("BEGIN;") && sql.ends_with("ROLLBACK;"), "{sql}");
    assert!(sql.contains("INSERT INTO public.issues") && !sql.contains("audit_events"), "{sql}");
    db.exec(sql).await;
    assert_eq!(leftovers(&db).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_unique_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_unique", &dir).await;
    db.exec(
        "ALTER TABLE public.projects DROP CONSTRAINT projects_key_key CASCADE;
         ALTER TABLE public.projects ADD CONSTRAINT projects_key_key UNIQUE (key);",
    )
    .await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.projects")
        .expect_output("a unique value may repeat in another tenant: refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_that_bypasses_rls_is_reported() {
    let dir = scratch_dir();
    let (db, plan) = converted_sample("iso_view", &dir).await;
    db.exec("ALTER VIEW public.open_issues RESET (security_invoker)").await;
    db.tenantize(&["verify", "--isolation", &plan])
        .expect_code(3)
        .expect_output("LEAK public.open_issues")
        .expect_output("reading through the view shows only the tenant's rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagila_converted_isolates() {
    let db = pagila_db("iso_pagila").await;
    let dir = scratch_dir();
    let plan = dir.path().join("plan.toml").to_str().unwrap().to_string();
    // Its materialized view rental_by_category sums every tenant's payments and a
    // materialized view has no RLS: the plan is refused until the operator accepts it.
    db.tenantize(&["plan", "--out", &plan, PAGILA_ACKNOWLEDGE[2], PAGILA_ACKNOWLEDGE[3]])
        .expect_code(1)
        .expect_output("materialized-view public.rental_by_category");
    let mut args = vec!["plan", "--out", plan.as_str()];
    args.extend(PAGILA_ACKNOWLEDGE);
    db.tenantize(&args).expect_ok();
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    // Accepted, it is named and not probed; every table is proven.
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_ok().expect_output("public.rental_by_category: a materialized view holds every tenant's rows");
    let report = first_json(&db.tenantize(&["verify", "--isolation", &plan, "--json"]));
    assert_eq!(report["tables_proven"], report["tables_total"], "{}", run.text());
    assert_eq!(report["leaks"].as_array().unwrap().len(), 0, "{}", run.text());
}

/// The sample application with `before` run before planning (extra `plan` arguments in
/// `extra`), converted; `after` runs once the conversion is applied.
async fn converted_with(
    prefix: &str,
    dir: &tempfile::TempDir,
    before: &str,
    extra: &[&str],
    after: &str,
) -> (TestDb, String) {
    let db = sample_db(prefix, 800).await;
    if !before.is_empty() {
        db.exec(before).await;
    }
    let plan = db.plan_sample(&dir.path().join("plan.toml"), extra);
    db.tenantize(&["apply", &plan, "--yes"]).expect_ok();
    if !after.is_empty() {
        db.exec(after).await;
    }
    (db, plan)
}

/// The report, the first JSON value of stdout (a failed run adds its error as a second).
fn first_json(run: &Run) -> serde_json::Value {
    let mut values = serde_json::Deserializer::from_str(&run.stdout).into_iter::<serde_json::Value>();
    values.next().and_then(Result::ok).unwrap_or_else(|| panic!("no JSON report\n{}", run.text()))
}

/// `verify --isolation --json` as a value.
fn json_report(db: &TestDb, plan: &str) -> serde_json::Value {
    let run = db.tenantize(&["verify", "--isolation", plan, "--json"]);
    first_json(&run)
}

/// The outcomes of the probes called `probe` on `object`.
fn outcomes(report: &serde_json::Value, object: &str, probe: &str) -> Vec<String> {
    let all = report["tables"].as_array().unwrap().iter().chain(report["views"].as_array().unwrap());
    all.filter(|o| o["object"] == object)
        .flat_map(|o| o["probes"].as_array().unwrap().iter())
        .filter(|p| p["name"] == probe)
        .map(|p| format!("{}: {}", p["outcome"].as_str().unwrap(), p["detail"].as_str().unwrap()))
        .collect()
}

/// Exit 0, every table proven, and nothing the probe could not do.
#[track_caller]
fn expect_proven(run: &Run) {
    run.expect_ok().expect_output("no leak");
    let summary = run.stdout.lines().next().unwrap_or_default();
    let proven = summary.split("proven for ").nth(1).unwrap_or_else(|| panic!("no summary\n{}", run.text()));
    let numbers: Vec<&str> = proven.split(' ').collect();
    assert_eq!(numbers[0], numbers[2], "not every table proven\n{}", run.text());
    assert!(!run.stdout.contains("not proven") && !run.stdout.contains("note:"), "{}", run.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deferrable_foreign_key_is_checked_immediately() {
    let dir = scratch_dir();
    let after = "ALTER TABLE public.issue_comments ALTER CONSTRAINT issue_comments_issue_id_fkey
                 DEFERRABLE INITIALLY DEFERRED;";
    let (db, plan) = converted_with("iso_deferred", &dir, "", &[], after).await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    let probe = "a row pointing at another tenant's public.issues is refused";
    let seen = outcomes(&report, "public.issue_comments", probe);
    assert!(
        seen.len() == 1
            && seen[0].starts_with("ok: refused")
            && seen[0].contains("[issue_comments_issue_id_fkey]"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_key_holding_the_foreign_key_column_is_probed_on_the_foreign_key() {
    let dir = scratch_dir();
    let before = "CREATE TABLE issue_labels (
                      issue_id bigint NOT NULL REFERENCES issues ON DELETE CASCADE,
                      label text NOT NULL,
                      PRIMARY KEY (issue_id, label));
                  INSERT INTO issue_labels SELECT id, 'bug' FROM issues ORDER BY id;
                  INSERT INTO issue_labels SELECT id, 'ui' FROM issues WHERE id % 2 = 0;";
    let (db, plan) = converted_with("iso_pk_fk", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let seen = outcomes(
        &json_report(&db, &plan),
        "public.issue_labels",
        "a row pointing at another tenant's public.issues is refused",
    );
    assert!(
        seen.len() == 1
            && seen[0].starts_with("ok: refused")
            && seen[0].contains("[issue_labels_issue_id_fkey]"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nulls_in_a_nullable_unique_are_not_a_repeated_value() {
    let dir = scratch_dir();
    // The first rows have no external reference: NULLs never collide.
    let before = "CREATE TABLE project_links (
                      id bigserial PRIMARY KEY,
                      project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
                      url text NOT NULL,
                      external_ref text CONSTRAINT project_links_external_ref_key UNIQUE);
                  INSERT INTO project_links (project_id, url, external_ref)
                  SELECT p.id, 'https://example.com/' || p.id || '/' || g,
                         CASE WHEN g = 3 THEN 'EXT-' || p.id END
                    FROM projects p, generate_series(1, 3) g ORDER BY p.id, g;";
    let (db, plan) = converted_with("iso_nulls", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    let seen = outcomes(&report, "public.project_links", "a unique value cannot repeat within a tenant");
    assert!(
        seen.len() == 1
            && seen[0].starts_with("ok: refused")
            && seen[0].contains("[project_links_external_ref_key]"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unique_that_contains_the_primary_key_is_not_probed_as_a_repeatable_value() {
    let dir = scratch_dir();
    let before = "ALTER TABLE epics ADD CONSTRAINT epics_id_title_key UNIQUE (id, title);";
    let (db, plan) = converted_with("iso_unique_pk", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_reference_may_point_at_the_row_itself() {
    let dir = scratch_dir();
    let before = "CREATE TABLE teams (
                      id bigserial PRIMARY KEY,
                      parent_id bigint NOT NULL REFERENCES teams,
                      name text NOT NULL);
                  INSERT INTO teams (id, parent_id, name) VALUES (1, 1, 'root'), (2, 1, 'dev'), (3, 2, 'backend');
                  SELECT setval('teams_id_seq', 3);";
    let (db, plan) = converted_with("iso_self", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let seen = outcomes(
        &json_report(&db, &plan),
        "public.teams",
        "a row pointing at another tenant's public.teams is refused",
    );
    assert!(seen.len() == 1 && seen[0].starts_with("ok: "), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_tying_two_columns_does_not_hide_the_foreign_key() {
    let dir = scratch_dir();
    // The first row copied has the highest issue: any older issue breaks the CHECK.
    let before = "CREATE TABLE issue_snapshots (
                      id bigserial PRIMARY KEY,
                      issue_id bigint NOT NULL REFERENCES issues ON DELETE CASCADE,
                      min_issue_id bigint NOT NULL,
                      CONSTRAINT issue_snapshots_order_check CHECK (issue_id >= min_issue_id));
                  INSERT INTO issue_snapshots (issue_id, min_issue_id) SELECT id, id FROM issues ORDER BY id DESC;";
    let (db, plan) = converted_with("iso_check", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let seen = outcomes(
        &json_report(&db, &plan),
        "public.issue_snapshots",
        "a row pointing at another tenant's public.issues is refused",
    );
    assert!(seen.len() == 1 && seen[0].starts_with("ok: "), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_run_with_the_applications_search_path() {
    let dir = scratch_dir();
    // An unqualified table name, as applications write them: fails under an empty search_path.
    let before = "CREATE TABLE issue_log (id bigserial PRIMARY KEY, issue_id bigint, note text);
                  CREATE FUNCTION log_issue() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                      INSERT INTO issue_log (issue_id, note) VALUES (NEW.id, TG_OP);
                      RETURN NEW;
                  END $$;
                  CREATE TRIGGER issues_log AFTER INSERT ON issues FOR EACH ROW EXECUTE FUNCTION log_issue();";
    let (db, plan) = converted_with("iso_trigger", &dir, before, &["--exclude", "issue_log"], "").await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    expect_proven(&run);
    assert!(!run.stdout.contains("does not exist"), "{}", run.text());
    assert_eq!(leftovers(&db).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_uniques_whose_predicates_exclude_each_other_are_each_probed() {
    let dir = scratch_dir();
    let before = "UPDATE users SET deleted_at = now() WHERE id % 5 = 0;
                  CREATE UNIQUE INDEX users_deleted_email_key ON users (lower(email), deleted_at)
                   WHERE deleted_at IS NOT NULL;";
    let (db, plan) = converted_with("iso_partial", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    let seen = outcomes(&report, "public.users", "a unique value cannot repeat within a tenant");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("[users_email_key]")), "{seen:?}");
    assert!(
        seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("[users_deleted_email_key]")),
        "{seen:?}"
    );
    let seen = outcomes(&report, "public.users", "a unique value may repeat in another tenant");
    assert!(seen.len() == 2 && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn views_in_other_schemas_and_materialized_views_are_read_as_another_tenant() {
    let dir = scratch_dir();
    // Owned by the superuser and not security_invoker: they read every tenant's rows.
    let after = "CREATE SCHEMA reporting;
                 CREATE VIEW reporting.issue_titles AS SELECT id, title FROM public.issues;
                 CREATE VIEW public.issue_titles_again AS SELECT * FROM reporting.issue_titles;
                 CREATE MATERIALIZED VIEW public.issues_per_project AS
                     SELECT project_id, count(*) AS issues FROM public.issues GROUP BY project_id;";
    let (db, plan) = converted_with("iso_views", &dir, "", &[], after).await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_code(3)
        .expect_output("LEAK reporting.issue_titles")
        .expect_output("LEAK public.issue_titles_again")
        .expect_output("LEAK public.issues_per_project")
        .expect_output("to see it, run as a superuser:")
        .expect_output("ROLLBACK;");
    let report = json_report(&db, &plan);
    let view = report["views"].as_array().unwrap().iter().find(|v| v["object"] == "reporting.issue_titles");
    let sql = view.unwrap()["probes"][0]["sql"].as_str().unwrap().to_string();
    assert!(sql.starts_with("BEGIN;") && sql.ends_with("ROLLBACK;"), "{sql}");
    assert_eq!(leftovers(&db).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_cannot_be_probed_is_not_proven_rather_than_ok() {
    let dir = scratch_dir();
    let before = "CREATE TABLE watchers (
                      id bigserial PRIMARY KEY,
                      issue_id bigint NOT NULL REFERENCES issues ON DELETE CASCADE,
                      user_id bigint NOT NULL REFERENCES users);";
    let (db, plan) = converted_with("iso_empty", &dir, before, &[], "").await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_code(3).expect_output("NOT PROVEN").expect_output("the table has no row to copy");
    assert!(!run.stdout.contains("LEAK") && !run.stdout.contains('✗'), "{}", run.text());
    let report = json_report(&db, &plan);
    assert_eq!(report["leaks"].as_array().unwrap().len(), 0);
    assert_eq!(report["tables_proven"].as_u64().unwrap() + 1, report["tables_total"].as_u64().unwrap());
}

/// Shapes found on real schemas (Philomena, Miniflux) that made the probe report "not proven"
/// on a correct conversion: a cycle of foreign keys whose names sort child first, uniques on
/// typed columns (`varchar(255)`, `numeric(10,2)`), two identical unique indexes, and a CHECK
/// allowing at most one of two references.
#[tokio::test(flavor = "multi_thread")]
async fn real_schema_shapes_are_proven_not_reported() {
    let dir = scratch_dir();
    let before = "CREATE TABLE cy_users (id bigserial PRIMARY KEY, name text NOT NULL, filter_id bigint);
                  CREATE TABLE cy_filters (id bigserial PRIMARY KEY,
                      user_id bigint REFERENCES cy_users, name text NOT NULL);
                  ALTER TABLE cy_users ADD FOREIGN KEY (filter_id) REFERENCES cy_filters;
                  CREATE TABLE a_notes (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES cy_users, body text NOT NULL);
                  INSERT INTO cy_users (name) VALUES ('ann'), ('bob');
                  INSERT INTO cy_filters (user_id, name) SELECT id, name || ' default' FROM cy_users;
                  UPDATE cy_users u SET filter_id = f.id FROM cy_filters f WHERE f.user_id = u.id;
                  INSERT INTO a_notes (user_id, body) SELECT id, 'hello' FROM cy_users;
                  CREATE TABLE rules (id bigserial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE,
                      weight numeric(10,2) NOT NULL UNIQUE);
                  INSERT INTO rules (name, weight) VALUES ('first', 1.5), ('second', 2.25);
                  CREATE TABLE sources (id bigserial PRIMARY KEY, url text NOT NULL);
                  CREATE UNIQUE INDEX sources_url_idx ON sources (url);
                  CREATE UNIQUE INDEX sources_url_unique ON sources (url);
                  INSERT INTO sources (url) VALUES ('https://a.example'), ('https://b.example');
                  CREATE TABLE reports (id bigserial PRIMARY KEY,
                      issue_id bigint REFERENCES issues, comment_id bigint REFERENCES issue_comments,
                      reason text NOT NULL,
                      CONSTRAINT reports_one_target CHECK (num_nonnulls(issue_id, comment_id) <= 1));
                  INSERT INTO reports (issue_id, reason) SELECT min(id), 'spam' FROM issues;
                  INSERT INTO reports (comment_id, reason) SELECT min(id), 'rude' FROM issue_comments;";
    let (db, plan) = converted_with("iso_real_shapes", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    for (object, probe) in [
        ("public.a_notes", "a row pointing at another tenant's public.cy_users is refused"),
        ("public.cy_users", "a row pointing at another tenant's public.cy_filters is refused"),
        ("public.reports", "a row pointing at another tenant's public.issue_comments is refused"),
        ("public.reports", "a row pointing at another tenant's public.issues is refused"),
    ] {
        let seen = outcomes(&report, object, probe);
        assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{object}: {seen:?}");
    }
    let seen = outcomes(&report, "public.sources", "a unique value cannot repeat within a tenant");
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: refused")), "{seen:?}");
}

/// A shape of Sanbase's schema (santiment/sanbase2: `user_followers`, `notification_muted_users`):
/// two foreign keys to the same table that a CHECK keeps apart. The probe pointed both of a
/// copied row's references at the one parent it had cloned for the tenant, the CHECK refused
/// the copy, and a correct conversion was reported "not proven". Beside it, a table with two
/// references to the same table and no CHECK, probed before the other (by name), whose unique
/// must still be probed with the value it holds (the first fix pointed that copy at the
/// second parent: a false LEAK). And a CHECK requiring exactly one of two references, with a
/// third reference outside it; a unique on a reference beside the unique under test; and a
/// unique whose column is also in the primary key (Sanbase's telegram_user_tokens); and an
/// expression unique reading a reference another unique holds (found by review).
#[tokio::test(flavor = "multi_thread")]
async fn two_references_to_one_table_that_a_check_keeps_apart_are_proven() {
    let dir = scratch_dir();
    let before = "CREATE TABLE user_followers (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, follower_id bigint NOT NULL REFERENCES users,
                      CONSTRAINT user_cannot_follow_self CHECK (user_id <> follower_id));
                  CREATE UNIQUE INDEX user_followers_pair ON user_followers (user_id, follower_id);
                  INSERT INTO user_followers (user_id, follower_id)
                      SELECT a.id, b.id FROM users a JOIN users b ON b.id = a.id + 1 LIMIT 3;
                  CREATE TABLE linked_users (id bigserial PRIMARY KEY,
                      primary_user_id bigint NOT NULL REFERENCES users,
                      secondary_user_id bigint NOT NULL REFERENCES users);
                  CREATE UNIQUE INDEX linked_users_secondary ON linked_users (secondary_user_id);
                  INSERT INTO linked_users (primary_user_id, secondary_user_id)
                      SELECT a.id, b.id FROM users a JOIN users b ON b.id = a.id + 2 LIMIT 3;
                  CREATE TABLE timeline_events (id bigserial PRIMARY KEY,
                      user_id bigint REFERENCES users, issue_id bigint REFERENCES issues,
                      comment_id bigint REFERENCES issue_comments,
                      CONSTRAINT only_one_fk CHECK (num_nonnulls(issue_id, comment_id) = 1));
                  INSERT INTO timeline_events (issue_id) SELECT min(id) FROM issues;
                  CREATE TABLE epic_tokens (id bigserial PRIMARY KEY,
                      epic_id bigint NOT NULL UNIQUE REFERENCES epics, token text NOT NULL UNIQUE);
                  INSERT INTO epic_tokens (epic_id, token) SELECT id, 'tok' || id FROM epics LIMIT 2;
                  CREATE TABLE telegram_tokens (user_id bigint NOT NULL REFERENCES users,
                      token text NOT NULL, PRIMARY KEY (user_id, token));
                  CREATE UNIQUE INDEX telegram_tokens_user ON telegram_tokens (user_id);
                  CREATE UNIQUE INDEX telegram_tokens_token ON telegram_tokens (token);
                  INSERT INTO telegram_tokens SELECT id, 'tg' || id FROM users LIMIT 2;
                  CREATE TABLE owned_things (id bigserial PRIMARY KEY,
                      owner_id bigint NOT NULL REFERENCES users, slug text NOT NULL, name text NOT NULL,
                      UNIQUE (owner_id, slug));
                  CREATE UNIQUE INDEX owned_things_owner_name ON owned_things (owner_id, lower(name));
                  INSERT INTO owned_things (owner_id, slug, name) SELECT id, 's' || id, 'N' || id FROM users LIMIT 2;
                  CREATE TABLE epic_a_watchers (user_id bigint NOT NULL REFERENCES users,
                      epic_id bigint NOT NULL UNIQUE REFERENCES epics, PRIMARY KEY (user_id, epic_id));
                  INSERT INTO epic_a_watchers SELECT u.id, e.id FROM users u, epics e LIMIT 1;";
    let (db, plan) = converted_with("iso_two_refs", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    let seen = outcomes(
        &report,
        "public.user_followers",
        "a row pointing at another tenant's public.users is refused",
    );
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
    let seen = outcomes(&report, "public.user_followers", "tenant A reads only its rows");
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
    // Without a CHECK both references keep pointing at the one parent: a copy made to test
    // the unique repeats the value it tests.
    // A reference the CHECK does not read, NULL in the row: setting it leaves the CHECK's
    // "exactly one" as it was (clearing the others broke it).
    let seen = outcomes(
        &report,
        "public.timeline_events",
        "a row pointing at another tenant's public.users is refused",
    );
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
    // The token's unique is probed with a copy whose epic_id, held by another unique, points
    // at a second epic (it came first and hid the rule under test).
    let seen = outcomes(&report, "public.epic_tokens", "a unique value cannot repeat within a tenant");
    assert!(seen.len() == 2 && seen.iter().all(|s| s.starts_with("ok: refused")), "{seen:?}");
    assert!(seen.iter().any(|s| s.contains("[epic_tokens_token_key]")), "{seen:?}");
    // The token is also in the primary key: the copy keeps it (a fresh key value there would
    // test nothing, and with user_id on a second user the copy was let through: a false LEAK).
    let seen = outcomes(&report, "public.telegram_tokens", "a unique value cannot repeat within a tenant");
    assert!(
        seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("[telegram_tokens_token]")),
        "{seen:?}"
    );
    // An expression unique keeps the columns it reads: its copy repeats owner_id (the other
    // unique's slug goes fresh), never moves it to the second user (a false LEAK).
    let seen = outcomes(&report, "public.owned_things", "a unique value cannot repeat within a tenant");
    assert!(
        seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("[owned_things_owner_name]")),
        "{seen:?}"
    );
    // The primary key holds the reference under test, so the probe makes a new row: its
    // epic_id, held by a unique, points at a second epic (made then, whatever the table order).
    let seen = outcomes(
        &report,
        "public.epic_a_watchers",
        "a row pointing at another tenant's public.users is refused",
    );
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
    let seen = outcomes(&report, "public.linked_users", "a unique value cannot repeat within a tenant");
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: refused")), "{seen:?}");
}

/// Found on Sourcegraph's schema (its own policies on every table): a row of A that a policy
/// of the application hides from the probe role. The probe's UPDATE pointing it at B's parent
/// changed no row, and "allowed (0 rows)" was reported as a LEAK; a statement that writes
/// nothing proves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_changes_no_row_is_not_a_leak() {
    let dir = scratch_dir();
    let before = "CREATE TABLE hidden_notes (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, hidden boolean NOT NULL DEFAULT true);
                  INSERT INTO hidden_notes (user_id) SELECT id FROM users LIMIT 2;
                  ALTER TABLE hidden_notes ENABLE ROW LEVEL SECURITY;
                  CREATE POLICY only_shown ON hidden_notes USING (NOT hidden);";
    let (db, plan) = converted_with("iso_zero_rows", &dir, before, &[], "").await;
    let run = db.tenantize(&["verify", "--isolation", &plan]);
    run.expect_code(3).expect_output("NOT PROVEN");
    assert!(!run.stdout.contains("LEAK") && !run.stdout.contains('✗'), "{}", run.text());
    let report = json_report(&db, &plan);
    let seen = outcomes(
        &report,
        "public.hidden_notes",
        "a row pointing at another tenant's public.users is refused",
    );
    // The reads say what may hide the rows: the application's own policy.
    let reads = outcomes(&report, "public.hidden_notes", "tenant A reads only its rows");
    assert!(
        reads.len() == 1 && reads[0].contains("policies of its own, only_shown, that may hide them"),
        "{reads:?}"
    );
    assert!(
        seen.len() == 1 && seen[0].starts_with("not_proven: ") && seen[0].contains("changed no row"),
        "{seen:?}"
    );
}

/// Shapes of Danbooru's schema (danbooru/danbooru): an expression unique (`lower(address)`)
/// beside plain uniques on the same table, whose column the probe of each other unique must
/// give a fresh value (it kept it, the expression unique refused the copy first: "not
/// proven"); and a foreign key to a unique, non-key column with no default (`login_id`),
/// which every clone copied as is, so A had the very value B's parent had and the probe could
/// not tell them apart ("not proven"). And a partial unique whose predicate reads a column
/// another unique holds (`UNIQUE (email) WHERE provider = 'local'` beside `UNIQUE (provider,
/// uid)`): its copy must keep the predicate's column. And a CHECK tying a reference to a
/// column that is not one (Lago's `usage_monitoring_alerts`: a subscription or a wallet). And
/// two expression uniques whose columns CHECKs read (sagittarius's `users`).
#[tokio::test(flavor = "multi_thread")]
async fn an_expression_unique_and_a_reference_to_a_copied_unique_column_are_proven() {
    let dir = scratch_dir();
    let before = "CREATE TABLE email_addresses (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, address varchar NOT NULL,
                      normalized_address varchar NOT NULL);
                  CREATE UNIQUE INDEX email_lower ON email_addresses (lower(address::text));
                  CREATE UNIQUE INDEX email_normalized ON email_addresses (normalized_address);
                  CREATE UNIQUE INDEX email_user ON email_addresses (user_id);
                  INSERT INTO email_addresses (user_id, address, normalized_address)
                      SELECT id, 'User' || id || '@Example.com', 'user' || id || '@example.com'
                      FROM users ORDER BY id LIMIT 3;
                  CREATE TABLE login_sessions (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, login_id uuid NOT NULL);
                  CREATE UNIQUE INDEX login_sessions_login ON login_sessions (login_id);
                  CREATE TABLE user_events (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users,
                      login_session_id uuid REFERENCES login_sessions (login_id));
                  INSERT INTO login_sessions (user_id, login_id) SELECT id, gen_random_uuid()
                      FROM users ORDER BY id LIMIT 3;
                  INSERT INTO user_events (user_id, login_session_id) SELECT user_id, login_id
                      FROM login_sessions;
                  CREATE TABLE identities (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, provider text NOT NULL,
                      uid text NOT NULL, email text);
                  CREATE UNIQUE INDEX identities_provider_uid ON identities (provider, uid);
                  CREATE UNIQUE INDEX identities_local_email ON identities (email)
                      WHERE provider = 'local';
                  INSERT INTO identities (user_id, provider, uid, email)
                      SELECT id, 'local', 'u' || id, 'u' || id || '@example.com' FROM users
                      ORDER BY id LIMIT 2;
                  CREATE TABLE wallets (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users);
                  CREATE TABLE usage_alerts (id bigserial PRIMARY KEY,
                      subscription_external_id varchar, wallet_id bigint REFERENCES wallets,
                      CONSTRAINT subscription_xor_wallet
                          CHECK ((subscription_external_id IS NOT NULL) <> (wallet_id IS NOT NULL)));
                  INSERT INTO wallets (user_id) SELECT id FROM users ORDER BY id LIMIT 2;
                  INSERT INTO usage_alerts (subscription_external_id) VALUES ('sub_1');
                  CREATE TABLE accounts (id bigserial PRIMARY KEY, username text, email text,
                      CONSTRAINT check_username CHECK (char_length(username) <= 255),
                      CONSTRAINT check_email CHECK (char_length(email) <= 255));
                  CREATE UNIQUE INDEX accounts_lower_email ON accounts (lower(email));
                  CREATE UNIQUE INDEX accounts_lower_username ON accounts (lower(username));
                  INSERT INTO accounts (username, email) VALUES ('Ann', 'ann@example.com'),
                      ('Bob', 'bob@example.com');";
    let (db, plan) = converted_with("iso_danbooru", &dir, before, &[], "").await;
    expect_proven(&db.tenantize(&["verify", "--isolation", &plan]));
    let report = json_report(&db, &plan);
    let seen = outcomes(&report, "public.email_addresses", "a unique value cannot repeat within a tenant");
    assert_eq!(seen.len(), 3, "{seen:?}");
    for index in ["email_lower", "email_normalized", "email_user"] {
        assert!(seen.iter().any(|s| s.starts_with("ok: refused") && s.contains(index)), "{index}: {seen:?}");
    }
    // The partial unique's copy keeps the column its predicate reads, which the other
    // unique holds: a fresh provider took the copy out of the predicate (a false LEAK).
    let seen = outcomes(&report, "public.identities", "a unique value cannot repeat within a tenant");
    assert!(
        seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("identities_local_email")),
        "{seen:?}"
    );
    // Code0's sagittarius (GitLab's style): a CHECK on every text column's length kept
    // email as it was in the copy for lower(username), and lower(email) refused it first.
    let seen = outcomes(&report, "public.accounts", "a unique value cannot repeat within a tenant");
    for index in ["accounts_lower_email", "accounts_lower_username"] {
        assert!(seen.iter().any(|s| s.starts_with("ok: refused") && s.contains(index)), "{index}: {seen:?}");
    }
    // Lago's usage_monitoring_alerts: the cross-tenant UPDATE sets the wallet and clears the
    // subscription the CHECK ties it to, else the CHECK refused it first.
    let seen = outcomes(
        &report,
        "public.usage_alerts",
        "a row pointing at another tenant's public.wallets is refused",
    );
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
    let probe = "a row pointing at another tenant's public.login_sessions is refused";
    let seen = outcomes(&report, "public.user_events", probe);
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
}

/// Shapes a review of the probe's fresh values found (each a false LEAK or a table no longer
/// proven, before its fix): a unique on a generated column (`lower(slug)`), whose copy must
/// keep the column it is computed from; a trigger that gives every new row its own token, so
/// a copy accepted within the tenant never repeated the unique's value (not proven, never a
/// leak); a foreign key to a unique holding the whole key and a type column (`(id, kind)`),
/// whose clones keep the type a child's CHECK requires; and a CHECK tying a reference to a
/// column that must then be set (`wallet_id IS NULL OR threshold IS NOT NULL`), which the
/// cross-tenant UPDATE must not clear.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_does_not_repeat_a_unique_is_not_a_leak() {
    let dir = scratch_dir();
    let before = "CREATE TABLE slugs (id bigserial PRIMARY KEY,
                      owner_id bigint NOT NULL REFERENCES users, slug text NOT NULL,
                      slug_lower text GENERATED ALWAYS AS (lower(slug)) STORED);
                  CREATE UNIQUE INDEX slugs_lower ON slugs (slug_lower);
                  CREATE UNIQUE INDEX slugs_owner_slug ON slugs (owner_id, slug);
                  INSERT INTO slugs (owner_id, slug) SELECT id, 'Slug' || id FROM users ORDER BY id LIMIT 2;
                  CREATE TABLE api_keys (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users, token text NOT NULL UNIQUE);
                  CREATE FUNCTION api_keys_token() RETURNS trigger LANGUAGE plpgsql AS
                      $$ BEGIN NEW.token := md5(random()::text); RETURN NEW; END $$;
                  CREATE TRIGGER api_keys_token BEFORE INSERT ON api_keys
                      FOR EACH ROW EXECUTE FUNCTION api_keys_token();
                  INSERT INTO api_keys (user_id, token) SELECT id, '' FROM users ORDER BY id LIMIT 2;
                  CREATE TABLE documents (id bigserial PRIMARY KEY, kind text NOT NULL,
                      UNIQUE (id, kind));
                  CREATE TABLE invoices (id bigserial PRIMARY KEY, document_id bigint NOT NULL,
                      document_kind text NOT NULL CHECK (document_kind = 'invoice'),
                      FOREIGN KEY (document_id, document_kind) REFERENCES documents (id, kind));
                  INSERT INTO documents (kind) VALUES ('invoice'), ('invoice');
                  INSERT INTO invoices (document_id, document_kind) SELECT id, kind FROM documents;
                  CREATE TABLE wallets (id bigserial PRIMARY KEY,
                      user_id bigint NOT NULL REFERENCES users);
                  INSERT INTO wallets (user_id) SELECT id FROM users ORDER BY id LIMIT 2;
                  CREATE TABLE alerts (id bigserial PRIMARY KEY, wallet_id bigint REFERENCES wallets,
                      threshold numeric, CHECK (wallet_id IS NULL OR threshold IS NOT NULL));
                  INSERT INTO alerts (threshold) VALUES (10);";
    let (db, plan) = converted_with("iso_no_repeat", &dir, before, &[], "").await;
    let report = json_report(&db, &plan);
    assert_eq!(report["leaks"].as_array().unwrap().len(), 0, "{report:#}");
    let within = "a unique value cannot repeat within a tenant";
    let seen = outcomes(&report, "public.slugs", within);
    assert!(seen.iter().any(|s| s.starts_with("ok: refused") && s.contains("[slugs_lower]")), "{seen:?}");
    let seen = outcomes(&report, "public.api_keys", within);
    assert!(
        seen.iter().any(|s| s.starts_with("not_proven: the copy was made without repeating")),
        "{seen:?}"
    );
    for (object, parent) in [("public.invoices", "public.documents"), ("public.alerts", "public.wallets")] {
        let seen =
            outcomes(&report, object, &format!("a row pointing at another tenant's {parent} is refused"));
        assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{object}: {seen:?}");
    }
}

/// Sourcegraph's shape (sourcegraph/artifacts: `idp_clients`): a table with a row-level
/// security policy of its own on a column of its own (`org = current org`), referenced by a
/// foreign key through that column (`(opaque_id, org)`). The clones got a fresh `org` to tell
/// the tenants' keys apart, the application's policy then hid them, and the reads were "not
/// proven"; `opaque_id` alone tells them apart.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_the_applications_own_policy_reads_keeps_its_value() {
    let dir = scratch_dir();
    let before = "CREATE TABLE clients (id bigserial PRIMARY KEY, org integer NOT NULL DEFAULT 1,
                      opaque_id text NOT NULL, UNIQUE (opaque_id, org));
                  ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
                  CREATE POLICY own_org ON clients
                      USING (org = coalesce(nullif(current_setting('app.org', true), ''), '1')::integer);
                  CREATE TABLE oauth_apps (id bigserial PRIMARY KEY, org integer NOT NULL DEFAULT 1,
                      client_id text NOT NULL,
                      FOREIGN KEY (client_id, org) REFERENCES clients (opaque_id, org));
                  INSERT INTO clients (opaque_id) VALUES ('c1'), ('c2');
                  INSERT INTO oauth_apps (client_id) VALUES ('c1'), ('c2');";
    let (db, plan) = converted_with("iso_own_policy", &dir, before, &[], "").await;
    let report = json_report(&db, &plan);
    assert_eq!(report["leaks"].as_array().unwrap().len(), 0, "{report:#}");
    for probe in ["tenant A reads only its rows", "tenant B reads only its rows"] {
        let seen = outcomes(&report, "public.clients", probe);
        assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{probe}: {seen:?}");
    }
    let seen = outcomes(
        &report,
        "public.oauth_apps",
        "a row pointing at another tenant's public.clients is refused",
    );
    assert!(!seen.is_empty() && seen.iter().all(|s| s.starts_with("ok: ")), "{seen:?}");
}
