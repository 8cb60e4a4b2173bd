//! What a certificate holds, in the words of the CAPF certificate profile: the fields an
//! administrator checks before uploading or using a CAPF certificate.

use std::time::SystemTime;

use der::referenced::OwnedToRef;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::{Error, KeySpec, cert_info};

/// The KeyUsage bits that are set, by their RFC 5280 names (`digitalSignature`, ...), in the
/// order of the extension's bits.
pub fn key_usage_names(ku: &KeyUsage) -> Vec<&'static str> {
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// A certificate's fields, as `capfctl capf-cert show` prints them.
#[derive(Debug)]
#[non_exhaustive]
pub struct CertificateSummary {
    /// The subject, RFC 4514.
    pub subject: String,
    /// The issuer, RFC 4514.
    pub issuer: String,
    /// The serial number, lower-case hex.
    pub serial_hex: String,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// The key type, or why it is not one capf supports.
    pub key: Result<KeySpec, Error>,
    /// The signature algorithm's OID, dotted.
    pub signature_algorithm: String,
    /// BasicConstraints (CA flag, path length), when present.
    pub basic_constraints: Option<BasicConstraints>,
    /// The KeyUsage bits set ([`key_usage_names`]), when the extension is present.
    pub key_usage: Option<Vec<&'static str>>,
}

impl CertificateSummary {
    /// The summary of `cert`.
    ///
    /// # Errors
    /// [`Error::Extension`] when BasicConstraints or KeyUsage is malformed or repeated.
    pub fn of(cert: &Certificate) -> Result<Self, Error> {
        let tbs = cert.tbs_certificate();
        let (not_before, not_after) = cert_info::validity(cert);
        let serial_hex = tbs
            .serial_number()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(CertificateSummary {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            serial_hex,
            not_before,
            not_after,
            key: KeySpec::of_spki(tbs.subject_public_key_info().owned_to_ref()),
            signature_algorithm: cert.signature_algorithm().oid.to_string(),
            basic_constraints: cert_info::extension::<BasicConstraints>(cert)?,
            key_usage: cert_info::extension::<KeyUsage>(cert)?.map(|ku| key_usage_names(&ku)),
        })
    }

    /// BasicConstraints as OpenSSL writes it: `CA:TRUE pathlen:0`, `CA:FALSE`.
    pub fn constraints_text(&self) -> Option<String> {
        self.basic_constraints.as_ref().map(|bc| {
            format!(
                "CA:{}{}",
                if bc.ca { "TRUE" } else { "FALSE" },
                bc.path_len_constraint
                    .map(|n| format!(" pathlen:{n}"))
                    .unwrap_or_default()
            )
        })
    }
}
