//! Which columns of a table the probe may give new values, and which it must leave as they
//! are: references, the columns CHECKs and partition keys read, the columns foreign keys
//! point at.

use super::Prober;
use super::rows::words;
use crate::catalog::{ForeignKey, Table};

impl Prober<'_> {
    /// Foreign keys of `table` (and of its partitions) to tenant-scoped tables, per column.
    pub(super) fn fk_columns(&self, table: &Table) -> Vec<(String, ForeignKey, usize)> {
        let mut tree = vec![table];
        tree.extend(self.catalog.partition_descendants(&table.name));
        let mut out: Vec<(String, ForeignKey, usize)> = Vec::new();
        for fk in
            tree.iter().flat_map(|t| t.foreign_keys.iter()).filter(|f| self.is_scoped(&f.referenced_table))
        {
            for (i, c) in fk.columns.iter().enumerate() {
                if !out.iter().any(|(o, _, _)| o == c) {
                    out.push((c.clone(), fk.clone(), i));
                }
            }
        }
        out
    }

    /// `table`'s partition tree: its root and every partition under it.
    fn partition_tree(&self, table: &Table) -> Vec<&Table> {
        let root = self.catalog.partition_root(&table.name);
        self.catalog.table(root).into_iter().chain(self.catalog.partition_descendants(root)).collect()
    }

    /// Columns a new value must not be invented for: partition keys (routing) and columns a
    /// CHECK constraint reads (a fresh value could break it and hide the rule under test).
    pub(super) fn pinned_columns(&self, table: &Table) -> Vec<String> {
        let mut pinned = self.partition_key_columns(table);
        pinned.extend(
            self.partition_tree(table)
                .iter()
                .flat_map(|t| t.check_constraints.iter())
                .flat_map(|c| words(&c.definition)),
        );
        pinned
    }

    /// The columns of `table` read by a CHECK (of its partition tree) that reads `column`.
    pub(super) fn read_by_checks_with(&self, table: &Table, column: &str) -> Vec<String> {
        self.partition_tree(table)
            .iter()
            .flat_map(|t| t.check_constraints.iter())
            .map(|c| words(&c.definition))
            .filter(|read| read.iter().any(|w| w == column))
            .flatten()
            .filter(|w| table.column(w).is_some())
            .collect()
    }

    /// The columns the partition key of `table`'s tree reads.
    pub(super) fn partition_key_columns(&self, table: &Table) -> Vec<String> {
        self.partition_tree(table)
            .iter()
            .filter_map(|t| t.partition_key.as_ref())
            .flat_map(|k| words(k))
            .collect()
    }

    /// The columns of `table` outside its primary key that a foreign key references (a
    /// unique `login_id`): each clone gets fresh values there. Copied as is, A's clone would
    /// hold the very value B's has, and a row of A pointing at B's would point at A's own. A
    /// foreign key whose columns hold the whole key (`(id, kind)`) is told apart by the fresh
    /// key already, and its other columns stay as they are (a child's CHECK may read them). A
    /// column the table's own policies read stays too: Sourcegraph's `(opaque_id, tenant_id)`,
    /// whose fresh `tenant_id` hid the clone from its `tenant_isolation_policy`.
    pub(super) fn referenced_columns(&self, table: &Table) -> Vec<String> {
        let pk: Vec<String> = table
            .primary_key
            .as_ref()
            .map(|p| p.columns.iter().filter(|c| **c != self.tenancy.column).cloned().collect())
            .unwrap_or_default();
        let own_references = self.fk_columns(table);
        let policies_read: Vec<String> = self
            .partition_tree(table)
            .iter()
            .flat_map(|t| t.policies.iter())
            .flat_map(|p| words(&p.definition))
            .collect();
        let mut out: Vec<String> = self
            .catalog
            .tables
            .iter()
            .flat_map(|t| t.foreign_keys.iter())
            .filter(|fk| fk.referenced_table == table.name)
            .filter(|fk| pk.is_empty() || !pk.iter().all(|c| fk.referenced_columns.contains(c)))
            .flat_map(|fk| fk.referenced_columns.iter().cloned())
            .filter(|c| *c != self.tenancy.column && !pk.contains(c))
            .filter(|c| !own_references.iter().any(|(f, _, _)| f == c) && !policies_read.contains(c))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
