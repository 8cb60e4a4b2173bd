//! Authentication by existing certificate (the guide's "By Existing Certificate (Precedence to
//! LSC / MIC)" modes, spec 6 and 8.9): the phone's certificate must chain to this cluster's
//! trust, name the device that is authenticating, and both its signatures must verify, so
//! nobody gets an LSC for a device they do not hold.
//!
//! Trust anchors, by purpose: LSC issuers are the certificates of [`Purpose::CAPF_TRUST`] (the
//! CAPF certificate and third-party CAs); manufacturing (MIC) roots are tagged with the purpose
//! [`Purpose::CAPF_TRUST_MIC`], SUDI roots with [`Purpose::CAPF_TRUST_SUDI`]. The certificate is
//! classified as LSC or MIC by the anchor it chains to, never by the CERTIFICATE element's type
//! byte, which is not reliable (spec 4.3).

use std::fmt;
use std::time::SystemTime;

use capf_lsc::{AuthDigest, AuthSignatureForm, SudiPolicy, verify_auth_signature};
use der::referenced::OwnedToRef;

use crate::{Cert, ChainFailure, ChainVerdict, Purpose, TrustStore};

/// SHA2_SIGNED_DATA's only accepted hash id: 3, SHA-512 (spec 6.3).
pub const SHA512_HASH_ID: u8 = 3;

/// Which certificate a device may authenticate with first (the device's authentication mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precedence {
    /// By Existing Certificate (Precedence to LSC).
    LscFirst,
    /// By Existing Certificate (Precedence to MIC).
    MicFirst,
}

/// What a phone's certificate turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// A Locally Significant Certificate: chains to CAPF-trust.
    Lsc,
    /// A Manufacturer Installed Certificate: chains to a MIC root.
    Mic,
}

impl fmt::Display for CertificateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateKind::Lsc => "LSC",
            CertificateKind::Mic => "MIC",
        })
    }
}

/// SUDI_DATA as the phone sent it (spec 6.4).
#[derive(Clone, Copy, Debug)]
pub struct SudiProof<'a> {
    /// The SUDI certificate, DER.
    pub certificate: &'a [u8],
    /// The SHA-1 signature.
    pub sha1_signature: &'a [u8],
    /// The lead byte of the SHA-512 block: must be 3.
    pub sha512_hash_id: u8,
    /// The SHA-512 signature.
    pub sha512_signature: &'a [u8],
}

impl<'a> SudiProof<'a> {
    /// The SUDI_DATA element's blocks.
    pub fn from_sudi_data(sudi: &'a capf_wire::SudiData<'_>) -> Self {
        SudiProof {
            certificate: sudi.certificate().data,
            sha1_signature: sudi.signed_data().data,
            sha512_hash_id: sudi.sha2_signed_data().lead,
            sha512_signature: sudi.sha2_signed_data().data,
        }
    }
}

/// What the phone sent in AUTH_RESPONSE to prove who it is.
#[derive(Clone, Copy, Debug)]
pub struct DeviceProof<'a> {
    /// DEVICE_NAME.
    pub device_name: &'a str,
    /// The session id the **server** assigned: the SUDI challenge.
    pub session_id: u32,
    /// CERTIFICATE's DER.
    pub certificate: Option<&'a [u8]>,
    /// SIGNED_DATA.
    pub signed_data: Option<&'a [u8]>,
    /// SHA2_SIGNED_DATA: hash id and signature.
    pub sha2_signed_data: Option<(u8, &'a [u8])>,
    /// SUDI_DATA, when sent.
    pub sudi: Option<SudiProof<'a>>,
}

impl<'a> DeviceProof<'a> {
    /// The proof in an AUTH_RESPONSE of the session `session_id` (the id the server assigned).
    ///
    /// The one constructor: the server (over capf-session's `Authentication::response`), the
    /// fuzz target, the bench and the tests all read the proof through it, so the path that is
    /// fuzzed is the path that ships.
    pub fn from_auth_response(session_id: u32, response: &'a capf_wire::AuthResponse<'_>) -> Self {
        DeviceProof {
            device_name: response.device_name(),
            session_id,
            certificate: response.certificate().map(|c| c.der()),
            signed_data: response.signed_data(),
            sha2_signed_data: response
                .sha2_signed_data()
                .map(|s| (s.hash_algorithm().0, s.signature())),
            sudi: response.sudi_data().map(SudiProof::from_sudi_data),
        }
    }
}

