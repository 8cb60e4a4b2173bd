//! Checks the capf-wire fuzz targets run; `tests/fuzz_replay_wire.rs` replays their corpora in CI.
//! Any input is allowed; only a broken property panics.

use capf_wire::{Deframer, Frame, Message, RawElement, Strictness, Tag, Value};

/// `wire_message`: decoding never panics, and whatever decodes re-encodes to the same bytes.
pub(crate) fn message(data: &[u8]) {
    for strictness in [Strictness::Strict, Strictness::Lenient] {
        if let Ok(m) = Message::decode_with(data, strictness) {
            assert_eq!(m.to_bytes(), data, "re-encoding differs ({strictness:?})");
            let owned = m.clone().into_owned();
            assert_eq!(owned, m);
        }
    }
}

/// `wire_deframer`: the first byte picks a chunk size; every frame the deframer returns is the
/// frame a one-shot parse of the same bytes gives, and nothing is buffered past one message.
pub(crate) fn deframer(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut deframer = Deframer::new(Strictness::Strict);
    let mut consumed = 0;
    for piece in stream.chunks(chunk) {
        let mut input = piece;
        while !input.is_empty() {
            let Ok((used, frame)) = deframer.push(input) else {
                return;
            };
            input = &input[used..];
            consumed += used;
            if let Some(frame) = frame {
                let len = frame.header.message_len();
                let whole = &stream[consumed - len..consumed];
                assert_eq!(Frame::parse(whole, Strictness::Strict).ok(), Some(frame));
            }
            assert!(deframer.buffered() <= capf_wire::MAX_MESSAGE_LEN);
        }
    }
    let _ = deframer.finish();
}

/// `wire_value`: the first byte is a tag, the rest its value. Typed value decoding never panics,
/// and a value that decodes survives a round trip inside an AUTH_RESPONSE.
pub(crate) fn value(data: &[u8]) {
    let Some((&tag, value)) = data.split_first() else {
        return;
    };
    let el = RawElement::new(Tag(tag), value);
    for strictness in [Strictness::Strict, Strictness::Lenient] {
        if Value::decode(&el, strictness).is_err() || Tag(tag) == Tag::DEVICE_NAME {
            continue;
        }
        let mut body = Vec::new();
        RawElement::new(Tag::DEVICE_NAME, &b"SEP001A2B3C4D5E\0"[..]).encode(&mut body);
        el.encode(&mut body);
        if body.len() > capf_wire::MAX_BODY_LEN {
            continue;
        }
        let mut bytes = vec![0x55, 2, 0, 0, 0, 1];
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        if let Ok(m) = Message::decode_with(&bytes, strictness) {
            assert_eq!(m.to_bytes(), bytes);
        }
    }
}
