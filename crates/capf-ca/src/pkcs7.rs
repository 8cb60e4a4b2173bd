//! The certificates of a degenerate ("certs-only") CMS SignedData (RFC 5652 section 5, RFC
//! 7030 section 4.1.3): what EST's `/cacerts` and `/simpleenroll` answer and AD CS's
//! `certnew.p7b`. Only the `certificates` field is read; there are no signers to check.

use capf_lsc::der::asn1::{Any, ObjectIdentifier};
use capf_lsc::der::{Class, Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// id-signedData (RFC 5652 section 5.1).
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Why a PKCS#7 could not be read, for the caller's error.
pub(crate) type Result<T> = core::result::Result<T, String>;

fn any(reader: &mut SliceReader<'_>, what: &str) -> Result<Any> {
    reader
        .decode::<Any>()
        .map_err(|e| format!("PKCS#7 {what}: {e}"))
}

fn inner<'a>(value: &'a Any, what: &str) -> Result<SliceReader<'a>> {
    SliceReader::new(value.value()).map_err(|e| format!("PKCS#7 {what}: {e}"))
}

/// The DER certificates of the SignedData in `der` (a ContentInfo), in the order sent.
pub(crate) fn certificates(der: &[u8]) -> Result<Vec<Vec<u8>>> {
    let content_info = Any::from_der(der).map_err(|e| format!("PKCS#7 ContentInfo: {e}"))?;
    if content_info.tag() != Tag::Sequence {
        return Err("PKCS#7 ContentInfo is not a SEQUENCE".into());
    }
    let mut r = inner(&content_info, "ContentInfo")?;
    let oid = r
        .decode::<ObjectIdentifier>()
        .map_err(|e| format!("PKCS#7 contentType: {e}"))?;
    if oid != SIGNED_DATA {
        return Err(format!("PKCS#7 contentType {oid} is not signedData"));
    }
    let explicit = any(&mut r, "content")?;
    let mut r = inner(&explicit, "content")?;
    let signed_data = any(&mut r, "SignedData")?;
    let mut r = inner(&signed_data, "SignedData")?;
    // version, digestAlgorithms, encapContentInfo
    for what in ["version", "digestAlgorithms", "encapContentInfo"] {
        any(&mut r, what)?;
    }
    let mut certs = Vec::new();
    while !r.is_finished() {
        let field = any(&mut r, "SignedData field")?;
        let tag = field.tag();
        if tag.class() == Class::ContextSpecific && tag.number() == TagNumber(0) {
            let mut c = inner(&field, "certificates")?;
            while !c.is_finished() {
                let cert = any(&mut c, "certificate")?;
                // Only the X.509 choice (a SEQUENCE); attribute and other certificates are skipped.
                if cert.tag() == Tag::Sequence {
                    certs.push(
                        cert.to_der()
                            .map_err(|e| format!("PKCS#7 certificate: {e}"))?,
                    );
                }
            }
        }
    }
    Ok(certs)
}

/// Decodes base64 with or without line breaks (EST's bodies are wrapped at 64 or 76 columns,
/// or not at all; RFC 8951 allows either).
pub(crate) fn base64_lenient(text: &[u8]) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// RFC 8951: base64 on one line, in 64- or 76-column lines (CRLF or LF), with a trailing
    /// line break, all decode to the same bytes; a character outside base64 does not.
    #[test]
    fn base64_is_read_with_or_without_line_breaks() {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let lines = |width: usize, end: &str| -> String {
            b64.as_bytes()
                .chunks(width)
                .map(|c| format!("{}{end}", String::from_utf8_lossy(c)))
                .collect()
        };
        for text in [
            b64.clone(),
            format!("{b64}\n"),
            lines(64, "\r\n"),
            lines(76, "\n"),
            format!("  {}\t", lines(64, "\n")),
        ] {
            assert_eq!(base64_lenient(text.as_bytes()).unwrap(), bytes, "{text:?}");
        }
        assert!(base64_lenient(format!("{b64}!").as_bytes()).is_err());
    }
}
