//! Integration tests of capf-lsc: every issued certificate is checked by OpenSSL
//! (`openssl verify -x509_strict` against its chain, `openssl x509 -text`) and re-read by
//! x509-parser, an independent parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_lsc::der::{Decode, Encode};
use capf_lsc::spki::SubjectPublicKeyInfoOwned;
use capf_lsc::x509_cert::Certificate;
use capf_lsc::*;
use capf_test_support::{
    ISSUER_SPECS, PHONE_SPECS, capf_issuer, issuer_key, key_pem, now, phone_key, phone_key_pem,
    root_and_intermediate, serials,
};
use proptest::prelude::*;

#[path = "capf_lsc/bundle.rs"]
mod bundle;
#[path = "capf_lsc/signers.rs"]
mod signers;

// ---------- helpers ----------

fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "capf-lsc-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_pem(dir: &Path, name: &str, certs: &[&Certificate]) -> PathBuf {
    let path = dir.join(name);
    let pem: String = certs
        .iter()
        .map(|c| certificate_to_pem(c).unwrap())
        .collect();
    std::fs::write(&path, pem).unwrap();
    path
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line tool is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl verify -x509_strict` of `leaf` against `root`, with `intermediates` untrusted,
/// at a time inside the validity period.
fn openssl_verify(root: &Certificate, intermediates: &[&Certificate], leaf: &Certificate) {
    let dir = scratch_dir();
    let root_path = write_pem(&dir, "root.pem", &[root]);
    let leaf_path = write_pem(&dir, "leaf.pem", &[leaf]);
    let at = (now() + Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-attime",
        &at,
        "-CAfile",
        root_path.to_str().unwrap(),
    ];
    let inter_path;
    if !intermediates.is_empty() {
        inter_path = write_pem(&dir, "inter.pem", intermediates);
        args.extend(["-untrusted", inter_path.to_str().unwrap()]);
    }
    args.push(leaf_path.to_str().unwrap());
    let (ok, text) = openssl(&args);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        ok && text.contains(": OK"),
        "openssl verify failed:\n{text}"
    );
}

fn openssl_text(cert: &Certificate) -> String {
    let dir = scratch_dir();
    let path = write_pem(&dir, "cert.pem", &[cert]);
    let (ok, text) = openssl(&["x509", "-text", "-noout", "-in", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(ok, "openssl x509 failed:\n{text}");
    text
}

fn params(device: &str, days: i64) -> LscParams {
    LscParams {
        device_name: device.to_owned(),
        validity: ValidityDays::new(days).unwrap(),
    }
}

/// Re-reads `cert` with x509-parser and checks the LSC profile.
fn check_with_x509_parser(
    cert: &Certificate,
    issuer: &Certificate,
    device: &str,
    key: &PhonePublicKey,
) {
    let der = cert.to_der().unwrap();
    let (rest, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(rest.is_empty());
    let cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), device);
    let issuer_der = issuer.to_der().unwrap();
    let (_, parsed_issuer) = x509_parser::parse_x509_certificate(&issuer_der).unwrap();
    assert_eq!(parsed.issuer().as_raw(), parsed_issuer.subject().as_raw());
    // O/OU/L/ST/C come from the issuer's subject.
    for (mine, theirs) in [
        (
            parsed.subject().iter_organization().next(),
            parsed_issuer.subject().iter_organization().next(),
        ),
        (
            parsed.subject().iter_country().next(),
            parsed_issuer.subject().iter_country().next(),
        ),
        (
            parsed.subject().iter_locality().next(),
            parsed_issuer.subject().iter_locality().next(),
        ),
    ] {
        assert_eq!(
            mine.map(|a| a.as_str().unwrap()),
            theirs.map(|a| a.as_str().unwrap())
        );
    }
    assert_eq!(parsed.public_key().raw, key.to_der().unwrap().as_slice());
    let bc = parsed.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    let ku = parsed.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature());
    if key.spec().is_ec() {
        assert!(ku.value.key_agreement() && !ku.value.key_encipherment());
    } else {
        assert!(ku.value.key_encipherment() && !ku.value.key_agreement());
    }
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(
        eku.other
            .iter()
            .map(|o| o.to_id_string())
            .collect::<Vec<_>>(),
        ["1.3.6.1.5.5.7.3.5"]
    );
    let san = parsed.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        format!("[URI({device:?})]")
    );
    let serial = parsed.raw_serial();
    assert!(serial[0] & 0x80 == 0 && serial.iter().any(|&b| b != 0));
}

fn check_openssl_text(cert: &Certificate, key: &PhonePublicKey, sig: &str) {
    let text = openssl_text(cert);
    for needle in [
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "TLS Web Server Authentication, TLS Web Client Authentication, IPSec End System",
        "X509v3 Subject Alternative Name",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        sig,
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    let usage = if key.spec().is_ec() {
        "Digital Signature, Key Agreement"
    } else {
        "Digital Signature, Key Encipherment"
    };
    assert!(text.contains(usage), "{usage:?} missing from\n{text}");
}

fn sig_name(spec: KeySpec) -> &'static str {
    if spec.is_ec() {
        "ecdsa-with-SHA256"
    } else {
        "sha256WithRSAEncryption"
    }
}

// ---------- issuance, checked by OpenSSL and x509-parser ----------

#[test]
fn every_issuer_and_phone_key_type_gives_an_lsc_openssl_verifies() {
    for issuer_spec in ISSUER_SPECS {
        let issuer = capf_issuer(issuer_spec);
        for phone_spec in PHONE_SPECS {
            let key = phone_key(phone_spec);
            let device = "SEP00AABBCCDDEE";
            let lsc = issuer
                .issue_lsc(&key, &params(device, 365), now(), &mut serials())
                .unwrap();
            verify_signature(&lsc, issuer.signer().public_key()).unwrap();
            openssl_verify(issuer.certificate(), &[], &lsc);
            check_openssl_text(&lsc, &key, sig_name(issuer_spec));
            check_with_x509_parser(&lsc, issuer.certificate(), device, &key);
        }
    }
}

#[test]
fn lsc_signed_by_an_intermediate_ca_chains_to_the_root() {
    for (root_spec, inter_spec) in [
        (KeySpec::Rsa(RsaBits::B3072), KeySpec::Rsa(RsaBits::B2048)),
        (KeySpec::Ec(Curve::P384), KeySpec::Ec(Curve::P256)),
        (KeySpec::Rsa(RsaBits::B2048), KeySpec::Ec(Curve::P256)),
        (KeySpec::Ec(Curve::P256), KeySpec::Rsa(RsaBits::B2048)),
    ] {
        let (root, inter) = root_and_intermediate(root_spec, inter_spec);
        verify_signature(
            inter.certificate(),
            root.tbs_certificate().subject_public_key_info(),
        )
        .unwrap();
        openssl_verify(&root, &[], inter.certificate());
        for phone_spec in PHONE_SPECS {
            let key = phone_key(phone_spec);
            let lsc = inter
                .issue_lsc(&key, &params("CSFjsmith", 30), now(), &mut serials())
                .unwrap();
            // The Issuer is the intermediate's subject, not its issuer (capfd's bug).
            assert_eq!(
                lsc.tbs_certificate().issuer(),
                inter.certificate().tbs_certificate().subject()
            );
            assert_ne!(
                lsc.tbs_certificate().issuer(),
                root.tbs_certificate().subject()
            );
            openssl_verify(&root, &[inter.certificate()], &lsc);
            check_with_x509_parser(&lsc, inter.certificate(), "CSFjsmith", &key);
        }
    }
}

#[test]
fn sha384_and_sha512_are_explicit_options_openssl_accepts() {
    for (hash, rsa_name, ec_name) in [
        (
            SignatureHash::Sha384,
            "sha384WithRSAEncryption",
            "ecdsa-with-SHA384",
        ),
        (
            SignatureHash::Sha512,
            "sha512WithRSAEncryption",
            "ecdsa-with-SHA512",
        ),
    ] {
        for spec in [KeySpec::Rsa(RsaBits::B2048), KeySpec::Ec(Curve::P384)] {
            let key = issuer_key(spec).with_hash(hash);
            let cert = capf_test_support::ca_params("CAPF-00000001", Some(0))
                .self_signed(&key, now(), &mut serials())
                .unwrap();
            let issuer = Issuer::new(cert, Box::new(key)).unwrap();
            let phone = phone_key(KeySpec::Ec(Curve::P256));
            let lsc = issuer
                .issue_lsc(&phone, &params("TABX", 10), now(), &mut serials())
                .unwrap();
            openssl_verify(issuer.certificate(), &[], &lsc);
            let name = if spec.is_ec() { ec_name } else { rsa_name };
            assert!(openssl_text(&lsc).contains(name));
        }
    }
}

#[test]
fn validity_boundaries_one_and_1825_days_are_issued_and_zero_and_1826_rejected() {
    let issuer = capf_issuer(KeySpec::Ec(Curve::P256));
    let key = phone_key(KeySpec::Ec(Curve::P256));
    for days in [1, 1825] {
        let lsc = issuer
            .issue_lsc(
                &key,
                &params("SEP001122334455", days),
                now(),
                &mut serials(),
            )
            .unwrap();
        let (nb, na) = cert_info::validity(&lsc);
        assert_eq!(nb, now());
        assert_eq!(
            na.duration_since(nb).unwrap(),
            Duration::from_secs(days as u64 * 86_400)
        );
        openssl_verify(issuer.certificate(), &[], &lsc);
    }
    for days in [0, 1826, -1] {
        let err = ValidityDays::new(days).unwrap_err();
        assert!(err.to_string().contains("1 to 1825"));
    }
}

#[test]
fn serial_is_positive_and_non_zero_for_extreme_sources() {
    let issuer = capf_issuer(KeySpec::Ec(Curve::P256));
    let key = phone_key(KeySpec::Ec(Curve::P256));
    for bytes in [[0xffu8; 16], [0u8; 16], [0x80; 16]] {
        let lsc = issuer
            .issue_lsc(&key, &params("SEP001122334455", 5), now(), &mut || bytes)
            .unwrap();
        let serial = lsc.tbs_certificate().serial_number().as_bytes();
        assert!(!serial.is_empty() && serial.iter().any(|&b| b != 0));
        assert!(serial.len() <= 16 && serial[0] & 0x80 == 0, "{serial:02x?}");
        openssl_verify(issuer.certificate(), &[], &lsc);
    }
}

#[test]
fn rejects_bad_device_names_at_issuance() {
    let issuer = capf_issuer(KeySpec::Ec(Curve::P256));
    let key = phone_key(KeySpec::Ec(Curve::P256));
    for name in ["", "SEP\0", &"A".repeat(65), "bad name"] {
        let err = issuer
            .issue_lsc(
                &key,
                &LscParams {
                    device_name: name.into(),
                    ..LscParams::default()
                },
                now(),
                &mut serials(),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidDeviceName { .. }),
            "{name:?}: {err}"
        );
    }
}

// ---------- issuers ----------

#[test]
fn refuses_rsa_1024_and_p521_issuer_keys() {
    for spec in [KeySpec::Rsa(RsaBits::B1024), KeySpec::Ec(Curve::P521)] {
        let err = IssuerKey::from_pkcs8_pem(key_pem(spec)).unwrap_err();
        assert!(
            matches!(err, Error::IssuerKeyNotAllowed { spec: s } if s == spec),
            "{err}"
        );
    }
}

#[test]
fn issuer_rejects_a_key_that_is_not_the_certificates_and_a_non_ca_certificate() {
    let capf = capf_issuer(KeySpec::Ec(Curve::P256));
    let other = issuer_key(KeySpec::Ec(Curve::P384));
    let err = Issuer::new(capf.certificate().clone(), Box::new(other)).unwrap_err();
    assert!(matches!(err, Error::IssuerKeyMismatch));
    // An LSC is not a CA; even with the right key it cannot issue.
    let key = issuer_key(KeySpec::Ec(Curve::P384));
    let pk = PhonePublicKey::from_spki(capf_lsc::der::referenced::OwnedToRef::owned_to_ref(
        key.public_key(),
    ))
    .unwrap();
    let lsc = capf
        .issue_lsc(&pk, &params("SEP001122334455", 5), now(), &mut serials())
        .unwrap();
    assert!(matches!(
        Issuer::new(lsc, Box::new(key)),
        Err(Error::IssuerNotCa)
    ));
}

#[test]
fn generated_keys_round_trip_through_pkcs8_pem() {
    // EC only: never generate RSA keys in tests. A fixed-seed counter RNG is enough here.
    struct CounterRng(u64);
    impl rsa::rand_core::TryRng for CounterRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                *b = (self.try_next_u64()? >> 56) as u8;
            }
            Ok(())
        }
    }
    impl rsa::rand_core::TryCryptoRng for CounterRng {}
    for spec in [KeySpec::Ec(Curve::P256), KeySpec::Ec(Curve::P384)] {
        let key = IssuerKey::generate(spec, &mut CounterRng(7)).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let back = IssuerKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.spec(), spec);
    }
    assert!(matches!(
        IssuerKey::generate(KeySpec::Ec(Curve::P521), &mut CounterRng(1)),
        Err(Error::IssuerKeyNotAllowed { .. })
    ));
}

#[test]
fn rejects_pem_that_is_not_a_pkcs8_private_key() {
    let err = IssuerKey::from_pkcs8_pem(phone_key_pem(KeySpec::Ec(Curve::P256))).unwrap_err();
    assert!(matches!(err, Error::UnexpectedPemLabel { .. }), "{err}");
    assert!(IssuerKey::from_pkcs8_pem("not pem").is_err());
}

// ---------- the CAPF certificate ----------

#[test]
fn capf_certificate_has_the_14su2_extensions_and_passes_the_check() {
    for spec in ISSUER_SPECS {
        let key = issuer_key(spec);
        let mut p = CaCertificateParams::capf(0xdeadbeef);
        p.organization = "Example".into();
        p.country = "US".into();
        p.validity = ValidityDays::new(730).unwrap();
        let cert = p.self_signed(&key, now(), &mut serials()).unwrap();
        let report = check_capf_certificate(&cert, Some(key.public_key()), now()).unwrap();
        assert_eq!(report.common_name.as_deref(), Some("CAPF-deadbeef"));
        assert!(report.reserved_common_name && report.crl_sign && report.self_issued);
        assert_eq!(report.key, spec);
        openssl_verify(&cert, &[], &cert);
        let text = openssl_text(&cert);
        for needle in [
            "CA:TRUE, pathlen:0",
            "Digital Signature, Certificate Sign, CRL Sign",
            "Subject: C = US, O = Example, CN = CAPF-deadbeef",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }
}

#[test]
fn capf_check_explains_each_problem() {
    let key = issuer_key(KeySpec::Ec(Curve::P256));
    let cert = CaCertificateParams::capf(1)
        .self_signed(&key, now(), &mut serials())
        .unwrap();
    let (nb, na) = cert_info::validity(&cert);
    let problem = |c: &Certificate, k: Option<&SubjectPublicKeyInfoOwned>, t: SystemTime| {
        match check_capf_certificate(c, k, t) {
            Err(Error::CapfCertificate(p)) => p,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(
        problem(&cert, None, nb - Duration::from_secs(1)),
        CapfCertificateProblem::NotYetValid { .. }
    ));
    assert!(matches!(
        problem(&cert, None, na + Duration::from_secs(1)),
        CapfCertificateProblem::Expired { .. }
    ));
    let other = issuer_key(KeySpec::Ec(Curve::P384));
    assert_eq!(
        problem(&cert, Some(other.public_key()), now()),
        CapfCertificateProblem::KeyMismatch
    );
    // A root CA without a path length.
    let (root, inter) = root_and_intermediate(KeySpec::Ec(Curve::P256), KeySpec::Ec(Curve::P256));
    assert_eq!(
        problem(&root, None, now()),
        CapfCertificateProblem::PathLenNotZero { path_len: None }
    );
    // An LSC: CA:FALSE, and its KeyUsage lacks keyCertSign.
    let lsc = inter
        .issue_lsc(
            &phone_key(KeySpec::Rsa(RsaBits::B2048)),
            &params("SEP001122334455", 5),
            now(),
            &mut serials(),
        )
        .unwrap();
    let all = capf_certificate_problems(&lsc, None, now()).unwrap();
    assert_eq!(
        all,
        vec![
            CapfCertificateProblem::NotCa,
            CapfCertificateProblem::KeyUsageLacks {
                digital_signature: false,
                key_cert_sign: true
            },
        ]
    );
    assert!(
        Error::CapfCertificate(all[0].clone())
            .to_string()
            .contains("pathlen:0")
    );
}

/// Certificates made by OpenSSL with chosen extensions, for the checks of foreign input.
fn openssl_ca_cert(extensions: &str, digest: &str) -> Certificate {
    let dir = scratch_dir();
    let key = dir.join("key.pem");
    std::fs::write(&key, key_pem(KeySpec::Rsa(RsaBits::B2048))).unwrap();
    let conf = dir.join("req.cnf");
    std::fs::write(
        &conf,
        format!("[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n[dn]\nCN=CAPF-0badcafe\n[ext]\n{extensions}\n"),
    )
    .unwrap();
    let out = dir.join("cert.pem");
    let (ok, text) = openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-config",
        conf.to_str().unwrap(),
        digest,
        "-days",
        "3650",
        "-set_serial",
        "7",
        "-out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let cert = certificate_from_pem_or_der(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    cert
}

#[test]
fn capf_check_reports_missing_extensions_in_openssl_made_certificates() {
    // Checked after each certificate is made: openssl starts its validity at the second it
    // signs, which can be later than a time taken before it ran.
    let at = SystemTime::now;
    let no_bc = openssl_ca_cert("keyUsage=critical,digitalSignature,keyCertSign", "-sha256");
    assert_eq!(
        capf_certificate_problems(&no_bc, None, at()).unwrap(),
        vec![CapfCertificateProblem::BasicConstraintsMissing]
    );
    let no_ku = openssl_ca_cert("basicConstraints=critical,CA:TRUE,pathlen:0", "-sha256");
    assert_eq!(
        capf_certificate_problems(&no_ku, None, at()).unwrap(),
        vec![CapfCertificateProblem::KeyUsageMissing]
    );
    let no_ds = openssl_ca_cert(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=keyCertSign",
        "-sha256",
    );
    assert_eq!(
        capf_certificate_problems(&no_ds, None, at()).unwrap(),
        vec![CapfCertificateProblem::KeyUsageLacks {
            digital_signature: true,
            key_cert_sign: false
        }]
    );
    let good = openssl_ca_cert(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,keyEncipherment",
        "-sha256",
    );
    let spki = good.tbs_certificate().subject_public_key_info().clone();
    let report = check_capf_certificate(&good, Some(&spki), at()).unwrap();
    assert!(!report.crl_sign && report.reserved_common_name);
}

// ---------- signature verification ----------

#[test]
fn verifies_sha1_sha384_and_sha512_rsa_signatures_from_openssl_and_rejects_tampering() {
    for digest in ["-sha1", "-sha256", "-sha384", "-sha512"] {
        let cert = openssl_ca_cert("basicConstraints=critical,CA:TRUE", digest);
        let spki = cert.tbs_certificate().subject_public_key_info().clone();
        verify_signature(&cert, &spki).unwrap();
        let other = issuer_key(KeySpec::Rsa(RsaBits::B3072));
        assert!(matches!(
            verify_signature(&cert, other.public_key()),
            Err(Error::BadSignature)
        ));
        let ec = issuer_key(KeySpec::Ec(Curve::P256));
        assert!(matches!(
            verify_signature(&cert, ec.public_key()),
            Err(Error::SignatureKeyMismatch { .. })
        ));
    }
    // Flip one byte of an issued LSC's TBS: the signature no longer verifies.
    let issuer = capf_issuer(KeySpec::Ec(Curve::P384));
    let lsc = issuer
        .issue_lsc(
            &phone_key(KeySpec::Ec(Curve::P256)),
            &params("SEP001122334455", 5),
            now(),
            &mut serials(),
        )
        .unwrap();
    let mut der = lsc.to_der().unwrap();
    let pos = der
        .windows(15)
        .position(|w| w == b"SEP001122334455")
        .unwrap();
    der[pos + 3] = b'1';
    let tampered = Certificate::from_der(&der).unwrap();
    assert!(matches!(
        verify_signature(&tampered, issuer.signer().public_key()),
        Err(Error::BadSignature)
    ));
}

// ---------- phone keys ----------

fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    use capf_lsc::der::asn1::{BitString, UintRef};
    let key = rsa::pkcs1::RsaPublicKey {
        modulus: UintRef::new(modulus).unwrap(),
        public_exponent: UintRef::new(exponent).unwrap(),
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: capf_lsc::spki::AlgorithmIdentifierOwned {
            oid: "1.2.840.113549.1.1.1".parse().unwrap(),
            parameters: Some(capf_lsc::der::Any::null()),
        },
        subject_public_key: BitString::from_bytes(&key.to_der().unwrap()).unwrap(),
    };
    spki.to_der().unwrap()
}

#[test]
fn phone_keys_of_every_allowed_type_parse_and_match_their_spec() {
    for spec in PHONE_SPECS {
        let key = phone_key(spec);
        assert_eq!(key.spec(), spec);
        key.check_matches(spec).unwrap();
        let der = key.to_der().unwrap();
        assert_eq!(public_key_from_pem_or_der(&der).unwrap(), key);
        assert_eq!(
            public_key_from_pem_or_der(phone_key_pem(spec).as_bytes()).unwrap(),
            key
        );
    }
    let err = phone_key(KeySpec::Ec(Curve::P256))
        .check_matches(KeySpec::Rsa(RsaBits::B2048))
        .unwrap_err();
    assert!(err.to_string().contains("EC P-256") && err.to_string().contains("RSA-2048"));
}

#[test]
fn rejects_rsa_keys_of_other_sizes_or_bad_exponents() {
    let mut m512 = vec![0xc3u8; 64];
    m512[63] |= 1;
    assert!(matches!(
        PhonePublicKey::from_der(&rsa_spki(&m512, &[1, 0, 1])),
        Err(Error::UnsupportedRsaSize { bits: 512 })
    ));
    let mut m2047 = vec![0x7fu8; 256];
    m2047[255] |= 1;
    assert!(matches!(
        PhonePublicKey::from_der(&rsa_spki(&m2047, &[1, 0, 1])),
        Err(Error::UnsupportedRsaSize { bits: 2047 })
    ));
    let good = phone_key(KeySpec::Rsa(RsaBits::B2048));
    let der = good.to_der().unwrap();
    let spki = capf_lsc::spki::SubjectPublicKeyInfoRef::from_der(&der).unwrap();
    let pk = rsa::pkcs1::RsaPublicKey::<capf_lsc::der::asn1::UintRef<'_>>::from_der(
        spki.subject_public_key.raw_bytes(),
    )
    .unwrap();
    let n = pk.modulus.as_bytes();
    assert!(PhonePublicKey::from_der(&rsa_spki(n, &[1, 0, 1])).is_ok());
    let mut even = n.to_vec();
    *even.last_mut().unwrap() &= 0xfe;
    assert!(matches!(
        PhonePublicKey::from_der(&rsa_spki(&even, &[1, 0, 1])),
        Err(Error::MalformedPublicKey { .. })
    ));
    for e in [&[1u8, 0, 0][..], &[1], &[2], &[2, 0, 0, 0, 1]] {
        assert!(
            matches!(
                PhonePublicKey::from_der(&rsa_spki(n, e)),
                Err(Error::BadRsaExponent { .. })
            ),
            "{e:?}"
        );
    }
}

#[test]
fn rejects_ec_points_off_the_curve_unknown_curves_and_trailing_bytes() {
    let der = phone_key(KeySpec::Ec(Curve::P256)).to_der().unwrap();
    let mut off = der.clone();
    *off.last_mut().unwrap() ^= 1;
    assert!(matches!(
        PhonePublicKey::from_der(&off),
        Err(Error::InvalidEcPoint { curve: Curve::P256 })
    ));
    // secp256k1 (1.3.132.0.10) in place of prime256v1.
    let p256_oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let pos = der
        .windows(p256_oid.len())
        .position(|w| w == p256_oid)
        .unwrap();
    let mut k1 = der[..pos].to_vec();
    k1.extend([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]);
    k1.extend(&der[pos + p256_oid.len()..]);
    k1[1] -= 3;
    k1[3] -= 3;
    assert!(
        matches!(
            PhonePublicKey::from_der(&k1),
            Err(Error::UnsupportedCurve { .. })
        ),
        "{:?}",
        PhonePublicKey::from_der(&k1)
    );
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        PhonePublicKey::from_der(&trailing),
        Err(Error::Der { .. })
    ));
}

// ---------- online CA ----------

#[test]
fn online_ca_policy_accepts_rsa_lscs_and_rejects_ec_keys_and_lscs() {
    let issuer = capf_issuer(KeySpec::Rsa(RsaBits::B2048));
    let rsa_lsc = issuer
        .issue_lsc(
            &phone_key(KeySpec::Rsa(RsaBits::B2048)),
            &params("SEP001122334455", 5),
            now(),
            &mut serials(),
        )
        .unwrap();
    OnlineCaPolicy.check_lsc(&rsa_lsc).unwrap();
    let ec_lsc = issuer
        .issue_lsc(
            &phone_key(KeySpec::Ec(Curve::P256)),
            &params("SEP001122334455", 5),
            now(),
            &mut serials(),
        )
        .unwrap();
    assert!(matches!(
        OnlineCaPolicy.check_lsc(&ec_lsc),
        Err(Error::OnlineCaKeyUsage)
    ));
    assert!(OnlineCaPolicy.check_key(KeySpec::Ec(Curve::P384)).is_err());
}

// ---------- PEM / DER ----------

#[test]
fn certificates_round_trip_through_pem_and_der() {
    let issuer = capf_issuer(KeySpec::Ec(Curve::P256));
    let cert = issuer.certificate();
    let pem = certificate_to_pem(cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(&certificate_from_pem_or_der(pem.as_bytes()).unwrap(), cert);
    let der = certificate_to_der(cert).unwrap();
    assert_eq!(&certificate_from_pem_or_der(&der).unwrap(), cert);
    let chain = format!("{pem}{pem}");
    assert_eq!(certificates_from_pem(chain.as_bytes()).unwrap().len(), 2);
    assert!(matches!(
        certificate_from_pem_or_der(&der[..der.len() - 1]),
        Err(Error::Der { .. })
    ));
}

// ---------- PKCS#10 ----------

#[test]
fn capf_csr_verifies_with_openssl_and_carries_the_ca_extensions() {
    for spec in ISSUER_SPECS {
        let key = issuer_key(spec);
        let cert = capf_test_support::ca_params("CAPF-0000beef", Some(0))
            .self_signed(&key, now(), &mut serials())
            .unwrap();
        let csr = capf_csr(cert.tbs_certificate().subject(), &key).unwrap();
        let pem = csr_to_pem(&csr).unwrap();
        let dir = scratch_dir();
        let path = dir.join("csr.pem");
        std::fs::write(&path, &pem).unwrap();
        let (ok, text) = openssl(&[
            "req",
            "-verify",
            "-noout",
            "-text",
            "-in",
            path.to_str().unwrap(),
        ]);
        std::fs::remove_dir_all(&dir).ok();
        assert!(ok, "{text}");
        for needle in [
            "CA:TRUE, pathlen:0",
            "Digital Signature, Certificate Sign, CRL Sign",
            "CN = CAPF-0000beef",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let verified = VerifiedCsr::from_pem(&pem).unwrap();
        assert_eq!(verified.key_spec(), spec);
        verified.require_common_name("CAPF-0000beef").unwrap();
        assert!(matches!(
            verified.require_common_name("CAPF-00000000"),
            Err(Error::CsrSubjectMismatch { .. })
        ));
    }
}

#[test]
fn verifies_openssl_made_csrs_and_rejects_tampered_ones() {
    for (spec, digest) in [
        (KeySpec::Ec(Curve::P384), "-sha384"),
        (KeySpec::Rsa(RsaBits::B2048), "-sha256"),
        (KeySpec::Ec(Curve::P521), "-sha512"),
    ] {
        let dir = scratch_dir();
        let key = dir.join("key.pem");
        std::fs::write(&key, key_pem(spec)).unwrap();
        let out = dir.join("csr.der");
        let (ok, text) = openssl(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/O=Example/CN=SEP001122334455",
            digest,
            "-outform",
            "DER",
            "-out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{text}");
        let der = std::fs::read(&out).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let csr = VerifiedCsr::from_der(&der).unwrap();
        csr.require_key(spec).unwrap();
        csr.require_common_name("SEP001122334455").unwrap();
        assert!(csr.require_key(KeySpec::Rsa(RsaBits::B4096)).is_err());
        let mut bad = der.clone();
        let pos = bad.windows(7).position(|w| w == b"Example").unwrap();
        bad[pos] = b'e';
        assert!(matches!(
            VerifiedCsr::from_der(&bad),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            VerifiedCsr::from_der(&der[..der.len() - 2]),
            Err(Error::Der { .. })
        ));
    }
}

// ---------- property tests ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_device_names_and_validity_never_panic_and_accepted_ones_round_trip(
        name in prop_oneof![
            "[A-Za-z0-9._-]{1,70}",
            "SEP[0-9A-Fa-f]{12}",
            "(CSF|BOT|TCT|TAB)[a-z0-9]{0,20}",
            any::<String>(),
        ],
        days in prop_oneof![-5i64..=5, 1820i64..=1830, any::<i64>()],
    ) {
        let issuer = capf_issuer(KeySpec::Ec(Curve::P256));
        let key = phone_key(KeySpec::Ec(Curve::P256));
        let Ok(validity) = ValidityDays::new(days) else {
            prop_assert!(!(1..=1825).contains(&days));
            return Ok(());
        };
        let p = LscParams { device_name: name.clone(), validity };
        match issuer.issue_lsc(&key, &p, now(), &mut serials()) {
            Ok(lsc) => {
                let back = Certificate::from_der(&lsc.to_der().unwrap()).unwrap();
                prop_assert_eq!(cert_info::common_name(back.tbs_certificate().subject()), Some(name.clone()));
                prop_assert_eq!(back.tbs_certificate().subject_public_key_info(), key.spki());
                let (nb, na) = cert_info::validity(&back);
                prop_assert_eq!(nb, now());
                prop_assert_eq!(na, now() + validity.duration());
                verify_signature(&back, issuer.signer().public_key()).unwrap();
            }
            Err(Error::InvalidDeviceName { .. }) => prop_assert!(DeviceName::new(&name).is_err()),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

#[test]
fn openssl_req_verify_accepts_an_assembled_endpoint_csr() {
    let dir = scratch_dir();
    let device = DeviceName::new("SEP001A2B3C4D5E").unwrap();
    for spec in ISSUER_SPECS {
        let pem = key_pem(spec);
        let (_, private) = der::pem::decode_vec(pem.as_bytes()).unwrap();
        let spki = IssuerKey::from_pkcs8_pem(pem)
            .unwrap()
            .public_key()
            .to_der()
            .unwrap();
        let public = PhonePublicKey::from_der(&spki).unwrap();
        let info = endpoint_csr_info(&device, &public).unwrap();
        let signature = sign_endpoint_csr_info(&private, &info).unwrap();
        let csr = EndpointCsr::assemble(&info, &signature, &public).unwrap();
        let path = dir.join(format!("{spec}.csr"));
        std::fs::write(&path, csr.to_pem().unwrap()).unwrap();
        let (ok, text) = openssl(&[
            "req",
            "-verify",
            "-noout",
            "-text",
            "-in",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "openssl req -verify refused the {spec} CSR:\n{text}");
        assert!(
            text.contains("CN=SEP001A2B3C4D5E") || text.contains("CN = SEP001A2B3C4D5E"),
            "{text}"
        );
        assert!(text.contains("Requested Extensions"), "{text}");
        assert!(text.contains("IPSec End System"), "{text}");
    }
}
