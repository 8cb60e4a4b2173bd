//! capf-trust against certificates made with openssl (tests/fixtures, see its README).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use capf_trust::{
    Cert, CertRole, ChainFailure, ChainVerdict, Error, IgnoredReason, Purpose, Release, Rule,
    Scenario, ScenarioCertificate, StoreDir, TrustStore, Verdict, mic_root_advice, upload_scenario,
};

#[path = "capf-trust/maintain.rs"]
mod maintain;

/// 2027-01-15: inside every fixture's validity (generated 2026-11-25, 3650 days).
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn pem(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.pem", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(name: &str) -> Cert {
    Cert::from_pem(&pem(name)).unwrap()
}

fn bundle(names: &[&str]) -> Vec<u8> {
    names.iter().flat_map(|n| pem(n)).collect()
}

fn store() -> TrustStore {
    TrustStore::new(Release::R14SU3)
}

fn rejected_rule(v: &Verdict) -> &Rule {
    match v {
        Verdict::Rejected { rule, .. } => rule,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ---- upload rules ----

#[test]
fn accepts_root_and_intermediate_chain() {
    let mut s = store();
    let r = s
        .upload_pem(&Purpose::CAPF_TRUST, &bundle(&["root", "inter"]), now())
        .unwrap();
    assert_eq!(r.accepted(), 2);
    assert_eq!(r.verdicts[0].role, CertRole::RootCa);
    assert_eq!(r.verdicts[1].role, CertRole::IntermediateCa);
    assert_eq!(s.len(), 2);
    assert_eq!(s.certificates(&Purpose::CAPF_TRUST).len(), 2);
    assert!(s.certificates(&Purpose::CALLMANAGER_TRUST).is_empty());
}

#[test]
fn rejects_ca_with_reserved_capf_name_and_lookalike_dashes() {
    for name in [
        "reserved-ascii",
        "reserved-u2010",
        "reserved-u2013",
        "reserved-u2212",
        "reserved-lower",
    ] {
        let mut s = store();
        let v = s.add(&Purpose::CALLMANAGER_TRUST, cert(name), now());
        assert!(
            matches!(rejected_rule(&v.verdict), Rule::ReservedCapfName { .. }),
            "{name}: {:?}",
            v.verdict
        );
        assert!(s.is_empty(), "{name} must not be stored");
    }
}

#[test]
fn reserved_name_is_enforced_for_older_releases_too() {
    let mut s = TrustStore::new("12.5SU7".parse().unwrap());
    let v = s.add(&Purpose::CAPF_TRUST, cert("reserved-u2212"), now());
    assert!(matches!(
        rejected_rule(&v.verdict),
        Rule::ReservedCapfName { .. }
    ));
}

#[test]
fn accepts_capf_without_dash() {
    let mut s = store();
    let v = s.add(&Purpose::CAPF_TRUST, cert("unreserved-space"), now());
    assert_eq!(v.verdict, Verdict::Accepted);
}

#[test]
fn rejects_ca_without_basic_constraints_from_14su2() {
    let mut s = TrustStore::new(Release::R14SU2);
    let v = s.add(&Purpose::CAPF_TRUST, cert("root-no-bc"), now());
    assert_eq!(rejected_rule(&v.verdict), &Rule::BasicConstraintsMissing);
}

#[test]
fn warns_for_ca_without_basic_constraints_before_14su2() {
    let mut s = TrustStore::new("14SU1".parse().unwrap());
    let v = s.add(&Purpose::CAPF_TRUST, cert("root-no-bc"), now());
    assert_eq!(
        v.verdict,
        Verdict::AcceptedWithWarnings(vec![Rule::BasicConstraintsMissing])
    );
    assert_eq!(s.len(), 1);
}

#[test]
fn rejects_ca_false_root() {
    let v = store().add(&Purpose::CAPF_TRUST, cert("root-ca-false"), now());
    assert_eq!(rejected_rule(&v.verdict), &Rule::NotCa);
}

#[test]
fn rejects_ca_without_key_cert_sign() {
    let v = store().add(&Purpose::CAPF_TRUST, cert("root-no-certsign"), now());
    assert_eq!(
        rejected_rule(&v.verdict),
        &Rule::KeyUsageLacks {
            digital_signature: false,
            key_cert_sign: true
        }
    );
}

#[test]
fn rejects_ca_without_key_usage() {
    let v = store().add(&Purpose::CAPF_TRUST, cert("root-no-ku"), now());
    assert_eq!(rejected_rule(&v.verdict), &Rule::KeyUsageMissing);
}

#[test]
fn rejects_root_whose_pathlen_forbids_uploaded_intermediate() {
    let mut s = store();
    let r = s
        .upload_pem(
            &Purpose::CAPF_TRUST,
            &bundle(&["tight-root", "tight-inter"]),
            now(),
        )
        .unwrap();
    assert_eq!(
        rejected_rule(&r.verdicts[0].verdict),
        &Rule::PathLenTooSmall {
            path_len: 0,
            needed: 1
        }
    );
    assert_eq!(r.verdicts[1].verdict, Verdict::Accepted);
    assert_eq!(s.len(), 1);
}

#[test]
fn rejects_ipsec_certificate_with_ca_true_from_14su3() {
    let mut s = store();
    let v = s.add(&Purpose::IPSEC_TRUST, cert("ipsec-ca-true"), now());
    assert_eq!(v.role, CertRole::IpsecCertificate);
    assert_eq!(rejected_rule(&v.verdict), &Rule::IpsecCertificateIsCa);
    let v = s.add(&Purpose::IPSEC_TRUST, cert("ipsec-ok"), now());
    assert_eq!(v.verdict, Verdict::Accepted);
}

#[test]
fn warns_for_ipsec_certificate_with_ca_true_in_14su2() {
    let mut s = TrustStore::new(Release::R14SU2);
    let v = s.add(&Purpose::IPSEC_TRUST, cert("ipsec-ca-true"), now());
    assert_eq!(
        v.verdict,
        Verdict::AcceptedWithWarnings(vec![Rule::IpsecCertificateIsCa])
    );
}

#[test]
fn ipsec_rule_spares_the_intermediate_of_an_ipsec_chain() {
    // The CA:TRUE certificate issues the leaf in this upload: it is a CA, not the IPsec cert.
    let mut s = store();
    let r = s.upload_pem(
        &Purpose::IPSEC_TRUST,
        &bundle(&["root", "inter", "https-inter"]),
        now(),
    );
    let r = r.unwrap();
    assert_eq!(r.verdicts[1].role, CertRole::IntermediateCa);
    assert_eq!(r.verdicts[2].role, CertRole::IpsecCertificate);
    assert_eq!(r.accepted(), 3);
}

#[test]
fn reports_duplicates_and_stores_nothing_twice() {
    let mut s = store();
    assert!(
        s.add(&Purpose::CAPF_TRUST, cert("root"), now())
            .verdict
            .is_accepted()
    );
    let v = s.add(&Purpose::CAPF_TRUST, cert("root"), now());
    assert_eq!(rejected_rule(&v.verdict), &Rule::Duplicate);
    let r = s
        .upload_pem(
            &Purpose::CALLMANAGER_TRUST,
            &bundle(&["root", "root"]),
            now(),
        )
        .unwrap();
    assert!(r.verdicts[0].verdict.is_accepted());
    assert_eq!(rejected_rule(&r.verdicts[1].verdict), &Rule::Duplicate);
    assert_eq!(s.len(), 2);
}

#[test]
fn rejects_expired_and_warns_not_yet_valid() {
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(2_300_000_000); // 2042
    let v = store().add(&Purpose::CAPF_TRUST, cert("root"), later);
    assert!(matches!(rejected_rule(&v.verdict), Rule::Expired { .. }));
    let earlier = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000); // 2020
    let v = store().add(&Purpose::CAPF_TRUST, cert("root"), earlier);
    assert!(
        matches!(&v.verdict, Verdict::AcceptedWithWarnings(w) if matches!(w[..], [Rule::NotYetValid { .. }]))
    );
}

#[test]
fn add_parsable_certificates_reports_every_ignored_one() {
    let der = |n: &str| cert(n).der().to_vec();
    let input = vec![
        der("root"),
        vec![0x30, 0x00],
        der("root-no-ku"),
        der("inter"),
    ];
    let mut s = store();
    let (added, ignored) = s.add_parsable_certificates(&Purpose::CAPF_TRUST, input, now());
    assert_eq!(added, 2);
    assert_eq!(ignored.len(), 2);
    assert_eq!(ignored[0].index, 1);
    assert!(matches!(ignored[0].reason, IgnoredReason::Unparsable(_)));
    assert_eq!(ignored[1].index, 2);
    assert!(matches!(
        ignored[1].reason,
        IgnoredReason::Rejected(Rule::KeyUsageMissing)
    ));
}

#[test]
fn upload_pem_names_the_bad_block_and_stores_nothing() {
    let mut input = pem("root");
    input.extend_from_slice(
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let mut s = store();
    let err = s
        .upload_pem(&Purpose::CAPF_TRUST, &input, now())
        .unwrap_err();
    assert!(matches!(err, Error::InBundle { index: 1, .. }), "{err:?}");
    assert!(s.is_empty());
}

// ---- CAPF certificates ----

#[test]
fn capf_certificate_enters_through_add_capf_only() {
    let mut s = store();
    let v = s.add(&Purpose::CAPF_TRUST, cert("capf-a"), now());
    assert!(matches!(
        rejected_rule(&v.verdict),
        Rule::ReservedCapfName { .. }
    ));
    let v = s
        .add_capf(&Purpose::CAPF_TRUST, cert("capf-a"), now())
        .unwrap();
    assert_eq!((v.role, v.verdict), (CertRole::Capf, Verdict::Accepted));
    let v = s
        .add_capf(&Purpose::CAPF_TRUST, cert("capf-a"), now())
        .unwrap();
    assert_eq!(rejected_rule(&v.verdict), &Rule::Duplicate);
}

#[test]
fn add_capf_checks_the_capf_profile() {
    let v = store()
        .add_capf(&Purpose::CAPF_TRUST, cert("capf-no-pathlen"), now())
        .unwrap();
    assert!(
        matches!(rejected_rule(&v.verdict), Rule::CapfProfile(_)),
        "{:?}",
        v.verdict
    );
    let v = store()
        .add_capf(&Purpose::CAPF_TRUST, cert("root"), now())
        .unwrap();
    assert!(matches!(
        rejected_rule(&v.verdict),
        Rule::NotCapfName { .. }
    ));
}

// ---- chain verification ----

fn verify(s: &TrustStore, p: &Purpose, leaf: &str, inter: &[&str], at: SystemTime) -> ChainVerdict {
    let inter: Vec<Cert> = inter.iter().map(|n| cert(n)).collect();
    s.verify(p, &cert(leaf), &inter, at)
}

fn capf_store() -> TrustStore {
    let mut s = store();
    assert!(
        s.add_capf(&Purpose::CAPF_TRUST, cert("capf-a"), now())
            .unwrap()
            .verdict
            .is_accepted()
    );
    s
}

#[test]
fn trusts_lsc_of_this_clusters_capf() {
    let s = capf_store();
    match verify(&s, &Purpose::CAPF_TRUST, "lsc-a", &[], now()) {
        ChainVerdict::Trusted(chain) => {
            assert_eq!(chain.anchor, cert("capf-a").fingerprint());
            assert_eq!(chain.subjects.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lsc_from_another_cluster_is_issued_by_untrusted_capf() {
    let s = capf_store();
    let got = verify(&s, &Purpose::CAPF_TRUST, "lsc-b", &[], now());
    assert!(
        matches!(&got, ChainVerdict::Untrusted(ChainFailure::IssuedByUntrustedCapf { issuer, .. }) if issuer.contains("CAPF-9f8e7d6c")),
        "{got:?}"
    );
    // After the migration step (the other cluster's CAPF certificate added), it verifies.
    let mut s = s;
    assert!(
        s.add_capf(&Purpose::CAPF_TRUST, cert("capf-b"), now())
            .unwrap()
            .verdict
            .is_accepted()
    );
    assert!(matches!(
        verify(&s, &Purpose::CAPF_TRUST, "lsc-b", &[], now()),
        ChainVerdict::Trusted(_)
    ));
}

#[test]
fn verifies_through_intermediate_and_reports_missing_one() {
    let mut s = store();
    s.add(&Purpose::CAPF_TRUST, cert("root"), now());
    let got = verify(&s, &Purpose::CAPF_TRUST, "https-inter", &["inter"], now());
    assert!(
        matches!(got, ChainVerdict::Trusted(ref c) if c.subjects.len() == 3),
        "{got:?}"
    );
    let got = verify(&s, &Purpose::CAPF_TRUST, "https-inter", &[], now());
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::UnknownIssuer { .. })
        ),
        "{got:?}"
    );
}

#[test]
fn verifies_rsa_sha1_sha512_and_ecdsa_p384_signatures() {
    let mut s = store();
    s.add(&Purpose::CALLMANAGER_TRUST, cert("root"), now());
    s.add(&Purpose::CALLMANAGER_TRUST, cert("root-p384"), now());
    for leaf in ["leaf-sha1", "leaf-sha512", "https-root", "leaf-p384"] {
        let got = verify(&s, &Purpose::CALLMANAGER_TRUST, leaf, &[], now());
        assert!(matches!(got, ChainVerdict::Trusted(_)), "{leaf}: {got:?}");
    }
}

#[test]
fn reports_bad_signature() {
    let mut s = store();
    s.add(&Purpose::CAPF_TRUST, cert("root"), now());
    let mut der = cert("https-root").der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01; // the last byte is inside the signature
    let tampered = Cert::from_der(&der).unwrap();
    let got = s.verify(&Purpose::CAPF_TRUST, &tampered, &[], now());
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::BadSignature { .. })
        ),
        "{got:?}"
    );
}

