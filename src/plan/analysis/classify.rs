//! Which tables get the tenant column (scoped) and which are shared, and the order their roots
//! are converted in: parents before children by foreign keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Findings, Scope};
use crate::catalog::Catalog;
use crate::plan::model::{PlanOptions, Severity, TenantSpec};
use crate::sql::QualifiedName;

pub(super) fn classify<'a>(
    catalog: &'a Catalog,
    options: &'a PlanOptions,
    tenant: TenantSpec,
    pg15: bool,
    findings: &mut Findings,
) -> Scope<'a> {
    let scoped = scoped_tables(catalog, options, &tenant, findings);
    let mut scope = Scope { catalog, options, tenant, pg15, scoped, roots: Vec::new() };
    scope.roots = foreign_key_order(&root_parents(&scope));
    scope
}

fn scoped_tables(
    catalog: &Catalog,
    options: &PlanOptions,
    tenant: &TenantSpec,
    findings: &mut Findings,
) -> BTreeSet<QualifiedName> {
    let excluded: BTreeSet<QualifiedName> =
        options.exclude.iter().map(|e| QualifiedName::parse_plain(e, &options.schemas[0])).collect();
    for name in &excluded {
        if catalog.table(name).is_none() {
            findings.add(
                Severity::Warning,
                "exclude-unknown",
                name.display_plain(),
                "--exclude names a table that does not exist in the chosen schemas",
            );
        }
    }
    let mut scoped = BTreeSet::new();
    for table in &catalog.tables {
        if table.name == tenant.table {
            continue;
        }
        let root = catalog.partition_root(&table.name).clone();
        if catalog.table(&root).is_none() {
            findings.add(
                Severity::Warning,
                "partition-outside-schemas",
                table.name.display_plain(),
                "partition of a table outside the chosen schemas: left alone",
            );
            continue;
        }
        if excluded.contains(&root) {
            continue;
        }
        if !table.inherits_from.is_empty() {
            findings.add(
                Severity::Error,
                "legacy-inheritance",
                table.name.display_plain(),
                "inherits from another table (not partitioning); tenantize cannot convert \
                 inheritance trees: --exclude it or convert it to partitioning first",
            );
            continue;
        }
        scoped.insert(table.name.clone());
    }
    scoped
}

/// Per scoped root, the other scoped roots its tables (partitions included) reference.
fn root_parents(scope: &Scope) -> BTreeMap<QualifiedName, BTreeSet<QualifiedName>> {
    let catalog = scope.catalog;
    let mut parents_of: BTreeMap<QualifiedName, BTreeSet<QualifiedName>> = scope
        .scoped
        .iter()
        .filter(|n| !scope.table(n).is_partition())
        .map(|r| (r.clone(), BTreeSet::new()))
        .collect();
    for name in &scope.scoped {
        let child_root = catalog.partition_root(name).clone();
        for fk in &scope.table(name).foreign_keys {
            if !scope.is_scoped(&fk.referenced_table) {
                continue;
            }
            let parent_root = catalog.partition_root(&fk.referenced_table).clone();
            if parent_root != child_root
                && let Some(set) = parents_of.get_mut(&child_root)
            {
                set.insert(parent_root);
            }
        }
    }
    parents_of
}

/// Roots ordered parents first. Tables in a foreign-key cycle form one group (strongly
/// connected component) ordered by name; groups come in dependency order, the smallest name
/// first among those ready, so the order is deterministic and readable.
fn foreign_key_order(parents_of: &BTreeMap<QualifiedName, BTreeSet<QualifiedName>>) -> Vec<QualifiedName> {
    let names: Vec<&QualifiedName> = parents_of.keys().collect();
    let index: HashMap<&QualifiedName, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> =
        names.iter().map(|n| parents_of[*n].iter().filter_map(|p| index.get(p).copied()).collect()).collect();
    let (component, components) = strongly_connected_components(&edges);
    order_components(&names, &edges, &component, components)
}

/// Tarjan's algorithm, iteratively (thousands of tables must not exhaust the stack): the
/// component of every node, and the number of components.
fn strongly_connected_components(edges: &[Vec<usize>]) -> (Vec<usize>, usize) {
    let count = edges.len();
    let mut component = vec![usize::MAX; count];
    let mut low = vec![0usize; count];
    let mut order_of = vec![usize::MAX; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next_order = 0;
    let mut components = 0;
    for start in 0..count {
        if order_of[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        order_of[start] = next_order;
        low[start] = next_order;
        next_order += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some((node, edge)) = work.pop() {
            if edge < edges[node].len() {
                work.push((node, edge + 1));
                let next = edges[node][edge];
                if order_of[next] == usize::MAX {
                    order_of[next] = next_order;
                    low[next] = next_order;
                    next_order += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(order_of[next]);
                }
                continue;
            }
            if low[node] == order_of[node] {
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component[member] = components;
                    if member == node {
                        break;
                    }
                }
                components += 1;
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
        }
    }
    (component, components)
}

/// Kahn's algorithm over the components: a component is ready when every parent outside it
/// is placed; among ready ones the smallest member name goes first.
fn order_components(
    names: &[&QualifiedName],
    edges: &[Vec<usize>],
    component: &[usize],
    components: usize,
) -> Vec<QualifiedName> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); components];
    for (node, &c) in component.iter().enumerate() {
        members[c].push(node);
    }
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    let mut children: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components];
    for (node, parents) in edges.iter().enumerate() {
        for &parent in parents {
            let (c, p) = (component[node], component[parent]);
            if c != p {
                waiting_on[c].insert(p);
                children[p].insert(c);
            }
        }
    }
    let first_name = |c: usize| members[c].iter().map(|&n| names[n]).min().expect("components are not empty");
    let mut ready: BTreeSet<(&QualifiedName, usize)> =
        (0..components).filter(|&c| waiting_on[c].is_empty()).map(|c| (first_name(c), c)).collect();
    let mut out = Vec::with_capacity(names.len());
    while let Some(&(name, c)) = ready.iter().next() {
        ready.remove(&(name, c));
        let mut group: Vec<&QualifiedName> = members[c].iter().map(|&n| names[n]).collect();
        group.sort();
        out.extend(group.into_iter().cloned());
        for &child in &children[c] {
            waiting_on[child].remove(&c);
            if waiting_on[child].is_empty() {
                ready.insert((first_name(child), child));
            }
        }
    }
    out
}
