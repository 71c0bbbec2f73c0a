//! [`CatalogBuilder`] produces the data `catalog::introspect` would read for the same schema:
//! `pg_get_indexdef()` / `pg_get_constraintdef()` texts, key columns as
//! `pg_get_indexdef(oid, k, true)` prints them, sorted `relation_names`, partitions carrying
//! their parent's cloned keys and triggers, and so on.

use super::printed::{fk_definition, pg_object_name};
use crate::catalog::{
    Catalog, Column, ForeignKey, Index, KeyConstraint, NamedDefinition, RoleInfo, ServerInfo, Table,
    TableKind, Trigger, UniqueConstraintInfo, UniqueIndex, View,
};
use crate::sql::{QualifiedName, ident_list, quote_ident};

pub(crate) fn qn(schema: &str, name: &str) -> QualifiedName {
    QualifiedName::new(schema, name)
}

pub(crate) struct TableBuilder {
    table: Table,
}

impl TableBuilder {
    pub(crate) fn new(name: QualifiedName) -> Self {
        TableBuilder {
            table: Table { row_estimate: 1000, total_bytes: 131_072, ..Table::bare(name, "app_owner") },
        }
    }

    pub(crate) fn add_column(&mut self, name: &str, data_type: &str, not_null: bool) {
        if let Some(c) = self.table.columns.iter_mut().find(|c| c.name == name) {
            c.not_null |= not_null;
            return;
        }
        self.table.columns.push(Column {
            name: name.into(),
            data_type: data_type.into(),
            not_null,
            default: None,
            identity: None,
            generated: None,
        });
    }

    pub(crate) fn col(mut self, name: &str, data_type: &str) -> Self {
        self.add_column(name, data_type, false);
        self
    }

    /// `column`'s default expression (`nextval(...)` makes a key a surrogate one).
    pub(crate) fn default(mut self, column: &str, default: &str) -> Self {
        if let Some(c) = self.table.columns.iter_mut().find(|c| c.name == column) {
            c.default = Some(default.into());
        }
        self
    }

    /// A member of `extension` (as PostGIS's spatial_ref_sys is).
    pub(crate) fn extension(mut self, extension: &str) -> Self {
        self.table.extension = Some(extension.into());
        self
    }

    pub(crate) fn col_nn(mut self, name: &str, data_type: &str) -> Self {
        self.add_column(name, data_type, true);
        self
    }

    /// Primary key under PostgreSQL's default name; columns not declared yet become
    /// `bigint NOT NULL`, and an `id` among them a sequence's (a surrogate key, as most are).
    pub(crate) fn pk(self, columns: &[&str]) -> Self {
        let name = pg_object_name(&self.table.name.name.clone(), "", "pkey");
        self.pk_named(&name, columns)
    }

    pub(crate) fn pk_named(mut self, name: &str, columns: &[&str]) -> Self {
        for c in columns {
            let declared = self.table.column(c).is_some();
            self.add_column(c, "bigint", true);
            if !declared && *c == "id" {
                let sequence = format!("nextval('{}_id_seq'::regclass)", self.table.name);
                self = self.default("id", &sequence);
            }
        }
        self.table.primary_key = Some(KeyConstraint {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            definition: format!("PRIMARY KEY ({})", ident_list(columns)),
            clustered: false,
            index_definition: None,
            tablespace: None,
        });
        self
    }

    pub(crate) fn index_definition(
        &self,
        unique: bool,
        name: &str,
        keys: &[String],
        predicate: Option<&str>,
    ) -> String {
        format!(
            "CREATE {}INDEX {} ON {}{} USING btree ({}){}",
            if unique { "UNIQUE " } else { "" },
            quote_ident(name),
            if self.table.kind == TableKind::Partitioned { "ONLY " } else { "" },
            self.table.name,
            keys.join(", "),
            predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default()
        )
    }

    /// `UNIQUE (cols)` constraint under PostgreSQL's default name.
    pub(crate) fn unique(mut self, columns: &[&str]) -> Self {
        let name = pg_object_name(&self.table.name.name, &columns.join("_"), "key");
        let keys: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        self.table.uniques.push(UniqueIndex {
            index_name: name.clone(),
            constraint: Some(UniqueConstraintInfo {
                definition: format!("UNIQUE ({})", ident_list(columns)),
                deferrable: false,
                initially_deferred: false,
                inherited: false,
            }),
            index_definition: self.index_definition(true, &name, &keys, None),
            key_columns: keys,
            key_column_names: Some(columns.iter().map(|c| c.to_string()).collect()),
            predicate: None,
            access_method: "btree".into(),
            nulls_not_distinct: false,
            valid: true,
            is_partition_child: false,
            tablespace: None,
        });
        self
    }

