//! Captured CAPF traffic as serde views: each message of a plaintext byte stream with its
//! header and elements, typed values named as the spec names them, certificates and keys
//! summarised; the recorded sessions of a vectors file checked against their expectations.
//!
//! This lives here, not in capf-wire, because the summaries read X.509 (x509-cert through
//! capf-lsc), which capf-wire (level 1, `no_std`, no dependencies) must not pull in.

use std::fmt;

use base64::Engine;
use capf_lsc::spki::SubjectPublicKeyInfoRef;
use capf_lsc::x509_cert::Certificate;
use capf_wire::{Deframer, Frame, HashAlgorithm, Message, RawElement, Strictness, Tag, Value};
use der::Decode;
use der::asn1::{ObjectIdentifier, UintRef};
use der::referenced::OwnedToRef;
use serde::Serialize;

use crate::Error;

/// Bytes from hex text, whitespace and colons ignored (as `xxd -p` or Wireshark copy it).
///
/// # Errors
/// [`Error::HexDigit`], [`Error::HexOddLength`].
pub fn parse_hex(text: &[u8]) -> Result<Vec<u8>, Error> {
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if let Some((position, &b)) = digits
        .iter()
        .enumerate()
        .find(|(_, b)| !b.is_ascii_hexdigit())
    {
        return Err(Error::HexDigit {
            found: char::from(b),
            position,
        });
    }
    if !digits.len().is_multiple_of(2) {
        return Err(Error::HexOddLength {
            digits: digits.len(),
        });
    }
    hex::decode(&digits).map_err(|_| Error::HexOddLength {
        digits: digits.len(),
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One message: its offset in the stream, header and elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameView {
    /// Where the message starts in the stream.
    pub offset: usize,
    /// The protocol id (always [`capf_wire::PROTOCOL_ID`]).
    pub protocol_id: u8,
    /// The command number.
    pub command: u8,
    /// The command's name, when the spec names it.
    pub command_name: Option<&'static str>,
    /// The session id.
    pub session_id: u32,
    /// The body length.
    pub length: u16,
    /// The elements, in wire order.
    pub elements: Vec<ElementEntry>,
}

impl FrameView {
    /// The view of `frame`, found at `offset` of its stream.
    pub fn new(offset: usize, frame: &Frame<'_>) -> Self {
        FrameView {
            offset,
            protocol_id: capf_wire::PROTOCOL_ID,
            command: frame.header.command.0,
            command_name: frame.header.command.name(),
            session_id: frame.header.session_id,
            length: frame.header.length,
            elements: frame
                .elements()
                .map(|el| match el {
                    Ok(el) => ElementEntry::Element(ElementView::new(&el, frame.strictness)),
                    Err(e) => ElementEntry::Error {
                        error: e.to_string(),
                    },
                })
                .collect(),
        }
    }
}

/// An element, or where the element walk failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ElementEntry {
    /// An element.
    Element(ElementView),
    /// The TLV walk failed here.
    Error {
        /// What is wrong.
        error: String,
    },
}

/// An element: tag, name, length and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ElementView {
    /// The tag number.
    pub tag: u8,
    /// The tag's name, when the spec names it.
    pub name: Option<&'static str>,
    /// The value's length.
    pub length: usize,
    /// The value, by its type.
    #[serde(flatten)]
    pub value: ValueView,
}

impl ElementView {
    /// The view of `el`, its value decoded with `strictness`.
    pub fn new(el: &RawElement<'_>, strictness: Strictness) -> Self {
        ElementView {
            tag: el.tag.0,
            name: el.tag.name(),
            length: el.value.len(),
            value: ValueView::new(el, strictness),
        }
    }
}

/// A signature block (of SHA2_SIGNED_DATA's kind, inside SUDI_DATA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignatureView {
    /// The hash algorithm number.
    pub hash_algorithm: u8,
    /// Its name, when the spec names it.
    pub hash_algorithm_name: Option<&'static str>,
    /// The signature, base64.
    pub signature_base64: String,
}

/// The certificate inside SUDI_DATA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SudiCertificateView {
    /// The byte before the DER.
    pub lead_byte: u8,
    /// The DER, base64.
    pub der_base64: String,
    /// [`certificate_summary`] of the DER.
    pub summary: Option<String>,
}

