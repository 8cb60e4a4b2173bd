//! The guide's upload rules, applied to each certificate of an upload.

use std::fmt;
use std::time::SystemTime;

use capf_lsc::cert_info::MissingCaKeyUsage;
use capf_lsc::format_time;

use crate::{Cert, Error, Fingerprint, Purpose, Release};

/// The dashes a copy-paste turns "CAPF-" into: U+2010 hyphen, U+2011 non-breaking hyphen,
/// U+2012 figure dash, U+2013 en dash, U+2014 em dash, U+2015 horizontal bar, U+2212 minus
/// sign (the guide itself prints "CAPF−" with U+2212), U+FE63 small hyphen-minus and U+FF0D
/// fullwidth hyphen-minus, besides the ASCII hyphen-minus.
pub const DASHES: [char; 10] = [
    '-', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
    '\u{FE63}', '\u{FF0D}',
];

/// Whether a Common Name contains the reserved "CAPF-" (guide: "Ensure that the intermediate or
/// root CA certificate doesn't contain the 'CAPF−' substring in the Common Name"), with any of
/// [`DASHES`]. Letters compare case-insensitively: X.520 matches Common Names with
/// caseIgnoreMatch, so "capf-" names the same thing to a directory.
pub fn contains_reserved_capf_name(common_name: &str) -> bool {
    let chars: Vec<char> = common_name.chars().collect();
    chars.windows(5).any(|w| {
        w[0].eq_ignore_ascii_case(&'C')
            && w[1].eq_ignore_ascii_case(&'A')
            && w[2].eq_ignore_ascii_case(&'P')
            && w[3].eq_ignore_ascii_case(&'F')
            && DASHES.contains(&w[4])
    })
}

/// What a certificate is within its upload; the rules depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// Self-issued, and not a self-signed end-entity certificate (one saying CA:FALSE without
    /// keyCertSign): a root CA.
    RootCa,
    /// Issues another certificate of the upload, or says CA:TRUE / keyCertSign.
    IntermediateCa,
    /// A CA-signed certificate uploaded to ipsec-trust that issues nothing in the upload: the
    /// IPsec peer's certificate.
    IpsecCertificate,
    /// Any other certificate: an HTTPS server certificate, or a self-signed certificate that
    /// says CA:FALSE and has no keyCertSign.
    EndEntity,
    /// A CAPF certificate coming in through [`TrustStore::add_capf`](crate::TrustStore::add_capf).
    Capf,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RootCa => "root CA",
            Self::IntermediateCa => "intermediate CA",
            Self::IpsecCertificate => "IPsec certificate",
            Self::EndEntity => "end-entity certificate",
            Self::Capf => "CAPF certificate",
        })
    }
}

