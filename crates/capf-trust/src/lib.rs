#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cert;
mod chain;
mod device_auth;
mod dir;
mod external;
mod maintain;
mod purpose;
mod release;
mod rules;
mod scenarios;
mod store;

use std::path::PathBuf;

pub use capf_lsc::SudiPolicy;
pub use cert::{Cert, Fingerprint, MAX_BUNDLE_CERTIFICATES, MAX_CERTIFICATE_LEN, parse_bundle};
pub use chain::{ChainFailure, ChainVerdict, MAX_CHAIN_LEN, VerifiedChain};
pub use device_auth::{
    CertificateKind, DeviceAuthFailure, DeviceAuthentication, DeviceProof, Precedence,
    SHA512_HASH_ID, SudiProof, authenticate_device, authenticate_device_with, names_device,
};
pub use dir::{BadFile, LoadedStore, StoreDir};
pub use external::{ExternalLsc, ExternalLscRefusal, check_external_lsc};
pub use maintain::{FingerprintPrefix, MIN_FINGERPRINT_PREFIX, PrefixMatch, is_mic_root};
pub use purpose::Purpose;
pub use release::Release;
pub use rules::{CertRole, CertVerdict, DASHES, Rule, Verdict, contains_reserved_capf_name};
pub use scenarios::{
    MIC_ROOTS, MicRootAdvice, PlannedUpload, Scenario, ScenarioAdvice, ScenarioCertificate,
    capf_certificates, mic_root_advice, upload_scenario,
};
pub use store::{Ignored, IgnoredReason, TrustStore, UploadReport};

/// Everything that can go wrong in capf-trust, with what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A purpose name that cannot name a store directory.
    #[error("invalid certificate purpose {name:?} (1-64 ASCII letters, digits, '-', '_', '.')")]
    InvalidPurpose {
        /// The name given.
        name: String,
    },
    /// A release that is not like `14`, `14SU2` or `12.5SU7`.
    #[error("invalid release {text:?} (expected e.g. 14SU2, 15 or 12.5SU7)")]
    InvalidRelease {
        /// The text given.
        text: String,
    },
    /// A fingerprint that is not 64 hex digits.
    #[error("invalid SHA-256 fingerprint {text:?} (expected 64 hex digits)")]
    InvalidFingerprint {
        /// The text given.
        text: String,
    },
    /// The DER of a certificate does not parse.
    #[error("certificate does not parse")]
    CertificateDer(#[source] der::Error),
    /// A certificate larger than [`MAX_CERTIFICATE_LEN`].
    #[error("certificate of {len} bytes is larger than the {MAX_CERTIFICATE_LEN}-byte limit")]
    CertificateTooLarge {
        /// Its length.
        len: usize,
    },
    /// A PEM block that does not decode.
    #[error("PEM block does not decode")]
    Pem(#[source] der::pem::Error),
    /// A PEM block of another kind than CERTIFICATE.
    #[error("PEM block is a {label:?}, not a CERTIFICATE")]
    NotACertificate {
        /// The block's label.
        label: String,
    },
    /// A PEM block without its END line.
    #[error("PEM block {index} has no END line")]
    UnterminatedPem {
        /// Which block (0-based).
        index: usize,
    },
    /// No certificate in the input.
    #[error("no certificate found (expected PEM CERTIFICATE blocks or one DER certificate)")]
    NoCertificate,
    /// More certificates than [`MAX_BUNDLE_CERTIFICATES`].
    #[error("more than {max} certificates in one input")]
    TooManyCertificates {
        /// The limit.
        max: usize,
    },
    /// A certificate of a bundle failed to parse.
    #[error("certificate {index} of the bundle")]
    InBundle {
        /// Which one (0-based).
        index: usize,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// An extension that is malformed or repeated.
    #[error("the {extension} extension is malformed or repeated")]
    Extension {
        /// Which extension.
        extension: &'static str,
        /// The decoding error.
        #[source]
        source: der::Error,
    },
    /// capf-lsc failed on a certificate (CAPF profile check).
    #[error(transparent)]
    Lsc(#[from] capf_lsc::Error),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A store file that is not named `<sha256>.pem`, or a stray entry in the store directory.
    #[error("not part of a trust store (expected <purpose>/<sha256>.pem)")]
    StrayFile,
    /// A temporary file left by an interrupted write.
    #[error("temporary file left by an interrupted write; remove it")]
    LeftoverTemporaryFile,
    /// A store file holding zero or several certificates.
    #[error("holds {found} certificates; a store file holds exactly one")]
    NotOneCertificate {
        /// How many it holds.
        found: usize,
    },
    /// A store file whose name is not its certificate's fingerprint.
    #[error("file name is not the certificate's fingerprint {fingerprint}")]
    FileNameMismatch {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A second file with a certificate already loaded.
    #[error("duplicate of a certificate already loaded")]
    DuplicateFile,
}