    /// `CREATE UNIQUE INDEX name ON table (keys) [WHERE predicate]`; `keys` and `predicate` as
    /// PostgreSQL prints them (`lower(email)`, `"Code"`, `(deleted_at IS NULL)`).
    pub(crate) fn unique_index(mut self, name: &str, keys: &[&str], predicate: Option<&str>) -> Self {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let names: Option<Vec<String>> = keys
            .iter()
            .map(|k| self.table.columns.iter().find(|c| quote_ident(&c.name) == *k).map(|c| c.name.clone()))
            .collect();
        self.table.uniques.push(UniqueIndex {
            index_name: name.into(),
            constraint: None,
            index_definition: self.index_definition(true, name, &keys, predicate),
            key_columns: keys,
            key_column_names: names,
            predicate: predicate.map(str::to_string),
            access_method: "btree".into(),
            nulls_not_distinct: false,
            valid: true,
            is_partition_child: false,
            tablespace: None,
        });
        self
    }

    pub(crate) fn index(self, name: &str, columns: &[&str]) -> Self {
        let keys: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let names = columns.iter().map(|c| c.to_string()).collect();
        self.plain_index(name, keys, Some(names))
    }

    /// `CREATE INDEX name ON table (keys)` with a key that is an expression, as PostgreSQL
    /// prints it (`lower(email)`).
    pub(crate) fn expression_index(self, name: &str, keys: &[&str]) -> Self {
        self.plain_index(name, keys.iter().map(|k| k.to_string()).collect(), None)
    }

    fn plain_index(mut self, name: &str, keys: Vec<String>, names: Option<Vec<String>>) -> Self {
        self.table.indexes.push(Index {
            name: name.into(),
            definition: self.index_definition(false, name, &keys, None),
            key_columns: keys,
            key_column_names: names,
            valid: true,
            is_partition_child: false,
            tablespace: None,
        });
        self
    }

    /// A foreign key to `parent` in the same schema, under PostgreSQL's default name.
    /// `on_delete` is a `confdeltype` code: a, r, c, n or d.
    pub(crate) fn fk(self, columns: &[&str], parent: &str, referenced: &[&str], on_delete: char) -> Self {
        let parent = self.table.name.sibling(parent);
        self.fk_to(columns, parent, referenced, on_delete)
    }

    pub(crate) fn fk_to(
        self,
        columns: &[&str],
        parent: QualifiedName,
        referenced: &[&str],
        on_delete: char,
    ) -> Self {
        let name = pg_object_name(&self.table.name.name, &columns.join("_"), "fkey");
        self.fk_named(&name, columns, parent, referenced, on_delete)
    }

    pub(crate) fn fk_named(
        mut self,
        name: &str,
        columns: &[&str],
        parent: QualifiedName,
        referenced: &[&str],
        on_delete: char,
    ) -> Self {
        let mut fk = ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            referenced_table: parent,
            referenced_columns: referenced.iter().map(|c| c.to_string()).collect(),
            definition: String::new(),
            on_update: "a".into(),
            on_delete: on_delete.to_string(),
            on_delete_columns: Vec::new(),
            match_type: "s".into(),
            deferrable: false,
            initially_deferred: false,
            validated: true,
            inherited: false,
        };
        fk.definition = fk_definition(&fk);
        self.table.foreign_keys.push(fk);
        self
    }

    /// Change the last foreign key added (its definition follows).
    pub(crate) fn last_fk(mut self, change: impl FnOnce(&mut ForeignKey)) -> Self {
        let fk = self.table.foreign_keys.last_mut().expect("a foreign key was added");
        change(fk);
        fk.definition = fk_definition(fk);
        self
    }

    /// A row-level `BEFORE UPDATE` trigger; `enabled` is a `tgenabled` code (O, D, R, A).
    /// `AFTER UPDATE … REFERENCING OLD TABLE … FOR EACH STATEMENT`, as audit tables do.
    pub(crate) fn statement_update_trigger(mut self, name: &str) -> Self {
        self.table.triggers.push(Trigger {
            name: name.into(),
            definition: format!(
                "CREATE TRIGGER {} AFTER UPDATE ON {} REFERENCING OLD TABLE AS old_rows \
                 FOR EACH STATEMENT EXECUTE FUNCTION public.audit_changes()",
                quote_ident(name),
                self.table.name
            ),
            enabled: "O".into(),
            fires_on_update: true,
            fires_on_insert: false,
            row_level: false,
            inherited: false,
            writes_tables: Vec::new(),
        });
        self
    }

    /// A row trigger whose function writes `schema.table`.
    pub(crate) fn trigger_writing(mut self, name: &str, schema: &str, table: &str) -> Self {
        self = self.update_trigger(name, "O");
        if let Some(t) = self.table.triggers.last_mut() {
            t.writes_tables.push(qn(schema, table));
        }
        self
    }

    pub(crate) fn update_trigger(mut self, name: &str, enabled: &str) -> Self {
        self.table.triggers.push(Trigger {
            name: name.into(),
            definition: format!(
                "CREATE TRIGGER {} BEFORE UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at()",
                quote_ident(name),
                self.table.name
            ),
            enabled: enabled.into(),
            fires_on_update: true,
            fires_on_insert: false,
            row_level: true,
            inherited: false,
            writes_tables: Vec::new(),
        });
        self
    }

    pub(crate) fn check(mut self, name: &str, definition: &str) -> Self {
        self.table
            .check_constraints
            .push(NamedDefinition { name: name.into(), definition: definition.into() });
        self
    }

    /// A permissive policy, as the `pg_policy` query prints it.
    pub(crate) fn policy(mut self, name: &str) -> Self {
        self.table.policies.push(NamedDefinition {
            name: name.into(),
            definition: "PERMISSIVE FOR * USING ((owner_name = CURRENT_USER)) WITH CHECK ()".into(),
        });
        self
    }

    pub(crate) fn rls(mut self, enabled: bool, forced: bool) -> Self {
        self.table.rls_enabled = enabled;
        self.table.rls_forced = forced;
        self
    }

    pub(crate) fn rows(mut self, rows: i64, bytes: i64) -> Self {
        self.table.row_estimate = rows;
        self.table.total_bytes = bytes;
        self
    }

    /// `PARTITION BY <key>`, e.g. `RANGE (created_at)`.
    pub(crate) fn partitioned(mut self, key: &str) -> Self {
        self.table.kind = TableKind::Partitioned;
        self.table.partition_key = Some(key.into());
        self.table.row_estimate = -1;
        self.table.total_bytes = 0;
        self
    }

    pub(crate) fn inherits(mut self, parent: QualifiedName) -> Self {
        self.table.inherits_from.push(parent);
        self
    }
}

