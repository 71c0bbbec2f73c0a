//! `tenantize export`: the plan as migration files for another tool.

use crate::app::Failure;
use crate::cli::args::ExportArgs;

pub fn run(args: ExportArgs) -> Result<(), Failure> {
    let plan = crate::plan::file::load(&args.plan)?;
    let files = crate::export::export(&plan, args.format.into(), args.lock_timeout_ms);
    crate::export::write(&args.out, &files)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", args.out.display())))?;
    outln!(
        "wrote {} to {}",
        crate::event::describe::count(files.len() as u64, "file", "files"),
        args.out.display()
    );
    Ok(())
}