#[test]
fn reports_path_length_exceeded() {
    let mut s = store();
    s.add(&Purpose::CAPF_TRUST, cert("tight-root"), now());
    let got = verify(
        &s,
        &Purpose::CAPF_TRUST,
        "tight-leaf",
        &["tight-inter"],
        now(),
    );
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::PathLenExceeded {
                path_len: 0,
                intermediates_below: 1,
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn reports_expired_leaf_and_not_yet_valid_chain() {
    let s = capf_store();
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(2_300_000_000);
    let got = verify(&s, &Purpose::CAPF_TRUST, "lsc-a", &[], later);
    assert!(
        matches!(got, ChainVerdict::Untrusted(ChainFailure::Expired { .. })),
        "{got:?}"
    );
    let earlier = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let got = verify(&s, &Purpose::CAPF_TRUST, "lsc-a", &[], earlier);
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::NotYetValid { .. })
        ),
        "{got:?}"
    );
}

#[test]
fn reports_issuer_that_is_not_a_ca() {
    // A release-14 store keeps the CA:FALSE root (with a warning), so the chain rule is reached.
    let mut s = TrustStore::new("14".parse().unwrap());
    assert!(
        s.add(&Purpose::CAPF_TRUST, cert("root-ca-false"), now())
            .verdict
            .is_accepted()
    );
    let got = verify(&s, &Purpose::CAPF_TRUST, "leaf-under-ca-false", &[], now());
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::IssuerNotCa { .. })
        ),
        "{got:?}"
    );
}

