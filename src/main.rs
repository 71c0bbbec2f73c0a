use std::process::ExitCode;

use clap::Parser;
use tenantize::cli::{Cli, run, run_default};

fn main() -> ExitCode {
    // Usage errors exit with 5 as documented (clap's own default would be 2, "a step failed").
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 5 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(5);
        }
    };
    let outcome = match cli.command {
        Some(command) => runtime.block_on(run(command)),
        None => runtime.block_on(run_default()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.code as u8)
        }
    }
}
