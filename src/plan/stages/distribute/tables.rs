//! A table handed to Citus, as one part: local → (Citus local →) distributed or reference, and
//! back with `undistribute_table`.
//!
//! Two Citus traps shape it (measured on 13.2): making a table with an identity column a Citus
//! local table (which `create_distributed_table_concurrently` does first, and which a
//! reference table's foreign keys do to every table keyed to it) restarts the identity's
//! sequence at its start, so the next insert collides with existing rows; and
//! `undistribute_table` refuses any table with an identity column. So the forward way for such
//! a table first makes it a Citus local table itself, under a short write lock, putting the
//! sequence back where it was; and the way back keeps each identity's sequence aside in the
//! `tenantize` schema (options, value and name), drops the identity on the coordinator only,
//! undistributes, and puts the identity back as it was.

use crate::plan::analysis::{CitusTable, Scope};
use crate::plan::ddl::{long, stmt};
use crate::plan::machine::{names, state, transaction, transition};
use crate::plan::model::{LockMode, Part, PartState, Statement, StatementKind, Transition};
use crate::plan::probe::{all, holds, not};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

const DDL_LOCAL_ONLY: &str = "citus.enable_ddl_propagation = off";
const UNSAFE_TRIGGERS: &str = "citus.enable_unsafe_triggers = on";

/// Where the table goes.
pub(super) enum Target<'a> {
    Reference,
    /// Hash-distributed by the tenant column, colocated with `colocate_with` (the first
    /// distributed table has none).
    Distributed {
        colocate_with: Option<&'a QualifiedName>,
        shard_count: Option<u32>,
    },
}

/// `pg_dist_partition` of the table: its row, or none (a table Citus does not know).
fn citus_row(table: &QualifiedName, condition: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = pg_catalog.to_regclass({}){condition})",
        quote_literal(&table.to_string())
    )
}

pub(super) fn is_citus(table: &QualifiedName) -> String {
    citus_row(table, "")
}

fn is_distributed_by(table: &QualifiedName, column: &str) -> String {
    citus_row(
        table,
        &format!(
            " AND p.partmethod = 'h' AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = {}",
            quote_literal(column)
        ),
    )
}

fn is_reference(table: &QualifiedName) -> String {
    citus_row(table, " AND p.partmethod = 'n' AND p.repmodel = 't'")
}

fn is_citus_local(table: &QualifiedName) -> String {
    citus_row(table, " AND p.partmethod = 'n' AND p.repmodel = 's'")
}

/// Where each identity's sequence is kept while the identity is off: `tenantize.<name>`.
pub(super) fn saved_sequence(table: &QualifiedName, column: &str) -> String {
    let digest = crate::plan::codec::short_hash(&format!("{table}.{}", quote_ident(column)));
    format!("identity_{digest}")
}

fn saved_exist(t: &CitusTable) -> String {
    let each: Vec<String> = t
        .identity
        .iter()
        .map(|(column, _)| {
            format!(
                "pg_catalog.to_regclass({}) IS NOT NULL",
                quote_literal(&format!("tenantize.{}", quote_ident(&saved_sequence(&t.name, column))))
            )
        })
        .collect();
    all(&each)
}

