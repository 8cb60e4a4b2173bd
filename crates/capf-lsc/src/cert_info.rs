//! Small accessors over x509-cert types shared by the profiles and checks.

use core::fmt;
use std::time::SystemTime;

use const_oid::AssociatedOid;
use der::Decode;
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{KeyUsage, SubjectKeyIdentifier};
use x509_cert::name::Name;

use crate::Error;

/// The value of extension `T` of `cert`, if present.
///
/// # Errors
/// [`Error::Extension`] if it is malformed or present more than once.
pub fn extension<'a, T>(cert: &'a Certificate) -> Result<Option<T>, Error>
where
    T: Decode<'a, Error = der::Error> + AssociatedOid,
{
    Ok(extension_entry::<T>(cert)?.map(|(_critical, value)| value))
}

/// Whether extension `T` is marked critical; `None` when absent.
///
/// # Errors
/// As [`extension`].
pub fn extension_critical<'a, T>(cert: &'a Certificate) -> Result<Option<bool>, Error>
where
    T: Decode<'a, Error = der::Error> + AssociatedOid,
{
    Ok(extension_entry::<T>(cert)?.map(|(critical, _)| critical))
}

/// Extension `T` of `cert` with its critical flag, if present.
fn extension_entry<'a, T>(cert: &'a Certificate) -> Result<Option<(bool, T)>, Error>
where
    T: Decode<'a, Error = der::Error> + AssociatedOid,
{
    cert.tbs_certificate()
        .get_extension::<T>()
        .map_err(|source| Error::Extension {
            oid: T::OID,
            source,
        })
}

/// The first common name of `name` as text (UTF8String, PrintableString, ...).
pub fn common_name(name: &Name) -> Option<String> {
    name.common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
}

/// The key identifier of RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki: SubjectPublicKeyInfoRef<'_>) -> [u8; 20] {
    Sha1::digest(spki.subject_public_key.raw_bytes()).into()
}

/// The certificate's SubjectKeyIdentifier, or the method-1 identifier of its key when the
/// extension is absent or malformed.
pub fn subject_key_id(cert: &Certificate) -> Vec<u8> {
    match extension::<SubjectKeyIdentifier>(cert) {
        Ok(Some(ski)) => ski.0.as_bytes().to_vec(),
        _ => key_identifier(der::referenced::OwnedToRef::owned_to_ref(
            cert.tbs_certificate().subject_public_key_info(),
        ))
        .to_vec(),
    }
}

/// notBefore and notAfter as system times.
pub fn validity(cert: &Certificate) -> (SystemTime, SystemTime) {
    let v = cert.tbs_certificate().validity();
    (v.not_before.to_system_time(), v.not_after.to_system_time())
}

/// Which of digitalSignature and keyCertSign a CA certificate's KeyUsage lacks: from UCM 14SU2
/// every CA certificate, the CAPF certificate among them, needs both (the guide). The one owner
/// of that check for the CAPF certificate profile and capf-trust's upload rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingCaKeyUsage {
    /// Whether digitalSignature is missing.
    pub digital_signature: bool,
    /// Whether keyCertSign is missing.
    pub key_cert_sign: bool,
}

impl MissingCaKeyUsage {
    /// Which are missing, as a problem or rule reports them.
    pub const fn new(digital_signature: bool, key_cert_sign: bool) -> Self {
        MissingCaKeyUsage {
            digital_signature,
            key_cert_sign,
        }
    }

    /// What `key_usage` lacks; `None` when it has both (other bits are allowed).
    pub fn of(key_usage: &KeyUsage) -> Option<Self> {
        let missing = MissingCaKeyUsage {
            digital_signature: !key_usage.digital_signature(),
            key_cert_sign: !key_usage.key_cert_sign(),
        };
        (missing.digital_signature || missing.key_cert_sign).then_some(missing)
    }
}

/// `KeyUsage lacks digitalSignature and keyCertSign` (or the one missing).
impl fmt::Display for MissingCaKeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = match (self.digital_signature, self.key_cert_sign) {
            (true, true) => "digitalSignature and keyCertSign",
            (true, false) => "digitalSignature",
            _ => "keyCertSign",
        };
        write!(f, "KeyUsage lacks {missing}")
    }
}
