#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod auth_signature;
mod backend;
mod bundle;
mod capf;
pub mod cert_info;
mod csr;
mod endpoint_csr;
mod error;
mod issue;
mod issued;
mod keys;
mod oid;
mod online_ca;
mod pem;
mod policy;
mod signer;
mod single_key;
mod summary;
mod text;
mod validity;
mod verify;

pub use auth_signature::{
    AuthDigest, AuthSignatureForm, sign_auth_signature, verify_auth_signature,
};
pub use backend::SignerBackend;
pub use bundle::CertificateAndKey;
pub use capf::{
    CAPF_PROFILE_RULE, CapfCertificateProblem, CapfCertificateReport, capf_certificate_problems,
    check_capf_certificate,
};
pub use csr::{VerifiedCsr, capf_csr};
pub use endpoint_csr::{EndpointCsr, endpoint_csr_info, sign_endpoint_csr_info};
// Validated once where a name arrives, carried from the session to the store to issuance.
pub use capf_wire::{DeviceName, DeviceNameError, DeviceNameKind, MAX_DEVICE_NAME_LEN};
pub use error::Error;
pub use issue::{
    CaCertificateParams, CaProfile, Issuer, LscParams, LscProfile, SerialSource, ca_key_usage,
    is_capf_common_name, lsc_key_usage, serial_from_bytes,
};
pub use issued::IssuedLsc;
pub use keys::{Curve, KeySpec, PhonePublicKey, RsaBits};
pub use online_ca::{EnrollmentLabel, OnlineCaConfig, OnlineCaHost, OnlineCaParams, Secret};
pub use pem::{
    certificate_from_pem_or_der, certificate_to_der, certificate_to_pem, certificates_from_pem,
    csr_to_pem, public_key_from_pem_or_der,
};
pub use policy::{
    CertificateIssuer, KeyOrder, KeyPolicy, OnlineCaPolicy, OnlineCaType, SudiPolicy,
    UnknownCertificateIssuer, UnknownOnlineCaType, UnknownSudiPolicy,
};
pub use signer::{IssuerKey, LscSigner, SignatureHash};
pub use summary::{CertificateSummary, key_usage_names};
pub use text::{format_time, hex};
pub use validity::ValidityDays;
pub use verify::{verify_signature, verify_signed_data};

// Re-exported so users name the same versions of the types in our API.
pub use der;
pub use spki;
pub use x509_cert;