#[test]
fn reports_issuer_without_key_cert_sign() {
    let mut s = TrustStore::new("14".parse().unwrap());
    assert!(
        s.add(&Purpose::CAPF_TRUST, cert("root-no-certsign"), now())
            .verdict
            .is_accepted()
    );
    let got = verify(
        &s,
        &Purpose::CAPF_TRUST,
        "leaf-under-no-certsign",
        &[],
        now(),
    );
    assert!(
        matches!(
            got,
            ChainVerdict::Untrusted(ChainFailure::IssuerLacksKeyCertSign { .. })
        ),
        "{got:?}"
    );
}

#[test]
fn trusts_a_store_certificate_as_itself() {
    let mut s = store();
    s.add(&Purpose::CAPF_TRUST, cert("https-inter"), now());
    let got = verify(&s, &Purpose::CAPF_TRUST, "https-inter", &[], now());
    assert!(
        matches!(got, ChainVerdict::Trusted(ref c) if c.subjects.len() == 1),
        "{got:?}"
    );
}

#[test]
fn trusts_mic_under_manufacturing_root() {
    let mut s = store();
    s.add(
        &Purpose::CALLMANAGER_TRUST,
        cert("mic-manufacturing"),
        now(),
    );
    let got = verify(&s, &Purpose::CALLMANAGER_TRUST, "mic", &[], now());
    assert!(matches!(got, ChainVerdict::Trusted(_)), "{got:?}");
    // The same MIC is not trusted for CAPF-trust.
    let got = verify(&s, &Purpose::CAPF_TRUST, "mic", &[], now());
    assert!(matches!(
        got,
        ChainVerdict::Untrusted(ChainFailure::UnknownIssuer { .. })
    ));
}

