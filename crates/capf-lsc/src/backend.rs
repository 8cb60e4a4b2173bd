//! Which library makes an [`IssuerKey`](crate::IssuerKey)'s signatures (issue 19): RustCrypto
//! (`rsa`, `p256`, `p384`), ring, or aws-lc-rs. The key is parsed, encoded and checked by
//! RustCrypto whatever the backend; a backend only signs, from the same PKCS#8 key. All three are
//! constant-time and blind RSA; ring and aws-lc-rs sign RSA several times faster than `rsa`.

use core::fmt;

use crate::Error;
use crate::keys::{Curve, KeySpec};
use crate::signer::SignatureHash;

/// The library an [`IssuerKey`](crate::IssuerKey) signs with. One name table: [`as_str`] and
/// [`FromStr`](core::str::FromStr) (`rustcrypto`, `ring`, `aws-lc-rs`).
///
/// [`as_str`]: SignerBackend::as_str
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignerBackend {
    /// RustCrypto's `rsa` and `p256`/`p384`: pure Rust, every key type and digest.
    RustCrypto,
    /// ring (compiled in for rustls already): RSA with SHA-256/384/512, P-256 with SHA-256 and
    /// P-384 with SHA-384.
    Ring,
    /// aws-lc-rs (AWS-LC), with the cargo feature `aws-lc-rs`: the same key types as ring.
    AwsLcRs,
}

impl SignerBackend {
    /// Every backend, in the order of the name table.
    pub const ALL: [SignerBackend; 3] = [Self::RustCrypto, Self::Ring, Self::AwsLcRs];

    /// The default: the fastest backend built in (aws-lc-rs with its feature, else ring).
    pub const fn default_backend() -> SignerBackend {
        if cfg!(feature = "aws-lc-rs") {
            Self::AwsLcRs
        } else {
            Self::Ring
        }
    }

    /// The name, as configuration files spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RustCrypto => "rustcrypto",
            Self::Ring => "ring",
            Self::AwsLcRs => "aws-lc-rs",
        }
    }

    /// Whether this build has the backend (aws-lc-rs needs the cargo feature).
    pub const fn is_available(self) -> bool {
        match self {
            Self::RustCrypto | Self::Ring => true,
            Self::AwsLcRs => cfg!(feature = "aws-lc-rs"),
        }
    }
}

impl Default for SignerBackend {
    fn default() -> Self {
        Self::default_backend()
    }
}

impl fmt::Display for SignerBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for SignerBackend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownSignerBackend {
                input: s.to_owned(),
            })
    }
}

/// A key loaded into ring or aws-lc-rs, for one digest.
pub(crate) enum FastKey {
    // Boxed: ring's key pair is held inline (a few hundred bytes), AWS-LC's behind a pointer.
    Ring(Box<ring_impl::Key>),
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(aws_lc_impl::Key),
}

impl FastKey {
    /// Loads `pkcs8` (the key RustCrypto read, of `spec`) into `backend` for signatures with
    /// `hash`; `Ok(None)` for RustCrypto itself.
    ///
    /// # Errors
    /// [`Error::SignerUnavailable`] when the backend is not built in, does not sign with this
    /// key type and digest (ring has no P-384 with SHA-256), or rejects the key.
    pub(crate) fn load(
        backend: SignerBackend,
        pkcs8: &[u8],
        spec: KeySpec,
        hash: SignatureHash,
    ) -> Result<Option<FastKey>, Error> {
        let unavailable = |reason: &'static str| Error::SignerUnavailable {
            backend,
            spec,
            hash,
            reason,
        };
        match backend {
            SignerBackend::RustCrypto => Ok(None),
            SignerBackend::Ring => ring_impl::Key::load(pkcs8, spec, hash)
                .map(|k| Some(FastKey::Ring(Box::new(k))))
                .map_err(unavailable),
            #[cfg(feature = "aws-lc-rs")]
            SignerBackend::AwsLcRs => aws_lc_impl::Key::load(pkcs8, spec, hash)
                .map(|k| Some(FastKey::AwsLc(k)))
                .map_err(unavailable),
            #[cfg(not(feature = "aws-lc-rs"))]
            SignerBackend::AwsLcRs => Err(unavailable(
                "this build has no aws-lc-rs (cargo feature `aws-lc-rs`)",
            )),
        }
    }

    /// The signature as it goes into the BIT STRING.
    pub(crate) fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            FastKey::Ring(k) => k.sign(tbs),
            #[cfg(feature = "aws-lc-rs")]
            FastKey::AwsLc(k) => k.sign(tbs),
        }
    }
}