/// A device that proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthentication {
    /// LSC or MIC.
    pub kind: CertificateKind,
    /// The certificate's subject.
    pub subject: String,
    /// The certificate's serial number (the content bytes of its DER INTEGER), for the server
    /// to check an LSC against what its store holds (installed, not superseded nor revoked).
    pub serial: Vec<u8>,
    /// Whether the kind is the one the device's precedence names first.
    pub preferred: bool,
    /// A signature used the DigestInfo form instead of the bare digest (accepted, to be
    /// logged: spec 6.3 project rule).
    pub digest_info_used: bool,
    /// The SUDI certificate's subject, when SUDI data was sent and verified.
    pub sudi: Option<String>,
    /// The SUDI certificate's subject, when SUDI data was sent and ignored: its issuer is not
    /// in CAPF-trust-SUDI and the policy is [`SudiPolicy::WhenTrusted`].
    pub sudi_ignored: Option<String>,
}

/// Why a device failed authentication by existing certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceAuthFailure {
    /// No CERTIFICATE: a phone with no certificate fails the operation (the guide).
    NoCertificate,
    /// CERTIFICATE without SIGNED_DATA or SHA2_SIGNED_DATA.
    MissingSignature {
        /// The element missing.
        element: &'static str,
    },
    /// SHA2_SIGNED_DATA (or the SUDI SHA-512 block) with a hash id other than 3.
    WrongHashId {
        /// The element.
        element: &'static str,
        /// The hash id found.
        found: u8,
    },
    /// The certificate does not parse.
    Unreadable {
        /// Which certificate.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The certificate chains to neither CAPF-trust nor a MIC root: why, as an LSC and as a
    /// MIC (an LSC from another cluster's CAPF is "issued by an untrusted CAPF").
    Untrusted {
        /// The failure as an LSC.
        as_lsc: Box<ChainFailure>,
        /// The failure as a MIC.
        as_mic: Box<ChainFailure>,
    },
    /// The certificate is valid but belongs to another device.
    NotThisDevice {
        /// LSC or MIC.
        kind: CertificateKind,
        /// DEVICE_NAME.
        device: String,
        /// The certificate's Common Name.
        common_name: Option<String>,
    },
    /// A signature does not verify with the certificate's key.
    BadSignature {
        /// The element.
        element: &'static str,
        /// Why.
        reason: String,
    },
    /// The SUDI certificate does not chain to a SUDI root.
    SudiUntrusted(Box<ChainFailure>),
}

impl fmt::Display for DeviceAuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificate => f.write_str("no certificate sent (By Existing Certificate)"),
            Self::MissingSignature { element } => write!(f, "certificate sent without {element}"),
            Self::WrongHashId { element, found } => {
                write!(f, "{element} hash id {found}, expected 3 (SHA-512)")
            }
            Self::Unreadable { what, reason } => write!(f, "{what} does not parse: {reason}"),
            Self::Untrusted { as_lsc, as_mic } => {
                write!(f, "not a trusted LSC ({as_lsc}) nor MIC ({as_mic})")
            }
            Self::NotThisDevice {
                kind,
                device,
                common_name,
            } => write!(
                f,
                "the {kind} names {} , not {device}",
                common_name.as_deref().unwrap_or("no device")
            ),
            Self::BadSignature { element, reason } => {
                write!(f, "{element} does not verify: {reason}")
            }
            // Not the chain check's words for an LSC ("an untrusted CAPF ... a phone moved
            // from another cluster"): a SUDI is the manufacturer's, checked against
            // CAPF-trust-SUDI.
            Self::SudiUntrusted(why) => match why.as_ref() {
                ChainFailure::IssuedByUntrustedCapf { subject, issuer }
                | ChainFailure::UnknownIssuer { subject, issuer } => write!(
                    f,
                    "SUDI certificate {subject}: its issuer {issuer} is not in CAPF-trust-SUDI \
                     (SUDI policy `require`; `when-trusted` ignores such SUDI data)"
                ),
                other => write!(f, "SUDI certificate untrusted: {other}"),
            },
        }
    }
}

impl std::error::Error for DeviceAuthFailure {}

/// Whether `common_name` names `device`: an LSC's CN is the device name; a MIC's CN is the
/// device name or ends with `-` and the device name (Cisco MICs read "CP-8865-SEP...").
/// Compared ignoring ASCII case, since MAC addresses are written in either case.
pub fn names_device(kind: CertificateKind, common_name: &str, device: &str) -> bool {
    if common_name.eq_ignore_ascii_case(device) {
        return true;
    }
    kind == CertificateKind::Mic
        && common_name.len() > device.len()
        && common_name
            .get(common_name.len() - device.len() - 1..)
            .is_some_and(|tail| tail.starts_with('-') && tail[1..].eq_ignore_ascii_case(device))
}

