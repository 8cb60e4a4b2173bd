//! Signature verification of certificates and other signed structures.

use der::Encode;
use der::referenced::OwnedToRef;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::Verifier;
use signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;

use crate::keys::Curve;
use crate::{Error, oid};

/// Verifies that `cert` was signed by the key `issuer_spki` (the issuing certificate's
/// SubjectPublicKeyInfo).
///
/// Supported: RSA PKCS#1 v1.5 with SHA-1, SHA-256, SHA-384, SHA-512 (SHA-1 because MICs and
/// old CA certificates still use it); ECDSA with SHA-256/384/512 on P-256, P-384 and P-521
/// keys.
/// The certificate's outer and TBS signature algorithms must agree (RFC 5280 4.1.1.2).
///
/// # Errors
/// [`Error::BadSignature`] when the signature does not verify, or an error naming the
/// unsupported algorithm, the key/algorithm mismatch or the malformed part.
pub fn verify_signature(
    cert: &Certificate,
    issuer_spki: &SubjectPublicKeyInfoOwned,
) -> Result<(), Error> {
    let tbs = cert.tbs_certificate();
    if tbs.signature() != cert.signature_algorithm() {
        return Err(Error::SignatureAlgorithmsDiffer);
    }
    let tbs_der = tbs.to_der().map_err(|source| Error::Der {
        what: "TBSCertificate",
        source,
    })?;
    let signature = cert.signature().as_bytes().ok_or(Error::BadSignature)?;
    verify_signed_data(
        &tbs_der,
        cert.signature_algorithm(),
        signature,
        issuer_spki.owned_to_ref(),
    )
}

/// Verifies `signature` over `data` under `algorithm` with the public key `key`: the
/// building block of [`verify_signature`], also used for PKCS#10 requests and CRLs.
///
/// # Errors
/// As [`verify_signature`].
pub fn verify_signed_data(
    data: &[u8],
    algorithm: &AlgorithmIdentifierOwned,
    signature: &[u8],
    key: SubjectPublicKeyInfoRef<'_>,
) -> Result<(), Error> {
    let alg = algorithm.oid;
    match alg {
        oid::SHA1_WITH_RSA | oid::SHA256_WITH_RSA | oid::SHA384_WITH_RSA | oid::SHA512_WITH_RSA => {
            // RFC 4055: NULL parameters; absent ones are tolerated as many verifiers do.
            if algorithm.parameters.as_ref().is_some_and(|p| !p.is_null()) {
                return Err(Error::UnsupportedSignatureAlgorithm { oid: alg });
            }
            if key.algorithm.oid != oid::RSA_ENCRYPTION {
                return Err(Error::SignatureKeyMismatch {
                    algorithm: alg,
                    key: key.algorithm.oid,
                });
            }
            let (public, sig) = rsa_key_and_signature(key, signature)?;
            let ok = match alg {
                oid::SHA1_WITH_RSA => rsa_pkcs1v15_verifies::<sha1::Sha1>(public, data, &sig),
                oid::SHA256_WITH_RSA => rsa_pkcs1v15_verifies::<Sha256>(public, data, &sig),
                oid::SHA384_WITH_RSA => rsa_pkcs1v15_verifies::<Sha384>(public, data, &sig),
                _ => rsa_pkcs1v15_verifies::<Sha512>(public, data, &sig),
            };
            ok.then_some(()).ok_or(Error::BadSignature)
        }
        oid::ECDSA_WITH_SHA256 | oid::ECDSA_WITH_SHA384 | oid::ECDSA_WITH_SHA512 => {
            // RFC 5758 3.2: the parameters MUST be absent.
            if algorithm.parameters.is_some() {
                return Err(Error::UnsupportedSignatureAlgorithm { oid: alg });
            }
            if key.algorithm.oid != oid::EC_PUBLIC_KEY {
                return Err(Error::SignatureKeyMismatch {
                    algorithm: alg,
                    key: key.algorithm.oid,
                });
            }
            let curve = Curve::from_parameters(
                key.algorithm.parameters,
                "id-ecPublicKey without namedCurve parameters",
            )?;
            let digest = match alg {
                oid::ECDSA_WITH_SHA256 => Sha256::digest(data).to_vec(),
                oid::ECDSA_WITH_SHA384 => Sha384::digest(data).to_vec(),
                _ => Sha512::digest(data).to_vec(),
            };
            let ok = verify_ecdsa_prehash(curve, key, &digest, signature)?;
            ok.then_some(()).ok_or(Error::BadSignature)
        }
        other => Err(Error::UnsupportedSignatureAlgorithm { oid: other }),
    }
}

