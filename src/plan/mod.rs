//! Pure planning: `build(&Catalog, &PlanOptions) -> Plan`, the plan file and its checksums.
//! Nothing here touches a database or the clock.

mod backfill_sql;
mod build;
pub mod codec;
mod ddl;
pub mod file;
mod model;
mod options;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod validate;

pub use backfill_sql::{BackfillSql, backfill_sql};
pub use build::build;
pub use model::*;
pub use options::PlanError;
