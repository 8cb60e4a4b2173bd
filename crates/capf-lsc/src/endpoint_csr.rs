//! The endpoint CSR (spec section 16, PROJECT rules): a PKCS#10 request for the phone's key that
//! the phone itself signs, so an external CA gets proof of possession while the private key
//! never leaves the phone.
//!
//! The server builds the CertificationRequestInfo ([`endpoint_csr_info`]) and sends it in
//! SIGN_CERT_REQUEST; the phone signs those bytes ([`sign_endpoint_csr_info`]) and answers
//! SIGN_CERT_RESPONSE; the server assembles and verifies the request ([`EndpointCsr::assemble`]).

use der::asn1::{Any, BitString, SetOfVec};
use der::{Decode, Encode, EncodePem};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use crate::csr::VerifiedCsr;
use crate::issue::{device_subject, lsc_subject_extensions};
use crate::keys::{KeySpec, PhonePublicKey};
use crate::signer::{ecdsa_sign_digest, pkcs8_info, rsa_private_key};
use crate::{Error, oid};
use capf_wire::DeviceName;

/// The CertificationRequestInfo (RFC 2986) of `device`'s endpoint CSR, DER: version v1, subject
/// CN = the device name, the phone's SubjectPublicKeyInfo, and an extensionRequest attribute
/// (RFC 2985 5.4.2) with the LSC profile's BasicConstraints CA:FALSE, KeyUsage,
/// ExtendedKeyUsage and SubjectAltName URI, so a CA that copies requested extensions issues
/// what CAPF would.
///
/// # Errors
/// [`Error::Der`] or [`Error::Builder`] if a part cannot be encoded (it can for no valid input).
pub fn endpoint_csr_info(device: &DeviceName, key: &PhonePublicKey) -> Result<Vec<u8>, Error> {
    let extensions = lsc_subject_extensions(device, key.spki().algorithm.oid)?;
    let request = Attribute::try_from(ExtensionReq(extensions.to_vec()))
        .map_err(Error::from_der("extensionRequest attribute"))?;
    let mut attributes = SetOfVec::new();
    attributes
        .insert(request)
        .map_err(Error::from_der("CSR attributes"))?;
    CertReqInfo {
        version: Version::V1,
        subject: device_subject(device)?,
        public_key: key.spki().clone(),
        attributes,
    }
    .to_der()
    .map_err(Error::from_der("CertificationRequestInfo"))
}

/// The signature algorithm of an endpoint CSR for a key of `spec`: sha256WithRSAEncryption
/// (NULL parameters, RFC 4055) or ecdsa-with-SHA256 (absent parameters, RFC 5758), for every
/// curve alike (spec section 16).
fn endpoint_csr_algorithm(spec: KeySpec) -> AlgorithmIdentifierOwned {
    match spec {
        KeySpec::Rsa(_) => AlgorithmIdentifierOwned {
            oid: oid::SHA256_WITH_RSA,
            parameters: Some(Any::null()),
        },
        KeySpec::Ec(_) => AlgorithmIdentifierOwned {
            oid: oid::ECDSA_WITH_SHA256,
            parameters: None,
        },
    }
}

/// An endpoint CSR whose signature verified with the phone's key: what goes to an external CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointCsr {
    verified: VerifiedCsr,
    der: Vec<u8>,
}

impl EndpointCsr {
    /// Assembles the PKCS#10 request from the CertificationRequestInfo the server sent
    /// (`info_der`) and the phone's `signature` over it, and verifies it: the request must
    /// carry `key` (the key of KEY_GEN_RESPONSE) and the signature must verify with it.
    ///
    /// # Errors
    /// [`Error::Der`] for an `info_der` that does not decode, [`Error::EndpointCsrKeyMismatch`]
    /// when it carries another key, [`Error::EndpointCsrSignature`] when the signature does not
    /// verify.
    pub fn assemble(
        info_der: &[u8],
        signature: &[u8],
        key: &PhonePublicKey,
    ) -> Result<Self, Error> {
        let info = CertReqInfo::from_der(info_der).map_err(Error::from_der("CSR_INFO"))?;
        if &info.public_key != key.spki() {
            return Err(Error::EndpointCsrKeyMismatch);
        }
        let request = CertReq {
            info,
            algorithm: endpoint_csr_algorithm(key.spec()),
            signature: BitString::from_bytes(signature)
                .map_err(Error::from_der("CSR_SIGNATURE"))?,
        };
        let verified = VerifiedCsr::verify(request).map_err(|e| match e {
            Error::BadSignature => Error::EndpointCsrSignature,
            other => other,
        })?;
        let der = verified
            .request()
            .to_der()
            .map_err(Error::from_der("PKCS#10 request"))?;
        Ok(EndpointCsr { verified, der })
    }

