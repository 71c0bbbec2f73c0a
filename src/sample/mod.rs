//! The sample single-tenant application: schema and deterministic data at any size.

pub mod queries;

use tokio_postgres::Client;

pub const SCHEMA_SQL: &str = include_str!("schema.sql");
const DATA_SQL: &str = include_str!("data.sql");
const FOREIGN_KEYS_SQL: &str = include_str!("foreign_keys.sql");

/// Row counts per table, scaled from the size of the largest table (issue_comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSize {
    pub comments: u64,
    pub issues: u64,
    pub users: u64,
    pub projects: u64,
    pub attachments: u64,
    pub audit: u64,
}

impl SampleSize {
    pub fn for_largest_table(rows: u64) -> SampleSize {
        let rows = rows.max(100);
        SampleSize {
            comments: rows,
            issues: (rows / 4).max(20),
            users: (rows / 200).max(50),
            projects: (rows / 2000).max(5),
            attachments: (rows / 10).max(10),
            audit: (rows / 10).max(10),
        }
    }
}

/// The data script with the sizes filled in.
pub fn data_sql(size: SampleSize) -> String {
    [
        (":comments", size.comments),
        (":issues", size.issues),
        (":users", size.users),
        (":projects", size.projects),
        (":attachments", size.attachments),
        (":audit", size.audit),
    ]
    .iter()
    .fold(DATA_SQL.to_string(), |sql, (name, value)| sql.replace(name, &value.to_string()))
}

/// Create the sample application in `client`'s database (in schema public).
pub async fn load(client: &Client, largest_table_rows: u64) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SET search_path = public").await?;
    client.batch_execute(SCHEMA_SQL).await?;
    client.batch_execute(&data_sql(SampleSize::for_largest_table(largest_table_rows))).await?;
    client.batch_execute(FOREIGN_KEYS_SQL).await?;
    client.batch_execute("ANALYZE; SET search_path = ''").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_placeholder_is_filled() {
        let sql = data_sql(SampleSize::for_largest_table(1000));
        assert!(!sql.contains(":comments") && !sql.contains(":users") && !sql.contains(":issues"));
        assert!(sql.contains("generate_series(1::bigint, 1000)"));
    }

    #[test]
    fn sizes_scale_from_the_largest_table() {
        let s = SampleSize::for_largest_table(1_000_000);
        assert_eq!((s.comments, s.issues, s.users, s.projects), (1_000_000, 250_000, 5_000, 500));
        let tiny = SampleSize::for_largest_table(1);
        assert!(tiny.comments >= 100 && tiny.projects >= 5);
    }
}
