//! Chain verification of an LSC or MIC against a trust store at a given time.

use std::fmt;
use std::time::SystemTime;

use capf_lsc::format_time;

use crate::rules::contains_reserved_capf_name;
use crate::{Cert, Fingerprint, Purpose, TrustStore};

/// Longest chain followed (leaf, intermediates, anchor). LSC and MIC chains have 2-4
/// certificates; the bound stops naming loops in a hostile bundle.
pub const MAX_CHAIN_LEN: usize = 8;

/// A chain that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedChain {
    /// Subjects from the leaf to the trust anchor.
    pub subjects: Vec<String>,
    /// The fingerprint of the store's certificate the chain ends at.
    pub anchor: Fingerprint,
}

/// The first rule a chain broke, naming the certificate concerned (RFC 4514 subject).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainFailure {
    /// notAfter has passed.
    Expired {
        /// The certificate.
        subject: String,
        /// Its notAfter.
        not_after: SystemTime,
    },
    /// notBefore is still to come.
    NotYetValid {
        /// The certificate.
        subject: String,
        /// Its notBefore.
        not_before: SystemTime,
    },
    /// The issuer is a CAPF ("CAPF-..." Common Name) this store does not hold: the guide's
    /// migrated phone, whose LSC "was issued by another CAPF".
    IssuedByUntrustedCapf {
        /// The certificate.
        subject: String,
        /// The CAPF named as its issuer.
        issuer: String,
    },
    /// No certificate of the store or the given intermediates is the issuer.
    UnknownIssuer {
        /// The certificate.
        subject: String,
        /// The issuer it names.
        issuer: String,
    },
    /// The signature does not verify with the issuer's key (or uses an unsupported algorithm).
    BadSignature {
        /// The certificate.
        subject: String,
        /// The issuer tried.
        issuer: String,
        /// What capf-lsc found.
        reason: String,
    },
    /// The issuer has no BasicConstraints, or CA:FALSE.
    IssuerNotCa {
        /// The issuer.
        issuer: String,
    },
    /// The issuer's pathLenConstraint is smaller than the intermediates below it.
    PathLenExceeded {
        /// The issuer.
        issuer: String,
        /// Its pathLenConstraint.
        path_len: u8,
        /// Intermediate CAs below it in this chain.
        intermediates_below: usize,
    },
    /// The issuer's KeyUsage lacks keyCertSign.
    IssuerLacksKeyCertSign {
        /// The issuer.
        issuer: String,
    },
    /// An extension the checks read is malformed or repeated.
    MalformedExtension {
        /// The certificate.
        subject: String,
        /// Which extension.
        extension: &'static str,
    },
    /// More than [`MAX_CHAIN_LEN`] certificates without reaching the store.
    ChainTooLong,
}

impl fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired { subject, not_after } => {
                write!(f, "{subject}: expired at {}", format_time(*not_after))
            }
            Self::NotYetValid {
                subject,
                not_before,
            } => {
                write!(
                    f,
                    "{subject}: not valid before {}",
                    format_time(*not_before)
                )
            }
            Self::IssuedByUntrustedCapf { subject, issuer } => write!(
                f,
                "{subject}: issued by an untrusted CAPF ({issuer}); a phone moved from another \
                 cluster needs a new LSC from this cluster's CAPF, or that CAPF certificate in the store"
            ),
            Self::UnknownIssuer { subject, issuer } => {
                write!(f, "{subject}: issuer {issuer} is not in the trust store")
            }
            Self::BadSignature {
                subject,
                issuer,
                reason,
            } => {
                write!(
                    f,
                    "{subject}: signature does not verify with {issuer}'s key: {reason}"
                )
            }
            Self::IssuerNotCa { issuer } => write!(f, "{issuer}: not a CA (needs CA:TRUE)"),
            Self::PathLenExceeded {
                issuer,
                path_len,
                intermediates_below,
            } => write!(
                f,
                "{issuer}: pathlen:{path_len} but {intermediates_below} intermediate CA(s) below it"
            ),
            Self::IssuerLacksKeyCertSign { issuer } => {
                write!(f, "{issuer}: KeyUsage lacks keyCertSign")
            }
            Self::MalformedExtension { subject, extension } => {
                write!(
                    f,
                    "{subject}: the {extension} extension is malformed or repeated"
                )
            }
            Self::ChainTooLong => write!(f, "no trust anchor within {MAX_CHAIN_LEN} certificates"),
        }
    }
}

/// The result of verifying a chain. Never a bare bool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// The chain ends at a certificate of the store and every rule holds.
    Trusted(VerifiedChain),
    /// The first rule broken.
    Untrusted(ChainFailure),
}

