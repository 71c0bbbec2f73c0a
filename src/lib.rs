//! tenantize: convert a live single-tenant PostgreSQL database into a multi-tenant one, stage
//! by stage, without losing or changing a row.
//!
//! Data flows one way: [`catalog`] → [`plan`] → [`engine`] → [`event`]s → front ends
//! (`headless`, `tui`).

pub mod catalog;
pub mod checks;
pub mod checksum;
pub mod cli;
pub mod conn;
pub mod engine;
pub mod event;
pub mod export;
pub mod headless;
pub mod plan;
pub mod rehearse;
pub mod report;
pub mod runlog;
pub mod sample;
pub mod sandbox;
pub mod sql;
pub mod tui;
