//! Stage 9, `--distribute citus`: the converted database spread by tenant over the Citus
//! workers. In order: the tenant setting reaches the workers (`citus.propagate_set_commands
//! = 'local'` for the database); the foreign keys among the tables are taken off; the tenant
//! table and the shared tables tenant tables refer to become reference tables; every tenant
//! table is hash-distributed by the tenant column, colocated with the first, online
//! (`create_distributed_table_concurrently`) unless the plan says why it cannot be; the keys
//! are put back NOT VALID and validated. It runs after stage 8, whose policies take the plain
//! form Citus can propagate. Rollback undoes each step with `undistribute_table`.

mod keys;
mod tables;

use crate::plan::analysis::{Analysis, CitusTable, Distribution, Scope};
use crate::plan::ddl::{check, stmt};
use crate::plan::machine::{names, state, transition};
use crate::plan::model::{LockMode, Part, Stage, Step};
use crate::plan::probe::{database_setting_is, holds};
use crate::sql::{quote_ident, quote_literal};

use tables::Target;

pub(in crate::plan) const PROPAGATE_SET_COMMANDS: &str = "citus.propagate_set_commands";

/// The id of a step that makes its table a reference table: this, then the table.
const REFERENCE_STEP: &str = "9.reference:";

/// The tables stage 9 of `plan` makes reference tables (the tenant table first), read from its
/// steps so that `verify` judges what the plan applied; empty without stage 9.
pub fn reference_tables(plan: &crate::plan::Plan) -> Vec<&crate::sql::QualifiedName> {
    plan.steps_in(Stage::Distribute)
        .filter(|s| s.id.starts_with(REFERENCE_STEP))
        .flat_map(|s| s.tables.first())
        .collect()
}

pub(in crate::plan) fn steps(a: &Analysis) -> Vec<Step> {
    let Some(d) = &a.distribution else { return Vec::new() };
    let s = &a.scope;
    let mut steps = vec![setting_step(s)];
    if !d.keys.is_empty() {
        steps.push(keys_off_step(s, d));
    }
    for t in &d.reference {
        steps.push(table_step(s, t, &Target::Reference, None));
    }
    let first = d.distributed.first().map(|t| &t.name);
    let shard_count = s.options.distribute.as_ref().and_then(|o| o.shard_count);
    for (i, t) in d.distributed.iter().enumerate() {
        let colocate_with = if i == 0 { None } else { first };
        steps.push(table_step(s, t, &Target::Distributed { colocate_with, shard_count }, first));
    }
    if !d.keys.is_empty() {
        steps.push(keys_on_step(s, d));
    }
    steps
}

fn setting_step(s: &Scope) -> Step {
    let before = s.catalog.citus.as_ref().and_then(|c| c.database_propagate_set_commands.clone());
    let database = quote_ident(&s.catalog.server.database);
    let set = stmt(
        LockMode::None,
        &[],
        format!("ALTER DATABASE {database} SET {PROPAGATE_SET_COMMANDS} = 'local';\n"),
    );
    let restore = stmt(
        LockMode::None,
        &[],
        match &before {
            Some(value) => format!(
                "ALTER DATABASE {database} SET {PROPAGATE_SET_COMMANDS} = {};\n",
                quote_literal(value)
            ),
            None => format!("ALTER DATABASE {database} RESET {PROPAGATE_SET_COMMANDS};\n"),
        },
    );
    let is = |value: Option<&str>| holds(database_setting_is(PROPAGATE_SET_COMMANDS, value));
    let mut undone = vec!["as before"];
    if before.as_deref() == Some("local") {
        undone.push("local");
    }
    Step {
        id: "9.propagate-set".into(),
        stage: Stage::Distribute,
        title: "Let SET LOCAL reach the workers".into(),
        note: format!(
            "With citus.propagate_set_commands = 'local' a transaction's SET LOCAL {} travels \
             with its queries to the workers, where the policies on the shards read it; \
             set_config() is never propagated. Sessions opened from now on start with it.",
            s.tenant.setting
        ),
        tables: Vec::new(),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check(
            "citus.propagate_set_commands is 'local' for this database",
            1,
            format!("SELECT ({})::int::int8", database_setting_is(PROPAGATE_SET_COMMANDS, Some("local"))),
        )],
        backfill: None,
        parts: vec![Part {
            name: format!("{PROPAGATE_SET_COMMANDS} of this database"),
            states: vec![state("local", is(Some("local"))), state("as before", is(before.as_deref()))],
            done: names(&["local"]),
            undone: names(&undone),
            rollback_from: None,
            transitions: vec![
                transition("as before", "local", set),
                transition("local", "as before", restore),
            ],
            guards: Vec::new(),
        }],
        hash: String::new(),
    }
}

fn key_tables(d: &Distribution) -> Vec<crate::sql::QualifiedName> {
    let mut tables = Vec::new();
    for k in &d.keys {
        if !tables.contains(&k.table) {
            tables.push(k.table.clone());
        }
    }
    tables
}

fn keys_off_step(s: &Scope, d: &Distribution) -> Step {
    Step {
        id: "9.foreign-keys-off".into(),
        stage: Stage::Distribute,
        title: format!("Take off the {} foreign keys among the tables Citus takes over", d.keys.len()),
        note: "Citus distributes a table online only when no key refers to it, and makes a \
               reference table of one that local tables refer to by converting them (which \
               restarts identity sequences). The keys are put back, NOT VALID then validated, \
               by the last step of this stage; until then the database does not enforce them."
            .into(),
        tables: key_tables(d),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: Vec::new(),
        backfill: None,
        parts: d.keys.iter().map(|k| keys::off_part(s, k)).collect(),
        hash: String::new(),
    }
}

