//! Property tests: round trips of built messages, and arbitrary bytes never panic.

use capf_wire::{
    AuthRequest, AuthResponse, AuthType, CertificateType, CertificateValue, Curve, Deframer,
    DeleteCertificateRequest, DeleteCertificateResponse, EndSession, FetchCertificateRequest,
    FetchCertificateResponse, HashAlgorithm, KeyGenRequest, KeyGenResponse, Message, Payload,
    Reason, RequestInProgress, Sha2SignedData, StoreCertificateRequest, StoreCertificateResponse,
    Strictness, SudiData,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn device_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn certificate() -> impl Strategy<Value = CertificateValue<'static>> {
    (any::<u8>(), bytes(1200))
        .prop_map(|(t, der)| CertificateValue::new(CertificateType(t), der).unwrap())
}

fn auth_response() -> impl Strategy<Value = Payload<'static>> {
    (
        device_name(),
        1u8..=3,
        proptest::option::of("[0-9]{0,10}"),
        proptest::option::of(certificate()),
        proptest::option::of(bytes(300)),
        proptest::option::of((any::<u8>(), bytes(300))),
        proptest::option::of((bytes(900), bytes(256), bytes(256))),
    )
        .prop_map(|(name, version, password, cert, sig, sha2, sudi)| {
            let mut m = AuthResponse::new(name, version).unwrap();
            if let Some(p) = password {
                m = m.with_password(p).unwrap();
            }
            if let Some(c) = cert {
                m = m.with_certificate(c).unwrap();
            }
            if let Some(s) = sig {
                m = m.with_signed_data(s).unwrap();
            }
            if let Some((h, s)) = sha2 {
                m = m
                    .with_sha2_signed_data(Sha2SignedData::new(HashAlgorithm(h), s).unwrap())
                    .unwrap();
            }
            if let Some((c, s1, s2)) = sudi {
                m = m
                    .with_sudi_data(SudiData::new(&c, &s1, &s2).unwrap())
                    .unwrap();
            }
            m.into()
        })
}

fn payload() -> impl Strategy<Value = Payload<'static>> {
    let reason = any::<u8>().prop_map(Reason);
    prop_oneof![
        (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(|(v, t)| {
            let m = AuthRequest::new(v);
            match t {
                Some(t) => m.with_auth_type(AuthType(t)).into(),
                None => m.into(),
            }
        }),
        auth_response(),
        any::<u16>().prop_map(|b| KeyGenRequest::rsa(b).into()),
        any::<u16>().prop_map(|b| KeyGenRequest::rsa_key_size_only(b).into()),
        any::<u8>().prop_map(|c| KeyGenRequest::ec(Curve(c)).into()),
        bytes(600).prop_map(|k| KeyGenResponse::with_public_key(k).unwrap().into()),
        reason
            .clone()
            .prop_map(|r| KeyGenResponse::failure(r).into()),
        certificate().prop_map(|c| StoreCertificateRequest::new(c).unwrap().into()),
        reason
            .clone()
            .prop_map(|r| StoreCertificateResponse::new(r).into()),
        Just(FetchCertificateRequest::new().into()),
        certificate().prop_map(|c| FetchCertificateResponse::found(c).unwrap().into()),
        reason
            .clone()
            .prop_map(|r| FetchCertificateResponse::not_found(r).into()),
        Just(DeleteCertificateRequest::new().into()),
        reason
            .clone()
            .prop_map(|r| DeleteCertificateResponse::new(r).into()),
        reason.clone().prop_map(|r| EndSession::new(r).into()),
        Just(RequestInProgress::new().into()),
        // The project extension (spec 16).
        (capf_wire::MIN_RETRY_DELAY_SECS..=capf_wire::MAX_RETRY_DELAY_SECS).prop_map(|d| {
            capf_wire::RetryLater::new(capf_wire::RetryDelay::new(d).unwrap()).into()
        }),
        proptest::collection::vec(any::<u8>(), 1..1200).prop_map(|c| {
            capf_wire::SignCertRequest::new(capf_wire::CsrInfo::new(c).unwrap()).into()
        }),
        proptest::collection::vec(any::<u8>(), 1..=capf_wire::MAX_CSR_SIGNATURE_LEN).prop_map(
            |s| {
                capf_wire::SignCertResponse::signed(capf_wire::CsrSignature::new(s).unwrap())
                    .unwrap()
                    .into()
            }
        ),
        reason.prop_map(|r| capf_wire::SignCertResponse::failure(r).into()),
    ]
}

/// Splits `data` at the given cut points and feeds the pieces to a deframer.
fn deframe_chunked(data: &[u8], cuts: &[usize]) -> Result<Vec<Message<'static>>, capf_wire::Error> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    let mut deframer = Deframer::new(Strictness::Strict);
    let mut out = Vec::new();
    for w in points.windows(2) {
        let mut input = &data[w[0]..w[1]];
        while !input.is_empty() {
            let (used, frame) = deframer.push(input)?;
            input = &input[used..];
            if let Some(frame) = frame {
                out.push(Message::from_frame(&frame)?.into_owned());
            }
            assert!(deframer.buffered() <= capf_wire::MAX_MESSAGE_LEN);
        }
    }
    deframer.finish()?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_is_identity(session_id in any::<u32>(), payload in payload()) {
        let m = Message::new(session_id, payload);
        let bytes = m.to_bytes();
        prop_assert!(bytes.len() <= capf_wire::MAX_MESSAGE_LEN);
        let back = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn messages_survive_any_chunking(
        msgs in proptest::collection::vec((any::<u32>(), payload()), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let msgs: Vec<Message<'static>> = msgs.into_iter().map(|(s, p)| Message::new(s, p)).collect();
        let stream: Vec<u8> = msgs.iter().flat_map(Message::to_bytes).collect();
        prop_assert_eq!(deframe_chunked(&stream, &cuts).unwrap(), msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_reencodes_exactly(data in bytes(2048)) {
        for strictness in [Strictness::Strict, Strictness::Lenient] {
            if let Ok(m) = Message::decode_with(&data, strictness) {
                prop_assert_eq!(m.to_bytes(), data.clone());
            }
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        session_id in any::<u32>(),
        payload in payload(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut bytes = Message::new(session_id, payload).to_bytes();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        let one_shot = Message::decode(&bytes);
        if let Ok(m) = &one_shot {
            prop_assert_eq!(m.to_bytes(), bytes.clone());
        }
        // The deframer agrees with the one-shot decoder on a single message.
        let streamed = deframe_chunked(&bytes, &cuts);
        match (&one_shot, &streamed) {
            (Ok(m), Ok(v)) => prop_assert_eq!(v.as_slice(), std::slice::from_ref(m)),
            (Err(_), Err(_)) => {}
            // A one-shot decode of trailing garbage fails where the stream sees a second message.
            (Err(capf_wire::Error::TrailingBytes { .. }), _) => {}
            (a, b) => prop_assert!(false, "one-shot {a:?} but streamed {b:?}"),
        }
    }
}
