//! The order the probe clones tables in: parents before children, so that a clone's foreign
//! keys find the parents' clones.

use super::Tenancy;
use crate::catalog::{Catalog, Table};
use crate::sql::QualifiedName;

/// Tenant-scoped roots (not partitions), parents before children.
pub(super) fn ordered_roots(catalog: &Catalog, tenancy: &Tenancy) -> Vec<QualifiedName> {
    let roots: Vec<&Table> =
        catalog.tables.iter().filter(|t| tenancy.tables.contains(&t.name) && !t.is_partition()).collect();
    let mut done: Vec<QualifiedName> = Vec::new();
    while done.len() < roots.len() {
        let waiting = |t: &&&Table| !done.contains(&t.name);
        let ready = roots.iter().filter(waiting).find(|t| parents_done(catalog, tenancy, t, &done, false));
        // A cycle of foreign keys: start it at a table whose keys into the cycle can be NULL
        // (its copy points nowhere until its parents have rows), not at whichever name sorts
        // first, which may be a child that needs a parent of the cycle.
        let breaks_cycle =
            || roots.iter().filter(waiting).find(|t| parents_done(catalog, tenancy, t, &done, true));
        let next =
            ready.or_else(breaks_cycle).or_else(|| roots.iter().find(waiting)).expect("a root is left");
        done.push(next.name.clone());
    }
    done
}

/// Whether every foreign key of `root`'s tree points at itself, at a table already cloned, or
/// outside the tenant tables (or, with `nullable_ok`, has a column that may be NULL).
fn parents_done(
    catalog: &Catalog,
    tenancy: &Tenancy,
    root: &Table,
    done: &[QualifiedName],
    nullable_ok: bool,
) -> bool {
    let mut tree = vec![root];
    tree.extend(catalog.partition_descendants(&root.name));
    tree.iter().flat_map(|t| t.foreign_keys.iter().map(move |f| (t, f))).all(|(t, f)| {
        let parent = catalog.partition_root(&f.referenced_table);
        parent == &root.name
            || done.contains(parent)
            || !tenancy.tables.contains(parent)
            || (nullable_ok && f.columns.iter().any(|c| t.column(c).is_some_and(|c| !c.not_null)))
    })
}
