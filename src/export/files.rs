//! Plain migration files: psql, sqlx, golang-migrate, Flyway and dbmate.

use super::units::{ExportedFile, Format, NO_OP, Unit, Version};
use crate::sql::comment;

/// One direction of one version as SQL, for a tool of `format`, and whether it runs in a
/// transaction.
pub(super) fn body(
    unit: Option<&Unit>,
    format: Format,
    lock_timeout_ms: u64,
    header: &str,
) -> (String, bool) {
    let Some(unit) = unit else {
        return (format!("{header}\n{NO_OP}\n"), true);
    };
    let mut text = format!("{header}\n{}\n", comment(&unit.note));
    let (lock_ms, statement_ms) = unit.timeouts(lock_timeout_ms);
    // psql (and Sqitch, which runs each script with psql) runs a file as written.
    let psql = matches!(format, Format::Sql | Format::Sqitch);
    if !unit.transactional {
        if psql {
            // psql sends each statement on its own, so session timeouts can frame it.
            text.push_str(&format!(
                "SET lock_timeout = '{lock_ms}ms';\nSET statement_timeout = '{statement_ms}ms';\n{}\nRESET lock_timeout;\nRESET statement_timeout;\n",
                unit.sql
            ));
        } else {
            // The other tools run a file as one query string: a second statement would put
            // this one in an implicit transaction, which CONCURRENTLY refuses. The runner's own
            // session settings apply.
            if format == Format::Sqlx {
                text = format!("-- no-transaction\n{text}");
            }
            text.push_str(&unit.sql);
            text.push('\n');
        }
        return (text, false);
    }
    let set_local =
        format!("SET LOCAL lock_timeout = '{lock_ms}ms';\nSET LOCAL statement_timeout = '{statement_ms}ms';");
    if psql || format == Format::GolangMigrate {
        // psql and golang-migrate run the file as written: it brings its own transaction.
        text.push_str(&format!("BEGIN;\n{set_local}\n{}\nCOMMIT;\n", unit.sql));
    } else {
        // sqlx, Flyway, dbmate and Alembic wrap each migration in a transaction themselves.
        text.push_str(&format!("{set_local}\n{}\n", unit.sql));
    }
    (text, true)
}

/// The up and down files of version `n` for the SQL-file tools.
pub(super) fn version_files(
    n: usize,
    version: &Version,
    format: Format,
    lock_timeout_ms: u64,
    header: &str,
) -> Vec<ExportedFile> {
    let (up, up_tx) = body(version.up.as_ref(), format, lock_timeout_ms, header);
    let (down, down_tx) =
        body(version.down.as_ref(), format, lock_timeout_ms, &format!("{header}, rollback"));
    let name = &version.name;
    let mut files = Vec::new();
    match format {
        Format::Flyway => {
            files.push(ExportedFile { name: format!("V{n}__{name}.sql"), content: up });
            files.push(ExportedFile { name: format!("U{n}__{name}.sql"), content: down });
            for (tx, prefix) in [(up_tx, 'V'), (down_tx, 'U')] {
                if !tx {
                    files.push(ExportedFile {
                        name: format!("{prefix}{n}__{name}.sql.conf"),
                        content: "executeInTransaction=false\n".into(),
                    });
                }
            }
        }
        Format::Dbmate => {
            // One file, two sections; `transaction:false` on a section dbmate must not wrap.
            let marker = |tx: bool| if tx { "" } else { " transaction:false" };
            files.push(ExportedFile {
                name: format!("{n:04}_{name}.sql"),
                content: format!(
                    "-- migrate:up{}\n{up}\n-- migrate:down{}\n{down}",
                    marker(up_tx),
                    marker(down_tx)
                ),
            });
        }
        _ => {
            files.push(ExportedFile { name: format!("{n:04}_{name}.up.sql"), content: up });
            files.push(ExportedFile { name: format!("{n:04}_{name}.down.sql"), content: down });
        }
    }
    files
}
