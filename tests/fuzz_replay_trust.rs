//! Replays the capf-trust fuzz corpora (fuzz/corpus/trust_*) through the fuzz targets' checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks/trust.rs"]
mod checks;
mod common;

#[test]
fn trust_upload_corpus_holds() {
    assert!(common::replay_corpus("trust_upload", checks::upload) >= 20);
}

#[test]
fn trust_verify_corpus_holds() {
    assert!(common::replay_corpus("trust_verify", checks::verify) >= 10);
}
