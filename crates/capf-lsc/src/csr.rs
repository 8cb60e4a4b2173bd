//! PKCS#10: a CSR for the CAPF key, and checks of a CSR someone hands in.

use der::asn1::BitString;
use der::referenced::OwnedToRef;
use der::{Decode, DecodePem, Encode};
use x509_cert::builder::Builder;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, RequestBuilder};

use crate::issue::{ca_key_usage, ext};
use crate::keys::KeySpec;
use crate::signer::{BuilderSigner, LscSigner};
use crate::verify::verify_signed_data;
use crate::{Error, cert_info};

/// A PKCS#10 request for the CAPF key, so a third-party CA can sign the CAPF certificate.
///
/// It carries `subject` (normally the current CAPF certificate's subject) and an
/// extensionRequest for BasicConstraints CA:TRUE pathlen:0 and KeyUsage digitalSignature,
/// keyCertSign, cRLSign (critical), which the CAPF certificate must have from 14SU2.
///
/// # Errors
/// A builder or signing error.
pub fn capf_csr(subject: &Name, key: &dyn LscSigner) -> Result<CertReq, Error> {
    let mut builder = RequestBuilder::new(subject.clone())?;
    let basic = ext(
        true,
        &BasicConstraints {
            ca: true,
            path_len_constraint: Some(0),
        },
    )?;
    builder
        .add_extension(basic)
        .map_err(Error::from_der("BasicConstraints"))?;
    builder
        .add_extension(ext(true, &ca_key_usage())?)
        .map_err(Error::from_der("KeyUsage"))?;
    let signer = BuilderSigner(key);
    let info = builder.finalize(&signer)?;
    let signature = key.sign(&info)?;
    let signature = BitString::from_bytes(&signature).map_err(Error::from_der("signature"))?;
    Ok(builder.assemble(signature, &signer)?)
}

/// A PKCS#10 request whose self-signature verified and whose key is an allowed key type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCsr {
    request: CertReq,
    key: KeySpec,
}

impl VerifiedCsr {
    /// Parses a DER CSR, checks its version, verifies its signature with its own key and
    /// validates that key (see [`KeySpec::of_spki`]).
    ///
    /// # Errors
    /// [`Error::Der`] for malformed DER, [`Error::CsrVersion`], [`Error::BadSignature`], or
    /// the key problem.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        Self::verify(CertReq::from_der(der).map_err(Error::from_der("PKCS#10 request"))?)
    }

    /// Parses a PEM `CERTIFICATE REQUEST`; see [`VerifiedCsr::from_der`].
    ///
    /// # Errors
    /// As [`VerifiedCsr::from_der`].
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        Self::verify(CertReq::from_pem(pem).map_err(Error::from_der("PEM PKCS#10 request"))?)
    }

    /// Verifies an already decoded request.
    ///
    /// # Errors
    /// As [`VerifiedCsr::from_der`].
    pub fn verify(request: CertReq) -> Result<Self, Error> {
        // RFC 2986 4.1: version MUST be 0 (v1).
        if request.info.version != x509_cert::request::Version::V1 {
            return Err(Error::CsrVersion);
        }
        let info = request
            .info
            .to_der()
            .map_err(Error::from_der("CertificationRequestInfo"))?;
        let signature = request.signature.as_bytes().ok_or(Error::BadSignature)?;
        let key = request.info.public_key.owned_to_ref();
        verify_signed_data(&info, &request.algorithm, signature, key.clone())?;
        let key = KeySpec::of_spki(key)?;
        Ok(VerifiedCsr { request, key })
    }

    /// The request.
    pub fn request(&self) -> &CertReq {
        &self.request
    }

    /// The requested subject.
    pub fn subject(&self) -> &Name {
        &self.request.info.subject
    }

    /// The subject's common name.
    pub fn common_name(&self) -> Option<String> {
        cert_info::common_name(&self.request.info.subject)
    }

    /// The key type.
    pub fn key_spec(&self) -> KeySpec {
        self.key
    }

    /// Requires the key to be `spec`.
    ///
    /// # Errors
    /// [`Error::KeySpecMismatch`].
    pub fn require_key(&self, spec: KeySpec) -> Result<(), Error> {
        if self.key == spec {
            Ok(())
        } else {
            Err(Error::KeySpecMismatch {
                requested: spec,
                actual: self.key,
            })
        }
    }

    /// Requires the subject CN to be `expected` (for an LSC request: the device name).
    ///
    /// # Errors
    /// [`Error::CsrSubjectMismatch`].
    pub fn require_common_name(&self, expected: &str) -> Result<(), Error> {
        match self.common_name() {
            Some(cn) if cn == expected => Ok(()),
            found => Err(Error::CsrSubjectMismatch {
                expected: expected.to_owned(),
                found,
            }),
        }
    }
}
