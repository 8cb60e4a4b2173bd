//! Helpers shared by the root integration tests.

// Each test binary uses a part of these.
#![allow(dead_code)]

pub(crate) mod smtp;

use std::path::PathBuf;

/// Runs `check` over every file of `fuzz/corpus/<target>/`, so CI replays the fuzz corpora as
/// ordinary tests without a nightly toolchain. Returns how many inputs ran.
pub(crate) fn replay_corpus(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in &entries {
        let data = std::fs::read(path).unwrap();
        check(&data);
    }
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    entries.len()
}

/// The example binary `name`, built by `cargo test` beside the test binaries: the test binary
/// is target/<profile>/deps/<name>, the examples are in target/<profile>/examples.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo test` (it builds the examples)",
        path.display()
    );
    path
}
