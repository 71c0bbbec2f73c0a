//! What went wrong on the wire, as text a DBA can act on.

/// The text of a server error (message, detail, hint) or of a client-side failure.
pub fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        // Never pass on the server's advice to switch row-level security off for the owner:
        // following it would end the isolation this tool exists for.
        if let Some(hint) = db.hint().filter(|h| !h.contains("NO FORCE ROW LEVEL SECURITY")) {
            text.push_str(&format!(" hint: {hint}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// A failure below the engine and the checks.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Connect(#[from] super::ConnError),
    /// A query failed; the text is the server's message (with detail and hint).
    #[error("database error: {0}")]
    Query(String),
    #[error("another tenantize run holds the lock on this database: {0}")]
    Locked(super::lock::LockHolder),
    /// The role may not create the journal schema.
    #[error("{0}")]
    JournalSchema(String),
    /// The journal in the database is not the one this binary ships.
    #[error("{0}")]
    JournalVersion(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(describe_pg_error(&e))
    }
}