// ---- scenarios and advice ----

#[test]
fn upload_scenario_row_1_same_certificate() {
    let a = upload_scenario(&cert("https-self"), &cert("https-self"), &[]);
    assert_eq!(a.scenario, Scenario::SameCertificate);
    assert_eq!(a.uploads.len(), 1);
    assert_eq!(
        a.uploads[0].purposes,
        [Purpose::CAPF_TRUST, Purpose::CALLMANAGER_TRUST]
    );
}

#[test]
fn upload_scenario_row_2_issued_by_root() {
    let a = upload_scenario(&cert("root"), &cert("https-root"), &[]);
    assert_eq!((a.scenario, a.scenario.row()), (Scenario::IssuedByRoot, 2));
    assert_eq!(a.uploads.len(), 1);
    assert_eq!(a.uploads[0].certificate, ScenarioCertificate::CaRoot);
}

#[test]
fn upload_scenario_row_3_issued_by_intermediate() {
    let a = upload_scenario(&cert("root"), &cert("https-inter"), &[cert("inter")]);
    assert_eq!(a.scenario, Scenario::IssuedByIntermediate);
    assert_eq!(a.uploads.len(), 1);
}

#[test]
fn upload_scenario_row_4_chain_incomplete() {
    let a = upload_scenario(&cert("root"), &cert("https-inter"), &[]);
    assert_eq!(
        (a.scenario, a.scenario.row()),
        (Scenario::ChainIncomplete, 4)
    );
    assert_eq!(
        a.scenario.guide_result(),
        "Upload CA root and HTTPS certificate."
    );
    assert_eq!(a.uploads.len(), 2);
    assert_eq!(a.uploads[1].certificate, ScenarioCertificate::Https);
    assert_eq!(a.uploads[1].fingerprint, cert("https-inter").fingerprint());
    assert_eq!(a.uploads[1].purposes, [Purpose::CAPF_TRUST]);
    // A root with a matching name but another key does not complete the chain either.
    let a = upload_scenario(&cert("root-p384"), &cert("https-root"), &[]);
    assert_eq!(a.scenario, Scenario::ChainIncomplete);
}

