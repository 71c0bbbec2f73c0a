//! The shape of the code, enforced: data flows one way (catalog → plan → engine → events →
//! front ends). Each top-level module of `src/` sits in a layer and may import only from
//! layers below it; inside a module, no two submodules import each other (directly or round a
//! longer cycle); no file is over 600 lines and no function over 120.
//!
//! The checks read the source text (comments and string literals stripped) rather than
//! compile it, so they see `use crate::x`, `crate::x::y` paths and `super::` chains, which is
//! how this crate refers to other modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may import from a module of a strictly lower layer only.
const LAYERS: &[(&str, u32)] = &[
    ("sql", 1),
    ("checksum", 1),
    ("db", 2),
    ("catalog", 3),
    ("sandbox", 3),
    ("sample", 3),
    ("plan", 4),
    ("event", 5),
    ("engine", 6),
    ("checks", 6),
    ("export", 7),
    ("runlog", 7),
    ("report", 8),
    ("app", 9),
    ("tui", 10),
    ("cli", 11),
];

const MAX_FILE_LINES: usize = 600;
const MAX_FUNCTION_LINES: usize = 120;

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The source with comments, string and char literals blanked out (newlines kept, so line
/// numbers still hold).
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(chars.get(i.wrapping_sub(1)))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &chars[i..j.min(chars.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a): only the first is blanked.
            let end = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&k| chars[k] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// A file's module path: `src/engine/apply.rs` → [engine, apply]; `src/engine/mod.rs` →
/// [engine]; `src/lib.rs` → [].
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> =
        relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod") | Some("lib") | Some("main")) {
        parts.pop();
    }
    parts
}

/// Every path this file refers to, resolved from the crate root, with its line.
fn references(module: &[String], source: &str) -> Vec<(Vec<String>, usize)> {
    let code = strip(source);
    let mut out = Vec::new();
    let words: Vec<(usize, usize, &str)> = tokens(&code);
    for (k, &(line, _, word)) in words.iter().enumerate() {
        let is_path_start = k == 0 || words[k - 1].2 != "::";
        if !is_path_start || !(word == "crate" || word == "super") {
            continue;
        }
        let mut base: Vec<String> = if word == "crate" { Vec::new() } else { parent(module) };
        let mut j = k + 1;
        // `super::super::x`
        while words.get(j).map(|w| w.2) == Some("::") && words.get(j + 1).map(|w| w.2) == Some("super") {
            base = parent(&base);
            j += 2;
        }
        if words.get(j).map(|w| w.2) != Some("::") {
            continue;
        }
        match words.get(j + 1).map(|w| w.2) {
            Some("{") => {
                // `use crate::{a::b, c, d::{e}}`: the first segment of each item at depth 1.
                let mut depth = 0;
                let mut expect_item = true;
                for &(_, _, w) in &words[j + 1..] {
                    match w {
                        "{" => {
                            depth += 1;
                            if depth == 1 {
                                expect_item = true;
                            }
                        }
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        "," if depth == 1 => expect_item = true,
                        w if depth == 1
                            && expect_item
                            && w.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                        {
                            let mut path = base.clone();
                            path.push(w.to_string());
                            out.push((path, line));
                            expect_item = false;
                        }
                        _ => {}
                    }
                }
            }
            Some(name) if name.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                let mut path = base.clone();
                path.push(name.to_string());
                // One more segment, for submodule-level edges.
                if words.get(j + 2).map(|w| w.2) == Some("::")
                    && let Some(next) = words.get(j + 3).map(|w| w.2)
                    && next.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    path.push(next.to_string());
                }
                out.push((path, line));
            }
            _ => {}
        }
    }
    out
}

