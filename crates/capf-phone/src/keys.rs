//! The phone's key pair: generated on request, or taken from a pool made beforehand.

use std::fmt;

use capf_lsc::der::Decode;
use capf_lsc::der::zeroize::Zeroizing;
use capf_lsc::{Curve, KeySpec, RsaBits};
use pkcs8::{EncodePrivateKey, LineEnding, PrivateKeyInfoRef};
use spki::{EncodePublicKey, ObjectIdentifier};

use crate::Error;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// A phone key pair: the PKCS#8 private key and the SubjectPublicKeyInfo sent in
/// KEY_GEN_RESPONSE.
#[derive(Clone)]
pub struct PhoneKey {
    spec: KeySpec,
    spki_der: Vec<u8>,
    pkcs8_der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PhoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneKey")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn pkcs8_error(what: &'static str) -> impl FnOnce(pkcs8::Error) -> Error {
    move |source| Error::Pkcs8 { what, source }
}

fn spki_error(what: &'static str) -> impl FnOnce(spki::Error) -> Error {
    move |source| Error::Spki { what, source }
}

impl PhoneKey {
    /// Loads an unencrypted PKCS#8 private key (DER): RSA 1024-4096 or EC P-256/P-384/P-521.
    ///
    /// # Errors
    /// [`Error::Der`], [`Error::Pkcs8`] for a malformed key, [`Error::UnsupportedKeyAlgorithm`],
    /// [`Error::UnsupportedCurve`] or [`Error::Lsc`] for another key type or size.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let info = PrivateKeyInfoRef::from_der(der).map_err(|source| Error::Der {
            what: "PKCS#8 private key",
            source,
        })?;
        let (spec, spki_der) = match info.algorithm.oid {
            RSA_ENCRYPTION => {
                let key = rsa::PrivateKey::try_from(info).map_err(pkcs8_error("RSA key"))?;
                let public = key.to_public_key();
                let bits = RsaBits::from_bits(rsa::traits::PublicKeyParts::size(&public) * 8)
                    .map_err(|source| Error::Lsc {
                        what: "RSA key size",
                        source,
                    })?;
                let spki = public
                    .to_public_key_der()
                    .map_err(spki_error("RSA public key"))?;
                (KeySpec::Rsa(bits), spki.into_vec())
            }
            EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .and_then(|oid| Curve::from_oid(oid).ok())
                    .ok_or(Error::UnsupportedCurve)?;
                let spki = match curve {
                    Curve::P256 => p256::SecretKey::try_from(info)
                        .map_err(pkcs8_error("P-256 key"))?
                        .public_key()
                        .to_public_key_der(),
                    Curve::P384 => p384::SecretKey::try_from(info)
                        .map_err(pkcs8_error("P-384 key"))?
                        .public_key()
                        .to_public_key_der(),
                    Curve::P521 => p521::SecretKey::try_from(info)
                        .map_err(pkcs8_error("P-521 key"))?
                        .public_key()
                        .to_public_key_der(),
                }
                .map_err(spki_error("EC public key"))?;
                (KeySpec::Ec(curve), spki.into_vec())
            }
            algorithm => return Err(Error::UnsupportedKeyAlgorithm { algorithm }),
        };
        Ok(PhoneKey {
            spec,
            spki_der,
            pkcs8_der: Zeroizing::new(der.to_vec()),
        })
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8).
    ///
    /// # Errors
    /// [`Error::Pem`], [`Error::NotAPrivateKey`], or as [`PhoneKey::from_pkcs8_der`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) =
            capf_lsc::der::pem::decode_vec(pem.as_bytes()).map_err(|source| Error::Pem {
                what: "PEM private key",
                source,
            })?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(Error::NotAPrivateKey {
                label: label.to_owned(),
            });
        }
        Self::from_pkcs8_der(&der)
    }

    /// Generates a key for `spec` from the operating system's CSPRNG. RSA generation takes
    /// from tens of milliseconds (2048) to seconds (4096) in an optimised build.
    ///
    /// # Errors
    /// [`Error::Rsa`], [`Error::Random`] when generation fails, [`Error::Pkcs8`] when encoding
    /// fails.
    pub fn generate(spec: KeySpec) -> Result<Self, Error> {
        let mut rng = getrandom::SysRng;
        let der = match spec {
            KeySpec::Rsa(bits) => rsa::PrivateKey::new(&mut rng, usize::from(bits.bits()))
                .map_err(Error::Rsa)?
                .to_pkcs8_der(),
            KeySpec::Ec(Curve::P256) => {
                <p256::SecretKey as rsa::Generate>::try_generate_from_rng(&mut rng)
                    .map_err(Error::Random)?
                    .to_pkcs8_der()
            }
            KeySpec::Ec(Curve::P384) => {
                <p384::SecretKey as rsa::Generate>::try_generate_from_rng(&mut rng)
                    .map_err(Error::Random)?
                    .to_pkcs8_der()
            }
            KeySpec::Ec(Curve::P521) => {
                <p521::SecretKey as rsa::Generate>::try_generate_from_rng(&mut rng)
                    .map_err(Error::Random)?
                    .to_pkcs8_der()
            }
        }
        .map_err(pkcs8_error("PKCS#8 encoding"))?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    /// The key's type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The DER SubjectPublicKeyInfo (what KEY_GEN_RESPONSE carries).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// The private key as PKCS#8 PEM.
    ///
    /// # Errors
    /// [`Error::Der`] if encoding fails.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let doc = pkcs8::SecretDocument::try_from(self.pkcs8_der.as_slice()).map_err(|source| {
            Error::Der {
                what: "PKCS#8 encoding",
                source,
            }
        })?;
        doc.to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|source| Error::Der {
                what: "PEM encoding",
                source,
            })
    }
}

/// Signs an endpoint CSR's CertificationRequestInfo (the CSR_INFO of SIGN_CERT_REQUEST, spec
/// section 16) with the phone's key: what SIGN_CERT_RESPONSE carries in CSR_SIGNATURE
/// (PKCS#1 v1.5 with SHA-256 for RSA, DER ECDSA over SHA-256 for EC; capf-lsc's
/// `sign_endpoint_csr_info` owns the rule).
///
/// # Errors
/// [`Error::Lsc`] when the key cannot sign.
pub fn sign_csr_info(info_der: &[u8], key: &PhoneKey) -> Result<Vec<u8>, Error> {
    capf_lsc::sign_endpoint_csr_info(key.pkcs8_der(), info_der).map_err(|source| Error::Lsc {
        what: "endpoint CSR signature",
        source,
    })
}

/// Where a phone's keys come from when the server asks for one.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// A key of `spec`.
    ///
    /// # Errors
    /// The generation error, or [`Error::NoPooledKey`], when no such key can be had.
    fn key(&self, spec: KeySpec) -> Result<PhoneKey, Error>;
}

/// Generates every key on request, as a phone does.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateKeys;

impl KeySource for GenerateKeys {
    fn key(&self, spec: KeySpec) -> Result<PhoneKey, Error> {
        PhoneKey::generate(spec)
    }
}

/// A pool of keys made beforehand (tests, and the load generator, which must not time key
/// generation): the first key of the requested spec.
#[derive(Debug, Clone, Default)]
pub struct KeyPool(pub Vec<PhoneKey>);

impl KeySource for KeyPool {
    fn key(&self, spec: KeySpec) -> Result<PhoneKey, Error> {
        self.0
            .iter()
            .find(|k| k.spec == spec)
            .cloned()
            .ok_or(Error::NoPooledKey { spec })
    }
}
