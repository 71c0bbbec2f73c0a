//! The foreign keys among the tables stage 9 hands to Citus: taken off before (Citus cannot
//! distribute a table a key refers to, nor make a reference table of one local tables refer
//! to without converting them), and put back afterwards `NOT VALID` then `VALIDATE`, under
//! the names and definitions stages 3-8 left.

use crate::catalog::ForeignKey;
use crate::plan::analysis::{KeyKind, LinkedKey, Scope};
use crate::plan::ddl::{long, stmt, tenant_fk_sql};
use crate::plan::machine::{names, state, transaction, transition};
use crate::plan::model::{LockMode, Part, Statement, Transition};
use crate::plan::probe::{self, all, holds, not};
use crate::plan::stages::foreign_keys::composite_definition;
use crate::sql::{QualifiedName, quote_ident};

use super::tables::is_citus;

/// `FOREIGN KEY … REFERENCES …` as the key stands after stage 8, and what it refers to.
fn definition(s: &Scope, key: &LinkedKey, on_citus: bool) -> (String, QualifiedName, bool) {
    match &key.kind {
        KeyKind::Composite(fk) if on_citus && key.no_action_on_citus => {
            let plain = ForeignKey { on_delete: "a".into(), on_update: "a".into(), ..(*fk).clone() };
            (composite_definition(&plain, &s.tenant.column), fk.referenced_table.clone(), true)
        }
        KeyKind::Tenant { .. } => (
            format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                quote_ident(&s.tenant.column),
                s.tenant.table,
                quote_ident(&s.tenant.key_column)
            ),
            s.tenant.table.clone(),
            true,
        ),
        KeyKind::Composite(fk) => {
            (composite_definition(fk, &s.tenant.column), fk.referenced_table.clone(), true)
        }
        KeyKind::Original(fk) => {
            let text = fk.definition.trim_end_matches(" NOT VALID").to_string();
            (text, fk.referenced_table.clone(), fk.validated)
        }
    }
}

/// The transactions that put the key back: NOT VALID then VALIDATE (writes go on while it
/// validates), or, on a partitioned table, validated as it is added (a partitioned root's
/// tenant key after its leaves' own keys, which it attaches). One command per statement:
/// Citus cannot propagate a multi-command string.
fn put_back(s: &Scope, key: &LinkedKey, on_citus: bool) -> Vec<(&'static str, Vec<Statement>)> {
    let (def, parent, validated) = definition(s, key, on_citus);
    let table = &key.table;
    let name = quote_ident(&key.name);
    if key.partitioned {
        let mut statements = Vec::new();
        if let KeyKind::Tenant { leaves } = &key.kind {
            for (leaf, leaf_name) in leaves {
                statements.push(stmt(
                    LockMode::ShareRowExclusive,
                    &[leaf, &parent],
                    tenant_fk_sql(&s.tenant, leaf, leaf_name, true),
                ));
                statements.push(long(
                    LockMode::ShareUpdateExclusive,
                    &[leaf, &parent],
                    format!("ALTER TABLE {leaf} VALIDATE CONSTRAINT {};\n", quote_ident(leaf_name)),
                ));
            }
        }
        statements.push(long(
            LockMode::ShareRowExclusive,
            &[table, &parent],
            format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def};\n"),
        ));
        return vec![("valid", statements)];
    }
    let add = stmt(
        LockMode::ShareRowExclusive,
        &[table, &parent],
        format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def} NOT VALID;\n"),
    );
    if !validated {
        return vec![("valid", vec![add])];
    }
    let validate = long(
        LockMode::ShareUpdateExclusive,
        &[table, &parent],
        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};\n"),
    );
    vec![("not valid", vec![add]), ("valid", vec![validate])]
}

fn take_off(key: &LinkedKey, parent: &QualifiedName) -> Statement {
    stmt(
        LockMode::AccessExclusive,
        &[&key.table, parent],
        format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};\n", key.table, quote_ident(&key.name)),
    )
}

/// The states of a key around stage 9, `where_` naming where the tables are ("local" while
/// the referencing table is not Citus's, "distributed" once it is).
fn states(key: &LinkedKey, validated: bool) -> Vec<crate::plan::model::PartState> {
    let exists = probe::constraint_exists(&key.table, &key.name, 'f');
    let valid = if validated { probe::constraint_validated(&key.table, &key.name) } else { exists.clone() };
    let citus = is_citus(&key.table);
    vec![
        state("put back", holds(all(&[valid.clone(), citus.clone()]))),
        state("put back, not valid", holds(all(&[exists.clone(), citus.clone()]))),
        state("in place", holds(all(&[valid, not(citus.clone())]))),
        state("in place, not valid", holds(all(&[exists.clone(), not(citus)]))),
        state("taken off", holds(not(exists))),
    ]
}

/// Transitions from `from` through the put-back statements, naming states with `prefix`
/// ("in place" or "put back").
fn put_back_transitions(s: &Scope, key: &LinkedKey, prefix: &str) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut from = "taken off".to_string();
    for (to, statements) in put_back(s, key, prefix == "put back") {
        let to = if to == "valid" { prefix.to_string() } else { format!("{prefix}, not valid") };
        out.push(transaction(&from, &to, statements));
        from = to;
    }
    out
}

/// Step 9 "take off": done once the key is off (or back on the distributed tables); its
/// rollback puts it back on the local tables.
pub(super) fn off_part(s: &Scope, key: &LinkedKey) -> Part {
    let (_, parent, validated) = definition(s, key, false);
    let mut transitions = vec![
        transition("in place", "taken off", take_off(key, &parent)),
        transition("in place, not valid", "taken off", take_off(key, &parent)),
    ];
    transitions.extend(put_back_transitions(s, key, "in place"));
    Part {
        name: format!("{} on {}", key.name, key.table.display_plain()),
        states: states(key, validated),
        done: names(&["taken off", "put back", "put back, not valid"]),
        undone: names(&["in place"]),
        // Putting the keys back is the last step of stage 9: its rollback takes them off.
        rollback_from: Some("taken off".into()),
        transitions,
        guards: Vec::new(),
    }
}

/// Step 9 "put back": the key on the distributed tables again, validated.
pub(super) fn on_part(s: &Scope, key: &LinkedKey) -> Part {
    let (_, parent, validated) = definition(s, key, true);
    let mut transitions = put_back_transitions(s, key, "put back");
    transitions.push(transition("put back", "taken off", take_off(key, &parent)));
    transitions.push(transition("put back, not valid", "taken off", take_off(key, &parent)));
    Part {
        name: format!("{} on {}", key.name, key.table.display_plain()),
        states: states(key, validated),
        done: names(&["put back"]),
        undone: names(&["taken off"]),
        rollback_from: None,
        transitions,
        guards: Vec::new(),
    }
}

/// How many of the keys exist, validated where they were: what the put-back step's check counts.
pub(super) fn count_sql(keys: &[&LinkedKey]) -> String {
    let each: Vec<String> =
        keys.iter().map(|k| format!("({})::int", probe::constraint_exists(&k.table, &k.name, 'f'))).collect();
    format!("SELECT ({})::int8", if each.is_empty() { "0".into() } else { each.join(" + ") })
}
