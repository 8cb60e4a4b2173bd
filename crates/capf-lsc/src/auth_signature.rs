//! The signatures a phone makes to prove it holds its certificate's key (spec 6.2-6.4):
//! SIGNED_DATA (SHA-1), SHA2_SIGNED_DATA (SHA-512) and the two SUDI signatures.
//!
//! For RSA keys they are not RSASSA-PKCS1-v1_5 signatures: the PKCS#1 block type 1 carries the
//! **bare digest**, without the DigestInfo prefix (what OpenSSL's `RSA_private_encrypt` makes).
//! The verifier checks that whole block exactly, not only its last bytes as capfd does; as an
//! interoperability fallback it also accepts the standard DigestInfo form and says so, so the
//! caller can log it (spec 6.3 project rule). For EC keys they are DER ECDSA signatures over
//! the digest.

use sha1::Sha1;
use sha2::{Digest, Sha512};
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use spki::SubjectPublicKeyInfoRef;

use crate::keys::Curve;
use crate::signer::{ecdsa_sign_digest, pkcs8_info, rsa_private_key};
use crate::verify::{rsa_key_and_signature, rsa_pkcs1v15_verifies, verify_ecdsa_prehash};
use crate::{Error, oid};

/// The digest an authentication signature is made over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthDigest {
    /// SHA-1: SIGNED_DATA and the first SUDI signature.
    Sha1,
    /// SHA-512: SHA2_SIGNED_DATA (hash id 3) and the second SUDI signature.
    Sha512,
}

impl AuthDigest {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            AuthDigest::Sha1 => Sha1::digest(data).to_vec(),
            AuthDigest::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// Which form a verified signature had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthSignatureForm {
    /// RSA, PKCS#1 block type 1 over the bare digest: what phones and capfc produce.
    BareDigest,
    /// RSA, the standard form with the DigestInfo prefix: accepted for interoperability, to
    /// be logged.
    DigestInfo,
    /// A DER ECDSA signature.
    Ecdsa,
}

/// Verifies an authentication `signature` made with `digest` over `data` by the holder of `key`.
///
/// # Errors
/// [`Error::BadSignature`] when it does not verify in any accepted form, or an error naming an
/// unsupported or malformed key.
pub fn verify_auth_signature(
    key: SubjectPublicKeyInfoRef<'_>,
    digest: AuthDigest,
    data: &[u8],
    signature: &[u8],
) -> Result<AuthSignatureForm, Error> {
    match key.algorithm.oid {
        oid::RSA_ENCRYPTION => {
            let (public, sig) = rsa_key_and_signature(key, signature)?;
            let hash = digest.digest(data);
            let bare = rsa::pkcs1v15::VerifyingKey::<Sha1>::new_unprefixed(public.clone());
            if bare.verify_prehash(&hash, &sig).is_ok() {
                return Ok(AuthSignatureForm::BareDigest);
            }
            let standard = match digest {
                AuthDigest::Sha1 => rsa_pkcs1v15_verifies::<Sha1>(public, data, &sig),
                AuthDigest::Sha512 => rsa_pkcs1v15_verifies::<Sha512>(public, data, &sig),
            };
            standard
                .then_some(AuthSignatureForm::DigestInfo)
                .ok_or(Error::BadSignature)
        }
        oid::EC_PUBLIC_KEY => {
            let curve = Curve::from_parameters(
                key.algorithm.parameters,
                "id-ecPublicKey without namedCurve parameters",
            )?;
            verify_ecdsa_prehash(curve, key, &digest.digest(data), signature)?
                .then_some(AuthSignatureForm::Ecdsa)
                .ok_or(Error::BadSignature)
        }
        other => Err(Error::UnsupportedKeyAlgorithm { oid: other }),
    }
}

