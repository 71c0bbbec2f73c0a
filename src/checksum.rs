//! SHA-256 helpers shared by the plan file and the catalog fingerprints.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The form of a SQL text that checksums cover: line endings unified, trailing spaces and
/// surrounding blank lines removed. Reformatting a plan file's whitespace does not change a
/// checksum; changing a token does.
pub fn normalize_sql(sql: &str) -> String {
    let unified = sql.replace("\r\n", "\n");
    let lines: Vec<&str> = unified.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_layout_but_not_tokens() {
        assert_eq!(normalize_sql("\nSELECT 1  \r\nFROM t\n\n"), "SELECT 1\nFROM t");
        assert_ne!(normalize_sql("SELECT 1"), normalize_sql("SELECT 2"));
    }

    #[test]
    fn sha256_is_hex_of_known_value() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
