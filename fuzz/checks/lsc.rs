//! Checks of the capf-lsc fuzz targets; `tests/fuzz_replay_lsc.rs` replays their corpora in
//! CI. Any input is allowed; only a broken property panics.

#![allow(dead_code)] // each fuzz target binary uses one of the checks

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use capf_lsc::der::{Decode, Encode};
use capf_lsc::x509_cert::Certificate;
use capf_lsc::{
    CaCertificateParams, Issuer, IssuerKey, KeySpec, LscParams, PhonePublicKey, ValidityDays,
    VerifiedCsr, cert_info, verify_signature,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A P-256 CAPF issuer over the committed fixture key (built once).
fn issuer() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let key = IssuerKey::from_pkcs8_pem(include_str!(
            "../../crates/capf-test-support/fixtures/p256.pem"
        ))
        .expect("fixture key");
        let cert = CaCertificateParams::capf(1)
            .self_signed(&key, now(), &mut || [7u8; 16])
            .expect("CAPF certificate");
        Issuer::new(cert, Box::new(key)).expect("issuer")
    })
}

/// `lsc_spki`: a phone-supplied SubjectPublicKeyInfo (KEY_GEN_RESPONSE PUBLIC_KEY).
/// Properties: an accepted key re-encodes to exactly the input (DER is canonical), parses
/// again to the same key and spec, matches its own spec; an LSC issued for it verifies and
/// carries exactly that key.
pub(crate) fn spki(data: &[u8]) {
    let Ok(key) = PhonePublicKey::from_der(data) else {
        return;
    };
    let der = key.to_der().expect("an accepted key re-encodes");
    assert_eq!(der, data, "accepted SPKI is not canonical DER");
    let again = PhonePublicKey::from_der(&der).expect("re-encoded key parses");
    assert_eq!(again, key);
    assert_eq!(
        KeySpec::of_spki(capf_lsc::spki::SubjectPublicKeyInfoRef::from_der(&der).expect("parses"))
            .ok(),
        Some(key.spec())
    );
    key.check_matches(key.spec())
        .expect("a key matches its own spec");
    let issuer = issuer();
    let params = LscParams {
        device_name: "SEP001122334455".into(),
        validity: ValidityDays::MIN,
    };
    let lsc = issuer
        .issue_lsc(&key, &params, now(), &mut || [9u8; 16])
        .expect("an accepted key can be issued an LSC");
    let back = Certificate::from_der(&lsc.to_der().expect("encodes")).expect("LSC parses back");
    assert_eq!(back.tbs_certificate().subject_public_key_info(), key.spki());
    verify_signature(&back, issuer.signer().public_key()).expect("LSC verifies");
    assert_eq!(cert_info::validity(&back).0, now());
}

/// `lsc_pkcs10`: a PKCS#10 request someone hands in (DER, or PEM text).
/// Properties: an accepted request's signature verified, so re-encoding gives the input
/// back; its key spec is the spec of its key; it matches its own key spec and CN.
pub(crate) fn pkcs10(data: &[u8]) {
    // PEM text may carry explanatory text before its BEGIN line (RFC 7468 section 2).
    let pem_text = core::str::from_utf8(data)
        .ok()
        .filter(|text| text.contains("-----BEGIN"));
    let parsed = match pem_text {
        Some(text) => VerifiedCsr::from_pem(text),
        None => VerifiedCsr::from_der(data),
    };
    let Ok(csr) = parsed else {
        return;
    };
    let der = csr
        .request()
        .to_der()
        .expect("an accepted request re-encodes");
    if pem_text.is_none() {
        assert_eq!(der, data, "accepted PKCS#10 is not canonical DER");
    }
    let again = VerifiedCsr::from_der(&der).expect("re-encoded request verifies");
    assert_eq!(again, csr);
    csr.require_key(csr.key_spec()).expect("own key spec");
    if let Some(cn) = csr.common_name() {
        csr.require_common_name(&cn).expect("own CN");
    }
}
