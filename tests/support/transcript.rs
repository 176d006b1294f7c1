//! Transcript blocks in the by-hand guides (`docs/*-by-hand.md`): each is a fenced block
//! between `<!-- transcript: NAME -->` and `<!-- end transcript -->`, filled from a capture
//! made by the guide's test. The prose around the blocks is never touched.

use std::collections::BTreeMap;
use std::path::Path;

/// The environment variable that makes a guide's test rewrite its transcripts.
pub const WRITE_VAR: &str = "MAILTOOL_WRITE_DOCS";

/// Replace the body of every transcript block of `doc` with its capture; panics when the
/// document and the captures disagree on which blocks exist.
pub fn fill<K: AsRef<str> + Ord>(doc: &str, blocks: &BTreeMap<K, String>) -> String {
    let mut out = String::new();
    let mut rest = doc;
    let mut seen = Vec::new();
    while let Some(start) = rest.find("<!-- transcript: ") {
        let after = &rest[start..];
        let name_end = after.find(" -->").expect("a closed marker");
        let name = &after["<!-- transcript: ".len()..name_end];
        let end = after
            .find("<!-- end transcript -->")
            .unwrap_or_else(|| panic!("block {name} has no end marker"));
        let capture = blocks
            .iter()
            .find_map(|(key, capture)| (key.as_ref() == name).then_some(capture))
            .unwrap_or_else(|| panic!("the document names an unknown transcript '{name}'"));
        out.push_str(&rest[..start]);
        out.push_str(&after[..name_end + 4]);
        out.push_str("\n```text\n");
        out.push_str(capture);
        out.push_str("\n```\n");
        rest = &after[end..];
        seen.push(name.to_owned());
    }
    out.push_str(rest);
    for name in blocks.keys() {
        let name = name.as_ref();
        assert!(
            seen.iter().any(|s| s == name),
            "the document lacks the block <!-- transcript: {name} -->"
        );
    }
    out
}

/// Check that the guide at `path` (relative to the crate) has a block for every capture,
/// and rewrite the blocks when [`WRITE_VAR`] is set.
pub fn check_or_write<K: AsRef<str> + Ord>(path: &str, blocks: &BTreeMap<K, String>) {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()));
    let regenerated = fill(&doc, blocks);
    if std::env::var_os(WRITE_VAR).is_some() {
        std::fs::write(&doc_path, regenerated).unwrap();
    }
}
