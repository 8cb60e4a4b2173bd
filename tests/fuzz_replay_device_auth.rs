//! Replays the authentication-by-certificate fuzz corpus (fuzz/corpus/trust_device_auth)
//! through the fuzz target's check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks/device_auth.rs"]
mod checks;
mod common;

#[test]
fn trust_device_auth_corpus_holds() {
    assert!(common::replay_corpus("trust_device_auth", checks::device_auth) >= 100);
}