pub(crate) struct ViewBuilder {
    view: View,
}

impl ViewBuilder {
    /// Owned by a superuser (or a BYPASSRLS role), as views created by a migration tool often are.
    pub(crate) fn owned_by_superuser(mut self) -> Self {
        self.view.owner = "postgres".into();
        self.view.owner_bypasses_rls = true;
        self
    }

    pub(crate) fn materialized(mut self) -> Self {
        self.view.materialized = true;
        self
    }

    pub(crate) fn reads(mut self, schema: &str, table: &str) -> Self {
        self.view.reads_tables.push(qn(schema, table));
        self.view.reads_tables.sort();
        self
    }

    /// Reads `schema.table` through another view only.
    pub(crate) fn reads_via(mut self, schema: &str, table: &str) -> Self {
        self.view.reads_via_views.push(qn(schema, table));
        self
    }
}

pub(crate) struct CatalogBuilder {
    catalog: Catalog,
    /// Sequences and other relations whose names are taken.
    other_relations: Vec<QualifiedName>,
}

impl CatalogBuilder {
    pub(crate) fn new(version_num: i32) -> Self {
        CatalogBuilder {
            catalog: Catalog {
                server: ServerInfo {
                    version_num,
                    version: format!(
                        "PostgreSQL {}.{} on x86_64-pc-linux-gnu, compiled by gcc, 64-bit",
                        version_num / 10000,
                        version_num % 10000
                    ),
                    database: "app".into(),
                    wal_init_zero: false,
                },
                role: RoleInfo {
                    name: "app_owner".into(),
                    superuser: false,
                    bypass_rls: false,
                    can_create_in_database: true,
                    can_set_replication_role: false,
                },
                schemas: vec!["public".into()],
                tables: Vec::new(),
                views: Vec::new(),
                security_definer_functions: Vec::new(),
                relation_names: Vec::new(),
                creatable_schemas: vec!["public".into()],
                journal_exists: false,
                external_foreign_keys: Vec::new(),
                legacy_roles: Vec::new(),
                citus: None,
            },
            other_relations: Vec::new(),
        }
    }

    /// Introspect one more schema (the role may create in it).
    pub(crate) fn schema(mut self, schema: &str) -> Self {
        self.catalog.schemas.push(schema.into());
        self.catalog.creatable_schemas.push(schema.into());
        self.catalog.creatable_schemas.sort();
        self
    }

    /// A SECURITY DEFINER function owned by a superuser whose body names `tables`.
    pub(crate) fn security_definer(mut self, schema: &str, name: &str, tables: &[(&str, &str)]) -> Self {
        self.catalog.security_definer_functions.push(crate::catalog::FunctionRef {
            name: qn(schema, name),
            arguments: String::new(),
            owner: "postgres".into(),
            names_tables: tables.iter().map(|(s, t)| qn(s, t)).collect(),
        });
        self
    }

