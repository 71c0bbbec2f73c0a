//! The sample application's typical queries, as its code would run them after the conversion:
//! each transaction sets the tenant with `SET LOCAL` (harmless before the conversion, where
//! nothing reads the setting). The benchmark times them before and after; a test EXPLAINs them
//! on both and checks that none scans a table the original did not scan.
//!
//! Variables are written the way pgbench's scripts take them (`:issue`); `bind` fills them in
//! for EXPLAIN.

/// The sequence the insert takes issue numbers from, so concurrent clients never collide on
/// `issues_project_id_number_key`. Created by `SETUP_SQL` in both databases.
pub const SETUP_SQL: &str = "CREATE SEQUENCE IF NOT EXISTS public.bench_issue_number START 1000000000;";

/// The variables every query may use, with the upper bound pgbench draws them up to.
pub const VARIABLES: [&str; 3] = ["issue", "project", "user"];

pub struct AppQuery {
    pub name: &'static str,
    pub sql: &'static str,
}

pub const QUERIES: [AppQuery; 5] = [
    AppQuery {
        name: "issue by primary key",
        sql: "SELECT id, title, status_id FROM public.issues WHERE id = :issue",
    },
    AppQuery {
        name: "a project's latest issues",
        sql: "SELECT id, number, title FROM public.issues WHERE project_id = :project ORDER BY number DESC LIMIT 20",
    },
    AppQuery {
        name: "an issue's comments with authors",
        sql: "SELECT c.id, c.body, u.display_name FROM public.issue_comments c \
              JOIN public.users u ON u.id = c.author_id WHERE c.issue_id = :issue ORDER BY c.id",
    },
    AppQuery {
        // An index-only scan of issue_comments (issue_id) before; after the conversion only
        // with --cover-indexes (the policy's tenant condition needs the column in the index).
        name: "an issue's comment count",
        sql: "SELECT count(*) FROM public.issue_comments WHERE issue_id = :issue",
    },
    AppQuery {
        name: "insert an issue with a comment",
        sql: "WITH i AS (INSERT INTO public.issues (project_id, number, status_id, reporter_id, title) \
              VALUES (:project, nextval('public.bench_issue_number')::int, 1, :user, 'bench') RETURNING id) \
              INSERT INTO public.issue_comments (issue_id, author_id, body) SELECT id, :user, 'bench' FROM i",
    },
];

impl AppQuery {
    /// A pgbench script: random ids up to the given maxima, one transaction with the tenant set.
    pub fn pgbench_script(&self, tenant_setting: &str, tenant: &str, maxima: &[(&str, i64)]) -> String {
        let mut script = String::new();
        for (name, max) in maxima {
            script.push_str(&format!("\\set {name} random(1, {max})\n"));
        }
        script
            .push_str(&format!("BEGIN;\nSET LOCAL {tenant_setting} = '{tenant}';\n{};\nCOMMIT;\n", self.sql));
        script
    }

    /// The query with its variables replaced by the given values.
    pub fn bind(&self, values: &[(&str, i64)]) -> String {
        values.iter().fold(self.sql.to_string(), |sql, (name, value)| {
            sql.replace(&format!(":{name}"), &value.to_string())
        })
    }
}

/// The relations a plan (EXPLAIN's JSON) reads with a sequential scan.
pub fn sequential_scans(plan: &serde_json::Value) -> Vec<String> {
    scans(plan, "Seq Scan")
}

/// The relations a plan (EXPLAIN's JSON) reads with an index-only scan.
pub fn index_only_scans(plan: &serde_json::Value) -> Vec<String> {
    scans(plan, "Index Only Scan")
}

fn scans(plan: &serde_json::Value, node_type: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(plan, node_type, &mut found);
    found.sort();
    found.dedup();
    found
}

fn walk(node: &serde_json::Value, node_type: &str, found: &mut Vec<String>) {
    match node {
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, node_type, found)),
        serde_json::Value::Object(map) => {
            if map.get("Node Type").and_then(|t| t.as_str()) == Some(node_type)
                && let Some(relation) = map.get("Relation Name").and_then(|r| r.as_str())
            {
                found.push(relation.to_string());
            }
            map.values().for_each(|v| walk(v, node_type, found));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_fills_every_variable() {
        for query in &QUERIES {
            let bound = query.bind(&[("issue", 7), ("project", 2), ("user", 3)]);
            assert!(!bound.contains(':') || bound.contains("::"), "{}: {bound}", query.name);
        }
    }

    #[test]
    fn sequential_scans_are_found_at_any_depth() {
        let plan = serde_json::json!([{ "Plan": { "Node Type": "Nested Loop", "Plans": [
            { "Node Type": "Index Scan", "Relation Name": "issues" },
            { "Node Type": "Seq Scan", "Relation Name": "users" } ] } }]);
        assert_eq!(sequential_scans(&plan), vec!["users".to_string()]);
        assert!(index_only_scans(&plan).is_empty());
    }
}
