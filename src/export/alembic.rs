//! An Alembic revision chain: `versions/NNNN_name.py`, each with `upgrade()` and
//! `downgrade()`, plus a minimal `alembic.ini` and `env.py` (the team may keep its own: the
//! revisions only need `transaction_per_migration=True`, so that each runs in its own
//! transaction as with the other tools).
//!
//! The SQL goes to the driver's cursor as written, without parameters (neither SQLAlchemy's
//! `:name` binds nor the driver's `%s` placeholders are parsed, so a `:` or `%` in it stays
//! itself: `op.execute` would read them); a unit that cannot run in a transaction runs in
//! `op.get_context().autocommit_block()`.

use super::files::body;
use super::units::{ExportedFile, Format, Version};

/// A Python string literal holding `text` exactly.
pub(super) fn py_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            // Line and paragraph separators end a line in some readers: escape them too.
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn function(name: &str, sql: &str, transactional: bool) -> String {
    if transactional {
        format!("def {name}():\n    run({})\n", py_str(sql))
    } else {
        format!(
            "def {name}():\n    # Cannot run in a transaction: Alembic commits the migration's transaction first.\n    with op.get_context().autocommit_block():\n        run({})\n",
            py_str(sql)
        )
    }
}

const RUN: &str = "def run(sql):\n    # As written: no bind parameters, so ':' and '%' in the SQL stay themselves.\n    cursor = op.get_bind().connection.dbapi_connection.cursor()\n    try:\n        cursor.execute(sql)\n    finally:\n        cursor.close()\n";

pub(super) fn revision(n: usize, version: &Version, lock_timeout_ms: u64, header: &str) -> ExportedFile {
    let (up, up_tx) = body(version.up.as_ref(), Format::Alembic, lock_timeout_ms, header);
    let (down, down_tx) =
        body(version.down.as_ref(), Format::Alembic, lock_timeout_ms, &format!("{header}, rollback"));
    let down_revision = if n == 1 { "None".to_string() } else { py_str(&format!("{:04}", n - 1)) };
    let doc = py_str(&format!("tenantize: step {} (part {n} of the export)", version.step_id));
    let content = format!(
        "{doc}\nfrom alembic import op\n\nrevision = \"{n:04}\"\ndown_revision = {down_revision}\nbranch_labels = None\ndepends_on = None\n\n\n{RUN}\n\n{}\n\n{}",
        function("upgrade", &up, up_tx),
        function("downgrade", &down, down_tx),
    );
    ExportedFile { name: format!("versions/{n:04}_{}.py", version.name), content }
}

const ALEMBIC_INI: &str = "# Written by tenantize export --format alembic. The database URL comes from\n# DATABASE_URL (a postgresql:// URL) unless sqlalchemy.url is set here.\n[alembic]\nscript_location = %(here)s\n\n[loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = generic\n\n[logger_root]\nlevel = WARN\nhandlers = console\n\n[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nformatter = generic\n\n[formatter_generic]\nformat = %(levelname)s %(message)s\n";

const ENV_PY: &str = r#"# Written by tenantize export --format alembic: a minimal online-only environment.
# Each revision runs in its own transaction (transaction_per_migration), so one that must
# run outside a transaction can commit it in op.get_context().autocommit_block().
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

url = config.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"#;

pub(super) fn project() -> Vec<ExportedFile> {
    vec![
        ExportedFile { name: "alembic.ini".into(), content: ALEMBIC_INI.into() },
        ExportedFile { name: "env.py".into(), content: ENV_PY.into() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_strings_hold_any_text() {
        assert_eq!(py_str("a\"b\\c\nd'"), "\"a\\\"b\\\\c\\nd'\"");
        assert_eq!(py_str("\u{1}é"), "\"\\x01é\"");
    }
}
