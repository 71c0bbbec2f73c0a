//! The use cases both front ends call: build a plan from the live catalog, check a saved one,
//! prepare what the wizard opens on (resuming the plan the journal keeps), start the demo,
//! rehearse on a copy, tell whether a plan is this database's; and the exit code of every
//! failure. Nothing here draws or prints.

pub mod demo;
pub mod exit;
pub mod identity;
pub mod live;
pub mod rehearse;
pub mod resume;
pub mod wizard;

pub use exit::Failure;