/// A rule of the guide (or of sound trust-store hygiene) that a certificate broke.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// A root or intermediate CA whose Common Name contains the reserved "CAPF-".
    ReservedCapfName {
        /// The Common Name.
        common_name: String,
    },
    /// From 14SU2 a root or intermediate CA needs BasicConstraints.
    BasicConstraintsMissing,
    /// From 14SU2 a root or intermediate CA needs CA:TRUE.
    NotCa,
    /// From 14SU2 the CA's pathLenConstraint must allow the CAs below it in the upload.
    PathLenTooSmall {
        /// The pathLenConstraint.
        path_len: u8,
        /// How many intermediate CAs sit below this CA in the upload.
        needed: u8,
    },
    /// From 14SU2 a root or intermediate CA needs KeyUsage.
    KeyUsageMissing,
    /// From 14SU2 a root or intermediate CA needs digitalSignature and keyCertSign.
    KeyUsageLacks {
        /// digitalSignature is missing.
        digital_signature: bool,
        /// keyCertSign is missing.
        key_cert_sign: bool,
    },
    /// From 14SU3 a CA-signed IPsec certificate must not carry CA:TRUE.
    IpsecCertificateIsCa,
    /// An extension the rules read is malformed or repeated.
    MalformedExtension {
        /// Which extension.
        extension: &'static str,
    },
    /// The certificate is already in this store (or earlier in the same upload).
    Duplicate,
    /// notAfter has passed.
    Expired {
        /// notAfter.
        not_after: SystemTime,
    },
    /// notBefore is still to come.
    NotYetValid {
        /// notBefore.
        not_before: SystemTime,
    },
    /// A CAPF certificate that fails the CAPF certificate profile (capf-lsc).
    CapfProfile(capf_lsc::CapfCertificateProblem),
    /// A certificate given to the CAPF verb whose Common Name is not a CAPF name.
    NotCapfName {
        /// The Common Name, if any.
        common_name: Option<String>,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedCapfName { common_name } => write!(
                f,
                "Common Name {common_name:?} contains \"CAPF-\", reserved for CAPF certificates \
                 (a CAPF certificate goes in through add-capf)"
            ),
            Self::BasicConstraintsMissing => {
                f.write_str("a CA certificate needs BasicConstraints CA:TRUE (from 14SU2)")
            }
            Self::NotCa => f.write_str("a CA certificate needs CA:TRUE, not CA:FALSE (from 14SU2)"),
            Self::PathLenTooSmall { path_len, needed } => write!(
                f,
                "pathlen:{path_len} does not allow the {needed} intermediate CA(s) below it (from 14SU2)"
            ),
            Self::KeyUsageMissing => f.write_str(
                "a CA certificate needs KeyUsage digitalSignature + keyCertSign (from 14SU2)",
            ),
            Self::KeyUsageLacks {
                digital_signature,
                key_cert_sign,
            } => write!(
                f,
                "{} (from 14SU2)",
                MissingCaKeyUsage::new(*digital_signature, *key_cert_sign)
            ),
            Self::IpsecCertificateIsCa => {
                f.write_str("a CA-signed IPsec certificate must not carry CA:TRUE (from 14SU3)")
            }
            Self::MalformedExtension { extension } => {
                write!(f, "the {extension} extension is malformed or repeated")
            }
            Self::Duplicate => f.write_str("already in this trust store"),
            Self::Expired { not_after } => write!(f, "expired at {}", format_time(*not_after)),
            Self::NotYetValid { not_before } => {
                write!(f, "not valid before {}", format_time(*not_before))
            }
            Self::CapfProfile(problem) => write!(f, "CAPF certificate profile: {problem}"),
            Self::NotCapfName { common_name } => write!(
                f,
                "Common Name {:?} is not a CAPF name (\"CAPF-...\")",
                common_name.as_deref().unwrap_or("")
            ),
        }
    }
}

/// The verdict on one certificate of an upload. Never a bare bool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored.
    Accepted,
    /// Stored; these rules were broken, but the configured release does not enforce them (or
    /// they are advisory, such as a not-yet-valid certificate).
    AcceptedWithWarnings(Vec<Rule>),
    /// Not stored, because of `rule` (the first rule broken); `more` lists the others.
    Rejected {
        /// The first rule broken.
        rule: Rule,
        /// Further rules broken (rejections and warnings).
        more: Vec<Rule>,
    },
}

impl Verdict {
    /// Whether the certificate was stored.
    pub fn is_accepted(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }

    fn from_findings(rejections: Vec<Rule>, warnings: Vec<Rule>) -> Self {
        let mut rejections = rejections.into_iter();
        match rejections.next() {
            Some(rule) => Self::Rejected {
                rule,
                more: rejections.chain(warnings).collect(),
            },
            None if warnings.is_empty() => Self::Accepted,
            None => Self::AcceptedWithWarnings(warnings),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::AcceptedWithWarnings(w) => {
                f.write_str("accepted with warnings: ")?;
                join(f, w)
            }
            Self::Rejected { rule, more } => {
                write!(f, "rejected: {rule}")?;
                if !more.is_empty() {
                    f.write_str("; also: ")?;
                    join(f, more)?;
                }
                Ok(())
            }
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, rules: &[Rule]) -> fmt::Result {
    for (i, r) in rules.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{r}")?;
    }
    Ok(())
}

/// The verdict on one certificate, with what identifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertVerdict {
    /// Position in the upload (0-based).
    pub index: usize,
    /// The subject (RFC 4514).
    pub subject: String,
    /// The SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
    /// What the certificate is within the upload.
    pub role: CertRole,
    /// The verdict.
    pub verdict: Verdict,
}

/// The rules' input: where a bundle goes and under which release's rules.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UploadContext<'a> {
    pub(crate) purpose: &'a Purpose,
    pub(crate) release: Release,
    pub(crate) now: SystemTime,
}