#[test]
fn advises_removing_mic_roots_from_callmanager_trust() {
    let mut s = store();
    let r = s
        .upload_pem(
            &Purpose::CALLMANAGER_TRUST,
            &bundle(&[
                "root",
                "mic-cap-rtp-001",
                "mic-cap-rtp-002",
                "mic-manufacturing",
                "mic-root-2048",
            ]),
            now(),
        )
        .unwrap();
    assert_eq!(r.accepted(), 5);
    s.add(&Purpose::CAPF_TRUST, cert("mic-cap-rtp-001"), now());
    let advice = mic_root_advice(&s);
    let names: Vec<_> = advice.iter().map(|a| a.common_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CAP-RTP-001",
            "CAP-RTP-002",
            "Cisco_Manufacturing_CA",
            "Cisco_Root_CA_2048"
        ]
    );
    assert!(mic_root_advice(&store()).is_empty());
}

// ---- store directory ----

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("capf-trust-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn store_directory_round_trips() {
    let dir = temp_dir("roundtrip");
    let sd = StoreDir::new(&dir);
    let mut s = capf_store();
    s.upload_pem(
        &Purpose::CALLMANAGER_TRUST,
        &bundle(&["root", "inter"]),
        now(),
    )
    .unwrap();
    for (p, c) in s.iter() {
        let path = sd.save(p, c).unwrap();
        assert!(path.starts_with(dir.join(p.as_str())));
    }
    let loaded = sd.load(Release::R14SU3).unwrap();
    assert!(loaded.bad_files.is_empty(), "{:?}", loaded.bad_files);
    assert_eq!(loaded.store.len(), 3);
    for (p, c) in s.iter() {
        assert!(loaded.store.contains(p, c.fingerprint()));
    }
    assert!(
        sd.delete(&Purpose::CAPF_TRUST, cert("capf-a").fingerprint())
            .unwrap()
    );
    assert!(
        !sd.delete(&Purpose::CAPF_TRUST, cert("capf-a").fingerprint())
            .unwrap()
    );
    assert_eq!(sd.load(Release::R14SU3).unwrap().store.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn store_directory_reports_every_bad_file() {
    let dir = temp_dir("bad");
    let sd = StoreDir::new(&dir);
    let root = cert("root");
    sd.save(&Purpose::CAPF_TRUST, &root).unwrap();
    let capf_dir = dir.join("CAPF-trust");
    std::fs::write(capf_dir.join("garbage.pem"), b"not a certificate").unwrap();
    std::fs::write(
        capf_dir.join(format!("{}.pem", cert("inter").fingerprint())),
        pem("root"),
    )
    .unwrap();
    std::fs::write(capf_dir.join(".abc.pem.tmp"), b"half").unwrap();
    std::fs::write(capf_dir.join("notes.txt"), b"hello").unwrap();
    let two = bundle(&["root", "inter"]);
    std::fs::write(
        capf_dir.join(format!("{}.pem", cert("https-root").fingerprint())),
        two,
    )
    .unwrap();
    std::fs::write(dir.join("stray"), b"x").unwrap();
    std::fs::create_dir_all(dir.join("Bad Purpose")).unwrap();
    let loaded = sd.load(Release::R14SU3).unwrap();
    assert_eq!(loaded.store.len(), 1, "the good certificate still loads");
    let mut kinds: Vec<String> = loaded
        .bad_files
        .iter()
        .map(|b| match b.error {
            Error::NoCertificate => "none".into(),
            Error::FileNameMismatch { .. } => "name".into(),
            Error::LeftoverTemporaryFile => "tmp".into(),
            Error::StrayFile => "stray".into(),
            Error::NotOneCertificate { found: 2 } => "two".into(),
            Error::InvalidPurpose { .. } => "purpose".into(),
            ref other => format!("{other:?}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["name", "none", "purpose", "stray", "stray", "tmp", "two"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_store_directory_is_empty() {
    let loaded = StoreDir::new(temp_dir("missing"))
        .load(Release::LATEST)
        .unwrap();
    assert!(loaded.store.is_empty() && loaded.bad_files.is_empty());
}

#[test]
fn self_signed_end_entity_is_not_held_to_ca_rules() {
    let mut s = store();
    let v = s.add(&Purpose::TOMCAT_TRUST, cert("node-self"), now());
    assert_eq!(
        (v.role, v.verdict),
        (CertRole::EndEntity, Verdict::Accepted)
    );
}

/// Authentication by existing certificate, over the spec's hand-built AUTH_RESPONSE vectors
/// (verified by capfd and reproduced by capfc byte for byte).
mod device_auth {
    use super::*;
    use capf_trust::{
        CertificateKind, DeviceAuthFailure, DeviceAuthentication, DeviceProof, Precedence,
        authenticate_device,
    };
    use capf_wire::{Message, Payload};

    struct Vector {
        hex: Vec<u8>,
        fixture: serde_json::Value,
    }

    fn vector(prefix: &str) -> Vector {
        let path = format!(
            "{}/../../spec/capf-test-vectors.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let all: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = all
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str().unwrap().starts_with(prefix))
            .unwrap();
        Vector {
            hex: hex::decode(v["hex"].as_str().unwrap()).unwrap(),
            fixture: v["decoded"]["test_fixture"].clone(),
        }
    }

    fn trust(v: &Vector) -> TrustStore {
        let mut s = TrustStore::new(Release::default());
        let capf = cert_from(&v.fixture, "capf_ca_certificate_pem");
        s.insert_unchecked(&Purpose::CAPF_TRUST, capf);
        if v.fixture.get("sudi_ca_certificate_pem").is_some() {
            let sudi = cert_from(&v.fixture, "sudi_ca_certificate_pem");
            s.insert_unchecked(&Purpose::CAPF_TRUST_SUDI, sudi);
        }
        s
    }

    fn cert_from(fixture: &serde_json::Value, key: &str) -> Cert {
        Cert::from_pem(fixture[key].as_str().unwrap().as_bytes()).unwrap()
    }

    /// Authenticates the vector's proof, `edit` applied to it first, against `store`.
    fn authenticate(
        v: &Vector,
        store: &TrustStore,
        precedence: Precedence,
        now: SystemTime,
        edit: impl FnOnce(&mut DeviceProof<'_>),
    ) -> Result<DeviceAuthentication, DeviceAuthFailure> {
        let m = Message::decode(&v.hex).unwrap();
        let Payload::AuthResponse(a) = &m.payload else {
            panic!("not AUTH_RESPONSE")
        };
        let mut proof = DeviceProof::from_auth_response(m.session_id, a);
        edit(&mut proof);
        authenticate_device(store, &proof, precedence, now)
    }

    const RSA: &str = "AUTH_RESPONSE with RSA LSC";

    #[test]
    fn the_rsa_lsc_and_sudi_vector_authenticates() {
        let v = vector(RSA);
        let store = trust(&v);
        let by = authenticate(&v, &store, Precedence::LscFirst, now(), |_| {}).unwrap();
        assert_eq!(by.kind, CertificateKind::Lsc);
        assert!(by.preferred && !by.digest_info_used);
        assert!(by.sudi.is_some());
        // With MIC first, the LSC is still accepted (the phone has no valid MIC to send).
        let by = authenticate(&v, &store, Precedence::MicFirst, now(), |_| {}).unwrap();
        assert_eq!(by.kind, CertificateKind::Lsc);
        assert!(!by.preferred);
    }

    #[test]
    fn a_recorded_sudi_proof_does_not_replay_in_another_session() {
        let v = vector(RSA);
        let store = trust(&v);
        let err = authenticate(&v, &store, Precedence::LscFirst, now(), |p| {
            p.session_id ^= 1
        })
        .unwrap_err();
        assert!(
            matches!(err, DeviceAuthFailure::BadSignature { element, .. } if element.starts_with("SUDI")),
            "{err}"
        );
    }

    #[test]
    fn every_part_of_the_proof_is_checked() {
        let v = vector(RSA);
        let store = trust(&v);
        let run = |edit: &dyn Fn(&mut DeviceProof<'_>)| {
            authenticate(&v, &store, Precedence::LscFirst, now(), edit).unwrap_err()
        };
        assert_eq!(
            run(&|p| p.certificate = None),
            DeviceAuthFailure::NoCertificate
        );
        assert!(matches!(
            run(&|p| p.signed_data = None),
            DeviceAuthFailure::MissingSignature {
                element: "SIGNED_DATA"
            }
        ));
        // The semantic-layer vector: SHA2_SIGNED_DATA with a hash id other than 3.
        assert!(matches!(
            run(&|p| p.sha2_signed_data = p.sha2_signed_data.map(|(_, s)| (2, s))),
            DeviceAuthFailure::WrongHashId { found: 2, .. }
        ));
        // Another device's name: the LSC does not name it.
        assert!(matches!(
            run(&|p| p.device_name = "SEP001A2B3C4D5F"),
            DeviceAuthFailure::NotThisDevice { .. }
        ));
        // A signature from the right key over other data: SHA2_SIGNED_DATA where SIGNED_DATA
        // belongs.
        assert!(matches!(
            run(&|p| p.signed_data = p.sha2_signed_data.map(|(_, s)| s)),
            DeviceAuthFailure::BadSignature {
                element: "SIGNED_DATA",
                ..
            }
        ));
        // Expired: a year and a day after issue.
        let later = now() + Duration::from_secs(400 * 86_400);
        let err = authenticate(&v, &store, Precedence::LscFirst, later, |_| {}).unwrap_err();
        assert!(
            matches!(
                &err,
                DeviceAuthFailure::Untrusted { as_lsc, .. }
                    if matches!(**as_lsc, ChainFailure::Expired { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn an_lsc_from_another_clusters_capf_is_issued_by_an_untrusted_capf() {
        let v = vector(RSA);
        // This cluster trusts only its own (different) CAPF and the SUDI root.
        let mut store = TrustStore::new(Release::default());
        store.insert_unchecked(&Purpose::CAPF_TRUST, cert("capf-b"));
        let err = authenticate(&v, &store, Precedence::LscFirst, now(), |_| {}).unwrap_err();
        assert!(
            matches!(
                &err,
                DeviceAuthFailure::Untrusted { as_lsc, .. }
                    if matches!(**as_lsc, ChainFailure::IssuedByUntrustedCapf { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn the_ec_lsc_vector_authenticates() {
        let rsa = vector(RSA);
        let v = vector("AUTH_RESPONSE with EC (P-256) LSC");
        let store = trust(&rsa);
        let by = authenticate(&v, &store, Precedence::LscFirst, now(), |_| {}).unwrap();
        assert_eq!((by.kind, by.sudi), (CertificateKind::Lsc, None));
    }

    #[test]
    fn the_semantic_vector_with_hash_id_1_is_refused() {
        let rsa = vector(RSA);
        let v = vector("invalid: SHA2_SIGNED_DATA tagged SHA1");
        let store = trust(&rsa);
        let err = authenticate(&v, &store, Precedence::LscFirst, now(), |_| {}).unwrap_err();
        assert!(
            matches!(err, DeviceAuthFailure::WrongHashId { found: 1, .. }),
            "{err}"
        );
    }
}
