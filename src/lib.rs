//! tenantize: convert a live single-tenant PostgreSQL database into a multi-tenant one, stage
//! by stage, without losing or changing a row.
//!
//! Data flows one way: [`catalog`] → [`plan`] → [`engine`] → [`event`]s → front ends
//! ([`cli`], [`tui`]). The layers, lowest first (a module imports only from layers below it;
//! `tests/architecture.rs` enforces this):
//!
//! 1. [`sql`], [`checksum`] — identifier quoting and checksums
//! 2. [`db`] — connections, errors, the journal, the run lock, transactions
//! 3. [`catalog`], [`sandbox`], [`sample`] — what the database looks like; throwaway clusters
//! 4. [`plan`] — pure planning
//! 5. [`event`] — the contract between the engine and the front ends
//! 6. [`engine`], [`checks`] — running a plan; counting and probing (peers: neither imports the
//!    other)
//! 7. [`export`], [`runlog`] — plans and runs as files
//! 8. [`report`] — runs as Markdown and HTML
//! 9. [`app`] — the use cases the front ends call, and exit codes
//! 10. [`tui`] — the wizard
//! 11. [`cli`] — the command line (which opens the wizard)

pub mod app;
pub mod catalog;
pub mod checks;
pub mod checksum;
pub mod cli;
pub mod db;
pub mod engine;
pub mod event;
pub mod export;
pub mod plan;
pub mod report;
pub mod runlog;
pub mod sample;
pub mod sandbox;
pub mod sql;
pub mod tui;