/// An element's value, by its type (JSON fields follow the element's tag, name and length).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ValueView {
    /// A number, with its name when it is a named code (REASON, AUTH_TYPE, ...).
    Number {
        /// The number.
        value: u32,
        /// Its name, when the spec names it.
        #[serde(skip_serializing_if = "Option::is_none")]
        value_name: Option<&'static str>,
    },
    /// Text (DEVICE_NAME, PASSWORD, REASON_INFO), or a value shown by its debug form.
    Text {
        /// The text.
        value: String,
    },
    /// CERTIFICATE: the inner header and the DER.
    Certificate {
        /// The inner header's marker.
        inner_marker: u8,
        /// The inner header's length.
        inner_length: u16,
        /// The certificate type number.
        certificate_type: u8,
        /// Its name, when the spec names it.
        certificate_type_name: Option<&'static str>,
        /// The DER, base64.
        der_base64: String,
        /// [`certificate_summary`] of the DER.
        summary: Option<String>,
    },
    /// SHA2_SIGNED_DATA.
    Sha2SignedData {
        /// The hash algorithm number.
        hash_algorithm: u8,
        /// Its name, when the spec names it.
        hash_algorithm_name: Option<&'static str>,
        /// The signature's length.
        signature_length: usize,
        /// The signature, base64.
        signature_base64: String,
    },
    /// SUDI_DATA: the SUDI certificate and its two signatures.
    SudiData {
        /// The certificate.
        certificate: SudiCertificateView,
        /// SIGNED_DATA's block.
        signed_data: SignatureView,
        /// SHA2_SIGNED_DATA's block.
        sha2_signed_data: SignatureView,
    },
    /// CSR_INFO: the DER CertificationRequestInfo the server asks the phone to sign (spec 16).
    CsrInfo {
        /// The DER, base64.
        der_base64: String,
        /// [`csr_info_summary`] of the DER.
        summary: Option<String>,
    },
    /// CSR_SIGNATURE: the phone's signature over CSR_INFO (spec 16).
    CsrSignature {
        /// The signature's length.
        signature_length: usize,
        /// The signature, base64.
        signature_base64: String,
    },
    /// Bytes (PUBLIC_KEY with its [`key_summary`], SIGNED_DATA, unknown tags).
    Opaque {
        /// The bytes, base64.
        base64: String,
        /// For PUBLIC_KEY: the key, or why it is not a SubjectPublicKeyInfo.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A value the decoder refused (strict mode rejects the message before this is shown).
    Error {
        /// What is wrong.
        error: String,
    },
}

fn signature(block: capf_wire::SudiBlock<'_>) -> SignatureView {
    SignatureView {
        hash_algorithm: block.lead,
        hash_algorithm_name: HashAlgorithm(block.lead).name(),
        signature_base64: b64(block.data),
    }
}

impl ValueView {
    /// The value of `el`, decoded with `strictness`.
    pub fn new(el: &RawElement<'_>, strictness: Strictness) -> Self {
        let named = |value: u8, value_name: Option<&'static str>| ValueView::Number {
            value: value.into(),
            value_name,
        };
        match Value::decode(el, strictness) {
            Ok(Value::Reason(r)) => named(r.0, r.name()),
            Ok(Value::AuthType(v)) => named(v.0, v.name()),
            Ok(Value::KeyType(v)) => named(v.0, v.name()),
            Ok(Value::Curve(v)) => named(v.0, v.name()),
            Ok(Value::CertificateType(v)) => named(v.0, v.name()),
            Ok(Value::Version(v)) => named(v, None),
            Ok(Value::KeySize(v)) => ValueView::Number {
                value: v.into(),
                value_name: None,
            },
            Ok(Value::RetryDelay(d)) => ValueView::Number {
                value: d.seconds(),
                value_name: None,
            },
            Ok(Value::CsrInfo(c)) => ValueView::CsrInfo {
                der_base64: b64(c.as_bytes()),
                summary: csr_info_summary(c.as_bytes()),
            },
            Ok(Value::CsrSignature(s)) => ValueView::CsrSignature {
                signature_length: s.as_bytes().len(),
                signature_base64: b64(s.as_bytes()),
            },
            Ok(Value::Text(s)) => ValueView::Text {
                value: s.into_owned(),
            },
            Ok(Value::Certificate(c)) => ValueView::Certificate {
                inner_marker: c.marker(),
                inner_length: c.inner_length(),
                certificate_type: c.certificate_type().0,
                certificate_type_name: c.certificate_type().name(),
                der_base64: b64(c.der()),
                summary: certificate_summary(c.der()),
            },
            Ok(Value::Sha2SignedData(s)) => ValueView::Sha2SignedData {
                hash_algorithm: s.hash_algorithm().0,
                hash_algorithm_name: s.hash_algorithm().name(),
                signature_length: s.signature().len(),
                signature_base64: b64(s.signature()),
            },
            Ok(Value::SudiData(s)) => ValueView::SudiData {
                certificate: SudiCertificateView {
                    lead_byte: s.certificate().lead,
                    der_base64: b64(s.certificate().data),
                    summary: certificate_summary(s.certificate().data),
                },
                signed_data: signature(s.signed_data()),
                sha2_signed_data: signature(s.sha2_signed_data()),
            },
            Ok(Value::Opaque(bytes)) => ValueView::Opaque {
                base64: b64(&bytes),
                key: (el.tag == Tag::PUBLIC_KEY).then(|| {
                    SubjectPublicKeyInfoRef::from_der(&bytes)
                        .map(key_summary)
                        .unwrap_or_else(|e| format!("not a SubjectPublicKeyInfo: {e}"))
                }),
            },
            Ok(other) => ValueView::Text {
                value: format!("{other:?}"),
            },
            // Already rejected by the message decoder in strict mode; shown rather than hidden.
            Err(e) => ValueView::Error {
                error: e.to_string(),
            },
        }
    }
}

