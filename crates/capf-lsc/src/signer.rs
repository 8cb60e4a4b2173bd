//! Issuer keys: the [`LscSigner`] trait and the software [`IssuerKey`].

use core::fmt;

use der::Decode;
use der::asn1::Any;
use pkcs8::{EncodePrivateKey, LineEnding, PrivateKeyInfoRef};
use rsa::rand_core::TryCryptoRng;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashSigner;
use signature::{SignatureEncoding, Signer};
use spki::{AlgorithmIdentifierOwned, EncodePublicKey, SubjectPublicKeyInfoOwned};

use crate::backend::{FastKey, SignerBackend};
use crate::keys::{Curve, KeySpec, RsaBits};
use crate::{Error, oid};

/// The digest of a certificate signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignatureHash {
    /// SHA-256, the default: the guide says all LSCs are signed with SHA-256 (from UCM
    /// 11.5(1)SU1; 7900/8900/9900 phones accept nothing stronger for LSCs).
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl SignatureHash {
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

impl core::str::FromStr for SignatureHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            _ => Err(Error::UnknownHash {
                input: s.to_owned(),
            }),
        }
    }
}

/// A key that signs certificates: the CAPF key, an intermediate CA key, an HSM.
///
/// Object-safe, so an issuer holds a `Box<dyn LscSigner + Send + Sync>` and any backend can
/// be plugged in. [`IssuerKey`] is the software implementation.
pub trait LscSigner {
    /// The signature AlgorithmIdentifier written into the TBSCertificate and the certificate
    /// (for example sha256WithRSAEncryption with NULL parameters, or ecdsa-with-SHA256).
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;

    /// The signer's public key.
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;

    /// Signs `tbs` (the DER to be signed) and returns the signature as it goes into the
    /// signature BIT STRING: the PKCS#1 v1.5 block for RSA, a DER ECDSA-Sig-Value for ECDSA.
    ///
    /// # Errors
    /// [`Error::Signing`] (or a backend's own error) if the key cannot sign.
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, Error>;

    /// The library that makes the signatures, for a software key ([`IssuerKey`]); `None` for
    /// others (an HSM).
    fn signer_backend(&self) -> Option<SignerBackend> {
        None
    }
}

