//! The wizard: an interactive terminal UI over the engine.
//!
//! `state` is plain data, `update` the only place it changes in answer to a message (pure: no
//! awaiting), `keys` the keymap the help is generated from, `view` pure drawing, `runtime` the
//! tasks that talk to the database and report back as messages, with the terminal as a thin
//! shell around them.
//!
//! Modules import only modules listed before them here, never one that imports them back:
//!
//! 1. `keys`: actions and the keymap (nothing of `tui`).
//! 2. `state`: the model, plain data, a replay's recording included.
//! 3. `fold`: engine events folded into the model (used live by `update`, recorded by `replay`).
//! 4. `replay`: a run log as a read-only model; seeking is folding again from the start.
//! 5. `view`: pure drawing of the model.
//! 6. `update`: messages in, model changes and commands out.
//! 7. `runtime`: runs the commands, owns every task it starts; the terminal loop.
//!
//! (`update`'s tests borrow `view::fixture`, which is allowed by the same order.)

pub mod fold;
pub mod keys;
pub mod replay;
pub mod runtime;
pub mod state;
pub mod update;
pub mod view;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    const ORDER: [&str; 7] = ["keys", "state", "fold", "replay", "view", "update", "runtime"];

    /// The modules of `tui` a file names after `prefix` (`crate::tui::` or, in a module's own
    /// file, `super::`): a single name or each name of a `{…}` group.
    fn named(text: &str, prefix: &str) -> Vec<String> {
        let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
        let mut names = Vec::new();
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(group.split(',').map(|part| ident(part.trim())));
            } else {
                names.push(ident(rest));
            }
        }
        names
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The order of the list above, enforced.
    #[test]
    fn tui_modules_import_only_modules_listed_before_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tui");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let mut wrong = Vec::new();
        let mut seen = 0;
        for path in files {
            let relative = path.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            // The module a file belongs to: `view/plan.rs` to view, `update_tests/…` to update.
            let first = relative.split(['/', '.']).next().unwrap();
            let owner = first.strip_suffix("_tests").unwrap_or(first);
            if owner == "mod" {
                continue;
            }
            let rank = ORDER
                .iter()
                .position(|m| *m == owner)
                .unwrap_or_else(|| panic!("{relative}: a module missing from the order in tui/mod.rs"));
            seen += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let own_file = relative == format!("{owner}.rs") || relative == format!("{owner}/mod.rs");
            let mut names = named(&text, "crate::tui::");
            if own_file {
                // In a module's own file, super is tui.
                names.extend(named(&text, "super::"));
            }
            for name in names {
                if let Some(other) = ORDER.iter().position(|m| *m == name)
                    && other > rank
                {
                    wrong.push(format!("{relative} names {name}"));
                }
            }
        }
        assert!(seen > 15, "the tui sources were not found ({seen} files)");
        assert!(wrong.is_empty(), "imports against the order in tui/mod.rs:\n{}", wrong.join("\n"));
    }
}
