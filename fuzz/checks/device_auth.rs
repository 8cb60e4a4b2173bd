//! Check of the `trust_device_auth` fuzz target; `tests/fuzz_replay_device_auth.rs` replays its
//! corpus in CI. Any input is allowed; only a broken property panics.

// Broken properties panic on purpose: that is what the fuzzer and the replay test look for.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use capf_trust::{
    CertificateKind, DeviceProof, Precedence, Purpose, Release, TrustStore, authenticate_device,
    names_device, parse_bundle,
};
use capf_wire::{Message, Payload, Strictness};

/// 2027-01-15: inside the vectors' LSC validity.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// CAPF-trust with the spec vectors' CAPF certificate, CAPF-trust-SUDI with their SUDI root.
fn store() -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let certs = parse_bundle(include_bytes!("device_auth_trust.pem")).expect("fixture PEM");
        let mut certs = certs.into_iter().map(|c| c.expect("fixture certificate"));
        let mut store = TrustStore::new(Release::default());
        store.insert_unchecked(&Purpose::CAPF_TRUST, certs.next().expect("CAPF"));
        store.insert_unchecked(&Purpose::CAPF_TRUST_SUDI, certs.next().expect("SUDI root"));
        store
    })
}

/// `trust_device_auth`: an AUTH_RESPONSE (any bytes) through the codec into authentication by
/// existing certificate (SIGNED_DATA, SHA2_SIGNED_DATA, SUDI_DATA parsed and verified).
/// Properties: never panics; what authenticates is an LSC (the store holds no MIC root) whose
/// Common Name names the device, in both precedences alike.
pub(crate) fn device_auth(data: &[u8]) {
    let Ok(message) = Message::decode_with(data, Strictness::Lenient) else {
        return;
    };
    let Payload::AuthResponse(a) = &message.payload else {
        return;
    };
    let proof = DeviceProof::from_auth_response(message.session_id, a);
    let lsc_first = authenticate_device(store(), &proof, Precedence::LscFirst, now());
    let mic_first = authenticate_device(store(), &proof, Precedence::MicFirst, now());
    assert_eq!(
        lsc_first.is_ok(),
        mic_first.is_ok(),
        "precedence changed the verdict"
    );
    if let Ok(by) = lsc_first {
        assert_eq!(by.kind, CertificateKind::Lsc);
        let cert = capf_trust::Cert::from_der(proof.certificate.expect("authenticated"))
            .expect("authenticated certificate parses");
        let cn = cert
            .common_name()
            .expect("authenticated certificate has a CN");
        assert!(names_device(by.kind, &cn, proof.device_name));
    }
}