enum KeyInner {
    Rsa256(rsa::pkcs1v15::SigningKey<Sha256>),
    Rsa384(rsa::pkcs1v15::SigningKey<Sha384>),
    Rsa512(rsa::pkcs1v15::SigningKey<Sha512>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// A software issuer key: RSA 2048/3072/4096 (PKCS#1 v1.5) or ECDSA P-256/P-384, loaded
/// from PKCS#8 or generated, signing with SHA-256 unless told otherwise.
///
/// RustCrypto parses, encodes and checks the key; the signatures come from a
/// [`SignerBackend`]: the default one ([`SignerBackend::default_backend`]) where it signs this
/// key type with this digest, else RustCrypto ([`IssuerKey::backend`] says which), or the one
/// [`IssuerKey::with_backend`] names. Every backend writes the same certificate but for the
/// signature value (RSA PKCS#1 v1.5 is deterministic: the same signature too).
pub struct IssuerKey {
    inner: KeyInner,
    spec: KeySpec,
    hash: SignatureHash,
    spki: SubjectPublicKeyInfoOwned,
    backend: SignerBackend,
    /// The backend asked for (the default, or [`IssuerKey::with_backend`]'s), which
    /// [`IssuerKey::with_hash`] tries again.
    wanted: SignerBackend,
    /// The key in ring or aws-lc-rs; `None` when RustCrypto signs.
    fast: Option<FastKey>,
}

impl fmt::Debug for IssuerKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKey")
            .field("spec", &self.spec)
            .field("hash", &self.hash)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Issuer key types allowed by the issue: RSA 2048/3072/4096, P-256, P-384.
pub(crate) fn check_issuer_spec(spec: KeySpec) -> Result<(), Error> {
    match spec {
        KeySpec::Rsa(RsaBits::B1024) | KeySpec::Ec(Curve::P521) => {
            Err(Error::IssuerKeyNotAllowed { spec })
        }
        _ => Ok(()),
    }
}

fn spki_of(key: &impl EncodePublicKey) -> Result<SubjectPublicKeyInfoOwned, Error> {
    let doc = key.to_public_key_der().map_err(|source| Error::Spki {
        what: "issuer public key",
        source,
    })?;
    SubjectPublicKeyInfoOwned::from_der(doc.as_bytes()).map_err(|source| Error::Der {
        what: "issuer public key",
        source,
    })
}

impl IssuerKey {
    fn from_rsa(key: rsa::PrivateKey, hash: SignatureHash) -> Result<Self, Error> {
        let public = key.to_public_key();
        let spki = spki_of(&public)?;
        let spec = KeySpec::of_spki(der::referenced::OwnedToRef::owned_to_ref(&spki))?;
        check_issuer_spec(spec)?;
        let inner = match hash {
            SignatureHash::Sha256 => KeyInner::Rsa256(rsa::pkcs1v15::SigningKey::new(key)),
            SignatureHash::Sha384 => KeyInner::Rsa384(rsa::pkcs1v15::SigningKey::new(key)),
            SignatureHash::Sha512 => KeyInner::Rsa512(rsa::pkcs1v15::SigningKey::new(key)),
        };
        Ok(IssuerKey {
            inner,
            spec,
            hash,
            spki,
            backend: SignerBackend::RustCrypto,
            wanted: SignerBackend::RustCrypto,
            fast: None,
        })
    }

    fn from_p256(key: p256::ecdsa::SigningKey, hash: SignatureHash) -> Result<Self, Error> {
        let spki = spki_of(key.verifying_key())?;
        Ok(IssuerKey {
            inner: KeyInner::P256(key),
            spec: KeySpec::Ec(Curve::P256),
            hash,
            spki,
            backend: SignerBackend::RustCrypto,
            wanted: SignerBackend::RustCrypto,
            fast: None,
        })
    }

    fn from_p384(key: p384::ecdsa::SigningKey, hash: SignatureHash) -> Result<Self, Error> {
        let spki = spki_of(key.verifying_key())?;
        Ok(IssuerKey {
            inner: KeyInner::P384(key),
            spec: KeySpec::Ec(Curve::P384),
            hash,
            spki,
            backend: SignerBackend::RustCrypto,
            wanted: SignerBackend::RustCrypto,
            fast: None,
        })
    }

    /// Loads a PKCS#8 DER private key (unencrypted), signing with SHA-256.
    ///
    /// # Errors
    /// [`Error::Der`]/[`Error::Pkcs8`] for a malformed key, [`Error::UnsupportedKeyAlgorithm`]
    /// or [`Error::UnsupportedCurve`] for other key types, [`Error::IssuerKeyNotAllowed`] for
    /// RSA-1024 and P-521.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        Ok(Self::rustcrypto_from_pkcs8_der(der)?.with_default_backend())
    }

    fn rustcrypto_from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let info = pkcs8_info(der)?;
        let hash = SignatureHash::Sha256;
        match info.algorithm.oid {
            oid::RSA_ENCRYPTION => Self::from_rsa(rsa_private_key(info)?, hash),
            oid::EC_PUBLIC_KEY => {
                match Curve::from_parameters(
                    info.algorithm.parameters,
                    "EC private key without namedCurve parameters",
                )? {
                    Curve::P256 => {
                        let key = p256::ecdsa::SigningKey::try_from(info).map_err(|source| {
                            Error::Pkcs8 {
                                what: "P-256 private key",
                                source,
                            }
                        })?;
                        Self::from_p256(key, hash)
                    }
                    Curve::P384 => {
                        let key = p384::ecdsa::SigningKey::try_from(info).map_err(|source| {
                            Error::Pkcs8 {
                                what: "P-384 private key",
                                source,
                            }
                        })?;
                        Self::from_p384(key, hash)
                    }
                    Curve::P521 => Err(Error::IssuerKeyNotAllowed {
                        spec: KeySpec::Ec(Curve::P521),
                    }),
                }
            }
            other => Err(Error::UnsupportedKeyAlgorithm { oid: other }),
        }
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8, as written by `openssl genpkey`).
    ///
    /// # Errors
    /// [`Error::UnexpectedPemLabel`] for other PEM types (such as `ENCRYPTED PRIVATE KEY` or
    /// `RSA PRIVATE KEY`), else as [`IssuerKey::from_pkcs8_der`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) = der::pem::decode_vec(pem.as_bytes()).map_err(|source| Error::Pem {
            what: "private key",
            source,
        })?;
        let der = der::zeroize::Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(Error::UnexpectedPemLabel {
                expected: "PRIVATE KEY",
                found: label.to_owned(),
            });
        }
        Self::from_pkcs8_der(&der)
    }

    /// Generates a key for `spec` (RSA 2048/3072/4096, P-256 or P-384) from `rng` (for
    /// example `getrandom::SysRng`).
    ///
    /// # Errors
    /// [`Error::IssuerKeyNotAllowed`] for other specs, [`Error::Rsa`] if RSA generation fails,
    /// [`Error::RandomSource`] if `rng` fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(spec: KeySpec, rng: &mut R) -> Result<Self, Error> {
        Ok(Self::rustcrypto_generate(spec, rng)?.with_default_backend())
    }

    fn rustcrypto_generate<R: TryCryptoRng + ?Sized>(
        spec: KeySpec,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_issuer_spec(spec)?;
        let hash = SignatureHash::Sha256;
        match spec {
            KeySpec::Rsa(bits) => {
                let key = rsa::PrivateKey::new(rng, usize::from(bits.bits()))?;
                Self::from_rsa(key, hash)
            }
            KeySpec::Ec(Curve::P256) => Self::from_p256(
                <p256::ecdsa::SigningKey as rsa::Generate>::try_generate_from_rng(rng)
                    .map_err(|_| Error::RandomSource)?,
                hash,
            ),
            KeySpec::Ec(Curve::P384) => Self::from_p384(
                <p384::ecdsa::SigningKey as rsa::Generate>::try_generate_from_rng(rng)
                    .map_err(|_| Error::RandomSource)?,
                hash,
            ),
            KeySpec::Ec(Curve::P521) => Err(Error::IssuerKeyNotAllowed { spec }),
        }
    }

    /// The same key, signing with `hash` instead, with the same backend where it signs with
    /// `hash` (else RustCrypto: ring and aws-lc-rs sign P-256 only with SHA-256, P-384 only with
    /// SHA-384).
    pub fn with_hash(self, hash: SignatureHash) -> Self {
        let wanted = self.wanted;
        let inner = match self.inner {
            KeyInner::Rsa256(k) => rsa_with_hash(k.into(), hash),
            KeyInner::Rsa384(k) => rsa_with_hash(k.into(), hash),
            KeyInner::Rsa512(k) => rsa_with_hash(k.into(), hash),
            ec => ec,
        };
        let key = IssuerKey {
            inner,
            hash,
            backend: SignerBackend::RustCrypto,
            fast: None,
            ..self
        };
        match key.to_pkcs8_der() {
            Ok(der) => key.with_backend_or_rustcrypto(wanted, der.as_bytes()),
            Err(_) => key,
        }
    }

    /// The same key, signing with `backend`.
    ///
    /// # Errors
    /// [`Error::SignerUnavailable`] when this build lacks the backend or it does not sign this
    /// key type with this digest; [`Error::Pkcs8`] if the key cannot be encoded for it.
    pub fn with_backend(self, backend: SignerBackend) -> Result<Self, Error> {
        let der = self.to_pkcs8_der()?;
        let fast = FastKey::load(backend, der.as_bytes(), self.spec, self.hash)?;
        Ok(IssuerKey {
            backend,
            wanted: backend,
            fast,
            ..self
        })
    }

    /// The backend that makes this key's signatures.
    pub fn backend(&self) -> SignerBackend {
        self.backend
    }

    /// The key re-encoded by RustCrypto (so the EC public key is always in it, which ring
    /// requires), loaded into the default backend.
    fn with_default_backend(self) -> Self {
        match self.to_pkcs8_der() {
            Ok(der) => {
                self.with_backend_or_rustcrypto(SignerBackend::default_backend(), der.as_bytes())
            }
            Err(_) => self,
        }
    }

    /// Signs with `backend` where it can sign this key with this digest, else with RustCrypto.
    fn with_backend_or_rustcrypto(self, backend: SignerBackend, pkcs8: &[u8]) -> Self {
        match FastKey::load(backend, pkcs8, self.spec, self.hash) {
            Ok(fast) => IssuerKey {
                backend,
                wanted: backend,
                fast,
                ..self
            },
            Err(_) => IssuerKey {
                backend: SignerBackend::RustCrypto,
                wanted: backend,
                fast: None,
                ..self
            },
        }
    }

    /// The key's type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The signature digest.
    pub fn hash(&self) -> SignatureHash {
        self.hash
    }

    /// The key as PKCS#8 DER (zeroized on drop).
    ///
    /// # Errors
    /// [`Error::Pkcs8`] if encoding fails.
    pub fn to_pkcs8_der(&self) -> Result<pkcs8::SecretDocument, Error> {
        let what = "issuer private key";
        let doc = match &self.inner {
            KeyInner::Rsa256(k) => k.to_pkcs8_der(),
            KeyInner::Rsa384(k) => k.to_pkcs8_der(),
            KeyInner::Rsa512(k) => k.to_pkcs8_der(),
            KeyInner::P256(k) => k.to_pkcs8_der(),
            KeyInner::P384(k) => k.to_pkcs8_der(),
        };
        doc.map_err(|source| Error::Pkcs8 { what, source })
    }

    /// The key as a PEM `PRIVATE KEY` (zeroized on drop).
    ///
    /// # Errors
    /// [`Error::Pkcs8`] or [`Error::Der`] if encoding fails.
    pub fn to_pkcs8_pem(&self) -> Result<der::zeroize::Zeroizing<String>, Error> {
        self.to_pkcs8_der()?
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|source| Error::Der {
                what: "PEM private key",
                source,
            })
    }
}

