//! Checks of a CAPF certificate that someone loads or uploads.

use core::fmt;
use std::time::SystemTime;

use der::referenced::OwnedToRef;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::Error;
use crate::cert_info::{self, MissingCaKeyUsage};
use crate::keys::KeySpec;

/// The guide's reason for the CAPF certificate profile, for messages.
pub const CAPF_PROFILE_RULE: &str = "from UCM 14SU2 a CAPF certificate needs BasicConstraints CA:TRUE pathlen:0 and KeyUsage digitalSignature + keyCertSign, or TLS with phones fails";

/// One way a certificate fails the CAPF certificate profile. From UCM 14SU2 a CAPF
/// certificate without CA:TRUE pathlen:0 and digitalSignature + keyCertSign breaks TLS
/// with phones (the guide; spec T3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapfCertificateProblem {
    /// No BasicConstraints extension.
    BasicConstraintsMissing,
    /// BasicConstraints says CA:FALSE.
    NotCa,
    /// BasicConstraints CA:TRUE but the path length is not 0 (`None`: unlimited).
    PathLenNotZero {
        /// The pathLenConstraint found.
        path_len: Option<u8>,
    },
    /// No KeyUsage extension.
    KeyUsageMissing,
    /// KeyUsage without digitalSignature and/or keyCertSign (other bits are allowed).
    KeyUsageLacks {
        /// Whether digitalSignature is missing.
        digital_signature: bool,
        /// Whether keyCertSign is missing.
        key_cert_sign: bool,
    },
    /// The certificate's public key is not the one of the given private key.
    KeyMismatch,
    /// notAfter is in the past.
    Expired {
        /// notAfter.
        not_after: SystemTime,
    },
    /// notBefore is in the future.
    NotYetValid {
        /// notBefore.
        not_before: SystemTime,
    },
}

impl fmt::Display for CapfCertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BasicConstraintsMissing => write!(f, "no BasicConstraints extension"),
            Self::NotCa => write!(f, "BasicConstraints is CA:FALSE"),
            Self::PathLenNotZero { path_len: None } => {
                write!(
                    f,
                    "BasicConstraints has no path length, pathlen:0 is required"
                )
            }
            Self::PathLenNotZero { path_len: Some(n) } => {
                write!(f, "BasicConstraints has pathlen:{n}, pathlen:0 is required")
            }
            Self::KeyUsageMissing => write!(f, "no KeyUsage extension"),
            Self::KeyUsageLacks {
                digital_signature,
                key_cert_sign,
            } => fmt::Display::fmt(
                &MissingCaKeyUsage::new(*digital_signature, *key_cert_sign),
                f,
            ),
            Self::KeyMismatch => f.write_str("the certificate does not match the private key"),
            Self::Expired { not_after } => {
                write!(f, "expired at {}", crate::text::format_time(*not_after))
            }
            Self::NotYetValid { not_before } => {
                write!(
                    f,
                    "not valid before {}",
                    crate::text::format_time(*not_before)
                )
            }
        }
    }
}

/// What a CAPF certificate that passed the checks contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapfCertificateReport {
    /// Subject CN.
    pub common_name: Option<String>,
    /// Whether the CN has the reserved form `CAPF-` + 8 hex digits.
    pub reserved_common_name: bool,
    /// The key type.
    pub key: KeySpec,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// Whether KeyUsage includes cRLSign (needed to sign a CRL of revoked LSCs).
    pub crl_sign: bool,
    /// Whether subject and issuer are the same name (self-issued).
    pub self_issued: bool,
}

/// Every problem `cert` has as a CAPF certificate at `now`; empty when it passes.
/// `key` is the public key of the private key meant to go with it, when there is one.
///
/// # Errors
/// [`Error::Extension`] when BasicConstraints or KeyUsage is malformed or repeated.
pub fn capf_certificate_problems(
    cert: &Certificate,
    key: Option<&SubjectPublicKeyInfoOwned>,
    now: SystemTime,
) -> Result<Vec<CapfCertificateProblem>, Error> {
    let mut problems = Vec::new();
    let (not_before, not_after) = cert_info::validity(cert);
    if now < not_before {
        problems.push(CapfCertificateProblem::NotYetValid { not_before });
    }
    if now > not_after {
        problems.push(CapfCertificateProblem::Expired { not_after });
    }
    match cert_info::extension::<BasicConstraints>(cert)? {
        None => problems.push(CapfCertificateProblem::BasicConstraintsMissing),
        Some(bc) if !bc.ca => problems.push(CapfCertificateProblem::NotCa),
        Some(bc) if bc.path_len_constraint != Some(0) => {
            problems.push(CapfCertificateProblem::PathLenNotZero {
                path_len: bc.path_len_constraint,
            });
        }
        Some(_) => {}
    }
    match cert_info::extension::<KeyUsage>(cert)? {
        None => problems.push(CapfCertificateProblem::KeyUsageMissing),
        Some(ku) => {
            if let Some(missing) = MissingCaKeyUsage::of(&ku) {
                problems.push(CapfCertificateProblem::KeyUsageLacks {
                    digital_signature: missing.digital_signature,
                    key_cert_sign: missing.key_cert_sign,
                });
            }
        }
    }
    if key.is_some_and(|k| k != cert.tbs_certificate().subject_public_key_info()) {
        problems.push(CapfCertificateProblem::KeyMismatch);
    }
    Ok(problems)
}

/// Checks `cert` against the CAPF certificate profile at `now` (and against `key`, the
/// public half of its private key, when given).
///
/// # Errors
/// [`Error::CapfCertificate`] with the first problem (see [`capf_certificate_problems`]
/// for all of them), or an error for a malformed extension or an unsupported key.
pub fn check_capf_certificate(
    cert: &Certificate,
    key: Option<&SubjectPublicKeyInfoOwned>,
    now: SystemTime,
) -> Result<CapfCertificateReport, Error> {
    if let Some(problem) = capf_certificate_problems(cert, key, now)?
        .into_iter()
        .next()
    {
        return Err(Error::CapfCertificate(problem));
    }
    let tbs = cert.tbs_certificate();
    let common_name = cert_info::common_name(tbs.subject());
    let (not_before, not_after) = cert_info::validity(cert);
    Ok(CapfCertificateReport {
        reserved_common_name: common_name
            .as_deref()
            .is_some_and(crate::is_capf_common_name),
        common_name,
        key: KeySpec::of_spki(tbs.subject_public_key_info().owned_to_ref())?,
        not_before,
        not_after,
        crl_sign: cert_info::extension::<KeyUsage>(cert)?.is_some_and(|ku| ku.crl_sign()),
        self_issued: tbs.subject() == tbs.issuer(),
    })
}
