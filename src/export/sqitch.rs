//! A Sqitch project: `sqitch.conf`, `sqitch.plan`, and per change `deploy/`, `revert/` and
//! `verify/` scripts. Sqitch runs each script with psql as written, so a transactional
//! script brings its own `BEGIN`/`COMMIT` and a statement that cannot run in a transaction is
//! a script without them (Sqitch's documented way). The verify scripts are the plan's checks:
//! each raises unless its step's checks hold (see `assertions`), in a transaction rolled back.

use super::assertions;
use super::files::body;
use super::units::{ExportedFile, Format, Version};
use crate::plan::Plan;
use crate::sql::comment;

fn change_name(n: usize, version: &Version) -> String {
    format!("{n:04}_{}", version.name)
}

fn verify_script(plan: &Plan, version: &Version, header: &str) -> String {
    let mut text = format!("{header}, verify\n");
    let step = plan.step(&version.step_id);
    let checks = step.map(|s| assertions::of_step(plan, s)).unwrap_or_default();
    if !version.last || checks.is_empty() {
        let why =
            if version.last { "the step has no checks" } else { "the step's checks verify its last change" };
        text.push_str(&format!("{}\nSELECT 1;\n", comment(why)));
        return text;
    }
    text.push_str("-- Raises unless the step's checks hold (counted with row security off, as tenantize counts).\nBEGIN;\nSET LOCAL row_security = off;\n");
    text.push_str(&assertions::raising_block(&checks));
    text.push_str("\nROLLBACK;\n");
    text
}

pub(super) fn change(
    plan: &Plan,
    n: usize,
    version: &Version,
    lock_timeout_ms: u64,
    header: &str,
) -> Vec<ExportedFile> {
    let name = change_name(n, version);
    let (deploy, _) = body(version.up.as_ref(), Format::Sqitch, lock_timeout_ms, header);
    let (revert, _) =
        body(version.down.as_ref(), Format::Sqitch, lock_timeout_ms, &format!("{header}, rollback"));
    vec![
        ExportedFile { name: format!("deploy/{name}.sql"), content: deploy },
        ExportedFile { name: format!("revert/{name}.sql"), content: revert },
        ExportedFile { name: format!("verify/{name}.sql"), content: verify_script(plan, version, header) },
    ]
}

/// Sqitch wants `YYYY-MM-DDTHH:MM:SSZ`; the plan's own time when it has that form.
fn planned_at(plan: &Plan) -> String {
    let at = &plan.source.generated_at;
    let ok = at.len() == 20
        && at.ends_with('Z')
        && at.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    if ok { at.clone() } else { "2000-01-01T00:00:00Z".to_string() }
}

pub(super) fn project(plan: &Plan, versions: &[Version]) -> Vec<ExportedFile> {
    let at = planned_at(plan);
    let mut text = "%syntax-version=1.0.0\n%project=tenantize\n\n".to_string();
    for (i, version) in versions.iter().enumerate() {
        // A note is one line; `#` starts it, so the step id is flattened like a comment.
        let note: String = comment(&format!("step {}", version.step_id))[3..].replace(['\n', '\r'], " ");
        text.push_str(&format!(
            "{} {at} tenantize <tenantize@localhost> # {note}\n",
            change_name(i + 1, version)
        ));
    }
    vec![
        ExportedFile {
            name: "sqitch.conf".into(),
            content: "[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n".into(),
        },
        ExportedFile { name: "sqitch.plan".into(), content: text },
    ]
}
