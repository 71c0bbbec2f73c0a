//! The README is part of the product: its keys table, commands and exit codes must say what
//! the binary does.

use clap::CommandFactory;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("read README.md")
}

#[test]
fn the_keys_table_is_the_keymap() {
    let readme = readme();
    let marker = "<!-- keys: generated from src/tui/keys.rs";
    let start = readme.find(marker).expect("README has the keys marker");
    let table_start = start + readme[start..].find('\n').unwrap() + 1;
    let table_end = readme[table_start..].find("\n\n").map(|i| table_start + i + 1).unwrap_or(readme.len());
    let documented = &readme[table_start..table_end];
    let expected = tenantize::tui::keys::markdown_table();
    assert_eq!(
        documented, expected,
        "the README's keys table differs from the keymap; replace it with:\n{expected}"
    );
}

#[test]
fn every_subcommand_and_exit_code_is_documented() {
    let readme = readme();
    let command = tenantize::cli::Cli::command();
    let mut names = Vec::new();
    for sub in command.get_subcommands() {
        names.push(sub.get_name().to_string());
        let documented = format!("tenantize {}", sub.get_name());
        assert!(readme.contains(&documented), "README does not mention `{documented}`");
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                if long == "database-url" {
                    continue;
                }
                assert!(
                    readme.contains(&format!("--{long}")),
                    "README does not document {} --{long}",
                    sub.get_name()
                );
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for code in 0..=5 {
        assert!(readme.contains(&format!("\n| {code} | ")), "README's exit code table lacks {code}");
    }
}

#[test]
fn the_quick_start_demo_command_names_one_binary() {
    // `cargo run --release -- demo` fails ("could not determine which binary to run") once a
    // second binary exists, unless the package names its default.
    let readme = readme();
    assert!(readme.contains("cargo run --release -- demo"), "the quick start runs the demo");
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap().parse().unwrap();
    let extra_binaries = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    if extra_binaries > 0 {
        assert_eq!(
            manifest["package"].get("default-run").and_then(|v| v.as_str()),
            Some("tenantize"),
            "Cargo.toml needs default-run = \"tenantize\""
        );
    }
}