    /// The verified request.
    pub fn verified(&self) -> &VerifiedCsr {
        &self.verified
    }

    /// The request, DER (what the store keeps and `csr export --der` writes).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The request as PEM `CERTIFICATE REQUEST`.
    ///
    /// # Errors
    /// [`Error::Der`] if encoding fails (it does not for an assembled request).
    pub fn to_pem(&self) -> Result<String, Error> {
        self.verified
            .request()
            .to_pem(der::pem::LineEnding::LF)
            .map_err(Error::from_der("PEM certificate request"))
    }
}

/// Signs an endpoint CSR's CertificationRequestInfo as a phone does (spec section 16) with its
/// unencrypted PKCS#8 DER key: PKCS#1 v1.5 with SHA-256 and the DigestInfo prefix for RSA
/// (sha256WithRSAEncryption), a DER ECDSA-Sig-Value over SHA-256 for EC (ecdsa-with-SHA256, on
/// P-256, P-384 and P-521 alike).
///
/// # Errors
/// [`Error::Der`]/[`Error::Pkcs8`] for a malformed key, [`Error::UnsupportedKeyAlgorithm`],
/// [`Error::UnsupportedCurve`], [`Error::Signing`].
pub fn sign_endpoint_csr_info(pkcs8_der: &[u8], info_der: &[u8]) -> Result<Vec<u8>, Error> {
    let info = pkcs8_info(pkcs8_der)?;
    match info.algorithm.oid {
        oid::RSA_ENCRYPTION => {
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_private_key(info)?);
            let sig = signature::Signer::try_sign(&signer, info_der).map_err(Error::Signing)?;
            Ok(signature::SignatureEncoding::to_vec(&sig))
        }
        // The digest is SHA-256 on every curve (a shorter one is fitted as SEC 1 reads it).
        oid::EC_PUBLIC_KEY => ecdsa_sign_digest(info, &Sha256::digest(info_der)),
        other => Err(Error::UnsupportedKeyAlgorithm { oid: other }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::keys::Curve;
    use crate::{IssuerKey, KeySpec, LscSigner, RsaBits};

    /// Every key a phone may be asked for (capf-test-support's PHONE_SPECS, in this crate's
    /// types: the dev-dependency links a second copy of capf-lsc).
    fn phone_specs() -> Vec<KeySpec> {
        capf_test_support::PHONE_SPECS
            .iter()
            .map(|s| s.to_string().parse().unwrap())
            .collect()
    }

    fn key_pem(spec: KeySpec) -> &'static str {
        capf_test_support::key_pem(spec.to_string().parse().unwrap())
    }

    fn device() -> DeviceName {
        DeviceName::new("SEP001A2B3C4D5E").unwrap()
    }

    /// The fixture private key of `spec` and its public key.
    fn key_pair(spec: KeySpec) -> (Vec<u8>, PhonePublicKey) {
        let (_, der) = der::pem::decode_vec(key_pem(spec).as_bytes()).unwrap();
        let info = pkcs8_info(&der).unwrap();
        let spki = match info.algorithm.oid {
            oid::RSA_ENCRYPTION => {
                let key = rsa_private_key(info).unwrap();
                spki::EncodePublicKey::to_public_key_der(&key.to_public_key())
                    .unwrap()
                    .into_vec()
            }
            _ => match Curve::from_parameters(info.algorithm.parameters, "curve").unwrap() {
                Curve::P256 => spki::EncodePublicKey::to_public_key_der(
                    &p256::SecretKey::try_from(info).unwrap().public_key(),
                )
                .unwrap()
                .into_vec(),
                Curve::P384 => spki::EncodePublicKey::to_public_key_der(
                    &p384::SecretKey::try_from(info).unwrap().public_key(),
                )
                .unwrap()
                .into_vec(),
                Curve::P521 => spki::EncodePublicKey::to_public_key_der(
                    &p521::SecretKey::try_from(info).unwrap().public_key(),
                )
                .unwrap()
                .into_vec(),
            },
        };
        (der, PhonePublicKey::from_der(&spki).unwrap())
    }

    #[test]
    fn every_phone_key_signs_a_csr_that_verifies() {
        for spec in phone_specs() {
            let (private, public) = key_pair(spec);
            let info = endpoint_csr_info(&device(), &public).unwrap();
            let signature = sign_endpoint_csr_info(&private, &info).unwrap();
            let csr = EndpointCsr::assemble(&info, &signature, &public).unwrap();
            assert_eq!(csr.verified().key_spec(), spec, "{spec}");
            csr.verified()
                .require_common_name("SEP001A2B3C4D5E")
                .unwrap();
            // The DER re-parses as the same verified request.
            assert_eq!(VerifiedCsr::from_der(csr.der()).unwrap(), *csr.verified());
            assert!(
                csr.to_pem()
                    .unwrap()
                    .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
            );
        }
    }

    #[test]
    fn the_request_asks_for_the_lsc_extensions() {
        let (_, public) = key_pair(KeySpec::Rsa(RsaBits::B2048));
        let info = endpoint_csr_info(&device(), &public).unwrap();
        let info = CertReqInfo::from_der(&info).unwrap();
        let attribute = info.attributes.iter().next().unwrap();
        assert_eq!(
            attribute.oid,
            <ExtensionReq as const_oid::AssociatedOid>::OID
        );
        let requested: Vec<x509_cert::ext::Extension> =
            attribute.values.iter().next().unwrap().decode_as().unwrap();
        let expected = lsc_subject_extensions(&device(), oid::RSA_ENCRYPTION).unwrap();
        assert_eq!(requested, expected.to_vec());
    }

    #[test]
    fn refuses_a_signature_by_another_key() {
        let (_, public) = key_pair(KeySpec::Rsa(RsaBits::B2048));
        let (other, _) = key_pair(KeySpec::Rsa(RsaBits::B3072));
        let info = endpoint_csr_info(&device(), &public).unwrap();
        let signature = sign_endpoint_csr_info(&other, &info).unwrap();
        assert!(matches!(
            EndpointCsr::assemble(&info, &signature, &public),
            Err(Error::EndpointCsrSignature)
        ));
        let (p256, p256_public) = key_pair(KeySpec::Ec(Curve::P256));
        let info = endpoint_csr_info(&device(), &p256_public).unwrap();
        let mut signature = sign_endpoint_csr_info(&p256, &info).unwrap();
        let last = signature.len() - 1;
        signature[last] ^= 1;
        assert!(matches!(
            EndpointCsr::assemble(&info, &signature, &p256_public),
            Err(Error::EndpointCsrSignature)
        ));
    }

    #[test]
    fn refuses_info_for_another_key_and_garbage() {
        let (private, public) = key_pair(KeySpec::Ec(Curve::P256));
        let (_, other) = key_pair(KeySpec::Ec(Curve::P384));
        let info = endpoint_csr_info(&device(), &public).unwrap();
        let signature = sign_endpoint_csr_info(&private, &info).unwrap();
        assert!(matches!(
            EndpointCsr::assemble(&info, &signature, &other),
            Err(Error::EndpointCsrKeyMismatch)
        ));
        assert!(matches!(
            EndpointCsr::assemble(b"\x30\x03\x02\x01", &signature, &public),
            Err(Error::Der { .. })
        ));
    }

    #[test]
    fn an_issuer_key_signs_the_same_form() {
        // The issuer's own PKCS#1 v1.5 SHA-256 signature is the same scheme: the one rule.
        let (private, public) = key_pair(KeySpec::Rsa(RsaBits::B2048));
        let issuer = IssuerKey::from_pkcs8_der(&private).unwrap();
        let info = endpoint_csr_info(&device(), &public).unwrap();
        let signature = issuer.sign(&info).unwrap();
        assert_eq!(signature, sign_endpoint_csr_info(&private, &info).unwrap());
        EndpointCsr::assemble(&info, &signature, &public).unwrap();
    }
}
