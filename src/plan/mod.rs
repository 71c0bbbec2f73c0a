//! Pure planning: `build(&Catalog, &PlanOptions) -> Plan`, the plan file and its checksums.
//! Nothing here touches a database or the clock.

mod backfill;
mod build;
pub mod codec;
pub mod file;
mod model;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod validate;

pub use backfill::{BackfillSql, backfill_sql};
pub use build::{PlanError, build};
pub use model::*;
