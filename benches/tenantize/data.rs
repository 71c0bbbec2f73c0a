//! Identical copies of the sample for each run, and the checksums that prove no row changed.

use std::collections::BTreeMap;

use tenantize::db::ConnSpec;
use tenantize::sandbox::Cluster;

/// Row checksums of what existed before the run (the writer's own rows excluded).
pub async fn checksums(spec: &ConnSpec, max_issue: i64, max_comment: i64) -> BTreeMap<String, (i64, String)> {
    let client = spec.connect("bench checksums").await.unwrap();
    client.batch_execute("SET row_security = off").await.unwrap();
    let tables: Vec<(String, String)> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> 'tenants' AND a.attname <> 'tenant_id'
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = BTreeMap::new();
    for (table, columns) in tables {
        let filter = match table.as_str() {
            "public.issues" => format!("WHERE id <= {max_issue}"),
            "public.issue_comments" => format!("WHERE id <= {max_comment}"),
            _ => String::new(),
        };
        let sql = format!(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') FROM (SELECT md5(ROW({columns})::text) AS h FROM {table} {filter}) t"
        );
        let row = client.query_one(sql.as_str(), &[]).await.unwrap();
        out.insert(table, (row.get(0), row.get(1)));
    }
    out
}

pub fn changed(
    before: &BTreeMap<String, (i64, String)>,
    after: &BTreeMap<String, (i64, String)>,
) -> (u64, Vec<String>) {
    let mut count = 0;
    let mut tables = Vec::new();
    for (table, (rows, sum)) in before {
        match after.get(table) {
            Some((r, s)) if r == rows && s == sum => {}
            Some((r, _)) => {
                // A checksum says "something changed", not how much: count the table's rows.
                count += (*rows).max(*r) as u64;
                tables.push(table.clone());
            }
            None => {
                count += *rows as u64;
                tables.push(table.clone());
            }
        }
    }
    (count, tables)
}

pub struct Copy {
    pub name: String,
    pub spec: ConnSpec,
}

pub async fn copy(cluster: &Cluster, template: &str, name: &str) -> Copy {
    let database = cluster.create_database(name, Some(template)).await.expect("copy the template");
    let spec = cluster.conn_spec(&database);
    // The copy leaves the database's files dirty in the OS page cache; the kernel would write
    // them back about 30 s later (vm.dirty_expire_centisecs), in the middle of the measured
    // run, and stall every fsync then. Write them out first, as pgbench's users checkpoint
    // before a run, so each run pays only for its own writes.
    let client = spec.connect("bench checkpoint").await.expect("connect to the copy");
    client.batch_execute("CHECKPOINT").await.expect("CHECKPOINT");
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Copy { name: database, spec }
}
