use std::process::ExitCode;

use clap::Parser;
use tenantize::cli::{Cli, out, run, run_default};

/// Under `--json` an error is JSON too (on stdout, where the JSON would have gone), besides the
/// line on stderr: `{"error": "...", "exit_code": N}`.
fn fail(message: &str, code: u8, json: bool) -> ExitCode {
    out::stderr(&format!("error: {message}\n"));
    if json {
        let value = serde_json::json!({ "error": message, "exit_code": code });
        out::stdout(&format!("{}\n", serde_json::to_string_pretty(&value).expect("JSON serializes")));
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    // Usage errors exit with 5 as documented (clap's own default would be 2, "a step failed").
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap prints them; a closed pipe is not an error here.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if json => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let text = first.strip_prefix("error: ").unwrap_or(first);
            let _ = e.print();
            let value = serde_json::json!({ "error": text, "exit_code": 5 });
            out::stdout(&format!("{}\n", serde_json::to_string_pretty(&value).expect("JSON serializes")));
            return ExitCode::from(5);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(5);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 5, json),
    };
    let outcome = match cli.command {
        Some(command) => runtime.block_on(run(command)),
        None => runtime.block_on(run_default()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.message, error.code as u8, json),
    }
}
