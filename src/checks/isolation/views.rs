//! Views and materialized views, in any schema, that read a tenant table directly or through
//! other views: what tenant B reads through them must not change when tenant A's rows appear.
//! Also the application's search_path.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{Outcome, Prober, Refusal};
use crate::checks::{CheckError, db_error};
use crate::db::describe_pg_error;
use crate::sql::{QualifiedName, quote_literal};

/// What one role reads through a view: its row count and a digest of its rows.
type Content = Result<(i64, String), Refusal>;

/// SQLSTATE feature_not_supported: what Citus answers for a query it cannot run through the
/// coordinator (tables joined on other columns than the distribution column).
pub(super) const NOT_SUPPORTED: &str = "0A000";

/// A query the server refuses to plan, whatever the rows: Citus's "complex joins" (0A000),
/// and its repartition joins, which run only with citus.enable_repartition_joins (XX000; the
/// probe does not turn it on: on pagila one such read ran for minutes and the server was
/// killed for memory).
fn cannot_run(e: &Refusal) -> bool {
    e.code == NOT_SUPPORTED || (e.code == "XX000" && e.message.contains("requires repartitioning"))
}

/// Per view: what B read (twice, to tell a view that changes by itself), what A read, and
/// what the tool's own role read, before A's rows existed.
pub(super) type Before = BTreeMap<QualifiedName, [Content; 4]>;

/// The search_path the application's sessions get: the database's default (`ALTER DATABASE
/// … SET search_path`), else one for all databases, else the server's configured value.
pub(super) async fn application_search_path(client: &Client) -> Result<String, CheckError> {
    let sql = "SELECT coalesce(
         (SELECT substr(c, 13) FROM pg_catalog.pg_db_role_setting s
                 JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase AND d.datname = pg_catalog.current_database(),
                 LATERAL pg_catalog.unnest(s.setconfig) c
           WHERE s.setrole = 0 AND c LIKE 'search\\_path=%' LIMIT 1),
         (SELECT substr(c, 13) FROM pg_catalog.pg_db_role_setting s, LATERAL pg_catalog.unnest(s.setconfig) c
           WHERE s.setrole = 0 AND s.setdatabase = 0 AND c LIKE 'search\\_path=%' LIMIT 1),
         (SELECT CASE WHEN source IN ('default', 'configuration file', 'command line', 'environment variable')
                      THEN reset_val END FROM pg_catalog.pg_settings WHERE name = 'search_path'),
         (SELECT boot_val FROM pg_catalog.pg_settings WHERE name = 'search_path'))";
    let row = client.query_one(sql, &[]).await.map_err(db_error)?;
    Ok(row.get(0))
}

/// Views and materialized views (any schema but the system's) that read a tenant table,
/// directly or through other views (`pg_rewrite` and `pg_depend`, recursively); the flag marks
/// materialized ones.
pub(super) async fn reading_views(
    client: &Client,
    tenancy: &super::Tenancy,
) -> Result<Vec<(QualifiedName, bool)>, CheckError> {
    let tables: Vec<String> = tenancy
        .tables
        .iter()
        .map(|t| format!("{}::pg_catalog.regclass", quote_literal(&t.to_string())))
        .collect();
    let sql = format!(
        "WITH RECURSIVE reads(oid) AS (
                 SELECT pg_catalog.unnest(ARRAY[{}]::pg_catalog.oid[])
                 UNION
                 SELECT r.ev_class FROM pg_catalog.pg_rewrite r
                   JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                        AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   JOIN reads ON reads.oid = d.refobjid
                  WHERE r.ev_class <> d.refobjid)
             SELECT n.nspname::text, c.relname::text, c.relkind = 'm'
               FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              ORDER BY 1, 2",
        tables.join(", ")
    );
    let rows = client.query(sql.as_str(), &[]).await.map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| (QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)), r.get(2)))
        .collect())
}