fn rsa_with_hash(key: rsa::PrivateKey, hash: SignatureHash) -> KeyInner {
    match hash {
        SignatureHash::Sha256 => KeyInner::Rsa256(rsa::pkcs1v15::SigningKey::new(key)),
        SignatureHash::Sha384 => KeyInner::Rsa384(rsa::pkcs1v15::SigningKey::new(key)),
        SignatureHash::Sha512 => KeyInner::Rsa512(rsa::pkcs1v15::SigningKey::new(key)),
    }
}

impl LscSigner for IssuerKey {
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        let (oid, parameters) = match (&self.inner, self.hash) {
            // RFC 4055 section 5: the parameters of the RSA signature algorithms are NULL.
            (KeyInner::Rsa256(_), _) => (oid::SHA256_WITH_RSA, Some(Any::null())),
            (KeyInner::Rsa384(_), _) => (oid::SHA384_WITH_RSA, Some(Any::null())),
            (KeyInner::Rsa512(_), _) => (oid::SHA512_WITH_RSA, Some(Any::null())),
            // RFC 5758 section 3.2: ECDSA algorithm identifiers have absent parameters.
            (_, SignatureHash::Sha256) => (oid::ECDSA_WITH_SHA256, None),
            (_, SignatureHash::Sha384) => (oid::ECDSA_WITH_SHA384, None),
            (_, SignatureHash::Sha512) => (oid::ECDSA_WITH_SHA512, None),
        };
        AlgorithmIdentifierOwned { oid, parameters }
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn signer_backend(&self) -> Option<SignerBackend> {
        Some(self.backend)
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some(fast) = &self.fast {
            return fast.sign(tbs);
        }
        match &self.inner {
            KeyInner::Rsa256(k) => Ok(k.try_sign(tbs).map_err(Error::Signing)?.to_vec()),
            KeyInner::Rsa384(k) => Ok(k.try_sign(tbs).map_err(Error::Signing)?.to_vec()),
            KeyInner::Rsa512(k) => Ok(k.try_sign(tbs).map_err(Error::Signing)?.to_vec()),
            // ECDSA over the chosen digest: P-384 with SHA-256 is legal (FIPS 186-4 6.4
            // truncates or uses the digest as is), and is what "all LSCs are SHA-256" asks.
            KeyInner::P256(k) => {
                let sig: p256::ecdsa::DerSignature = k
                    .sign_prehash(&self.hash.digest(tbs))
                    .map_err(Error::Signing)?;
                Ok(sig.to_vec())
            }
            KeyInner::P384(k) => {
                let sig: p384::ecdsa::DerSignature = k
                    .sign_prehash(&self.hash.digest(tbs))
                    .map_err(Error::Signing)?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// Adapts a `&dyn LscSigner` to the x509-cert builder's `Keypair` +
/// `DynSignatureAlgorithmIdentifier` bounds, so the builder's profile plumbing is used while
/// the signature itself comes from the trait.
pub(crate) struct BuilderSigner<'a>(pub(crate) &'a dyn LscSigner);

#[derive(Clone)]
pub(crate) struct SpkiKey<'a>(&'a SubjectPublicKeyInfoOwned);

impl EncodePublicKey for SpkiKey<'_> {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::encode_msg(self.0)?)
    }
}

