//! Stage 6: composite indexes that lead with the tenant column, built concurrently.

use crate::catalog::TableKind;
use crate::plan::analysis::{Analysis, PlannedIndex, Scope};
use crate::plan::ddl::{concurrent_index, drop_index_concurrently, exempt, index_valid_check, stmt};
use crate::plan::model::{LockMode, Stage, Statement, Step};
use crate::sql::{QualifiedName, ident_list, quote_ident};

/// One step per table with indexes to build, in table name order.
pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    a.indexes.iter().filter_map(|(table, planned)| step(&a.scope, table, planned)).collect()
}

fn step(s: &Scope, table_name: &QualifiedName, planned: &[PlannedIndex]) -> Option<Step> {
    if planned.is_empty() {
        return None;
    }
    let partitioned = s.table(table_name).kind == TableKind::Partitioned;
    let mut forward = Vec::new();
    let mut rollback = Vec::new();
    let mut checks = Vec::new();
    for index in planned {
        let qualified = table_name.sibling(index.name.clone());
        if partitioned {
            build_on_partitions(s, table_name, index, &mut forward, &mut rollback);
        } else {
            let unique = if index.unique { "UNIQUE " } else { "" };
            forward.push(concurrent_index(
                qualified.clone(),
                table_name,
                format!(
                    "CREATE {unique}INDEX CONCURRENTLY {} ON {table_name} ({});\n",
                    quote_ident(&index.name),
                    ident_list(&index.columns)
                ),
            ));
            rollback.push(drop_index_concurrently(&qualified, table_name));
        }
        checks.push(index_valid_check(&qualified));
    }
    let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
    Some(Step {
        id: format!("6.{}:{}", Stage::Indexes.name(), table_name),
        stage: Stage::Indexes,
        title: format!("Build {} on {}", names.join(", "), table_name.display_plain()),
        note: "Built CONCURRENTLY: writes go on. An index left INVALID by an interrupted build \
               is dropped and rebuilt when the step resumes. UNIQUE (tenant, key) is what \
               tenant-consistent foreign keys reference in stage 7."
            .into(),
        tables: vec![table_name.clone()],
        atomic: false,
        rows_estimate: s.table_rows(table_name),
        forward,
        rollback_atomic: false,
        rollback,
        no_rollback_reason: None,
        rollback_guards: Vec::new(),
        checks,
        backfill: None,
        hash: String::new(),
    })
}

/// PostgreSQL cannot build a partitioned index concurrently: create it ON ONLY the parent
/// (instant, INVALID) and every intermediate table, build each leaf's concurrently, and
/// attach them bottom up.
fn build_on_partitions(
    s: &Scope,
    table_name: &QualifiedName,
    index: &PlannedIndex,
    forward: &mut Vec<Statement>,
    rollback: &mut Vec<Statement>,
) {
    let unique = if index.unique { "UNIQUE " } else { "" };
    let columns = ident_list(&index.columns);
    let qualified = table_name.sibling(index.name.clone());
    let on_only = |name: &str, table: &QualifiedName| {
        format!(
            "{}CREATE {unique}INDEX IF NOT EXISTS {} ON ONLY {table} ({columns});\n",
            exempt(
                "require-concurrent-index-creation",
                "ON ONLY: an empty parent index, instant; partitions build theirs concurrently"
            ),
            quote_ident(name)
        )
    };
    forward.push(stmt(LockMode::Share, &[table_name], on_only(&index.name, table_name)));
    let descendants = s.catalog.partition_descendants(table_name);
    let names = &index.partition_names;
    for child in descendants.iter().filter(|c| c.kind == TableKind::Partitioned) {
        forward.push(stmt(LockMode::Share, &[&child.name], on_only(&names[&child.name], &child.name)));
    }
    for child in descendants.iter().rev() {
        let child_index = child.name.sibling(names[&child.name].clone());
        if child.kind == TableKind::Ordinary {
            forward.push(concurrent_index(
                child_index.clone(),
                &child.name,
                format!(
                    "CREATE {unique}INDEX CONCURRENTLY {} ON {} ({columns});\n",
                    quote_ident(&child_index.name),
                    child.name
                ),
            ));
        }
        let parent = child.partition_of.as_ref().expect("descendants are partitions");
        let parent_index =
            if parent == table_name { qualified.clone() } else { parent.sibling(names[parent].clone()) };
        forward.push(stmt(
            LockMode::ShareUpdateExclusive,
            &[parent, &child.name],
            format!("ALTER INDEX {parent_index} ATTACH PARTITION {child_index};\n"),
        ));
        rollback.push(drop_index_concurrently(&child_index, &child.name));
    }
    // Dropping the parent index drops the attached ones; it goes first.
    rollback.insert(
        0,
        stmt(LockMode::AccessExclusive, &[table_name], format!("DROP INDEX IF EXISTS {qualified};\n")),
    );
}
