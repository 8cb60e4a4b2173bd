//! Replays the capf-wire fuzz corpora (fuzz/corpus/wire_*) through the fuzz targets' checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks/wire.rs"]
mod checks;
mod common;

#[test]
fn wire_message_corpus_holds() {
    assert!(common::replay_corpus("wire_message", checks::message) >= 100);
}

#[test]
fn wire_deframer_corpus_holds() {
    assert!(common::replay_corpus("wire_deframer", checks::deframer) >= 16);
}

#[test]
fn wire_value_corpus_holds() {
    assert!(common::replay_corpus("wire_value", checks::value) >= 20);
}
