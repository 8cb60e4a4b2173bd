//! Key specifications (what the server asks a phone for) and phone-supplied public keys.

use core::fmt;

use der::asn1::UintRef;
use der::referenced::{OwnedToRef, RefToOwned};
use der::{Decode, DecodePem, Encode};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::{Error, oid};

/// RSA modulus sizes the server may request from a phone (the CAPF "Key Size" choices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RsaBits {
    /// 1024 bits (legacy phones only).
    B1024,
    /// 2048 bits, UCM's default.
    B2048,
    /// 3072 bits.
    B3072,
    /// 4096 bits.
    B4096,
}

impl RsaBits {
    /// Every allowed size, smallest first.
    pub const ALL: [RsaBits; 4] = [Self::B1024, Self::B2048, Self::B3072, Self::B4096];

    /// The modulus size in bits.
    pub fn bits(self) -> u16 {
        match self {
            Self::B1024 => 1024,
            Self::B2048 => 2048,
            Self::B3072 => 3072,
            Self::B4096 => 4096,
        }
    }

    /// The size for `bits`.
    ///
    /// # Errors
    /// [`Error::UnsupportedRsaSize`] for anything but 1024, 2048, 3072 and 4096.
    pub fn from_bits(bits: usize) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|b| usize::from(b.bits()) == bits)
            .ok_or(Error::UnsupportedRsaSize { bits })
    }
}

/// Elliptic curves the server may request (CURVE element, spec section 5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1), CURVE value 0.
    P256,
    /// NIST P-384 (secp384r1), CURVE value 1.
    P384,
    /// NIST P-521 (secp521r1), CURVE value 2.
    P521,
}

impl Curve {
    /// Every curve.
    pub const ALL: [Curve; 3] = [Self::P256, Self::P384, Self::P521];

