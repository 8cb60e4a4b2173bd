//! Replays the capf-session fuzz corpora (fuzz/corpus/server_session, fuzz/corpus/phone_session)
//! through the fuzz targets' checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks/session.rs"]
mod checks;
mod common;

#[test]
fn server_session_corpus_holds() {
    assert!(common::replay_corpus("server_session", checks::server) >= 200);
}

#[test]
fn phone_session_corpus_holds() {
    assert!(common::replay_corpus("phone_session", checks::phone) >= 200);
}

/// The events a named seed of `fuzz/corpus/<target>/` raises, as `Debug` text.
fn seed_trace(target: &str, seed: &str, run: fn(&[u8]) -> Vec<String>) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(seed);
    run(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Asserts that the seed raises events starting with each of `expected`, in this order.
fn assert_reaches(target: &str, seed: &str, run: fn(&[u8]) -> Vec<String>, expected: &[&str]) {
    let trace = seed_trace(target, seed, run);
    let mut events = trace.iter();
    for want in expected {
        assert!(
            events.any(|e| e.starts_with(want)),
            "{target}/{seed}: no {want:?} in order in {trace:#?}"
        );
    }
}

/// The seeds reach the deep states (the fuzzer then mutates from there), so the corpus keeps
/// covering a whole install, fetch and delete, version-2 clients, the limits and the deadlines.
#[test]
fn server_seeds_reach_every_operation_and_limit() {
    let server = |seed, expected: &[&str]| {
        assert_reaches("server_session", seed, checks::server_trace, expected);
    };
    server(
        "recorded-01-rsa-install",
        &[
            "Authenticate",
            "KeyGenerationInProgress { count: 1 }",
            "PublicKey",
            "CertificateStored",
            "Closed { outcome: Ended { reason: UPDATE_CERTIFICATE } }",
        ],
    );
    server(
        "chunked-1-01-rsa-install",
        &["Authenticate", "PublicKey", "CertificateStored"],
    );
    server(
        "recorded-02-fetch",
        &[
            "Fetched { reason: UPDATE_CERTIFICATE, certificate: Some",
            "Closed { outcome: Ended { reason: NO_ACTION } }",
        ],
    );
    server(
        "recorded-04-delete",
        &["Deleted { reason: UPDATE_CERTIFICATE }", "Closed"],
    );
    server(
        "version-2-key-size-only",
        &["Authenticate", "PublicKey", "CertificateStored"],
    );
    server(
        "too-many-requests-in-progress",
        &[
            "KeyGenerationInProgress { count: 16 }",
            "Closed { outcome: ProtocolError { error: TooManyRequestsInProgress",
        ],
    );
    server(
        "key-generation-timeout",
        &["Closed { outcome: TimedOut { state: WaitKey"],
    );
    server(
        "store-timeout",
        &["PublicKey", "Closed { outcome: TimedOut { state: WaitStore"],
    );
}

#[test]
fn phone_seeds_reach_every_operation_and_deadline() {
    let phone = |seed, expected: &[&str]| {
        assert_reaches("phone_session", seed, checks::phone_trace, expected);
    };
    phone(
        "recorded-01-rsa-install",
        &[
            "AuthRequested",
            "KeyGenerationRequested { key: Rsa(2048) }",
            "CertificateReceived",
            "Closed { outcome: Ended { reason: UPDATE_CERTIFICATE } }",
        ],
    );
    phone(
        "recorded-02-fetch",
        &[
            "FetchRequested",
            "Closed { outcome: Ended { reason: NO_ACTION } }",
        ],
    );
    phone("recorded-04-delete", &["DeleteRequested", "Closed"]);
    phone(
        "server-version-2",
        &[
            "AuthRequested { session_id: 7, version: 2, server_version: 2",
            "KeyGenerationRequested { key: RsaKeySizeOnly(2048) }",
        ],
    );
    phone(
        "built-version-2",
        &["KeyGenerationRequested", "CertificateReceived"],
    );
    phone(
        "wait-certificate-timeout",
        &["Closed { outcome: TimedOut { state: WaitCertificate"],
    );
}

/// The endpoint-CSR seeds (spec 16) reach every new call and event, so the fuzzer mutates from
/// the CSR states too.
#[test]
fn endpoint_csr_seeds_reach_every_new_state() {
    let server = |seed, expected: &[&str]| {
        assert_reaches("server_session", seed, checks::server_trace, expected);
    };
    server(
        "endpoint-csr-retry-later",
        &[
            "Authenticate",
            "PublicKey",
            "CsrSigned",
            "Closed { outcome: Ended { reason: UPDATE_CERTIFICATE } }",
        ],
    );
    server(
        "endpoint-csr-deliver",
        &["CsrSigned", "CertificateStored", "Closed { outcome: Ended"],
    );
    server(
        "endpoint-csr-signing-failed",
        &[
            "CsrSigningFailed { reason: INVALID_ELEMENT }",
            "Closed { outcome: Ended { reason: INVALID_ELEMENT } }",
        ],
    );
    server(
        "endpoint-csr-missing-signature",
        &["Closed { outcome: ProtocolError { error: MissingCsrSignature"],
    );
    server(
        "endpoint-csr-phone-ends-session",
        &[
            "Closed { outcome: ProtocolError { error: UnexpectedMessage { command: END_SESSION, state: WaitCsrSignature }",
        ],
    );
    server(
        "endpoint-csr-timeout",
        &["Closed { outcome: TimedOut { state: WaitCsrSignature"],
    );
    server(
        "retry-later-after-auth",
        &[
            "Authenticate",
            "Closed { outcome: Ended { reason: UPDATE_CERTIFICATE } }",
        ],
    );
    let phone = |seed, expected: &[&str]| {
        assert_reaches("phone_session", seed, checks::phone_trace, expected);
    };
    phone(
        "endpoint-csr-retry-later",
        &[
            "KeyGenerationRequested { key: Ec(SECP256R1) }",
            "CsrSignatureRequested",
            "RetryLater { delay_secs: 3600 }",
            "Closed { outcome: Ended { reason: UPDATE_CERTIFICATE } }",
        ],
    );
    phone(
        "endpoint-csr-signing-failed",
        &[
            "CsrSignatureRequested",
            "Closed { outcome: Ended { reason: INVALID_ELEMENT } }",
        ],
    );
    phone(
        "no-endpoint-csr",
        &[
            "Closed { outcome: ProtocolError { error: UnexpectedMessage { command: SIGN_CERT_REQUEST, state: WaitCertificate }",
        ],
    );
    phone(
        "retry-later-after-auth",
        &["RetryLater { delay_secs: 3600 }", "Closed { outcome: Ended"],
    );
    phone(
        "malformed-retry-delay-0",
        &["Closed { outcome: ProtocolError { error: Decode(RetryDelayOutOfRange"],
    );
}
