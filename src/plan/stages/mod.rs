//! One file per stage: each turns the shared analysis into that stage's steps, in order.

pub(super) mod add_column;
pub(super) mod backfill;
pub(super) mod covers;
pub(super) mod cutover;
pub(super) mod default_tenant;
pub(super) mod distribute;
pub(super) mod foreign_keys;
mod index_part;
pub(super) mod indexes;
pub(super) mod legacy_role;
pub(super) mod not_null;
pub(super) mod rls;
pub(super) mod tenant_table;
pub(super) mod uniques;
pub(super) mod views;