    /// The named-curve OID (RFC 5480).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => oid::SECP256R1,
            Self::P384 => oid::SECP384R1,
            Self::P521 => oid::SECP521R1,
        }
    }

    /// The curve for a named-curve OID.
    ///
    /// # Errors
    /// [`Error::UnsupportedCurve`] for any other curve.
    pub fn from_oid(curve: ObjectIdentifier) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| c.oid() == curve)
            .ok_or(Error::UnsupportedCurve { oid: curve })
    }

    /// The curve named by an id-ecPublicKey AlgorithmIdentifier's parameters (RFC 5480: a
    /// named curve only); `missing` says whose parameters, for the error.
    pub(crate) fn from_parameters(
        parameters: Option<der::asn1::AnyRef<'_>>,
        missing: &'static str,
    ) -> Result<Self, Error> {
        let oid = parameters
            .ok_or(Error::MalformedPublicKey { reason: missing })?
            .decode_as::<ObjectIdentifier>()
            .map_err(|source| Error::Der {
                what: "EC namedCurve parameters (RFC 5480 allows only a named curve)",
                source,
            })?;
        Self::from_oid(oid)
    }

    /// The field size in bytes (the length of a coordinate, and of a full-size digest).
    pub(crate) fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The NIST name, such as `P-256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The CURVE value of KEY_GEN_REQUEST (spec 5.5).
impl From<Curve> for capf_wire::Curve {
    fn from(curve: Curve) -> Self {
        match curve {
            Curve::P256 => capf_wire::Curve::SECP256R1,
            Curve::P384 => capf_wire::Curve::SECP384R1,
            Curve::P521 => capf_wire::Curve::SECP521R1,
        }
    }
}

/// The curve a CURVE value names (spec 5.5).
impl TryFrom<capf_wire::Curve> for Curve {
    type Error = Error;

    fn try_from(curve: capf_wire::Curve) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| capf_wire::Curve::from(*c) == curve)
            .ok_or(Error::UnknownCurveValue { curve })
    }
}

/// A key type and size: what the server asks a phone to generate, or what a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySpec {
    /// An RSA key of the given size.
    Rsa(RsaBits),
    /// An EC key on the given curve.
    Ec(Curve),
}

impl KeySpec {
    /// Whether this is an EC key.
    pub fn is_ec(self) -> bool {
        matches!(self, Self::Ec(_))
    }

    /// The key spec of a SubjectPublicKeyInfo, after validating the key: RSA size in the
    /// allowed set and exponent odd and at least 3; EC named curve with a point on the curve.
    ///
    /// # Errors
    /// The [`Error`] saying what is wrong with the key.
    pub fn of_spki(spki: SubjectPublicKeyInfoRef<'_>) -> Result<Self, Error> {
        let bits = key_bits(&spki)?;
        match spki.algorithm.oid {
            oid::RSA_ENCRYPTION => {
                // RFC 3279 2.3.1: the parameters MUST be NULL (some encoders omit them).
                if spki.algorithm.parameters.is_some_and(|p| !p.is_null()) {
                    return Err(Error::MalformedPublicKey {
                        reason: "rsaEncryption parameters are not NULL",
                    });
                }
                let key =
                    rsa::pkcs1::RsaPublicKey::<UintRef<'_>>::from_der(bits).map_err(|source| {
                        Error::Der {
                            what: "RSAPublicKey",
                            source,
                        }
                    })?;
                let size = RsaBits::from_bits(bit_len(key.modulus.as_bytes()))?;
                check_rsa_exponent(key.public_exponent.as_bytes())?;
                // The rsa crate's structural checks, without building its key (whose
                // Montgomery set-up was a visible share of an enrollment, issue 19): an odd
                // modulus, and e < n, which a 1024-bit or larger modulus and an exponent
                // below 2^33 make true.
                if key.modulus.as_bytes().last().is_none_or(|b| b & 1 == 0) {
                    return Err(Error::MalformedPublicKey {
                        reason: "the RSA modulus is even",
                    });
                }
                Ok(KeySpec::Rsa(size))
            }
            oid::EC_PUBLIC_KEY => {
                let curve = Curve::from_parameters(
                    spki.algorithm.parameters,
                    "id-ecPublicKey without namedCurve parameters",
                )?;
                // Decoding the SEC1 point checks it lies on the curve and is not the identity.
                let valid = match curve {
                    Curve::P256 => p256::PublicKey::from_sec1_bytes(bits).is_ok(),
                    Curve::P384 => p384::PublicKey::from_sec1_bytes(bits).is_ok(),
                    Curve::P521 => p521::PublicKey::from_sec1_bytes(bits).is_ok(),
                };
                if valid {
                    Ok(KeySpec::Ec(curve))
                } else {
                    Err(Error::InvalidEcPoint { curve })
                }
            }
            other => Err(Error::UnsupportedKeyAlgorithm { oid: other }),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa(bits) => write!(f, "RSA-{}", bits.bits()),
            Self::Ec(curve) => write!(f, "EC {curve}"),
        }
    }
}

/// The KEY_GEN_REQUEST for this key, in the form a VERSION 3 client reads; capf-session turns
/// it into the form an older client reads (spec 8.11). The one mapping from key specs to key
/// requests, used by the server.
impl From<KeySpec> for capf_wire::KeyRequest {
    fn from(spec: KeySpec) -> Self {
        match spec {
            KeySpec::Rsa(bits) => capf_wire::KeyRequest::Rsa(bits.bits()),
            KeySpec::Ec(curve) => capf_wire::KeyRequest::Ec(curve.into()),
        }
    }
}

/// The key a KEY_GEN_REQUEST asks for (KEY_SIZE only means RSA, spec 5.4): the one mapping
/// back, used by the phone.
impl TryFrom<capf_wire::KeyRequest> for KeySpec {
    type Error = Error;

    /// # Errors
    /// [`Error::UnsupportedRsaSize`], [`Error::UnknownCurveValue`] for a key no phone makes.
    fn try_from(request: capf_wire::KeyRequest) -> Result<Self, Error> {
        match request {
            capf_wire::KeyRequest::Rsa(bits) | capf_wire::KeyRequest::RsaKeySizeOnly(bits) => {
                RsaBits::from_bits(usize::from(bits)).map(KeySpec::Rsa)
            }
            capf_wire::KeyRequest::Ec(curve) => Curve::try_from(curve).map(KeySpec::Ec),
        }
    }
}

/// Parses `rsa2048`, `RSA-2048`, `p256`, `EC P-256`, `ec-p384`... (case and separators ignored).
impl core::str::FromStr for KeySpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let norm: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let spec = match norm.as_str() {
            "rsa1024" => KeySpec::Rsa(RsaBits::B1024),
            "rsa2048" => KeySpec::Rsa(RsaBits::B2048),
            "rsa3072" => KeySpec::Rsa(RsaBits::B3072),
            "rsa4096" => KeySpec::Rsa(RsaBits::B4096),
            "p256" | "ecp256" | "secp256r1" | "prime256v1" => KeySpec::Ec(Curve::P256),
            "p384" | "ecp384" | "secp384r1" => KeySpec::Ec(Curve::P384),
            "p521" | "ecp521" | "secp521r1" => KeySpec::Ec(Curve::P521),
            _ => {
                return Err(Error::UnknownKeySpec {
                    input: s.to_owned(),
                });
            }
        };
        Ok(spec)
    }
}

/// The number of significant bits of a big-endian unsigned integer.
/// The subjectPublicKey bits of `spki` (an RSAPublicKey or an EC point), whole bytes only.
///
/// # Errors
/// [`Error::MalformedPublicKey`] when the BIT STRING has unused bits.
pub(crate) fn key_bits<'a>(spki: &SubjectPublicKeyInfoRef<'a>) -> Result<&'a [u8], Error> {
    spki.subject_public_key
        .as_bytes()
        .ok_or(Error::MalformedPublicKey {
            reason: "the key BIT STRING has unused bits",
        })
}

fn bit_len(bytes: &[u8]) -> usize {
    let Some(pos) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = &bytes[pos..];
    // `rest` starts with a non-zero byte, so leading_zeros < 8.
    (rest.len() - 1) * 8 + (8 - rest[0].leading_zeros() as usize)
}

/// The largest public exponent accepted, the rsa crate's own limit (2^33 - 1).
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// The public exponent must be odd and at least 3 (RFC 8017 3.1; 65537 is what phones use),
/// and at most [`MAX_RSA_EXPONENT`].
fn check_rsa_exponent(e: &[u8]) -> Result<(), Error> {
    let significant: Vec<u8> = e.iter().copied().skip_while(|&b| b == 0).collect();
    let value = if significant.len() <= 8 {
        let mut buf = [0u8; 8];
        buf[8 - significant.len()..].copy_from_slice(&significant);
        Some(u64::from_be_bytes(buf))
    } else {
        None
    };
    let odd = significant.last().is_some_and(|b| b & 1 == 1);
    match value {
        Some(v) if odd && (3..=MAX_RSA_EXPONENT).contains(&v) => Ok(()),
        Some(v) => Err(Error::BadRsaExponent { exponent: Some(v) }),
        None => Err(Error::BadRsaExponent { exponent: None }),
    }
}

/// A public key a phone sent in KEY_GEN_RESPONSE (PUBLIC_KEY element, spec section 4.5),
/// parsed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhonePublicKey {
    spec: KeySpec,
    spki: SubjectPublicKeyInfoOwned,
}

impl PhonePublicKey {
    /// Parses and validates a DER SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// [`Error::Der`] for malformed DER (including trailing bytes), or the key problem (size,
    /// exponent, curve, point).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|source| Error::Der {
            what: "SubjectPublicKeyInfo",
            source,
        })?;
        Self::from_spki(spki)
    }

    /// Parses and validates a PEM `PUBLIC KEY`.
    ///
    /// # Errors
    /// As [`PhonePublicKey::from_der`], or [`Error::Der`] for bad PEM.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let spki = SubjectPublicKeyInfoOwned::from_pem(pem).map_err(|source| Error::Der {
            what: "PEM PUBLIC KEY",
            source,
        })?;
        Self::from_spki(spki.owned_to_ref())
    }

    /// Validates a SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// See [`KeySpec::of_spki`].
    pub fn from_spki(spki: SubjectPublicKeyInfoRef<'_>) -> Result<Self, Error> {
        let spec = KeySpec::of_spki(spki.clone())?;
        Ok(PhonePublicKey {
            spec,
            spki: spki.ref_to_owned(),
        })
    }

    /// The key's type and size.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The SubjectPublicKeyInfo.
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    /// The DER SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// [`Error::Der`] if encoding fails (it does not for a parsed key).
    pub fn to_der(&self) -> Result<Vec<u8>, Error> {
        self.spki.to_der().map_err(|source| Error::Der {
            what: "SubjectPublicKeyInfo",
            source,
        })
    }

    /// Checks the key is what the server asked for in KEY_GEN_REQUEST.
    ///
    /// # Errors
    /// [`Error::KeySpecMismatch`] naming both.
    pub fn check_matches(&self, requested: KeySpec) -> Result<(), Error> {
        if self.spec == requested {
            Ok(())
        } else {
            Err(Error::KeySpecMismatch {
                requested,
                actual: self.spec,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_significant_bits() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01]), 1);
    }

    #[test]
    fn rejects_even_or_small_exponents() {
        assert!(check_rsa_exponent(&[0x01, 0x00, 0x01]).is_ok());
        assert!(check_rsa_exponent(&[0x03]).is_ok());
        for bad in [&[0x01][..], &[0x02], &[0x01, 0x00, 0x00], &[], &[0; 3]] {
            assert!(matches!(
                check_rsa_exponent(bad),
                Err(Error::BadRsaExponent { .. })
            ));
        }
        assert!(matches!(
            check_rsa_exponent(&[1; 9]),
            Err(Error::BadRsaExponent { exponent: None })
        ));
        // 2^33 - 1 is the largest accepted; 2^33 + 1 is odd but too large.
        assert!(check_rsa_exponent(&[0x01, 0xff, 0xff, 0xff, 0xff]).is_ok());
        assert!(matches!(
            check_rsa_exponent(&[0x02, 0x00, 0x00, 0x00, 0x01]),
            Err(Error::BadRsaExponent {
                exponent: Some(0x2_0000_0001)
            })
        ));
    }

    #[test]
    fn key_specs_round_trip_through_key_requests() {
        use capf_wire::KeyRequest;
        for spec in RsaBits::ALL
            .map(KeySpec::Rsa)
            .into_iter()
            .chain(Curve::ALL.map(KeySpec::Ec))
        {
            assert_eq!(KeySpec::try_from(KeyRequest::from(spec)).unwrap(), spec);
        }
        assert_eq!(
            KeyRequest::from(KeySpec::Ec(Curve::P384)),
            KeyRequest::Ec(capf_wire::Curve::SECP384R1)
        );
        assert_eq!(
            KeySpec::try_from(KeyRequest::RsaKeySizeOnly(2048)).unwrap(),
            KeySpec::Rsa(RsaBits::B2048)
        );
        assert!(matches!(
            KeySpec::try_from(KeyRequest::Ec(capf_wire::Curve(9))),
            Err(Error::UnknownCurveValue { .. })
        ));
        assert!(KeySpec::try_from(KeyRequest::Rsa(512)).is_err());
    }

    #[test]
    fn parses_key_spec_names() {
        assert_eq!(
            "RSA-2048".parse::<KeySpec>().unwrap(),
            KeySpec::Rsa(RsaBits::B2048)
        );
        assert_eq!(
            "ec p-384".parse::<KeySpec>().unwrap(),
            KeySpec::Ec(Curve::P384)
        );
        assert!("rsa512".parse::<KeySpec>().is_err());
        assert_eq!(RsaBits::from_bits(3072).unwrap(), RsaBits::B3072);
        assert!(matches!(
            RsaBits::from_bits(2047),
            Err(Error::UnsupportedRsaSize { bits: 2047 })
        ));
    }
}