/// The same code over ring and aws-lc-rs, whose signature APIs have the same shape.
macro_rules! ring_like {
    ($name:ident, $lib:ident, $ec_load:expr) => {
        pub(crate) mod $name {
            use $lib::rand::SystemRandom;
            use $lib::signature::{self, EcdsaKeyPair, RsaEncoding, RsaKeyPair};

            use super::{Curve, Error, KeySpec, SignatureHash};

            enum Pair {
                Rsa(RsaKeyPair, &'static dyn RsaEncoding, usize),
                Ec(EcdsaKeyPair),
            }

            pub(crate) struct Key {
                pair: Pair,
                rng: SystemRandom,
            }

            impl Key {
                pub(crate) fn load(
                    pkcs8: &[u8],
                    spec: KeySpec,
                    hash: SignatureHash,
                ) -> Result<Key, &'static str> {
                    let rng = SystemRandom::new();
                    let pair = match spec {
                        KeySpec::Rsa(bits) => {
                            let pair = RsaKeyPair::from_pkcs8(pkcs8)
                                .map_err(|_| "the library rejects the RSA key")?;
                            let encoding: &'static dyn RsaEncoding = match hash {
                                SignatureHash::Sha256 => &signature::RSA_PKCS1_SHA256,
                                SignatureHash::Sha384 => &signature::RSA_PKCS1_SHA384,
                                SignatureHash::Sha512 => &signature::RSA_PKCS1_SHA512,
                            };
                            Pair::Rsa(pair, encoding, usize::from(bits.bits()) / 8)
                        }
                        KeySpec::Ec(curve) => {
                            let alg = match (curve, hash) {
                                (Curve::P256, SignatureHash::Sha256) => {
                                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                                }
                                (Curve::P384, SignatureHash::Sha384) => {
                                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                                }
                                _ => {
                                    return Err("the library signs P-256 only with SHA-256 and \
                                                P-384 only with SHA-384");
                                }
                            };
                            let load: fn(
                                &'static signature::EcdsaSigningAlgorithm,
                                &[u8],
                                &SystemRandom,
                            ) -> Option<EcdsaKeyPair> = $ec_load;
                            Pair::Ec(
                                load(alg, pkcs8, &rng).ok_or("the library rejects the EC key")?,
                            )
                        }
                    };
                    Ok(Key { pair, rng })
                }

                pub(crate) fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, Error> {
                    match &self.pair {
                        Pair::Rsa(pair, encoding, len) => {
                            let mut sig = vec![0; *len];
                            pair.sign(*encoding, &self.rng, tbs, &mut sig)
                                .map_err(|_| Error::BackendSigning {
                                    backend: stringify!($lib),
                                })?;
                            Ok(sig)
                        }
                        Pair::Ec(pair) => pair
                            .sign(&self.rng, tbs)
                            .map(|sig| sig.as_ref().to_vec())
                            .map_err(|_| Error::BackendSigning {
                                backend: stringify!($lib),
                            }),
                    }
                }
            }
        }
    };
}

ring_like!(ring_impl, ring, |alg, pkcs8, rng| EcdsaKeyPair::from_pkcs8(
    alg, pkcs8, rng
)
.ok());

#[cfg(feature = "aws-lc-rs")]
ring_like!(aws_lc_impl, aws_lc_rs, |alg, pkcs8, _rng| {
    EcdsaKeyPair::from_pkcs8(alg, pkcs8).ok()
});
