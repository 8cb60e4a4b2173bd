//! What the authentication signatures of AUTH_RESPONSE sign (spec 6.1-6.4): built here once, for
//! the phone that signs, the server that verifies, and the tests.

use alloc::vec::Vec;

/// What SIGNED_DATA (SHA-1) and SHA2_SIGNED_DATA (SHA-512) sign (spec 6.1-6.3): the device name,
/// its NUL, then the DER of the certificate sent in CERTIFICATE.
pub fn auth_signed_content(device_name: &str, certificate_der: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(device_name.len() + 1 + certificate_der.len());
    blob.extend_from_slice(device_name.as_bytes());
    blob.push(0);
    blob.extend_from_slice(certificate_der);
    blob
}

/// What both SUDI signatures of SUDI_DATA sign (spec 6.4): the session id the server assigned,
/// **little-endian**, then the SUDI certificate's DER. The id is the challenge: a recorded SUDI
/// proof does not verify in another session.
pub fn sudi_signed_content(session_id: u32, sudi_certificate_der: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(4 + sudi_certificate_der.len());
    blob.extend_from_slice(&session_id.to_le_bytes());
    blob.extend_from_slice(sudi_certificate_der);
    blob
}