impl Prober<'_> {
    /// Read `view` as the probe role with `tenant` set (None: as the tool's own role).
    async fn content_as(&self, tenant: Option<char>, view: &QualifiedName) -> Result<Content, CheckError> {
        if tenant.is_some() {
            self.as_probe(tenant).await?;
        } else if self.citus {
            // The tool's own role cannot read what the probe role wrote (see citus.rs): the
            // comparison rests on what tenants A and B read.
            return Ok(Ok((0, String::new())));
        }
        let sql = format!(
            "SELECT count(*), md5(coalesce(string_agg(v::text, E'\\n' ORDER BY v::text), '')) FROM {view} v"
        );
        let read = self.read_one(&sql).await?;
        self.as_admin(None).await?;
        Ok(read.map(|r| (r.get(0), r.get(1))))
    }

    /// A materialized view holds what its last refresh saw: refresh it (as the tool) first.
    async fn refresh(&self, view: &QualifiedName, materialized: bool) -> Result<(), String> {
        if !materialized {
            return Ok(());
        }
        self.client
            .batch_execute(&format!("REFRESH MATERIALIZED VIEW {view}"))
            .await
            .map_err(|e| format!("refreshing it failed: {}", describe_pg_error(&e)))
    }

    /// What each view shows before A's rows exist.
    pub(super) async fn view_contents(
        &mut self,
        views: &[(QualifiedName, bool)],
    ) -> Result<Before, CheckError> {
        let mut out = Before::new();
        for (view, materialized) in views {
            if let Err(why) = self.refresh(view, *materialized).await {
                let why = Refusal::other(why);
                out.insert(view.clone(), [Err(why.clone()), Err(why.clone()), Err(why.clone()), Err(why)]);
                continue;
            }
            let b = self.content_as(Some('b'), view).await?;
            let again = self.content_as(Some('b'), view).await?;
            let a = self.content_as(Some('a'), view).await?;
            let admin = self.content_as(None, view).await?;
            out.insert(view.clone(), [b, again, a, admin]);
        }
        Ok(out)
    }

    /// Reading through each view as B must show none of A's rows.
    pub(super) async fn probe_views(
        &mut self,
        views: &[(QualifiedName, bool)],
        before: Before,
    ) -> Result<(), CheckError> {
        let probe = "reading through the view shows only the tenant's rows";
        for (view, materialized) in views {
            let object = view.display_plain();
            let Some([b0, b1, a0, admin0]) = before.get(view) else { continue };
            let refreshed = self.refresh(view, *materialized).await;
            let b = self.content_as(Some('b'), view).await?;
            let a = self.content_as(Some('a'), view).await?;
            let admin = self.content_as(None, view).await?;
            let reads = [b0, b1, a0, &b, &a];
            let (outcome, detail) = match (refreshed, b0, b1, a0, admin0, &b, &a, &admin) {
                (Err(e), ..) => (Outcome::NotProven, e),
                _ if reads.iter().all(|r| r.as_ref().is_err_and(cannot_run)) => {
                    let why = b0.as_ref().err().map(|e| e.message.clone()).unwrap_or_default();
                    self.report.notes.push(format!(
                        "{object}: the server refuses this view's query as written, for tenant A and B alike \
                         ({why}); on Citus, join its distributed tables on {} as well to use it \
                         through the coordinator",
                        self.tenancy.column
                    ));
                    (Outcome::Ok, format!("no tenant can read it: {why}"))
                }
                (_, Err(e), ..) | (_, _, Err(e), ..) | (_, _, _, Err(e), ..) | (_, _, _, _, Err(e), ..) => {
                    (Outcome::NotProven, format!("reading failed: {}", e.message))
                }
                (_, _, _, _, _, Err(e), _, _)
                | (_, _, _, _, _, _, Err(e), _)
                | (_, _, _, _, _, _, _, Err(e)) => {
                    (Outcome::NotProven, format!("reading failed: {}", e.message))
                }
                (_, Ok(b0), Ok(b1), Ok(a0), Ok(admin0), Ok(b), Ok(a), Ok(admin)) => {
                    let stable = b0 == b1;
                    let changed = if stable { b0 != b } else { b0.0 != b.0 };
                    let shows_a = a0 != a || admin0 != admin;
                    let counts = format!(
                        "tenant B saw {} rows before tenant A had any and {} after; tenant A {} then {}; all tenants {} then {}",
                        b0.0, b.0, a0.0, a.0, admin0.0, admin.0
                    );
                    if changed {
                        (Outcome::Leak, format!("tenant A's rows show through to tenant B: {counts}"))
                    } else if !shows_a {
                        (
                            Outcome::NotProven,
                            format!(
                                "tenant A's rows do not show through this view at all, so nothing was hidden: {counts}"
                            ),
                        )
                    } else {
                        (Outcome::Ok, counts)
                    }
                }
            };
            let statement = format!(
                "{}SELECT * FROM {view}  -- tenant A's rows appear here: compare with the same query before tenant A's INSERTs",
                if *materialized {
                    format!(
                        "RESET ROLE;\nREFRESH MATERIALIZED VIEW {view};\n{}\n",
                        self.probe_context(Some('b'))
                    )
                } else {
                    String::new()
                }
            );
            self.record_sql(&object, true, probe, outcome, detail, Some(('b', &statement)));
        }
        Ok(())
    }
}