fn verify(
    cert: &Cert,
    digest: AuthDigest,
    data: &[u8],
    signature: &[u8],
    element: &'static str,
) -> Result<AuthSignatureForm, DeviceAuthFailure> {
    let spki = cert
        .certificate()
        .tbs_certificate()
        .subject_public_key_info();
    verify_auth_signature(spki.owned_to_ref(), digest, data, signature).map_err(|e| {
        DeviceAuthFailure::BadSignature {
            element,
            reason: e.to_string(),
        }
    })
}

/// Authenticates a device by its existing certificate at `now` (spec 6.3 and 6.4 with the
/// project rules): chain, device binding, validity (part of the chain check), both signatures
/// over device name + NUL + certificate DER, and SUDI when sent.
///
/// Both precedences accept a valid certificate of either kind (with LSC first, a MIC is what a
/// phone without a valid LSC sends, and the reverse); [`DeviceAuthentication::preferred`] says
/// whether the precedence's first kind was used, for the log.
///
/// # Errors
/// The first rule the proof breaks.
pub fn authenticate_device(
    store: &TrustStore,
    proof: &DeviceProof<'_>,
    precedence: Precedence,
    now: SystemTime,
) -> Result<DeviceAuthentication, DeviceAuthFailure> {
    authenticate_device_with(store, proof, precedence, SudiPolicy::Require, now)
}

/// [`authenticate_device`] under an explicit [`SudiPolicy`] (the server's run-time setting):
/// with [`SudiPolicy::WhenTrusted`], SUDI data whose certificate's issuer is not in
/// CAPF-trust-SUDI is ignored ([`DeviceAuthentication::sudi_ignored`]) rather than refused.
///
/// # Errors
/// The first rule the proof breaks.
pub fn authenticate_device_with(
    store: &TrustStore,
    proof: &DeviceProof<'_>,
    precedence: Precedence,
    sudi_policy: SudiPolicy,
    now: SystemTime,
) -> Result<DeviceAuthentication, DeviceAuthFailure> {
    let der = proof.certificate.ok_or(DeviceAuthFailure::NoCertificate)?;
    let signed = proof
        .signed_data
        .ok_or(DeviceAuthFailure::MissingSignature {
            element: "SIGNED_DATA",
        })?;
    let (hash_id, sha2) = proof
        .sha2_signed_data
        .ok_or(DeviceAuthFailure::MissingSignature {
            element: "SHA2_SIGNED_DATA",
        })?;
    if hash_id != SHA512_HASH_ID {
        return Err(DeviceAuthFailure::WrongHashId {
            element: "SHA2_SIGNED_DATA",
            found: hash_id,
        });
    }
    let cert = Cert::from_der(der).map_err(|e| DeviceAuthFailure::Unreadable {
        what: "CERTIFICATE",
        reason: e.to_string(),
    })?;
    let order = match precedence {
        Precedence::LscFirst => [CertificateKind::Lsc, CertificateKind::Mic],
        Precedence::MicFirst => [CertificateKind::Mic, CertificateKind::Lsc],
    };
    let mut failures = Vec::with_capacity(2);
    let mut kind = None;
    for candidate in order {
        let purpose = match candidate {
            CertificateKind::Lsc => Purpose::CAPF_TRUST,
            CertificateKind::Mic => Purpose::CAPF_TRUST_MIC,
        };
        match store.verify(&purpose, &cert, &[], now) {
            ChainVerdict::Trusted(_) => {
                kind = Some(candidate);
                break;
            }
            ChainVerdict::Untrusted(why) => failures.push((candidate, why)),
        }
    }
    let Some(kind) = kind else {
        let mut as_lsc = None;
        let mut as_mic = None;
        for (k, why) in failures {
            match k {
                CertificateKind::Lsc => as_lsc = Some(why),
                CertificateKind::Mic => as_mic = Some(why),
            }
        }
        return match (as_lsc, as_mic) {
            (Some(as_lsc), Some(as_mic)) => Err(DeviceAuthFailure::Untrusted {
                as_lsc: Box::new(as_lsc),
                as_mic: Box::new(as_mic),
            }),
            _ => Err(DeviceAuthFailure::NoCertificate),
        };
    };
    let common_name = cert.common_name();
    if !common_name
        .as_deref()
        .is_some_and(|cn| names_device(kind, cn, proof.device_name))
    {
        return Err(DeviceAuthFailure::NotThisDevice {
            kind,
            device: proof.device_name.to_owned(),
            common_name,
        });
    }
    let blob = capf_wire::auth_signed_content(proof.device_name, der);
    let first = verify(&cert, AuthDigest::Sha1, &blob, signed, "SIGNED_DATA")?;
    let second = verify(&cert, AuthDigest::Sha512, &blob, sha2, "SHA2_SIGNED_DATA")?;
    let mut digest_info_used = [first, second].contains(&AuthSignatureForm::DigestInfo);
    let mut sudi_ignored = None;
    let sudi = match proof.sudi {
        None => None,
        Some(sudi) => {
            match verify_sudi(store, &sudi, proof.session_id, now) {
                Ok((subject, used)) => {
                    digest_info_used |= used;
                    Some(subject)
                }
                Err(failure) => {
                    // Ignored only when its issuer is not a SUDI root at all; one that chains
                    // to a trusted root and fails any other check still refuses.
                    let cert = Cert::from_der(sudi.certificate).ok();
                    let unknown_root = cert.as_ref().is_some_and(|c| {
                        !store
                            .certificates(&Purpose::CAPF_TRUST_SUDI)
                            .iter()
                            .any(|root| c.names_issuer(root))
                    });
                    if sudi_policy == SudiPolicy::WhenTrusted
                        && unknown_root
                        && matches!(failure, DeviceAuthFailure::SudiUntrusted(_))
                    {
                        sudi_ignored = cert.map(|c| c.subject());
                        None
                    } else {
                        return Err(failure);
                    }
                }
            }
        }
    };
    Ok(DeviceAuthentication {
        kind,
        subject: cert.subject(),
        serial: cert
            .certificate()
            .tbs_certificate()
            .serial_number()
            .as_bytes()
            .to_vec(),
        preferred: kind == order[0],
        digest_info_used,
        sudi,
        sudi_ignored,
    })
}

