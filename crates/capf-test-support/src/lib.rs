#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A test-support crate: a broken fixture is a bug in this crate, so its helpers panic (in
// `fixture`, once) instead of returning errors every test would have to unwrap.
#![allow(clippy::panic)]

pub mod browser;
pub mod certsrv;
pub mod postgres;
pub mod slapd;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_lsc::x509_cert::Certificate;
use capf_lsc::{
    CaCertificateParams, Curve, Issuer, IssuerKey, KeySpec, LscSigner, PhonePublicKey, RsaBits,
    ValidityDays,
};

/// Every key type the issue names for issuers: RSA 2048/3072/4096, P-256, P-384.
pub const ISSUER_SPECS: [KeySpec; 5] = [
    KeySpec::Rsa(RsaBits::B2048),
    KeySpec::Rsa(RsaBits::B3072),
    KeySpec::Rsa(RsaBits::B4096),
    KeySpec::Ec(Curve::P256),
    KeySpec::Ec(Curve::P384),
];

/// Every key type a phone may be asked for: RSA 1024/2048/3072/4096, P-256, P-384, P-521.
pub const PHONE_SPECS: [KeySpec; 7] = [
    KeySpec::Rsa(RsaBits::B1024),
    KeySpec::Rsa(RsaBits::B2048),
    KeySpec::Rsa(RsaBits::B3072),
    KeySpec::Rsa(RsaBits::B4096),
    KeySpec::Ec(Curve::P256),
    KeySpec::Ec(Curve::P384),
    KeySpec::Ec(Curve::P521),
];

/// The PKCS#8 PEM private key fixture for `spec` (every spec of [`PHONE_SPECS`]; RSA-1024
/// and P-521 exist to test that they are refused as issuer keys).
pub fn key_pem(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Rsa(RsaBits::B1024) => include_str!("../fixtures/rsa-1024.pem"),
        KeySpec::Rsa(RsaBits::B2048) => include_str!("../fixtures/rsa-2048.pem"),
        KeySpec::Rsa(RsaBits::B3072) => include_str!("../fixtures/rsa-3072.pem"),
        KeySpec::Rsa(RsaBits::B4096) => include_str!("../fixtures/rsa-4096.pem"),
        KeySpec::Ec(Curve::P256) => include_str!("../fixtures/p256.pem"),
        KeySpec::Ec(Curve::P384) => include_str!("../fixtures/p384.pem"),
        KeySpec::Ec(Curve::P521) => include_str!("../fixtures/p521.pem"),
    }
}

/// A second key, for intermediate CAs: RSA-2048 for RSA specs, P-256 for EC specs.
pub fn intermediate_key_pem(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Rsa(_) => include_str!("../fixtures/intermediate-rsa-2048.pem"),
        KeySpec::Ec(_) => include_str!("../fixtures/intermediate-p256.pem"),
    }
}

/// The PEM public key of a phone for `spec` (a key distinct from every issuer key).
pub fn phone_key_pem(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Rsa(RsaBits::B1024) => include_str!("../fixtures/phone-rsa-1024.pub.pem"),
        KeySpec::Rsa(RsaBits::B2048) => include_str!("../fixtures/phone-rsa-2048.pub.pem"),
        KeySpec::Rsa(RsaBits::B3072) => include_str!("../fixtures/phone-rsa-3072.pub.pem"),
        KeySpec::Rsa(RsaBits::B4096) => include_str!("../fixtures/phone-rsa-4096.pub.pem"),
        KeySpec::Ec(Curve::P256) => include_str!("../fixtures/phone-p256.pub.pem"),
        KeySpec::Ec(Curve::P384) => include_str!("../fixtures/phone-p384.pub.pem"),
        KeySpec::Ec(Curve::P521) => include_str!("../fixtures/phone-p521.pub.pem"),
    }
}

/// The value of a step over this crate's own embedded fixtures. They never come from input,
/// and the tests below build every one, so a failure here is a bug in this crate.
fn fixture<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("test fixture {what}: {e}"))
}

/// The phone public key for `spec`, parsed.
pub fn phone_key(spec: KeySpec) -> PhonePublicKey {
    fixture("phone key", PhonePublicKey::from_pem(phone_key_pem(spec)))
}