/// One line about a DER certificate (subject, issuer, serial, validity, key), if it parses.
pub fn certificate_summary(der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    Some(format!(
        "subject={}; issuer={}; serial={}; not_before={}; not_after={}; key={}",
        tbs.subject(),
        tbs.issuer(),
        tbs.serial_number(),
        tbs.validity().not_before,
        tbs.validity().not_after,
        key_summary(tbs.subject_public_key_info().owned_to_ref()),
    ))
}

/// One line about a DER PKCS#10 CertificationRequestInfo (subject, key, how many attributes),
/// if it parses.
pub fn csr_info_summary(der: &[u8]) -> Option<String> {
    let info = capf_lsc::x509_cert::request::CertReqInfo::from_der(der).ok()?;
    Some(format!(
        "subject={}; key={}; attributes={}",
        info.subject,
        key_summary(info.public_key.owned_to_ref()),
        info.attributes.len(),
    ))
}

/// The key algorithm and size or curve of a SubjectPublicKeyInfo (`RSA 2048 bits`,
/// `EC P-256`), whatever its size: a capture shows what the peer sent, supported or not.
pub fn key_summary(spki: SubjectPublicKeyInfoRef<'_>) -> String {
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    let alg = spki.algorithm.oid.to_string();
    match alg.as_str() {
        RSA => format!(
            "RSA {} bits",
            rsa_bits(spki.subject_public_key.raw_bytes()).unwrap_or(0)
        ),
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .map(|oid| match oid.to_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_string(),
                    "1.3.132.0.34" => "P-384".to_string(),
                    "1.3.132.0.35" => "P-521".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "unknown curve".into());
            format!("EC {curve}")
        }
        other => other.to_string(),
    }
}

/// The modulus size of a PKCS#1 RSAPublicKey.
fn rsa_bits(der: &[u8]) -> Option<usize> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: UintRef<'a>,
        _exponent: UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(der).ok()?;
    let m = key.modulus.as_bytes();
    let lead = m.first()?;
    Some(m.len() * 8 - lead.leading_zeros() as usize)
}

/// Where a capture stopped decoding: the first error, at a byte offset.
#[derive(Debug)]
pub struct CaptureError {
    /// Where the failing message starts.
    pub message_start: usize,
    /// The error.
    pub error: capf_wire::Error,
}

impl CaptureError {
    /// The byte offset of the error in the stream.
    pub fn at(&self) -> usize {
        self.message_start + self.error.offset().unwrap_or(0)
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error at byte {} (message at byte {}, {} layer): {}",
            self.at(),
            self.message_start,
            self.error.layer().as_str(),
            self.error
        )
    }
}

/// The messages of a plaintext CAPF byte stream, one view at a time, then (at most) the first
/// error, after which it ends.
#[derive(Debug)]
pub struct CaptureDecoder<'a> {
    data: &'a [u8],
    pos: usize,
    deframer: Deframer,
    done: bool,
}

impl<'a> CaptureDecoder<'a> {
    /// Decodes `data` with `strictness`.
    pub fn new(data: &'a [u8], strictness: Strictness) -> Self {
        CaptureDecoder {
            data,
            pos: 0,
            deframer: Deframer::new(strictness),
            done: false,
        }
    }

