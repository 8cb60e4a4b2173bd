//! The crate's error type.

use spki::ObjectIdentifier;

use crate::capf::CapfCertificateProblem;
use crate::keys::{Curve, KeySpec};

/// Everything that can go wrong in capf-lsc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A validity outside 1..=1825 days.
    #[error("validity of {days} days is outside the allowed range of 1 to 1825 days")]
    ValidityOutOfRange {
        /// The rejected value.
        days: i64,
    },
    /// A validity that is not a number.
    #[error("validity {input:?} is not a number of days (1 to 1825)")]
    ValidityNotANumber {
        /// The rejected text.
        input: String,
    },
    /// A device name that cannot go into an LSC: capf-wire's
    /// [`capf_wire::Error::InvalidDeviceName`].
    #[error(transparent)]
    InvalidDeviceName(capf_wire::Error),
    /// An RSA key size outside 1024/2048/3072/4096.
    #[error("RSA key of {bits} bits is not allowed (allowed: 1024, 2048, 3072, 4096)")]
    UnsupportedRsaSize {
        /// The modulus size.
        bits: usize,
    },
    /// An RSA public exponent that is even, below 3 or huge.
    #[error("RSA public exponent {} is not allowed: it must be odd and at least 3 (65537 is usual)", exponent.map_or_else(|| "over 64 bits".to_owned(), |e| e.to_string()))]
    BadRsaExponent {
        /// The exponent when it fits 64 bits.
        exponent: Option<u64>,
    },
    /// An EC curve other than P-256, P-384, P-521.
    #[error("elliptic curve {oid} is not supported (allowed: P-256, P-384, P-521)")]
    UnsupportedCurve {
        /// The curve OID.
        oid: ObjectIdentifier,
    },
    /// A CURVE value of KEY_GEN_REQUEST other than 0, 1, 2 (spec 5.5).
    #[error("CURVE {} is not supported (allowed: 0 P-256, 1 P-384, 2 P-521)", curve.0)]
    UnknownCurveValue {
        /// The CURVE value.
        curve: capf_wire::Curve,
    },
    /// An EC point that is not on its curve (or is the identity).
    #[error("the {curve} public key is not a valid point on the curve")]
    InvalidEcPoint {
        /// The curve.
        curve: Curve,
    },
    /// A public key that is neither RSA nor EC.
    #[error("public key algorithm {oid} is not supported (RSA or EC keys only)")]
    UnsupportedKeyAlgorithm {
        /// The algorithm OID.
        oid: ObjectIdentifier,
    },
    /// A structurally wrong public or private key.
    #[error("malformed key: {reason}")]
    MalformedPublicKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A key of another type or size than the one requested.
    #[error("the key is {actual} but {requested} was requested")]
    KeySpecMismatch {
        /// What was asked for.
        requested: KeySpec,
        /// What came.
        actual: KeySpec,
    },
    /// Text that names no key spec.
    #[error(
        "unknown key type {input:?} (use rsa1024, rsa2048, rsa3072, rsa4096, p256, p384 or p521)"
    )]
    UnknownKeySpec {
        /// The rejected text.
        input: String,
    },
    /// Text that names no signature digest.
    #[error("unknown signature digest {input:?} (use sha256, sha384 or sha512)")]
    UnknownHash {
        /// The rejected text.
        input: String,
    },
    /// Text that names no signer backend.
    #[error("unknown LSC signer {input:?} (use rustcrypto, ring or aws-lc-rs)")]
    UnknownSignerBackend {
        /// The rejected text.
        input: String,
    },
    /// A signer backend that cannot sign with this key (issue 19).
    #[error("the {backend} signer cannot sign with an {spec} key and {hash:?}: {reason}")]
    SignerUnavailable {
        /// The backend asked for.
        backend: crate::SignerBackend,
        /// The key's type and size.
        spec: crate::KeySpec,
        /// The signature digest.
        hash: crate::SignatureHash,
        /// Why not.
        reason: &'static str,
    },
    /// ring or aws-lc-rs failed to sign (they say no more than that).
    #[error("{backend} failed to sign")]
    BackendSigning {
        /// The library.
        backend: &'static str,
    },
    /// The guide: an online CA does not support EC keys.
    #[error(
        "an online CA cannot issue for an {spec} key: the guide says Online CA does not support ECDSA keys"
    )]
    OnlineCaRejectsEc {
        /// The rejected key.
        spec: KeySpec,
    },
    /// An Online CA setting out of its rule (the password is never shown).
    #[error("online CA {setting} {value:?}: expected {rule}")]
    OnlineCaSetting {
        /// Which setting: "hostname", "port", "type", "username", "password", "template",
        /// "certificate enrollment profile label".
        setting: &'static str,
        /// The value given (`********` for the password).
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// An online-CA LSC without digitalSignature + keyEncipherment.
    #[error(
        "the online CA's LSC lacks KeyUsage digitalSignature and keyEncipherment, without which secure registration fails"
    )]
    OnlineCaKeyUsage,
    /// A key type that may not sign certificates here.
    #[error("an {spec} key cannot be an issuer key (allowed: RSA 2048/3072/4096, EC P-256/P-384)")]
    IssuerKeyNotAllowed {
        /// The key.
        spec: KeySpec,
    },
    /// The issuer key is not the issuing certificate's key.
    #[error("the issuer key does not match the issuer certificate's public key")]
    IssuerKeyMismatch,
    /// The issuing certificate is not a CA.
    #[error("the issuer certificate is not a CA (BasicConstraints CA:TRUE is missing)")]
    IssuerNotCa,
    /// A certificate that fails the CAPF certificate profile.
    #[error("not a valid CAPF certificate: {0} ({rule})", rule = crate::capf::CAPF_PROFILE_RULE)]
    CapfCertificate(CapfCertificateProblem),
    /// A subject attribute that cannot be encoded.
    #[error("subject attribute {attribute} {reason}")]
    InvalidNameAttribute {
        /// The attribute (CN, O, OU, L, ST, C).
        attribute: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A time certificates cannot carry (before 1970 or after 9999).
    #[error("{what} is outside the range a certificate can carry")]
    TimeOutOfRange {
        /// notBefore or notAfter.
        what: &'static str,
    },
    /// A signature that does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Outer and TBS signature algorithms differ.
    #[error("the certificate's signatureAlgorithm differs from its TBSCertificate signature field")]
    SignatureAlgorithmsDiffer,
    /// A signature algorithm we do not verify.
    #[error("signature algorithm {oid} is not supported")]
    UnsupportedSignatureAlgorithm {
        /// The algorithm OID.
        oid: ObjectIdentifier,
    },
    /// A signature algorithm for another key type than the signer's.
    #[error("signature algorithm {algorithm} does not fit a key of type {key}")]
    SignatureKeyMismatch {
        /// The signature algorithm.
        algorithm: ObjectIdentifier,
        /// The key algorithm.
        key: ObjectIdentifier,
    },
    /// A PKCS#10 request with a version other than v1.
    #[error("the PKCS#10 request version is not v1")]
    CsrVersion,
    /// A PKCS#10 request for another subject.
    #[error("the PKCS#10 request's CN is {found:?}, expected {expected:?}")]
    CsrSubjectMismatch {
        /// The expected CN.
        expected: String,
        /// The CN found.
        found: Option<String>,
    },
    /// An endpoint CSR (spec section 16) whose CertificationRequestInfo carries another key
    /// than the one the phone sent in KEY_GEN_RESPONSE.
    #[error("the endpoint CSR carries another public key than the phone's KEY_GEN_RESPONSE")]
    EndpointCsrKeyMismatch,
    /// The phone's signature over the endpoint CSR (SIGN_CERT_RESPONSE) does not verify with
    /// the key it sent.
    #[error(
        "the phone's signature over the endpoint CSR does not verify with the key it sent in KEY_GEN_RESPONSE"
    )]
    EndpointCsrSignature,
    /// A PEM block of the wrong type.
    #[error("expected a PEM {expected}, found {found}")]
    UnexpectedPemLabel {
        /// The expected label.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// A PEM input without a block it needs.
    #[error("no PEM {label} block found")]
    MissingPemBlock {
        /// The missing label.
        label: &'static str,
    },
    /// A malformed or repeated certificate extension.
    #[error("malformed or repeated extension {oid}")]
    Extension {
        /// The extension OID.
        oid: ObjectIdentifier,
        /// The decoding error.
        #[source]
        source: der::Error,
    },
    /// DER (or PEM-wrapped DER) that does not decode or encode.
    #[error("malformed {what}")]
    Der {
        /// What was being decoded or encoded.
        what: &'static str,
        /// The DER error.
        #[source]
        source: der::Error,
    },
    /// A PEM envelope that does not decode.
    #[error("malformed PEM {what}")]
    Pem {
        /// What was being decoded.
        what: &'static str,
        /// The PEM error.
        #[source]
        source: der::pem::Error,
    },
    /// A SubjectPublicKeyInfo the key crates refuse.
    #[error("invalid {what}")]
    Spki {
        /// Which key.
        what: &'static str,
        /// The error.
        #[source]
        source: spki::Error,
    },
    /// A PKCS#8 private key the key crates refuse.
    #[error("invalid {what}")]
    Pkcs8 {
        /// Which key.
        what: &'static str,
        /// The error.
        #[source]
        source: pkcs8::Error,
    },
    /// RSA key generation or use failed.
    #[error("RSA operation failed")]
    Rsa(#[from] rsa::Error),
    /// The random source failed.
    #[error("the random number source failed")]
    RandomSource,
    /// The signer failed.
    #[error("signing failed")]
    Signing(#[source] signature::Error),
    /// The x509-cert builder failed.
    #[error("certificate builder failed")]
    Builder(#[from] x509_cert::builder::Error),
}

impl Error {
    /// A `map_err` adapter for DER errors about `what`.
    pub(crate) fn from_der(what: &'static str) -> impl Fn(der::Error) -> Error {
        move |source| Error::Der { what, source }
    }
}
