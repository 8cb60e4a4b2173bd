//! Replays the capf-lsc fuzz corpora (fuzz/corpus/lsc_*) through the fuzz targets' checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks/lsc.rs"]
mod checks;
mod common;

#[test]
fn lsc_spki_corpus_holds() {
    assert!(common::replay_corpus("lsc_spki", checks::spki) >= 15);
}

#[test]
fn lsc_pkcs10_corpus_holds() {
    assert!(common::replay_corpus("lsc_pkcs10", checks::pkcs10) >= 10);
}
