//! Checks of the capf-trust fuzz targets; `tests/fuzz_replay_trust.rs` replays their corpora in
//! CI. Any input is allowed; only a broken property panics.

// Broken properties panic on purpose: that is what the fuzzer and the replay test look for.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use capf_trust::{
    Cert, ChainVerdict, IgnoredReason, Purpose, Release, Rule, TrustStore, Verdict, parse_bundle,
};

/// 2027-01-15, inside the fixtures' validity.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// `trust_upload`: PEM/DER input through parsing, the upload rules and the store.
/// Properties: a parsed certificate re-parses from its DER and from its PEM to the same
/// certificate; an upload gives one verdict per certificate and stores exactly the accepted
/// ones; uploading the same bundle again stores nothing more; the rustls-style bulk add agrees
/// with the upload; a stored certificate within its validity verifies as itself.
pub(crate) fn upload(data: &[u8]) {
    let Ok(parsed) = parse_bundle(data) else {
        return;
    };
    let bundle: Vec<Cert> = parsed.into_iter().filter_map(Result::ok).collect();
    for cert in &bundle {
        let again = Cert::from_der(cert.der()).expect("a parsed certificate's DER re-parses");
        assert_eq!(&again, cert);
        let pem = cert.to_pem().expect("PEM encoding of a parsed certificate");
        let from_pem = Cert::from_pem(pem.as_bytes()).expect("our PEM re-parses");
        assert_eq!(from_pem.fingerprint(), cert.fingerprint());
    }
    for release in [Release::LATEST, Release::new(12, 5, 0)] {
        for purpose in [Purpose::CAPF_TRUST, Purpose::IPSEC_TRUST] {
            let mut store = TrustStore::new(release);
            let report = store.upload(&purpose, bundle.clone(), now());
            assert_eq!(report.verdicts.len(), bundle.len());
            assert_eq!(report.accepted(), store.len());
            for v in &report.verdicts {
                // A rejected duplicate's first copy may be stored; any other rejection is not.
                let duplicate = matches!(
                    v.verdict,
                    Verdict::Rejected {
                        rule: Rule::Duplicate,
                        ..
                    }
                );
                if !duplicate {
                    assert_eq!(
                        v.verdict.is_accepted(),
                        store.contains(&purpose, v.fingerprint)
                    );
                }
                if let Verdict::AcceptedWithWarnings(w) = &v.verdict {
                    assert!(!w.is_empty());
                }
            }
            let before = store.len();
            let again = store.upload(&purpose, bundle.clone(), now());
            assert_eq!(store.len(), before, "a second upload stores nothing new");
            for v in &again.verdicts {
                assert!(
                    matches!(v.verdict, Verdict::Rejected { .. })
                        || !v.verdict.is_accepted()
                        || before == 0
                );
            }
            for (_, cert) in store.iter() {
                if cert.not_before() <= now() && now() <= cert.not_after() {
                    let verdict = store.verify(&purpose, cert, &[], now());
                    assert!(matches!(verdict, ChainVerdict::Trusted(_)), "{verdict:?}");
                }
            }
            let mut bulk = TrustStore::new(release);
            let (added, ignored) =
                bulk.add_parsable_certificates(&purpose, bundle.iter().map(Cert::der), now());
            assert_eq!(added, store.len());
            assert_eq!(added + ignored.len(), bundle.len());
            assert!(
                ignored
                    .iter()
                    .all(|i| matches!(i.reason, IgnoredReason::Rejected(_)))
            );
        }
    }
    if let Some(cert) = bundle.first() {
        let mut store = TrustStore::new(Release::LATEST);
        if let Ok(v) = store.add_capf(&Purpose::CAPF_TRUST, cert.clone(), now()) {
            assert_eq!(v.verdict.is_accepted(), store.len() == 1);
            if let Verdict::Rejected {
                rule: Rule::Duplicate,
                ..
            } = v.verdict
            {
                panic!("an empty store has no duplicate");
            }
        }
    }
}

const FIXTURES: [&[u8]; 4] = [
    include_bytes!("../../crates/capf-trust/tests/fixtures/root.pem"),
    include_bytes!("../../crates/capf-trust/tests/fixtures/capf-a.pem"),
    include_bytes!("../../crates/capf-trust/tests/fixtures/root-p384.pem"),
    include_bytes!("../../crates/capf-trust/tests/fixtures/tight-root.pem"),
];

/// `trust_verify`: the input's certificates (first the leaf, then intermediates) verified
/// against a store of fixture CAs, so hostile signatures, algorithms and extensions reach the
/// signature and path checks. Property: verification never panics, a trusted chain starts at
/// the leaf and ends at a certificate of the store.
pub(crate) fn verify(data: &[u8]) {
    let Ok(parsed) = parse_bundle(data) else {
        return;
    };
    let mut certs: Vec<Cert> = parsed.into_iter().filter_map(Result::ok).collect();
    if certs.is_empty() {
        return;
    }
    let leaf = certs.remove(0);
    let mut store = TrustStore::new(Release::LATEST);
    for pem in FIXTURES {
        let cert = Cert::from_pem(pem).expect("fixture parses");
        store.insert_unchecked(&Purpose::CAPF_TRUST, cert);
    }
    for at in [
        now(),
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
    ] {
        match store.verify(&Purpose::CAPF_TRUST, &leaf, &certs, at) {
            ChainVerdict::Trusted(chain) => {
                assert_eq!(chain.subjects.first(), Some(&leaf.subject()));
                assert!(store.contains(&Purpose::CAPF_TRUST, chain.anchor));
                assert!(chain.subjects.len() <= capf_trust::MAX_CHAIN_LEN);
            }
            ChainVerdict::Untrusted(failure) => {
                let _ = failure.to_string();
            }
        }
    }
}
