//! One module per subcommand: read the arguments, call the use case, print the outcome.

pub mod export;
pub mod plan;
pub mod rehearse;
pub mod runs;
pub mod status;
pub mod verify;
pub mod wizard;
