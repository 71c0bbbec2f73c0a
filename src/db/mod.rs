//! Everything that talks to PostgreSQL below the catalog, the engine and the checks: where and
//! how to connect, what an error says, the journal, the run lock and the one transaction
//! helper. Nothing here knows about plans or stages.

pub mod conn;
pub mod error;
pub mod journal;
pub mod libpq;
pub mod lock;
pub mod pooler;
pub mod tls;
pub mod tx;

pub use conn::{ConnError, ConnSpec, Env, ProcessEnv, TlsMode};
pub use error::{DbError, describe_pg_error};
pub use lock::LockHolder;