    fn fail(
        &mut self,
        message_start: usize,
        error: capf_wire::Error,
    ) -> Option<<Self as Iterator>::Item> {
        self.done = true;
        Some(Err(CaptureError {
            message_start,
            error,
        }))
    }
}

impl Iterator for CaptureDecoder<'_> {
    type Item = Result<FrameView, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.pos < self.data.len() {
            let start = self.pos;
            let rest = self.data.get(start..).unwrap_or_default();
            let (used, view) = match self.deframer.push(rest) {
                Ok((used, Some(frame))) => match Message::from_frame(&frame) {
                    Ok(_) => (used, Ok(Some(FrameView::new(start, &frame)))),
                    Err(err) => (used, Err(err)),
                },
                Ok((used, None)) => (used, Ok(None)),
                Err(err) => return self.fail(start, err),
            };
            self.pos += used;
            match view {
                Ok(Some(view)) => return Some(Ok(view)),
                Ok(None) => {}
                Err(err) => return self.fail(start, err),
            }
        }
        self.done = true;
        match self.deframer.finish() {
            Ok(()) => None,
            Err(err) => {
                let start = self.data.len() - self.deframer.buffered();
                self.fail(start, err)
            }
        }
    }
}

/// How a test vector fared against its expectation (spec/capf-test-vectors.json format).
#[derive(Debug)]
#[non_exhaustive]
pub enum VectorVerdict {
    /// A valid vector: decoded and re-encoded byte-exact.
    Valid {
        /// The message's command.
        command: String,
    },
    /// A malformed vector rejected at the layer it names.
    Rejected {
        /// The layer.
        layer: String,
        /// The error.
        error: capf_wire::Error,
    },
    /// A vector the codec accepts that a layer above (session, semantic) must reject.
    LeftAbove {
        /// The layer.
        layer: String,
    },
    /// A failure.
    Failed {
        /// What went wrong.
        why: String,
        /// Whether the message decoded all the same.
        decoded: bool,
    },
}

impl VectorVerdict {
    /// Checks the message `data` against `error_layer`, the layer that must reject it (`None`
    /// for a valid vector).
    pub fn check(data: &[u8], error_layer: Option<&str>) -> Self {
        let outcome = Message::decode(data);
        match (error_layer, outcome) {
            (None, Ok(m)) if m.to_bytes() == data => VectorVerdict::Valid {
                command: m.command().to_string(),
            },
            (None, Ok(_)) => VectorVerdict::Failed {
                why: "re-encoding differs".to_string(),
                decoded: true,
            },
            (None, Err(e)) => VectorVerdict::Failed {
                why: format!("valid vector rejected: {e}"),
                decoded: false,
            },
            (Some(layer @ ("session" | "semantic")), Ok(_)) => VectorVerdict::LeftAbove {
                layer: layer.to_owned(),
            },
            (Some(layer), Err(e)) if e.layer().as_str() == layer => VectorVerdict::Rejected {
                layer: layer.to_owned(),
                error: e,
            },
            (Some(layer), Err(e)) => VectorVerdict::Failed {
                why: format!(
                    "expected a {layer}-layer error, got {} layer: {e}",
                    e.layer().as_str()
                ),
                decoded: false,
            },
            (Some(layer), Ok(_)) => VectorVerdict::Failed {
                why: format!("expected a {layer}-layer error, but it decoded"),
                decoded: true,
            },
        }
    }

    /// Whether the vector met its expectation.
    pub fn passed(&self) -> bool {
        !matches!(self, VectorVerdict::Failed { .. })
    }

    /// Whether the message decoded (whatever was expected of it).
    pub fn decoded(&self) -> bool {
        match self {
            VectorVerdict::Valid { .. } | VectorVerdict::LeftAbove { .. } => true,
            VectorVerdict::Rejected { .. } => false,
            VectorVerdict::Failed { decoded, .. } => *decoded,
        }
    }
}