fn parent(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// Identifiers, `::` and braces/commas, with their 1-based line.
fn tokens(code: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
            i += 1;
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((line, start, &code[start..i]));
        } else if b == b':' && bytes.get(i + 1) == Some(&b':') {
            out.push((line, i, "::"));
            i += 2;
        } else if matches!(b, b'{' | b'}' | b',' | b';') {
            out.push((line, i, &code[i..i + 1]));
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Functions longer than the limit: (name, first line, lines).
fn long_functions(source: &str, limit: usize) -> Vec<(String, usize, usize)> {
    let code = strip(source);
    let words = tokens(&code);
    let mut out = Vec::new();
    for (k, &(line, _, word)) in words.iter().enumerate() {
        if word != "fn" {
            continue;
        }
        let Some(&(_, _, name)) = words.get(k + 1) else { continue };
        // The body starts at the first `{` before any `;` (a declaration without a body).
        let Some(open) = words[k..].iter().position(|w| w.2 == "{" || w.2 == ";").map(|p| k + p) else {
            continue;
        };
        if words[open].2 == ";" {
            continue;
        }
        let mut depth = 0;
        for w in &words[open..] {
            match w.2 {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        let lines = w.0 - line + 1;
                        if lines > limit {
                            out.push((name.to_string(), line, lines));
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

struct SourceFile {
    relative: PathBuf,
    text: String,
}

fn sources(root: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push(SourceFile { relative: path.strip_prefix(root).unwrap().to_path_buf(), text });
            }
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    out
}

/// Imports that go up or across layers: "file:line: a imports b (layer x → y)".
fn layer_violations(files: &[SourceFile]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        let module = module_path(&file.relative);
        let Some(top) = module.first() else { continue };
        let Some(own) = layer(top) else {
            out.push(format!(
                "{}: module {top} has no layer in tests/architecture.rs",
                file.relative.display()
            ));
            continue;
        };
        for (path, line) in references(&module, &file.text) {
            let Some(target) = path.first() else { continue };
            if target == top {
                continue;
            }
            match layer(target) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => out.push(format!(
                    "{}:{line}: {top} (layer {own}) imports {target} (layer {theirs}): only lower layers may be imported",
                    file.relative.display()
                )),
                // Not a module of ours (a macro path, a type re-exported at the root): fine.
                None => {}
            }
        }
    }
    out
}

/// Cycles between the submodules of one top-level module ("tui: state → replay → update → state").
fn submodule_cycles(files: &[SourceFile]) -> Vec<String> {
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_path(&file.relative);
        if module.len() >= 2 {
            children.entry(module[0].clone()).or_default().insert(module[1].clone());
        }
    }
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_path(&file.relative);
        if module.len() < 2 {
            continue;
        }
        let (top, from) = (&module[0], &module[1]);
        for (path, _) in references(&module, &file.text) {
            if path.len() >= 2 && path[0] == *top && path[1] != *from && children[top].contains(&path[1]) {
                edges.entry((top.clone(), from.clone())).or_default().insert(path[1].clone());
            }
        }
    }
    let mut out = Vec::new();
    for (top, subs) in &children {
        let next = |n: &String| edges.get(&(top.clone(), n.clone())).cloned().unwrap_or_default();
        for start in subs {
            // Depth-first search for a path back to `start`.
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((node, trail)) = stack.pop() {
                for n in next(&node) {
                    if n == *start {
                        let mut cycle = trail.clone();
                        cycle.push(n);
                        out.push(format!("{top}: {}", cycle.join(" → ")));
                    } else if seen.insert(n.clone()) {
                        let mut t = trail.clone();
                        t.push(n.clone());
                        stack.push((n, t));
                    }
                }
            }
        }
    }
    // The same cycle is found from each of its members: keep one per set of members.
    let mut seen_members = BTreeSet::new();
    out.sort();
    out.retain(|cycle| {
        let members: BTreeSet<String> = cycle.split(" → ").skip(1).map(str::to_string).collect();
        seen_members.insert(members)
    });
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_import_only_from_lower_layers() {
    let violations = layer_violations(&sources(&src()));
    assert!(violations.is_empty(), "wrong-way imports:\n{}", violations.join("\n"));
}

#[test]
fn no_submodules_import_each_other_in_a_circle() {
    let cycles = submodule_cycles(&sources(&src()));
    assert!(cycles.is_empty(), "import cycles between submodules:\n{}", cycles.join("\n"));
}

#[test]
fn files_and_functions_stay_short() {
    let mut problems = Vec::new();
    for file in sources(&src()) {
        let lines = file.text.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{}: {lines} lines (at most {MAX_FILE_LINES})", file.relative.display()));
        }
        for (name, line, length) in long_functions(&file.text, MAX_FUNCTION_LINES) {
            problems.push(format!(
                "{}:{line}: fn {name} is {length} lines (at most {MAX_FUNCTION_LINES})",
                file.relative.display()
            ));
        }
    }
    assert!(problems.is_empty(), "too long:\n{}", problems.join("\n"));
}

// The checks themselves, on sources made up for the purpose: each must be able to fail.

fn made_up(files: &[(&str, &str)]) -> Vec<SourceFile> {
    files
        .iter()
        .map(|(path, text)| SourceFile { relative: PathBuf::from(path), text: text.to_string() })
        .collect()
}

#[test]
fn a_wrong_way_import_is_caught_and_a_comment_is_not() {
    let files = made_up(&[
        ("engine/apply.rs", "use crate::tui::state::Model;\n"),
        (
            "plan/mod.rs",
            "// crate::engine is mentioned here\nconst S: &str = \"crate::cli\";\nuse crate::catalog::Catalog;\n",
        ),
        ("checks/mod.rs", "use crate::{db::ConnSpec, engine::EngineError};\n"),
        ("catalog/introspect.rs", "fn f() { let x = super::super::plan::build; }\n"),
    ]);
    let found = layer_violations(&files);
    assert_eq!(found.len(), 3, "{found:#?}");
    for expected in [
        "engine/apply.rs:1: engine (layer 6) imports tui",
        "checks/mod.rs:1: checks (layer 6) imports engine",
        "catalog/introspect.rs:1: catalog (layer 3) imports plan",
    ] {
        assert!(found.iter().any(|f| f.contains(expected)), "{expected} not in {found:#?}");
    }
}

#[test]
fn a_cycle_between_submodules_is_caught() {
    let files = made_up(&[
        ("tui/state.rs", "use super::replay::Replay;\n"),
        ("tui/replay.rs", "use super::update::update;\n"),
        ("tui/update.rs", "use crate::tui::state::Model;\n"),
        ("tui/view.rs", "use super::state::Model;\n"),
    ]);
    let cycles = submodule_cycles(&files);
    assert_eq!(cycles.len(), 1, "{cycles:#?}");
    assert!(cycles[0].starts_with("tui: "), "{cycles:#?}");
}

#[test]
fn long_functions_are_measured_from_fn_to_closing_brace() {
    let body = "    let x = 1;\n".repeat(130);
    let source = format!(
        "fn short() {{ }}\ntrait T {{ fn declared(&self); }}\nfn long() {{\n{body}    let s = \"}}\";\n}}\n"
    );
    let found = long_functions(&source, 120);
    assert_eq!(found, vec![("long".to_string(), 3, 133)]);
}
