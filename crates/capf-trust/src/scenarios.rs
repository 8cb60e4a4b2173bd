//! The guide's "Table 1. Upload Certificate Scenarios" as a function, and the MIC-root advice.

use std::fmt;

use crate::rules::contains_reserved_capf_name;
use crate::{Cert, Fingerprint, Purpose, TrustStore};

/// A row of the guide's Upload Certificate Scenarios table, told apart by the certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Row 1, "CA root and HTTPS certificates are same": the same certificate (same DER).
    SameCertificate,
    /// Row 2, "CA root and HTTPS certificates are different and if HTTPS certificates are issued
    /// by the same CA root certificate": the HTTPS certificate's signature verifies with the
    /// root's key; the root completes its chain.
    IssuedByRoot,
    /// Row 3, "The intermediate CA and HTTPS certificates are different and are issued by the CA
    /// root certificate": the HTTPS certificate is signed by a given intermediate whose chain of
    /// signatures reaches the root.
    IssuedByIntermediate,
    /// Row 4, "CA root and HTTPS certificates are different and are issued by the same CA root
    /// certificate" (the same words as row 2, a different answer): the uploaded certificates
    /// cannot complete the HTTPS certificate's chain to the root (an intermediate is missing,
    /// or a name matches but no signature verifies), so the HTTPS certificate itself must be
    /// trusted.
    ChainIncomplete,
}

impl Scenario {
    /// The row number in the guide's table.
    pub fn row(self) -> u8 {
        match self {
            Self::SameCertificate => 1,
            Self::IssuedByRoot => 2,
            Self::IssuedByIntermediate => 3,
            Self::ChainIncomplete => 4,
        }
    }

    /// The guide's "Results" column.
    pub fn guide_result(self) -> &'static str {
        match self {
            Self::ChainIncomplete => "Upload CA root and HTTPS certificate.",
            Self::SameCertificate | Self::IssuedByRoot | Self::IssuedByIntermediate => {
                "Upload the CA root certificate."
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: ", self.row())?;
        f.write_str(match self {
            Self::SameCertificate => "the CA root and the HTTPS certificate are the same",
            Self::IssuedByRoot => "the HTTPS certificate is issued directly by the CA root",
            Self::IssuedByIntermediate => {
                "the HTTPS certificate is issued by an intermediate CA under the CA root"
            }
            Self::ChainIncomplete => {
                "the given certificates cannot complete the HTTPS certificate's chain to the root"
            }
        })
    }
}

/// Which certificate of the scenario's input an upload concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScenarioCertificate {
    /// The CA root.
    CaRoot,
    /// The HTTPS (IIS) certificate.
    Https,
}

/// One upload the scenario calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedUpload {
    /// Which certificate.
    pub certificate: ScenarioCertificate,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// The stores it goes to.
    pub purposes: Vec<Purpose>,
}

/// The answer of [`upload_scenario`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioAdvice {
    /// The row that applies.
    pub scenario: Scenario,
    /// What to upload where. The guide: "HTTPS certificate goes through the CAPF-trust and the
    /// CA root certificate goes through the CAPF-trust and the CallManager-trust".
    pub uploads: Vec<PlannedUpload>,
}

/// Says which certificates to upload to which stores, given the CA root, the HTTPS (IIS)
/// certificate of the online CA and any intermediates (the guide's Upload Certificate
/// Scenarios). Signatures are checked, not just names, so rows 2 and 4 are told apart.
pub fn upload_scenario(ca_root: &Cert, https: &Cert, intermediates: &[Cert]) -> ScenarioAdvice {
    let scenario = if ca_root == https {
        Scenario::SameCertificate
    } else if signed_by(https, ca_root) {
        Scenario::IssuedByRoot
    } else if reaches_root(https, ca_root, intermediates, 0) {
        Scenario::IssuedByIntermediate
    } else {
        Scenario::ChainIncomplete
    };
    let mut uploads = vec![PlannedUpload {
        certificate: ScenarioCertificate::CaRoot,
        fingerprint: ca_root.fingerprint(),
        purposes: vec![Purpose::CAPF_TRUST, Purpose::CALLMANAGER_TRUST],
    }];
    if scenario == Scenario::ChainIncomplete {
        uploads.push(PlannedUpload {
            certificate: ScenarioCertificate::Https,
            fingerprint: https.fingerprint(),
            purposes: vec![Purpose::CAPF_TRUST],
        });
    }
    ScenarioAdvice { scenario, uploads }
}

fn signed_by(cert: &Cert, issuer: &Cert) -> bool {
    cert.names_issuer(issuer)
        && capf_lsc::verify_signature(
            cert.certificate(),
            issuer
                .certificate()
                .tbs_certificate()
                .subject_public_key_info(),
        )
        .is_ok()
}

fn reaches_root(cert: &Cert, root: &Cert, intermediates: &[Cert], depth: usize) -> bool {
    if depth >= crate::chain::MAX_CHAIN_LEN {
        return false;
    }
    intermediates
        .iter()
        .filter(|i| *i != cert && signed_by(cert, i))
        .any(|i| signed_by(i, root) || reaches_root(i, root, intermediates, depth + 1))
}

/// The MIC roots the guide says administrators should remove from CallManager-trust
/// ("to avoid possible future compatibility issues").
pub const MIC_ROOTS: [&str; 4] = [
    "CAP-RTP-001",
    "CAP-RTP-002",
    "Cisco_Manufacturing_CA",
    "Cisco_Root_CA_2048",
];

/// A MIC root found in CallManager-trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MicRootAdvice {
    /// Its Common Name (one of [`MIC_ROOTS`]).
    pub common_name: String,
    /// Its fingerprint, to delete it by.
    pub fingerprint: Fingerprint,
}

/// The MIC roots present in CallManager-trust, which the guide recommends removing once the
/// phones use LSCs. Names compare case-insensitively (X.520 caseIgnoreMatch).
pub fn mic_root_advice(store: &TrustStore) -> Vec<MicRootAdvice> {
    store
        .certificates(&Purpose::CALLMANAGER_TRUST)
        .iter()
        .filter_map(|c| {
            let cn = c.common_name()?;
            crate::is_mic_root(&cn).then(|| MicRootAdvice {
                common_name: cn,
                fingerprint: c.fingerprint(),
            })
        })
        .collect()
}

/// CAPF certificates (Common Name with "CAPF-") held by a purpose: this cluster's and those of
/// other clusters kept for a migration.
pub fn capf_certificates<'a>(store: &'a TrustStore, purpose: &Purpose) -> Vec<&'a Cert> {
    store
        .certificates(purpose)
        .iter()
        .filter(|c| {
            c.common_name()
                .is_some_and(|cn| contains_reserved_capf_name(&cn))
        })
        .collect()
}