impl fmt::Display for VectorVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VectorVerdict::Valid { command } => {
                write!(f, "decoded, re-encoded byte-exact ({command})")
            }
            VectorVerdict::Rejected { layer, error } => {
                write!(f, "rejected at the {layer} layer: {error}")
            }
            VectorVerdict::LeftAbove { layer } => {
                write!(f, "codec accepts; the {layer} layer rejects it")
            }
            VectorVerdict::Failed { why, .. } => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An AUTH_RESPONSE from the spec's vectors: REASON, VERSION, DEVICE_NAME.
    const AUTH_RESPONSE: &str =
        "550200012346001b01000101070001030d001053455030303141324233433444354500";

    #[test]
    fn parses_hex_with_separators_and_names_bad_digits() {
        assert_eq!(parse_hex(b"55:02 0a\n").unwrap(), [0x55, 0x02, 0x0a]);
        assert_eq!(
            parse_hex(b"55 zz").unwrap_err().to_string(),
            "hex input: 'z' is not a hex digit (digit 2)"
        );
        assert_eq!(
            parse_hex(b"abc").unwrap_err().to_string(),
            "hex input: odd number of hex digits (3)"
        );
    }

    #[test]
    fn shows_each_message_as_json_then_the_first_error() {
        let mut data = parse_hex(AUTH_RESPONSE.as_bytes()).unwrap();
        data.extend_from_slice(&[0x55, 0x02, 0x00]);
        let mut messages = CaptureDecoder::new(&data, Strictness::Strict);
        let view = messages.next().unwrap().unwrap();
        let json = serde_json::to_string(&view).unwrap();
        assert!(
            json.starts_with(
                "{\"offset\":0,\"protocol_id\":85,\"command\":2,\"command_name\":\"AUTH_RESPONSE\""
            ),
            "{json}"
        );
        assert!(
            json.contains("{\"tag\":1,\"name\":\"REASON\",\"length\":1,\"value\":1,\"value_name\":\"UPDATE_CERTIFICATE\"}"),
            "{json}"
        );
        assert!(
            json.contains("{\"tag\":7,\"name\":\"VERSION\",\"length\":1,\"value\":3}"),
            "{json}"
        );
        let err = messages.next().unwrap().unwrap_err();
        assert_eq!(err.message_start, 35);
        assert!(
            err.to_string()
                .starts_with("error at byte 35 (message at byte 35, frame layer)"),
            "{err}"
        );
        assert!(messages.next().is_none());
    }

    #[test]
    fn checks_vectors_against_their_expected_layer() {
        let data = parse_hex(AUTH_RESPONSE.as_bytes()).unwrap();
        let valid = VectorVerdict::check(&data, None);
        assert!(valid.passed() && valid.decoded(), "{valid}");
        let above = VectorVerdict::check(&data, Some("session"));
        assert!(matches!(above, VectorVerdict::LeftAbove { .. }));
        let wrong = VectorVerdict::check(&data, Some("frame"));
        assert!(!wrong.passed() && wrong.decoded(), "{wrong}");
        let truncated = VectorVerdict::check(&data[..5], Some("frame"));
        assert!(truncated.passed() && !truncated.decoded(), "{truncated}");
    }

    #[test]
    fn shows_the_endpoint_csr_messages() {
        // Spec 16 vectors: RETRY_LATER, then SIGN_CERT_REQUEST and SIGN_CERT_RESPONSE (RSA 2048).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/capf-test-vectors.json"
        );
        let all: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let hex = |name: &str| {
            let v = all
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap();
            parse_hex(v["hex"].as_str().unwrap().as_bytes()).unwrap()
        };
        let mut data = hex("RETRY_LATER with RETRY_DELAY 3600");
        data.extend(hex("SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)"));
        data.extend(hex("SIGN_CERT_RESPONSE with CSR_SIGNATURE (RSA 2048)"));
        let json: Vec<String> = CaptureDecoder::new(&data, Strictness::Strict)
            .map(|m| serde_json::to_string(&m.unwrap()).unwrap())
            .collect();
        assert_eq!(json.len(), 3);
        assert!(
            json[0].contains("\"command_name\":\"RETRY_LATER\""),
            "{}",
            json[0]
        );
        assert!(
            json[0].contains("{\"tag\":12,\"name\":\"RETRY_DELAY\",\"length\":4,\"value\":3600}"),
            "{}",
            json[0]
        );
        assert!(
            json[1].contains("\"name\":\"CSR_INFO\"")
                && json[1].contains("subject=CN=SEP001A2B3C4D5E; key=RSA 2048 bits; attributes=1"),
            "{}",
            json[1]
        );
        assert!(
            json[2].contains("\"name\":\"CSR_SIGNATURE\",\"length\":256,\"signature_length\":256"),
            "{}",
            json[2]
        );
    }
}
