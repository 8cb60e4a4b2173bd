//! An LSC just signed: the one value the CA hands out and the device store records.

use core::fmt;
use std::time::SystemTime;

use der::Encode;
use x509_cert::Certificate;

use crate::{Error, cert_info};

/// A signed LSC, with what the device store records of it. capf-ca issues it, capf-store records
/// it, both re-export it: one type, never copied field by field.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedLsc {
    /// The certificate's serial number: the content bytes of its DER INTEGER (big-endian).
    pub serial: Vec<u8>,
    /// The DER certificate, as it goes to the phone in STORE_CERT_REQUEST.
    pub der: Vec<u8>,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl IssuedLsc {
    /// The record of a signed certificate.
    ///
    /// # Errors
    /// [`Error::Der`] if the certificate does not encode.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, Error> {
        let der = cert.to_der().map_err(|source| Error::Der {
            what: "LSC",
            source,
        })?;
        let (not_before, not_after) = cert_info::validity(cert);
        Ok(IssuedLsc {
            serial: cert.tbs_certificate().serial_number().as_bytes().to_vec(),
            der,
            not_before,
            not_after,
        })
    }
}

impl fmt::Debug for IssuedLsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedLsc")
            .field("serial", &crate::hex(&self.serial))
            .field("der_len", &self.der.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}