/// SUDI: the certificate chains to a SUDI root, and both signatures cover this session's id
/// (little-endian) + the SUDI certificate, so a recorded SUDI proof cannot be replayed in
/// another session. A key type that cannot be verified is rejected, never waved through.
fn verify_sudi(
    store: &TrustStore,
    sudi: &SudiProof<'_>,
    session_id: u32,
    now: SystemTime,
) -> Result<(String, bool), DeviceAuthFailure> {
    if sudi.sha512_hash_id != SHA512_HASH_ID {
        return Err(DeviceAuthFailure::WrongHashId {
            element: "SUDI_DATA",
            found: sudi.sha512_hash_id,
        });
    }
    let cert = Cert::from_der(sudi.certificate).map_err(|e| DeviceAuthFailure::Unreadable {
        what: "SUDI certificate",
        reason: e.to_string(),
    })?;
    if let ChainVerdict::Untrusted(why) = store.verify(&Purpose::CAPF_TRUST_SUDI, &cert, &[], now) {
        return Err(DeviceAuthFailure::SudiUntrusted(Box::new(why)));
    }
    let blob = capf_wire::sudi_signed_content(session_id, sudi.certificate);
    let a = verify(
        &cert,
        AuthDigest::Sha1,
        &blob,
        sudi.sha1_signature,
        "SUDI_DATA SHA-1",
    )?;
    let b = verify(
        &cert,
        AuthDigest::Sha512,
        &blob,
        sudi.sha512_signature,
        "SUDI_DATA SHA-512",
    )?;
    Ok((
        cert.subject(),
        [a, b].contains(&AuthSignatureForm::DigestInfo),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_match_lsc_cn_exactly_and_mic_cn_as_suffix() {
        use CertificateKind::{Lsc, Mic};
        assert!(names_device(Lsc, "SEP001A2B3C4D5E", "SEP001A2B3C4D5E"));
        assert!(names_device(Lsc, "sep001a2b3c4d5e", "SEP001A2B3C4D5E"));
        assert!(!names_device(
            Lsc,
            "CP-8865-SEP001A2B3C4D5E",
            "SEP001A2B3C4D5E"
        ));
        assert!(names_device(
            Mic,
            "CP-8865-SEP001A2B3C4D5E",
            "SEP001A2B3C4D5E"
        ));
        assert!(!names_device(
            Mic,
            "CP-8865-SEP001A2B3C4D5F",
            "SEP001A2B3C4D5E"
        ));
        assert!(!names_device(
            Mic,
            "CP-8865SEP001A2B3C4D5E",
            "SEP001A2B3C4D5E"
        ));
        assert!(!names_device(Mic, "XSEP001A2B3C4D5E", "SEP001A2B3C4D5E"));
    }
}