fn keys_on_step(s: &Scope, d: &Distribution) -> Step {
    let all: Vec<_> = d.keys.iter().collect();
    Step {
        id: "9.foreign-keys-on".into(),
        stage: Stage::Distribute,
        title: format!("Put the {} foreign keys back on the distributed tables", d.keys.len()),
        note: "Each key is added NOT VALID (metadata only) and validated while writes go on; \
               Citus adds it to every colocated shard pair. A partitioned table's key is \
               validated as it is added (PostgreSQL has no NOT VALID key there)."
            .into(),
        tables: key_tables(d),
        rows_estimate: 0,
        no_rollback_reason: None,
        checks: vec![check("foreign keys in place", all.len() as i64, keys::count_sql(&all))],
        backfill: None,
        parts: d.keys.iter().map(|k| keys::on_part(s, k)).collect(),
        hash: String::new(),
    }
}

/// Active primary nodes that hold shards of distributed tables, and all of them for
/// reference tables (the coordinator included).
fn placement_check(t: &CitusTable, target: &Target) -> crate::plan::Check {
    let table = quote_literal(&t.name.to_string());
    let (what, nodes) = match target {
        Target::Reference => (
            "replicated to every node",
            "SELECT count(*) FROM pg_catalog.pg_dist_node WHERE isactive AND noderole = 'primary'",
        ),
        Target::Distributed { .. } => (
            "has shards on every worker",
            "SELECT count(*) FROM pg_catalog.pg_dist_node WHERE isactive AND noderole = 'primary' AND groupid <> 0 AND shouldhaveshards",
        ),
    };
    check(
        format!("{} {what}", t.name.display_plain()),
        1,
        format!(
            "SELECT (count(DISTINCT p.groupid) = ({nodes}))::int::int8 FROM pg_catalog.pg_dist_placement p \
             JOIN pg_catalog.pg_dist_shard sh ON sh.shardid = p.shardid WHERE sh.logicalrelid = {table}::pg_catalog.regclass"
        ),
    )
}

fn table_step(s: &Scope, t: &CitusTable, target: &Target, first: Option<&crate::sql::QualifiedName>) -> Step {
    let name = &t.name;
    let table = quote_literal(&name.to_string());
    let mut checks = Vec::new();
    let (id, title, mut note) = match target {
        Target::Reference => {
            checks.push(check(
                format!("{} is a reference table", name.display_plain()),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = {table}::pg_catalog.regclass \
                     AND partmethod = 'n' AND repmodel = 't'"
                ),
            ));
            (
                format!("{REFERENCE_STEP}{name}"),
                format!("Make {} a reference table", name.display_plain()),
                "A copy on every node, so each shard's foreign keys to it stay local. Writes to \
                 it wait while its rows are copied."
                    .to_string(),
            )
        }
        Target::Distributed { colocate_with, .. } => {
            let anchor =
                colocate_with.or(first).map(|f| quote_literal(&f.to_string())).unwrap_or(table.clone());
            checks.push(check(
                format!("{} is distributed by {}, colocated", name.display_plain(), s.tenant.column),
                1,
                format!(
                    "SELECT count(*) FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = {table}::pg_catalog.regclass \
                     AND p.partmethod = 'h' AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = {} \
                     AND p.colocationid = (SELECT q.colocationid FROM pg_catalog.pg_dist_partition q \
                     WHERE q.logicalrelid = {anchor}::pg_catalog.regclass)",
                    quote_literal(&s.tenant.column)
                ),
            ));
            let how = match &t.blocking {
                Some(why) => format!(
                    "Blocking (--allow-blocking-distribution): {why}, so writes to it wait while \
                     its rows are copied."
                ),
                None => "Online: writes go on while Citus copies the rows and replicates changes \
                         logically; the final switch takes a short lock."
                    .to_string(),
            };
            (
                format!("9.distribute:{name}"),
                format!("Distribute {} by {}", name.display_plain(), s.tenant.column),
                match colocate_with {
                    Some(f) => format!("{how} Colocated with {}.", f.display_plain()),
                    None => format!("{how} The other tenant tables are colocated with it."),
                },
            )
        }
    };
    checks.push(placement_check(t, target));
    if !t.identity.is_empty() {
        let columns: Vec<&str> = t.identity.iter().map(|(c, _)| c.as_str()).collect();
        note.push_str(&format!(
            " Identity column {}: its sequence is kept where it was (Citus would restart it), and \
             the rollback keeps it aside in the tenantize schema while it undistributes.",
            columns.join(", ")
        ));
    }
    if t.triggers {
        note.push_str(" Its triggers go to the shards (citus.enable_unsafe_triggers for this step).");
    }
    Step {
        id,
        stage: Stage::Distribute,
        title,
        note,
        tables: vec![name.clone()],
        rows_estimate: s.catalog.table(name).map(|_| s.table_rows(name)).unwrap_or(0),
        no_rollback_reason: None,
        checks,
        backfill: None,
        parts: match target {
            Target::Distributed { .. } if t.blocking.is_none() => {
                vec![tables::part(s, t, target), tables::cleanup_part()]
            }
            _ => vec![tables::part(s, t, target)],
        },
        hash: String::new(),
    }
}