impl TrustStore {
    /// Verifies `leaf` (an LSC or a MIC), with optional `intermediates`, against `purpose`'s
    /// certificates at time `now`: validity of every certificate, signatures (capf-lsc: RSA
    /// PKCS#1 v1.5 with SHA-1/256/384/512, ECDSA P-256/P-384), and on every issuer CA:TRUE,
    /// the path length and KeyUsage keyCertSign (when KeyUsage is present, RFC 5280 4.2.1.3).
    /// A certificate that is itself in the store is trusted as it is (still within validity).
    pub fn verify(
        &self,
        purpose: &Purpose,
        leaf: &Cert,
        intermediates: &[Cert],
        now: SystemTime,
    ) -> ChainVerdict {
        let anchors = self.certificates(purpose);
        let mut path = vec![leaf];
        match extend(&mut path, anchors, intermediates, now) {
            Ok(anchor) => ChainVerdict::Trusted(VerifiedChain {
                subjects: path.iter().map(|c| c.subject()).collect(),
                anchor,
            }),
            Err(failure) => ChainVerdict::Untrusted(failure),
        }
    }
}

fn validity(cert: &Cert, now: SystemTime) -> Result<(), ChainFailure> {
    if now > cert.not_after() {
        return Err(ChainFailure::Expired {
            subject: cert.subject(),
            not_after: cert.not_after(),
        });
    }
    if now < cert.not_before() {
        return Err(ChainFailure::NotYetValid {
            subject: cert.subject(),
            not_before: cert.not_before(),
        });
    }
    Ok(())
}

/// Grows `path` (whose last element is checked for validity here) until it reaches a store
/// certificate; returns that anchor's fingerprint, or the first failure met. With several
/// candidate issuers (same name) the first one that works wins, else the first one's failure
/// is reported.
fn extend<'a>(
    path: &mut Vec<&'a Cert>,
    anchors: &'a [Cert],
    intermediates: &'a [Cert],
    now: SystemTime,
) -> Result<Fingerprint, ChainFailure> {
    let Some(&cert) = path.last() else {
        return Err(ChainFailure::ChainTooLong); // invariant: the path always holds the leaf
    };
    validity(cert, now)?;
    if anchors
        .iter()
        .any(|a| a.fingerprint() == cert.fingerprint())
    {
        return Ok(cert.fingerprint());
    }
    if path.len() >= MAX_CHAIN_LEN {
        return Err(ChainFailure::ChainTooLong);
    }
    let candidates = anchors
        .iter()
        .chain(intermediates)
        .filter(|c| {
            cert.names_issuer(c) && !path.iter().any(|p| p.fingerprint() == c.fingerprint())
        })
        .collect::<Vec<_>>();
    let mut first_failure = None;
    for issuer in candidates {
        let attempt = check_issuer(cert, issuer, path.len() - 1).and_then(|()| {
            path.push(issuer);
            let r = extend(path, anchors, intermediates, now);
            if r.is_err() {
                path.pop();
            }
            r
        });
        match attempt {
            Ok(anchor) => return Ok(anchor),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    let issuer_name = cert.issuer();
    let capf_issuer = cert
        .issuer_common_name()
        .is_some_and(|cn| contains_reserved_capf_name(&cn));
    match first_failure {
        // A CAPF name whose key does not match ours is still another cluster's CAPF.
        Some(ChainFailure::BadSignature { .. }) | None if capf_issuer => {
            Err(ChainFailure::IssuedByUntrustedCapf {
                subject: cert.subject(),
                issuer: issuer_name,
            })
        }
        Some(failure) => Err(failure),
        None => Err(ChainFailure::UnknownIssuer {
            subject: cert.subject(),
            issuer: issuer_name,
        }),
    }
}

/// The checks on one link: the signature, then the issuer's CA flag, path length and KeyUsage.
/// `intermediates_below` counts the CA certificates between the leaf and `issuer`.
fn check_issuer(
    cert: &Cert,
    issuer: &Cert,
    intermediates_below: usize,
) -> Result<(), ChainFailure> {
    let issuer_name = issuer.subject();
    if let Err(e) = capf_lsc::verify_signature(
        cert.certificate(),
        issuer
            .certificate()
            .tbs_certificate()
            .subject_public_key_info(),
    ) {
        return Err(ChainFailure::BadSignature {
            subject: cert.subject(),
            issuer: issuer_name,
            reason: e.to_string(),
        });
    }
    let bc = issuer
        .basic_constraints()
        .map_err(|_| ChainFailure::MalformedExtension {
            subject: issuer_name.clone(),
            extension: "BasicConstraints",
        })?;
    match bc {
        Some(bc) if bc.ca => {
            if let Some(path_len) = bc.path_len_constraint
                && usize::from(path_len) < intermediates_below
            {
                return Err(ChainFailure::PathLenExceeded {
                    issuer: issuer_name,
                    path_len,
                    intermediates_below,
                });
            }
        }
        _ => {
            return Err(ChainFailure::IssuerNotCa {
                issuer: issuer_name,
            });
        }
    }
    match issuer.key_usage() {
        Err(_) => Err(ChainFailure::MalformedExtension {
            subject: issuer_name,
            extension: "KeyUsage",
        }),
        Ok(Some(ku)) if !ku.key_cert_sign() => Err(ChainFailure::IssuerLacksKeyCertSign {
            issuer: issuer_name,
        }),
        Ok(_) => Ok(()),
    }
}
