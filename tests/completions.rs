//! The committed completion scripts under `completions/` match what the binary generates.
//! `MAILTOOL_WRITE_COMPLETIONS=1 cargo test --test completions` rewrites them.

mod support;

use std::fs;
use std::path::Path;

const SHELLS: [(&str, &str); 5] = [
    ("bash", "mailtool.bash"),
    ("zsh", "_mailtool"),
    ("fish", "mailtool.fish"),
    ("elvish", "mailtool.elv"),
    ("powershell", "_mailtool.ps1"),
];

#[test]
fn committed_completions_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let rewrite = std::env::var_os("MAILTOOL_WRITE_COMPLETIONS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (shell, file) in SHELLS {
        let fresh = support::mailtool(Path::new("unused"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(fresh.status.success(), "completions {shell} failed");
        assert!(
            !fresh.stdout.is_empty(),
            "completions {shell} printed nothing"
        );
        let path = dir.join(file);
        if rewrite {
            fs::write(&path, &fresh.stdout).unwrap();
            continue;
        }
        let committed = fs::read(&path).unwrap_or_default();
        if committed != fresh.stdout {
            let old = String::from_utf8_lossy(&committed);
            let new = String::from_utf8_lossy(&fresh.stdout);
            let first_difference = old
                .lines()
                .zip(new.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(old.lines().count().min(new.lines().count()));
            stale.push(format!(
                "{} differs from `mailtool completions {shell}` at line {}:\n  committed: {:?}\n  generated: {:?}",
                path.display(),
                first_difference + 1,
                old.lines().nth(first_difference).unwrap_or("<end of file>"),
                new.lines().nth(first_difference).unwrap_or("<end of file>"),
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "stale completions (rewrite with MAILTOOL_WRITE_COMPLETIONS=1 cargo test --test completions):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_shell_clap_complete_knows_is_covered() {
    use clap::ValueEnum;
    let mut known: Vec<String> = clap_complete::Shell::value_variants()
        .iter()
        .map(|s| s.to_possible_value().unwrap().get_name().to_owned())
        .collect();
    let mut covered: Vec<&str> = SHELLS.iter().map(|(s, _)| *s).collect();
    known.sort();
    covered.sort();
    assert_eq!(known, covered);
}