    pub(crate) fn superuser(mut self) -> Self {
        self.catalog.role.superuser = true;
        self.catalog.role.can_set_replication_role = true;
        self.catalog.role.bypass_rls = true;
        self
    }

    pub(crate) fn table(
        mut self,
        schema: &str,
        name: &str,
        f: impl FnOnce(TableBuilder) -> TableBuilder,
    ) -> Self {
        let table = f(TableBuilder::new(qn(schema, name))).table;
        assert!(self.catalog.table(&table.name).is_none(), "fixture declares {} twice", table.name);
        self.catalog.tables.push(table);
        self
    }

    /// Change a table declared earlier.
    pub(crate) fn alter(
        mut self,
        schema: &str,
        name: &str,
        f: impl FnOnce(TableBuilder) -> TableBuilder,
    ) -> Self {
        let at = self
            .catalog
            .tables
            .iter()
            .position(|t| t.name == qn(schema, name))
            .unwrap_or_else(|| panic!("fixture has no table {schema}.{name}"));
        let table = self.catalog.tables.remove(at);
        self.catalog.tables.insert(at, f(TableBuilder { table }).table);
        self
    }

    /// A partition of `parent` (same schema): it gets the parent's columns, and clones of its
    /// primary key, uniques, foreign keys and triggers, as `CREATE TABLE .. PARTITION OF` does.
    pub(crate) fn partition(
        mut self,
        schema: &str,
        name: &str,
        parent: &str,
        bound: &str,
        f: impl FnOnce(TableBuilder) -> TableBuilder,
    ) -> Self {
        let parent = self.catalog.table(&qn(schema, parent)).expect("parent declared first").clone();
        let mut b = TableBuilder::new(qn(schema, name));
        b.table.partition_of = Some(parent.name.clone());
        b.table.partition_bound = Some(bound.into());
        b.table.columns = parent.columns.clone();
        if let Some(pk) = &parent.primary_key {
            let cols: Vec<&str> = pk.columns.iter().map(String::as_str).collect();
            b = b.pk(&cols);
        }
        for u in &parent.uniques {
            let cols = u.key_column_names.clone().unwrap_or_default().join("_");
            let index_name = pg_object_name(name, &cols, if u.constraint.is_some() { "key" } else { "idx" });
            let definition = b.index_definition(true, &index_name, &u.key_columns, u.predicate.as_deref());
            b.table.uniques.push(UniqueIndex {
                index_name: index_name.clone(),
                constraint: u.constraint.clone().map(|c| UniqueConstraintInfo { inherited: true, ..c }),
                index_definition: definition,
                is_partition_child: true,
                ..u.clone()
            });
        }
        for fk in &parent.foreign_keys {
            b.table.foreign_keys.push(ForeignKey { inherited: true, ..fk.clone() });
        }
        for t in &parent.triggers {
            b.table.triggers.push(Trigger { inherited: true, ..t.clone() });
        }
        let table = f(b).table;
        self.catalog.tables.push(table);
        self
    }

    pub(crate) fn view(
        mut self,
        schema: &str,
        name: &str,
        f: impl FnOnce(ViewBuilder) -> ViewBuilder,
    ) -> Self {
        let view = View {
            name: qn(schema, name),
            materialized: false,
            owner: "app_owner".into(),
            owner_bypasses_rls: false,
            security_invoker: None,
            reads_tables: Vec::new(),
            reads_via_views: Vec::new(),
        };
        self.catalog.views.push(f(ViewBuilder { view }).view);
        self
    }

    /// A relation that is not a table, index or view of the fixture (a sequence, say).
    pub(crate) fn relation(mut self, schema: &str, name: &str) -> Self {
        self.other_relations.push(qn(schema, name));
        self
    }

    pub(crate) fn build(self) -> Catalog {
        let mut catalog = self.catalog;
        catalog.tables.sort_by(|a, b| a.name.cmp(&b.name));
        catalog.views.sort_by(|a, b| a.name.cmp(&b.name));
        for table in &mut catalog.tables {
            table.uniques.sort_by(|a, b| a.index_name.cmp(&b.index_name));
            table.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let mut names = self.other_relations;
        for table in &catalog.tables {
            let schema = &table.name;
            names.push(table.name.clone());
            names.extend(table.primary_key.iter().map(|p| schema.sibling(p.name.clone())));
            names.extend(table.uniques.iter().map(|u| schema.sibling(u.index_name.clone())));
            names.extend(table.indexes.iter().map(|i| schema.sibling(i.name.clone())));
        }
        names.extend(catalog.views.iter().map(|v| v.name.clone()));
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(count, names.len(), "fixture has two relations of the same name");
        catalog.relation_names = names;
        catalog
    }
}