/// Signs `data` as a phone does with its LSC, MIC or SUDI key (an unencrypted PKCS#8 DER key:
/// RSA of any size CAPF asks for, or EC P-256/P-384/P-521): the bare-digest PKCS#1 block for
/// RSA, DER ECDSA for EC.
///
/// # Errors
/// [`Error::Der`]/[`Error::Pkcs8`] for a malformed key, [`Error::UnsupportedKeyAlgorithm`],
/// [`Error::UnsupportedCurve`], [`Error::Signing`].
pub fn sign_auth_signature(
    pkcs8_der: &[u8],
    digest: AuthDigest,
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    let info = pkcs8_info(pkcs8_der)?;
    let hash = digest.digest(data);
    match info.algorithm.oid {
        oid::RSA_ENCRYPTION => {
            let signer = rsa::pkcs1v15::SigningKey::<Sha1>::new_unprefixed(rsa_private_key(info)?);
            let sig: rsa::pkcs1v15::Signature =
                signer.sign_prehash(&hash).map_err(Error::Signing)?;
            Ok(signature::SignatureEncoding::to_vec(&sig))
        }
        oid::EC_PUBLIC_KEY => ecdsa_sign_digest(info, &hash),
        other => Err(Error::UnsupportedKeyAlgorithm { oid: other }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::keys::{KeySpec, RsaBits};
    use der::Decode;
    use pkcs8::PrivateKeyInfoRef;

    fn key_der(spec: KeySpec) -> Vec<u8> {
        let pem = match spec {
            KeySpec::Rsa(RsaBits::B2048) => {
                include_str!("../../capf-test-support/fixtures/rsa-2048.pem")
            }
            KeySpec::Rsa(_) => include_str!("../../capf-test-support/fixtures/rsa-1024.pem"),
            KeySpec::Ec(Curve::P256) => include_str!("../../capf-test-support/fixtures/p256.pem"),
            KeySpec::Ec(Curve::P384) => include_str!("../../capf-test-support/fixtures/p384.pem"),
            KeySpec::Ec(Curve::P521) => include_str!("../../capf-test-support/fixtures/p521.pem"),
        };
        der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    fn spki_of(pkcs8: &[u8]) -> Vec<u8> {
        let info = PrivateKeyInfoRef::from_der(pkcs8).unwrap();
        match info.algorithm.oid {
            oid::RSA_ENCRYPTION => {
                let key = rsa::PrivateKey::try_from(info).unwrap();
                spki::EncodePublicKey::to_public_key_der(&key.to_public_key())
                    .unwrap()
                    .into_vec()
            }
            _ => {
                let curve: spki::ObjectIdentifier =
                    info.algorithm.parameters.unwrap().decode_as().unwrap();
                match Curve::from_oid(curve).unwrap() {
                    Curve::P256 => spki::EncodePublicKey::to_public_key_der(
                        &p256::SecretKey::try_from(info).unwrap().public_key(),
                    ),
                    Curve::P384 => spki::EncodePublicKey::to_public_key_der(
                        &p384::SecretKey::try_from(info).unwrap().public_key(),
                    ),
                    Curve::P521 => spki::EncodePublicKey::to_public_key_der(
                        &p521::SecretKey::try_from(info).unwrap().public_key(),
                    ),
                }
                .unwrap()
                .into_vec()
            }
        }
    }

    #[test]
    fn every_key_type_signs_and_verifies_both_digests() {
        let specs = [
            KeySpec::Rsa(RsaBits::B1024),
            KeySpec::Rsa(RsaBits::B2048),
            KeySpec::Ec(Curve::P256),
            KeySpec::Ec(Curve::P384),
            KeySpec::Ec(Curve::P521),
        ];
        for spec in specs {
            let der = key_der(spec);
            let spki = spki_of(&der);
            let spki = SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
            let spki = || spki.clone();
            for digest in [AuthDigest::Sha1, AuthDigest::Sha512] {
                let sig = sign_auth_signature(&der, digest, b"SEP001122334455\0cert").unwrap();
                let form = verify_auth_signature(spki(), digest, b"SEP001122334455\0cert", &sig)
                    .unwrap_or_else(|e| panic!("{spec} {digest:?}: {e}"));
                let expected = if spec.is_ec() {
                    AuthSignatureForm::Ecdsa
                } else {
                    AuthSignatureForm::BareDigest
                };
                assert_eq!(form, expected);
                let other = verify_auth_signature(spki(), digest, b"SEP001122334456\0cert", &sig);
                assert!(matches!(other, Err(Error::BadSignature)), "{spec}");
            }
        }
    }

    #[test]
    fn rsa_bare_digest_signature_equals_openssl_private_encrypt() {
        // OpenSSL's pkeyutl without a digest is RSA_private_encrypt with PKCS#1 type 1
        // padding: the independent reference of spec 6.2.
        let dir = std::env::temp_dir().join(format!("capf-auth-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let digest_path = dir.join("digest.bin");
        std::fs::write(&digest_path, Sha1::digest(b"blob")).unwrap();
        let key_path = dir.join("key.pem");
        std::fs::write(
            &key_path,
            include_str!("../../capf-test-support/fixtures/rsa-2048.pem"),
        )
        .unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "pkeyutl",
                "-sign",
                "-pkeyopt",
                "rsa_padding_mode:pkcs1",
                "-in",
            ])
            .arg(&digest_path)
            .arg("-inkey")
            .arg(&key_path)
            .output()
            .expect("openssl runs");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = sign_auth_signature(
            &key_der(KeySpec::Rsa(RsaBits::B2048)),
            AuthDigest::Sha1,
            b"blob",
        )
        .unwrap();
        assert_eq!(ours, out.stdout);
    }

    #[test]
    fn the_digest_info_form_is_accepted_and_reported() {
        let der = key_der(KeySpec::Rsa(RsaBits::B2048));
        let info = PrivateKeyInfoRef::from_der(&der).unwrap();
        let key = rsa::PrivateKey::try_from(info).unwrap();
        let spki = spki::EncodePublicKey::to_public_key_der(&key.to_public_key())
            .unwrap()
            .into_vec();
        let signer = rsa::pkcs1v15::SigningKey::<Sha512>::new(key);
        let sig: rsa::pkcs1v15::Signature = signature::Signer::sign(&signer, b"blob");
        let form = verify_auth_signature(
            SubjectPublicKeyInfoRef::from_der(&spki).unwrap(),
            AuthDigest::Sha512,
            b"blob",
            &signature::SignatureEncoding::to_vec(&sig),
        )
        .unwrap();
        assert_eq!(form, AuthSignatureForm::DigestInfo);
    }
}