impl<'a> signature::Keypair for BuilderSigner<'a> {
    type VerifyingKey = SpkiKey<'a>;

    fn verifying_key(&self) -> SpkiKey<'a> {
        SpkiKey(self.0.public_key())
    }
}

impl spki::DynSignatureAlgorithmIdentifier for BuilderSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.0.signature_algorithm())
    }
}

/// An unencrypted PKCS#8 DER private key, read.
///
/// # Errors
/// [`Error::Der`] when it is not one.
pub(crate) fn pkcs8_info(der: &[u8]) -> Result<PrivateKeyInfoRef<'_>, Error> {
    PrivateKeyInfoRef::from_der(der).map_err(|source| Error::Der {
        what: "PKCS#8 private key",
        source,
    })
}

/// The RSA key of a PKCS#8 key whose algorithm is rsaEncryption.
///
/// # Errors
/// [`Error::Pkcs8`] when the key is malformed.
pub(crate) fn rsa_private_key(info: PrivateKeyInfoRef<'_>) -> Result<rsa::PrivateKey, Error> {
    rsa::PrivateKey::try_from(info).map_err(|source| Error::Pkcs8 {
        what: "RSA private key",
        source,
    })
}

/// A DER ECDSA-Sig-Value over `digest` (already hashed) with the EC key of `info`, on its named
/// curve, the digest fitted to the curve as SEC 1 reads it: what a phone signs with, for the
/// authentication signature (spec 6.2-6.4) and the endpoint CSR (spec 16) alike.
pub(crate) fn ecdsa_sign_digest(
    info: PrivateKeyInfoRef<'_>,
    digest: &[u8],
) -> Result<Vec<u8>, Error> {
    let curve = Curve::from_parameters(
        info.algorithm.parameters,
        "EC private key without namedCurve parameters",
    )?;
    let prehash = crate::verify::ecdsa_prehash(curve, digest);
    let pkcs8 = |what| move |source| Error::Pkcs8 { what, source };
    match curve {
        Curve::P256 => {
            let key = p256::ecdsa::SigningKey::try_from(info).map_err(pkcs8("P-256"))?;
            let sig: p256::ecdsa::Signature = key.sign_prehash(&prehash).map_err(Error::Signing)?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        Curve::P384 => {
            let key = p384::ecdsa::SigningKey::try_from(info).map_err(pkcs8("P-384"))?;
            let sig: p384::ecdsa::Signature = key.sign_prehash(&prehash).map_err(Error::Signing)?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        Curve::P521 => {
            let key = p521::ecdsa::SigningKey::try_from(info).map_err(pkcs8("P-521"))?;
            let sig: p521::ecdsa::Signature = key.sign_prehash(&prehash).map_err(Error::Signing)?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }
}
