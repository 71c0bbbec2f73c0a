//! The command line: arguments (`args`), one module per command (`commands`), and the
//! headless printer of engine events (`printer`); everything printed goes through `out`. The
//! use cases themselves live in `app`.

#[macro_use]
pub mod out;
pub mod args;
mod commands;
pub mod printer;

use std::io::IsTerminal;

pub use args::{Cli, Command};

use crate::app::Failure;

pub async fn run(command: Command) -> Result<(), Failure> {
    use commands::*;
    match command {
        Command::Plan(args) => plan::run(args).await,
        Command::Apply(args) => runs::apply(args).await,
        Command::Cutover(args) => runs::apply(args.into_apply()).await,
        Command::Rollback(args) => runs::rollback(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Wizard(args) => wizard::wizard(args).await,
        Command::Demo(args) => wizard::demo(args).await,
        Command::Rehearse(args) => rehearse::run(args).await,
        Command::Export(args) => export::run(args),
        Command::Replay(args) => wizard::replay(args).await,
    }
}

/// Plain `tenantize`: the wizard on a terminal, a usage error elsewhere.
pub async fn run_default() -> Result<(), Failure> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Failure::usage("no command given and not on a terminal; see `tenantize --help`"));
    }
    commands::wizard::wizard(args::WizardArgs::defaults()).await
}