/// The issuer key fixture for `spec` (one of [`ISSUER_SPECS`]), signing with SHA-256.
pub fn issuer_key(spec: KeySpec) -> IssuerKey {
    fixture("issuer key", IssuerKey::from_pkcs8_pem(key_pem(spec)))
}

/// The fixed "now" of tests: 2026-01-01T00:00:00Z.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A deterministic clock starting at [`now`], advancing one second per call.
#[derive(Debug, Clone)]
pub struct TestClock(SystemTime);

impl Default for TestClock {
    fn default() -> Self {
        TestClock(now())
    }
}

impl TestClock {
    /// The current time, then advances by one second.
    pub fn tick(&mut self) -> SystemTime {
        let t = self.0;
        self.0 += Duration::from_secs(1);
        t
    }
}

/// A deterministic serial source: 1, 2, 3... as 16 big-endian bytes.
pub fn serials() -> impl FnMut() -> [u8; 16] {
    let mut n: u128 = 0;
    move || {
        n += 1;
        n.to_be_bytes()
    }
}

/// The subject fields tests use for CA certificates (O, OU, L, ST, C filled in).
pub fn ca_params(common_name: &str, path_len: Option<u8>) -> CaCertificateParams {
    CaCertificateParams {
        common_name: common_name.to_owned(),
        organization: "Example Health".to_owned(),
        organizational_unit: "Voice".to_owned(),
        locality: "Wellington".to_owned(),
        state: "Wellington".to_owned(),
        country: "NZ".to_owned(),
        path_len,
        validity: ValidityDays::MAX,
    }
}

/// A self-signed CAPF certificate (CN `CAPF-0000cafe`, pathlen 0) over the fixture key for
/// `spec`, valid from [`now`], and the [`Issuer`] that signs LSCs with it.
pub fn capf_issuer(spec: KeySpec) -> Issuer {
    let key = issuer_key(spec);
    let mut params = ca_params("", Some(0));
    params.common_name = CaCertificateParams::capf(0xcafe).common_name;
    let cert = fixture(
        "self-signed CAPF certificate",
        params.self_signed(&key, now(), &mut serials()),
    );
    fixture("CAPF issuer", Issuer::new(cert, Box::new(key)))
}

/// A root CA (no path-length limit, key `root`) and an intermediate CA below it (pathlen 0,
/// the second fixture key of `intermediate`'s type): the root certificate and the
/// intermediate's [`Issuer`].
pub fn root_and_intermediate(root: KeySpec, intermediate: KeySpec) -> (Certificate, Issuer) {
    let root_key = issuer_key(root);
    let root_cert = fixture(
        "root certificate",
        ca_params("Example Root CA", None).self_signed(&root_key, now(), &mut serials()),
    );
    let root_issuer = fixture(
        "root issuer",
        Issuer::new(root_cert.clone(), Box::new(root_key)),
    );
    let inter_key = fixture(
        "intermediate key",
        IssuerKey::from_pkcs8_pem(intermediate_key_pem(intermediate)),
    );
    let inter_cert = fixture(
        "intermediate certificate",
        ca_params("Example Issuing CA", Some(0)).issue(
            inter_key.public_key(),
            &root_issuer,
            now(),
            &mut serials(),
        ),
    );
    let issuer = fixture(
        "intermediate issuer",
        Issuer::new(inter_cert, Box::new(inter_key)),
    );
    (root_cert, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_builds() {
        for spec in PHONE_SPECS {
            assert_eq!(phone_key(spec).spec(), spec);
        }
        for spec in ISSUER_SPECS {
            assert_eq!(issuer_key(spec).spec(), spec);
            let capf = capf_issuer(spec);
            assert_eq!(
                capf.certificate().tbs_certificate().issuer(),
                capf.certificate().tbs_certificate().subject()
            );
            for intermediate in [KeySpec::Rsa(RsaBits::B2048), KeySpec::Ec(Curve::P256)] {
                let (root, issuer) = root_and_intermediate(spec, intermediate);
                assert_eq!(
                    issuer.certificate().tbs_certificate().issuer(),
                    root.tbs_certificate().subject()
                );
            }
        }
    }
}