/// The signer's RSA public key and a PKCS#1 v1.5 `signature`, read for verification.
///
/// # Errors
/// [`Error::Spki`] for a malformed key, [`Error::BadSignature`] for a signature that cannot be
/// one.
pub(crate) fn rsa_key_and_signature(
    key: SubjectPublicKeyInfoRef<'_>,
    signature: &[u8],
) -> Result<(rsa::PublicKey, rsa::pkcs1v15::Signature), Error> {
    let public = rsa::PublicKey::try_from(key).map_err(|source| Error::Spki {
        what: "RSA public key of the signer",
        source,
    })?;
    let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| Error::BadSignature)?;
    Ok((public, sig))
}

/// Whether `sig` verifies over `data` as a standard PKCS#1 v1.5 signature (with the
/// DigestInfo prefix) with digest `D`.
pub(crate) fn rsa_pkcs1v15_verifies<D>(
    public: rsa::PublicKey,
    data: &[u8],
    sig: &rsa::pkcs1v15::Signature,
) -> bool
where
    D: Digest + const_oid::AssociatedOid,
{
    rsa::pkcs1v15::VerifyingKey::<D>::new(public)
        .verify(data, sig)
        .is_ok()
}

/// Verifies a DER ECDSA `signature` over `digest` with the EC key `key` on `curve`. A digest
/// shorter than the curve (SHA-1 or SHA-256 on P-384/P-521) is taken as an integer, as SEC 1
/// does, by left-padding it with zeros: RustCrypto wants at least half the field size.
///
/// # Errors
/// [`Error::MalformedPublicKey`] or [`Error::InvalidEcPoint`] for a bad key; `Ok(false)` for a
/// signature that does not verify or does not parse.
pub(crate) fn verify_ecdsa_prehash(
    curve: Curve,
    key: SubjectPublicKeyInfoRef<'_>,
    digest: &[u8],
    signature: &[u8],
) -> Result<bool, Error> {
    let point = crate::keys::key_bits(&key)?;
    let prehash = ecdsa_prehash(curve, digest);
    Ok(match curve {
        Curve::P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| Error::InvalidEcPoint { curve })?;
            p256::ecdsa::DerSignature::try_from(signature)
                .is_ok_and(|sig| vk.verify_prehash(&prehash, &sig).is_ok())
        }
        Curve::P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| Error::InvalidEcPoint { curve })?;
            p384::ecdsa::DerSignature::try_from(signature)
                .is_ok_and(|sig| vk.verify_prehash(&prehash, &sig).is_ok())
        }
        Curve::P521 => {
            let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| Error::InvalidEcPoint { curve })?;
            p521::ecdsa::DerSignature::try_from(signature)
                .is_ok_and(|sig| vk.verify_prehash(&prehash, &sig).is_ok())
        }
    })
}

/// `digest`, left-padded with zeros to the field size when shorter (SEC 1 reads a short
/// digest as an integer, which the padding keeps).
pub(crate) fn ecdsa_prehash(curve: Curve, digest: &[u8]) -> Vec<u8> {
    let len = curve.field_len();
    if digest.len() >= len {
        return digest.to_vec();
    }
    let mut padded = vec![0u8; len - digest.len()];
    padded.extend_from_slice(digest);
    padded
}
