//! The signer backends (issue 19): RustCrypto, ring and (with the feature) aws-lc-rs write the
//! same certificate from the same PKCS#8 key but for the signature value, the RSA signatures
//! byte for byte, and OpenSSL verifies every one.

use capf_lsc::der::Encode;
use capf_lsc::*;
use capf_test_support::{ISSUER_SPECS, capf_issuer, key_pem, now, phone_key, serials};

use super::{openssl_text, openssl_verify, params};

/// The backends this build has.
fn backends() -> Vec<SignerBackend> {
    SignerBackend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

/// The digest each backend can sign `spec` with: every one for RSA, the curve's own for EC.
fn hashes(spec: KeySpec) -> Vec<SignatureHash> {
    match spec {
        KeySpec::Rsa(_) => vec![
            SignatureHash::Sha256,
            SignatureHash::Sha384,
            SignatureHash::Sha512,
        ],
        KeySpec::Ec(Curve::P384) => vec![SignatureHash::Sha384],
        KeySpec::Ec(_) => vec![SignatureHash::Sha256],
    }
}

#[test]
fn every_backend_writes_the_same_certificate_but_the_signature_and_openssl_verifies_it() {
    let phone = phone_key(KeySpec::Rsa(RsaBits::B2048));
    for spec in ISSUER_SPECS {
        for hash in hashes(spec) {
            let mut issued = Vec::new();
            for backend in backends() {
                let key = IssuerKey::from_pkcs8_pem(key_pem(spec))
                    .unwrap()
                    .with_hash(hash)
                    .with_backend(backend)
                    .unwrap();
                assert_eq!(key.backend(), backend);
                // The CAPF certificate itself, signed by this backend.
                let cert = capf_test_support::ca_params("CAPF-0000cafe", Some(0))
                    .self_signed(&key, now(), &mut serials())
                    .unwrap();
                openssl_verify(&cert, &[], &cert);
                let issuer = Issuer::new(cert, Box::new(key)).unwrap();
                let lsc = issuer
                    .issue_lsc(
                        &phone,
                        &params("SEP00AABBCCDDEE", 365),
                        now(),
                        &mut serials(),
                    )
                    .unwrap();
                verify_signature(&lsc, issuer.signer().public_key()).unwrap();
                openssl_verify(issuer.certificate(), &[], &lsc);
                issued.push((backend, issuer.certificate().clone(), lsc));
            }
            let (_, first_ca, first) = &issued[0];
            for (backend, ca, lsc) in &issued[1..] {
                let what = format!("{spec} {hash:?} {backend} against {}", issued[0].0);
                assert_eq!(
                    lsc.tbs_certificate().to_der().unwrap(),
                    first.tbs_certificate().to_der().unwrap(),
                    "{what}: the TBSCertificate"
                );
                assert_eq!(
                    lsc.signature_algorithm(),
                    first.signature_algorithm(),
                    "{what}"
                );
                assert_eq!(
                    ca.tbs_certificate().to_der().unwrap(),
                    first_ca.tbs_certificate().to_der().unwrap(),
                    "{what}: the CAPF certificate's TBSCertificate"
                );
                if spec.is_ec() {
                    // ECDSA signs with a random nonce.
                    assert_ne!(lsc.signature(), first.signature(), "{what}");
                } else {
                    // PKCS#1 v1.5 is deterministic: the whole certificate is the same.
                    assert_eq!(lsc.to_der().unwrap(), first.to_der().unwrap(), "{what}");
                    assert_eq!(ca.to_der().unwrap(), first_ca.to_der().unwrap(), "{what}");
                }
            }
        }
    }
}

#[test]
fn the_default_backend_signs_where_it_can_and_rustcrypto_elsewhere() {
    let default = SignerBackend::default_backend();
    assert_ne!(default, SignerBackend::RustCrypto);
    assert!(default.is_available());
    for spec in ISSUER_SPECS {
        let key = IssuerKey::from_pkcs8_pem(key_pem(spec)).unwrap();
        // Every LSC is SHA-256 (the guide); neither fast library signs P-384 with SHA-256.
        let expected = if spec == KeySpec::Ec(Curve::P384) {
            SignerBackend::RustCrypto
        } else {
            default
        };
        assert_eq!(key.backend(), expected, "{spec}");
        let key = key.with_hash(SignatureHash::Sha384);
        let expected = if spec == KeySpec::Ec(Curve::P256) {
            SignerBackend::RustCrypto
        } else {
            default
        };
        assert_eq!(key.backend(), expected, "{spec} with SHA-384");
    }
    // A generated key signs with the default backend too; its LSC verifies.
    let key = IssuerKey::generate(KeySpec::Ec(Curve::P256), &mut getrandom_free_rng()).unwrap();
    assert_eq!(key.backend(), default);
    let issuer = capf_issuer(KeySpec::Rsa(RsaBits::B2048));
    assert_eq!(
        issuer.signer().signature_algorithm().oid.to_string(),
        "1.2.840.113549.1.1.11"
    );
    let lsc = issuer
        .issue_lsc(
            &phone_key(KeySpec::Ec(Curve::P256)),
            &params("TABX", 10),
            now(),
            &mut serials(),
        )
        .unwrap();
    openssl_verify(issuer.certificate(), &[], &lsc);
    assert!(openssl_text(&lsc).contains("sha256WithRSAEncryption"));
}

#[test]
fn a_backend_that_cannot_sign_the_key_is_refused_by_name() {
    let p384 = IssuerKey::from_pkcs8_pem(key_pem(KeySpec::Ec(Curve::P384))).unwrap();
    let e = p384.with_backend(SignerBackend::Ring).unwrap_err();
    assert!(
        matches!(
            e,
            Error::SignerUnavailable {
                backend: SignerBackend::Ring,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("ring"), "{e}");
    if !SignerBackend::AwsLcRs.is_available() {
        let rsa = IssuerKey::from_pkcs8_pem(key_pem(KeySpec::Rsa(RsaBits::B2048))).unwrap();
        let e = rsa.with_backend(SignerBackend::AwsLcRs).unwrap_err();
        assert!(e.to_string().contains("aws-lc-rs"), "{e}");
    }
}

#[test]
fn backend_names_round_trip() {
    for backend in SignerBackend::ALL {
        assert_eq!(backend.as_str().parse::<SignerBackend>().unwrap(), backend);
        assert_eq!(backend.to_string(), backend.as_str());
    }
    assert_eq!(
        "AWS-LC-RS".parse::<SignerBackend>().unwrap(),
        SignerBackend::AwsLcRs
    );
    assert!(matches!(
        "openssl".parse::<SignerBackend>(),
        Err(Error::UnknownSignerBackend { .. })
    ));
}

/// A deterministic RNG for key generation in tests (the key's quality does not matter here).
fn getrandom_free_rng() -> impl rsa::rand_core::TryCryptoRng {
    struct Counter(u64);
    impl rsa::rand_core::TryRng for Counter {
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
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            for b in dest {
                *b = (self.try_next_u64()? >> 56) as u8;
            }
            Ok(())
        }
    }
    impl rsa::rand_core::TryCryptoRng for Counter {}
    Counter(7)
}