/// The part for one table.
pub(super) fn part(s: &Scope, t: &CitusTable, target: &Target) -> Part {
    let name = &t.name;
    let (done_name, done_when) = match target {
        Target::Reference => ("reference", is_reference(name)),
        Target::Distributed { .. } => ("distributed", is_distributed_by(name, &s.tenant.column)),
    };
    let identity = !t.identity.is_empty();
    // Online distribution replicates the application's writes into the new shards as a
    // subscription owner that is a member of the table's owner but neither superuser nor
    // BYPASSRLS: PostgreSQL refuses to apply changes to a table whose row-level security
    // applies to it, which FORCE makes true for the owner ("cannot replicate into relation
    // with row-level security enabled", retried forever; found by the benchmark's writer). So
    // FORCE is off for the copy: RLS stays enabled for every role but the owner's.
    let online = matches!(target, Target::Distributed { .. }) && t.blocking.is_none();
    let relations: Vec<QualifiedName> = if online {
        std::iter::once(name.clone())
            .chain(s.catalog.partition_descendants(name).into_iter().map(|p| p.name.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let forced = all(&relations.iter().map(crate::plan::probe::rls_forced).collect::<Vec<_>>());
    let mut done_state =
        if identity { all(&[done_when.clone(), not(saved_exist(t))]) } else { done_when.clone() };
    if online {
        done_state = all(&[done_state, forced.clone()]);
    }
    let mut states: Vec<PartState> = vec![state(done_name, holds(done_state))];
    let mut transitions: Vec<Transition> = Vec::new();
    let saved_done = format!("{done_name}, identity kept aside");
    let unforced = |what: String| all(&[what, not(forced.clone())]);
    if online {
        let distributed =
            if identity { all(&[done_when.clone(), not(saved_exist(t))]) } else { done_when.clone() };
        states.push(state(FORCE_OFF_DISTRIBUTED, holds(unforced(distributed))));
    }
    if identity {
        states.push(state(&saved_done, holds(all(&[done_when.clone(), saved_exist(t)]))));
        states.push(state(
            "Citus local, identity kept aside",
            holds(all(&[is_citus_local(name), saved_exist(t)])),
        ));
    }
    if online {
        states.push(state(FORCE_OFF_CITUS_LOCAL, holds(unforced(is_citus_local(name)))));
    }
    states.push(state("Citus local", holds(is_citus_local(name))));
    if identity {
        states.push(state("local, identity kept aside", holds(all(&[not(is_citus(name)), saved_exist(t)]))));
    }
    if online {
        states.push(state(FORCE_OFF_LOCAL, holds(unforced(not(is_citus(name))))));
    }
    states.push(state("local", holds(not(is_citus(name)))));

    // Forward.
    match target {
        Target::Reference => {
            transitions.push(transaction("local", done_name, make_reference(name)));
            transitions.push(transaction("Citus local", done_name, make_reference(name)));
        }
        Target::Distributed { .. } if t.blocking.is_some() => {
            transitions.push(transaction("local", done_name, distribute_blocking(s, t, target)));
            transitions.push(transaction("Citus local", done_name, distribute_blocking(s, t, target)));
        }
        Target::Distributed { .. } => {
            let force = |on: bool| force_statements(&relations, on);
            transitions.push(transaction("local", FORCE_OFF_LOCAL, force(false)));
            transitions.push(transaction("Citus local", FORCE_OFF_CITUS_LOCAL, force(false)));
            if identity {
                transitions.push(transaction(FORCE_OFF_LOCAL, FORCE_OFF_CITUS_LOCAL, make_citus_local(t)));
            } else {
                transitions.push(transition(
                    FORCE_OFF_LOCAL,
                    FORCE_OFF_DISTRIBUTED,
                    distribute_online(s, t, target),
                ));
            }
            transitions.push(transition(
                FORCE_OFF_CITUS_LOCAL,
                FORCE_OFF_DISTRIBUTED,
                distribute_online(s, t, target),
            ));
            // FORCE back: forward after the copy, and the way back from either half.
            transitions.push(transaction(FORCE_OFF_DISTRIBUTED, done_name, force(true)));
            transitions.push(transaction(FORCE_OFF_CITUS_LOCAL, "Citus local", force(true)));
            transitions.push(transaction(FORCE_OFF_LOCAL, "local", force(true)));
        }
    }
    transitions.extend(back_transitions(t, done_name, &saved_done));
    Part {
        name: format!(
            "{} as a {} table",
            name.display_plain(),
            if matches!(target, Target::Reference) { "reference" } else { "distributed" }
        ),
        states,
        done: names(&[done_name]),
        undone: names(&["local"]),
        rollback_from: None,
        transitions,
        guards: Vec::new(),
    }
}

/// The way back: `undistribute_table`, an identity kept aside around it (and forward again
/// from a rollback interrupted half-way).
fn back_transitions(t: &CitusTable, done_name: &str, saved_done: &str) -> Vec<Transition> {
    let mut transitions = Vec::new();
    let undistribute = undistribute(t);
    if !t.identity.is_empty() {
        transitions.push(transaction(done_name, saved_done, vec![keep_identity_aside(t)]));
        transitions.push(transaction(
            "Citus local",
            "Citus local, identity kept aside",
            vec![keep_identity_aside(t)],
        ));
        transitions.push(transaction(saved_done, "local, identity kept aside", undistribute.clone()));
        transitions.push(transaction(
            "Citus local, identity kept aside",
            "local, identity kept aside",
            undistribute.clone(),
        ));
        transitions.push(transition("local, identity kept aside", "local", restore_identity(t, false)));
        // An interrupted rollback that is now asked to go forward again.
        transitions.push(transition(saved_done, done_name, restore_identity(t, true)));
        transitions.push(transition(
            "Citus local, identity kept aside",
            "Citus local",
            restore_identity(t, true),
        ));
    } else {
        transitions.push(transaction(done_name, "local", undistribute.clone()));
        transitions.push(transaction("Citus local", "local", undistribute));
    }
    transitions
}

const FORCE_OFF_DISTRIBUTED: &str = "distributed, FORCE off";
const FORCE_OFF_CITUS_LOCAL: &str = "Citus local, FORCE off";
const FORCE_OFF_LOCAL: &str = "local, FORCE off";

/// `ALTER TABLE … [NO] FORCE ROW LEVEL SECURITY` on the table and each partition, one command
/// each (Citus refuses several in one string on a distributed table).
fn force_statements(relations: &[QualifiedName], on: bool) -> Vec<Statement> {
    let what = if on { "FORCE" } else { "NO FORCE" };
    relations
        .iter()
        .map(|r| {
            stmt(LockMode::AccessExclusive, &[r], format!("ALTER TABLE {r} {what} ROW LEVEL SECURITY;\n"))
        })
        .collect()
}

/// `create_reference_table` copies the rows to every node under a lock that blocks writes (a
/// reference table is small: the tenants, lookups); the coordinator's own copy is then emptied.
fn make_reference(name: &QualifiedName) -> Vec<Statement> {
    let table = quote_literal(&name.to_string());
    vec![
        long(
            LockMode::AccessExclusive,
            &[name],
            format!("SELECT pg_catalog.create_reference_table({table});\n"),
        ),
        truncate_local(name),
    ]
}

fn truncate_local(name: &QualifiedName) -> Statement {
    stmt(
        LockMode::AccessExclusive,
        &[name],
        format!(
            "SELECT pg_catalog.truncate_local_data_after_distributing_table({});\n",
            quote_literal(&name.to_string())
        ),
    )
}

fn distribution_arguments(s: &Scope, name: &QualifiedName, target: &Target) -> String {
    let mut args = format!("{}, {}", quote_literal(&name.to_string()), quote_literal(&s.tenant.column));
    if let Target::Distributed { colocate_with, shard_count } = target {
        match (colocate_with, shard_count) {
            (Some(first), _) => {
                args.push_str(&format!(", colocate_with => {}", quote_literal(&first.to_string())))
            }
            (None, Some(n)) => args.push_str(&format!(", shard_count => {n}")),
            (None, None) => {}
        }
    }
    args
}

fn with_triggers(t: &CitusTable, mut statement: Statement) -> Statement {
    if t.triggers {
        statement.settings.push(UNSAFE_TRIGGERS.into());
    }
    statement
}

/// Online: writes go on while Citus copies the rows and replicates changes logically; only
/// the final switch takes a short lock. It cannot run in a transaction block.
fn distribute_online(s: &Scope, t: &CitusTable, target: &Target) -> Statement {
    let sql = format!(
        "SELECT pg_catalog.create_distributed_table_concurrently({});\n",
        distribution_arguments(s, &t.name, target)
    );
    let mut statement = long(LockMode::ShareUpdateExclusive, &[&t.name], sql);
    statement.kind = StatementKind::NonTransactional;
    with_triggers(t, statement)
}

/// Blocking (allowed with --allow-blocking-distribution): writes wait while the rows are
/// copied; the coordinator's local copy is emptied in the same transaction.
fn distribute_blocking(s: &Scope, t: &CitusTable, target: &Target) -> Vec<Statement> {
    let sql = format!(
        "SELECT pg_catalog.create_distributed_table({});\n",
        distribution_arguments(s, &t.name, target),
    );
    vec![with_triggers(t, long(LockMode::AccessExclusive, &[&t.name], sql)), truncate_local(&t.name)]
}

/// The identity-safe first half of online distribution: with writes held off for a moment,
/// read each identity's sequence, make the table a Citus local table (which restarts those
/// sequences), and put them back.
fn make_citus_local(t: &CitusTable) -> Vec<Statement> {
    let table = quote_literal(&t.name.to_string());
    let mut declare = String::new();
    let mut read = String::new();
    let mut put_back = String::new();
    for (i, (column, _)) in t.identity.iter().enumerate() {
        let seq = format!("pg_catalog.pg_get_serial_sequence({table}, {})", quote_literal(column));
        declare.push_str(&format!("  v{i} bigint; c{i} boolean;\n"));
        read.push_str(&format!(
            "  EXECUTE format('SELECT last_value, is_called FROM %s', {seq}) INTO v{i}, c{i};\n"
        ));
        put_back.push_str(&format!("  PERFORM pg_catalog.setval({seq}, v{i}, c{i});\n"));
    }
    let lock = stmt(
        LockMode::ShareRowExclusive,
        &[&t.name],
        format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE;\n", t.name),
    );
    let sql = format!(
        "DO $tenantize$\nDECLARE\n{declare}BEGIN\n{read}  PERFORM pg_catalog.citus_add_local_table_to_metadata({table});\n{put_back}END\n$tenantize$;\n",
    );
    vec![lock, stmt(LockMode::AccessExclusive, &[&t.name], sql)]
}

/// `undistribute_table` copies the rows back into a new local table under the original name,
/// with its indexes, constraints, policies, triggers and grants, and drops the shards. Writes
/// wait while it copies.
/// Then, in the same transaction, what it does not give back (sequence types, functions on
/// the row type).
fn undistribute(t: &CitusTable) -> Vec<Statement> {
    let name = &t.name;
    let mut out = vec![long(
        LockMode::AccessExclusive,
        &[name],
        format!("SELECT pg_catalog.undistribute_table({});\n", quote_literal(&name.to_string())),
    )];
    // On the coordinator only: Citus still counts the sequence as its own ("altering a
    // distributed sequence is currently not supported") and would send the function to the
    // workers.
    out.extend(t.restore_after_undistribute.iter().map(|sql| {
        let mut statement = stmt(LockMode::None, &[], sql.clone());
        statement.settings.push(DDL_LOCAL_ONLY.into());
        statement
    }));
    out
}

/// Keep each identity's sequence aside (a plain sequence in the `tenantize` schema with its
/// options and value, its comment naming the original) and drop the identity on the
/// coordinator only: `undistribute_table` refuses tables with identity columns, and Citus
/// refuses `DROP IDENTITY` on a distributed table.
fn keep_identity_aside(t: &CitusTable) -> Statement {
    let table = quote_literal(&t.name.to_string());
    let mut body = String::new();
    for (column, _) in &t.identity {
        let saved = quote_literal(&saved_sequence(&t.name, column));
        body.push_str(&format!(
            "  seq := pg_catalog.pg_get_serial_sequence({table}, {col});\n\
             \x20 SELECT * INTO STRICT s FROM pg_catalog.pg_sequences q\n\
             \x20  WHERE pg_catalog.format('%I.%I', q.schemaname, q.sequencename) = seq;\n\
             \x20 EXECUTE pg_catalog.format('CREATE SEQUENCE tenantize.%I AS %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s',\n\
             \x20   {saved}, s.data_type, s.increment_by, s.min_value, s.max_value, s.start_value, s.cache_size,\n\
             \x20   CASE WHEN s.cycle THEN 'CYCLE' ELSE 'NO CYCLE' END);\n\
             \x20 EXECUTE pg_catalog.format('COMMENT ON SEQUENCE tenantize.%I IS %L', {saved}, seq);\n\
             \x20 IF s.last_value IS NOT NULL THEN\n\
             \x20   PERFORM pg_catalog.setval(pg_catalog.format('tenantize.%I', {saved}), s.last_value, true);\n\
             \x20 END IF;\n\
             \x20 ALTER TABLE {} ALTER COLUMN {} DROP IDENTITY;\n",
            t.name,
            quote_ident(column),
            col = quote_literal(column),
        ));
    }
    let sql = format!("DO $tenantize$\nDECLARE\n  seq text;\n  s record;\nBEGIN\n{body}END\n$tenantize$;\n");
    let mut statement = stmt(LockMode::AccessExclusive, &[&t.name], sql);
    statement.settings.push(DDL_LOCAL_ONLY.into());
    statement
}

/// Put each identity back as it was: same kind, sequence name, options and value; then drop
/// the copy. On a table Citus still has (a rollback switched back to apply), on the
/// coordinator only, where it was dropped.
fn restore_identity(t: &CitusTable, on_citus: bool) -> Statement {
    let mut body = String::new();
    for (column, kind) in &t.identity {
        let saved = quote_literal(&saved_sequence(&t.name, column));
        let generated = if kind == "a" { "ALWAYS" } else { "BY DEFAULT" };
        body.push_str(&format!(
            "  SELECT * INTO STRICT s FROM pg_catalog.pg_sequences q\n\
             \x20  WHERE q.schemaname = 'tenantize' AND q.sequencename = {saved};\n\
             \x20 seq := pg_catalog.obj_description(pg_catalog.format('tenantize.%I', {saved})::pg_catalog.regclass, 'pg_class');\n\
             \x20 EXECUTE pg_catalog.format('ALTER TABLE {} ALTER COLUMN {} ADD GENERATED {generated} AS IDENTITY \
             (SEQUENCE NAME %s INCREMENT %s MINVALUE %s MAXVALUE %s START %s CACHE %s %s)',\n\
             \x20   seq, s.increment_by, s.min_value, s.max_value, s.start_value, s.cache_size,\n\
             \x20   CASE WHEN s.cycle THEN 'CYCLE' ELSE 'NO CYCLE' END);\n\
             \x20 IF s.last_value IS NOT NULL THEN\n\
             \x20   PERFORM pg_catalog.setval(seq, s.last_value, true);\n\
             \x20 END IF;\n\
             \x20 EXECUTE pg_catalog.format('DROP SEQUENCE tenantize.%I', {saved});\n",
            escape_for_format(&t.name.to_string()),
            escape_for_format(&quote_ident(column)),
        ));
    }
    let sql = format!("DO $tenantize$\nDECLARE\n  seq text;\n  s record;\nBEGIN\n{body}END\n$tenantize$;\n");
    let mut statement = stmt(LockMode::AccessExclusive, &[&t.name], sql);
    if on_citus {
        statement.settings.push(DDL_LOCAL_ONLY.into());
    }
    statement
}

/// Text placed inside a single-quoted `format()` template: quotes doubled, `%` escaped.
fn escape_for_format(text: &str) -> String {
    text.replace('\'', "''").replace('%', "%%")
}

/// Online distribution leaves the table's old local shard for Citus's deferred cleanup, which
/// runs in the background a little later: until then it shows as an ordinary table
/// (`issues_102043`) once the shards are gone. Cleaned at once, so what stage 9 leaves (and a
/// rollback restores) is exactly the schema. One call is not always enough: Citus skips a
/// resource whose operation another session is cleaning at that moment (its maintenance
/// daemon) or that is still in use (a replication slot whose walsender has not exited yet),
/// and a test run here saw two records left right after the call. So it asks again, for up
/// to 10 s, before the part's check says what is left.
pub(super) fn cleanup_part() -> Part {
    let sql = "DO $tenantize$\nBEGIN\n\
               \x20 FOR attempt IN 1..50 LOOP\n\
               \x20   CALL pg_catalog.citus_cleanup_orphaned_resources();\n\
               \x20   EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_cleanup);\n\
               \x20   PERFORM pg_catalog.pg_sleep(0.2);\n\
               \x20 END LOOP;\n\
               END\n$tenantize$;\n";
    let mut call = long(LockMode::None, &[], sql.into());
    call.kind = StatementKind::NonTransactional;
    Part {
        name: "Citus's leftovers of the copy".into(),
        states: vec![
            state("cleaned up", holds("NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_cleanup)".into())),
            state("leftovers", holds("true".into())),
        ],
        done: names(&["cleaned up"]),
        undone: names(&["cleaned up", "leftovers"]),
        rollback_from: None,
        transitions: vec![transition("leftovers", "cleaned up", call)],
        guards: Vec::new(),
    }
}