/// Classifies each certificate of a bundle.
pub(crate) fn roles(bundle: &[Cert], purpose: &Purpose) -> Vec<CertRole> {
    (0..bundle.len())
        .map(|i| {
            let cert = &bundle[i];
            let key_cert_sign = matches!(cert.key_usage(), Ok(Some(ku)) if ku.key_cert_sign());
            let says_not_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if !bc.ca);
            if cert.is_self_issued() && says_not_ca && !key_cert_sign {
                // A self-signed end-entity certificate (say, another node's server
                // certificate): it claims to be no CA, so the CA rules do not apply.
                CertRole::EndEntity
            } else if cert.is_self_issued() {
                CertRole::RootCa
            } else if issues_another(bundle, i) {
                CertRole::IntermediateCa
            } else if *purpose == Purpose::IPSEC_TRUST {
                CertRole::IpsecCertificate
            } else if cert.is_ca() || key_cert_sign {
                CertRole::IntermediateCa
            } else {
                CertRole::EndEntity
            }
        })
        .collect()
}

fn issues_another(bundle: &[Cert], i: usize) -> bool {
    bundle
        .iter()
        .enumerate()
        .any(|(j, c)| j != i && !c.is_self_issued() && c.names_issuer(&bundle[i]))
}

/// How many intermediate CAs sit below `bundle[i]` on the longest chain in the bundle.
fn intermediates_below(bundle: &[Cert], roles: &[CertRole], i: usize, depth: usize) -> u8 {
    if depth > bundle.len() {
        return 0; // a naming loop; each certificate is counted once per level at most
    }
    bundle
        .iter()
        .enumerate()
        .filter(|(j, c)| *j != i && !c.is_self_issued() && c.names_issuer(&bundle[i]))
        .map(|(j, _)| match roles[j] {
            CertRole::IntermediateCa => {
                intermediates_below(bundle, roles, j, depth + 1).saturating_add(1)
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Applies the upload rules to every certificate of `bundle`. `already` says whether a
/// fingerprint is in the target store.
pub(crate) fn check_upload(
    bundle: &[Cert],
    ctx: UploadContext<'_>,
    already: &dyn Fn(Fingerprint) -> bool,
) -> Vec<CertVerdict> {
    let roles = roles(bundle, ctx.purpose);
    bundle
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            let mut reject = Vec::new();
            let mut warn = Vec::new();
            let dup = already(cert.fingerprint())
                || bundle[..i]
                    .iter()
                    .any(|c| c.fingerprint() == cert.fingerprint());
            if dup {
                reject.push(Rule::Duplicate);
            }
            validity_rules(cert, ctx.now, &mut reject, &mut warn);
            match roles[i] {
                CertRole::RootCa | CertRole::IntermediateCa => {
                    if let Some(cn) = cert
                        .common_name()
                        .filter(|cn| contains_reserved_capf_name(cn))
                    {
                        // The guide marks no release for this note: always enforced.
                        reject.push(Rule::ReservedCapfName { common_name: cn });
                    }
                    let below = intermediates_below(bundle, &roles, i, 0);
                    let ca_rules = ca_extension_rules(cert, below);
                    if ctx.release >= Release::R14SU2 {
                        &mut reject
                    } else {
                        &mut warn
                    }
                    .extend(ca_rules);
                }
                CertRole::IpsecCertificate => {
                    let rules = match cert.basic_constraints() {
                        Ok(Some(bc)) if bc.ca => vec![Rule::IpsecCertificateIsCa],
                        Ok(_) => vec![],
                        Err(_) => vec![Rule::MalformedExtension {
                            extension: "BasicConstraints",
                        }],
                    };
                    if ctx.release >= Release::R14SU3 {
                        &mut reject
                    } else {
                        &mut warn
                    }
                    .extend(rules);
                }
                CertRole::EndEntity | CertRole::Capf => {}
            }
            CertVerdict {
                index: i,
                subject: cert.subject(),
                fingerprint: cert.fingerprint(),
                role: roles[i],
                verdict: Verdict::from_findings(reject, warn),
            }
        })
        .collect()
}

/// Expired certificates are refused (they can never verify anything); not-yet-valid ones are
/// stored with a warning, since staging a CA before its start date is legitimate.
fn validity_rules(cert: &Cert, now: SystemTime, reject: &mut Vec<Rule>, warn: &mut Vec<Rule>) {
    if now > cert.not_after() {
        reject.push(Rule::Expired {
            not_after: cert.not_after(),
        });
    }
    if now < cert.not_before() {
        warn.push(Rule::NotYetValid {
            not_before: cert.not_before(),
        });
    }
}

/// The guide's 14SU2 note: "For any root or intermediate CA certificates, it should include ...
/// CA:TRUE, pathlen ... Digital Signature, Certificate Sign".
fn ca_extension_rules(cert: &Cert, intermediates_below: u8) -> Vec<Rule> {
    let mut rules = Vec::new();
    match cert.basic_constraints() {
        Err(_) => rules.push(Rule::MalformedExtension {
            extension: "BasicConstraints",
        }),
        Ok(None) => rules.push(Rule::BasicConstraintsMissing),
        Ok(Some(bc)) if !bc.ca => rules.push(Rule::NotCa),
        Ok(Some(bc)) => {
            if let Some(path_len) = bc.path_len_constraint
                && path_len < intermediates_below
            {
                rules.push(Rule::PathLenTooSmall {
                    path_len,
                    needed: intermediates_below,
                });
            }
        }
    }
    match cert.key_usage() {
        Err(_) => rules.push(Rule::MalformedExtension {
            extension: "KeyUsage",
        }),
        Ok(None) => rules.push(Rule::KeyUsageMissing),
        Ok(Some(ku)) => {
            if let Some(missing) = MissingCaKeyUsage::of(&ku) {
                rules.push(Rule::KeyUsageLacks {
                    digital_signature: missing.digital_signature,
                    key_cert_sign: missing.key_cert_sign,
                });
            }
        }
    }
    rules
}

/// The rules for a CAPF certificate (this cluster's, or another's for a migration): a CAPF
/// Common Name and capf-lsc's CAPF certificate profile instead of the reserved-name rule.
pub(crate) fn check_capf(
    cert: &Cert,
    ctx: UploadContext<'_>,
    duplicate: bool,
) -> Result<CertVerdict, Error> {
    let mut reject = Vec::new();
    let mut warn = Vec::new();
    if duplicate {
        reject.push(Rule::Duplicate);
    }
    let cn = cert.common_name();
    if !cn.as_deref().is_some_and(contains_reserved_capf_name) {
        reject.push(Rule::NotCapfName { common_name: cn });
    }
    for problem in capf_lsc::capf_certificate_problems(cert.certificate(), None, ctx.now)? {
        let rule = match problem {
            capf_lsc::CapfCertificateProblem::Expired { not_after } => Rule::Expired { not_after },
            capf_lsc::CapfCertificateProblem::NotYetValid { not_before } => {
                warn.push(Rule::NotYetValid { not_before });
                continue;
            }
            other => Rule::CapfProfile(other),
        };
        // The profile is the 14SU2 note for CAPF certificates; older releases warn.
        if matches!(rule, Rule::CapfProfile(_)) && ctx.release < Release::R14SU2 {
            warn.push(rule);
        } else {
            reject.push(rule);
        }
    }
    Ok(CertVerdict {
        index: 0,
        subject: cert.subject(),
        fingerprint: cert.fingerprint(),
        role: CertRole::Capf,
        verdict: Verdict::from_findings(reject, warn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_name_matches_ascii_and_lookalike_dashes() {
        for cn in [
            "CAPF-1a2b3c4d",
            "Example CAPF-Root",
            "CAPF\u{2010}x",
            "CAPF\u{2011}x",
            "CAPF\u{2012}x",
            "CAPF\u{2013}x",
            "CAPF\u{2014}x",
            "CAPF\u{2015}x",
            "CAPF\u{2212}x",
            "CAPF\u{FF0D}x",
            "capf-lower",
            "Capf-Mixed",
        ] {
            assert!(contains_reserved_capf_name(cn), "{cn}");
        }
    }

    #[test]
    fn reserved_name_ignores_other_separators() {
        for cn in [
            "CAPF Root",
            "CAPF_Root",
            "CAPFRoot",
            "CAP-F",
            "CAPF",
            "Example Root CA",
            "ÇAPF-",
        ] {
            assert!(!contains_reserved_capf_name(cn), "{cn}");
        }
    }

    #[test]
    fn verdict_keeps_first_rejection_first() {
        let v = Verdict::from_findings(
            vec![Rule::Duplicate, Rule::NotCa],
            vec![Rule::NotYetValid {
                not_before: SystemTime::UNIX_EPOCH,
            }],
        );
        match v {
            Verdict::Rejected { rule, more } => {
                assert_eq!(rule, Rule::Duplicate);
                assert_eq!(more.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Verdict::from_findings(vec![], vec![]), Verdict::Accepted);
    }
}
