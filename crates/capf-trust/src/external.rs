//! The one rule for an LSC an external CA signed (Online CA answer, Offline CA import): what
//! must hold before the store records it and a phone ever receives it (issue 13).

use std::fmt;
use std::time::SystemTime;

use capf_lsc::{DeviceName, IssuedLsc, KeySpec, format_time, key_usage_names, lsc_key_usage};
use der::Encode;
use der::referenced::OwnedToRef;

use crate::device_auth::{CertificateKind, names_device};
use crate::{Cert, ChainFailure, Error, Purpose, TrustStore, VerifiedChain};

/// An LSC from an external CA that passed [`check_external_lsc`]: what to record.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExternalLsc {
    /// The certificate.
    pub cert: Cert,
    /// Its chain to CAPF-trust.
    pub chain: VerifiedChain,
    /// What the store records of it (serial, DER, validity).
    pub issued: IssuedLsc,
}

/// Why a certificate from an external CA is refused: each reason reads for an administrator
/// (`Display`), naming what to fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExternalLscRefusal {
    /// The input is not one X.509 certificate.
    NotACertificate(Error),
    /// The certificate certifies another key than the one the phone sent in its request.
    OtherKey,
    /// The certificate's Common Name is not the device's name.
    OtherDevice {
        /// The device the request came from.
        device: DeviceName,
        /// The certificate's Common Name (`None`: it has none).
        common_name: Option<String>,
    },
    /// notBefore is still to come.
    NotYetValid {
        /// notBefore.
        not_before: SystemTime,
    },
    /// notAfter has passed.
    Expired {
        /// notAfter.
        not_after: SystemTime,
    },
    /// KeyUsage lacks bits an LSC needs (the guide: without digitalSignature and
    /// keyEncipherment, secure registration fails).
    KeyUsage {
        /// The bits required and absent.
        missing: Vec<&'static str>,
    },
    /// The certificate's KeyUsage extension is malformed or repeated.
    MalformedKeyUsage,
    /// The certificate's key is not of a type a phone can hold.
    UnsupportedKey(capf_lsc::Error),
    /// The certificate does not chain to CAPF-trust (with the intermediates given).
    Untrusted(ChainFailure),
}

impl fmt::Display for ExternalLscRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotACertificate(e) => write!(f, "not a certificate: {e}"),
            Self::OtherKey => f.write_str(
                "does not certify the key of the phone's request (no pending request has this key)",
            ),
            Self::OtherDevice {
                device,
                common_name: Some(cn),
            } => write!(f, "names device {cn:?} (Common Name), not {device}"),
            Self::OtherDevice {
                device,
                common_name: None,
            } => write!(f, "has no Common Name; an LSC names its device ({device})"),
            Self::NotYetValid { not_before } => write!(
                f,
                "not valid yet: its validity begins {}",
                format_time(*not_before)
            ),
            Self::Expired { not_after } => {
                write!(f, "expired at {}", format_time(*not_after))
            }
            Self::KeyUsage { missing } => write!(
                f,
                "KeyUsage lacks {}; secure registration fails without it",
                missing.join(" and ")
            ),
            Self::MalformedKeyUsage => {
                f.write_str("the KeyUsage extension is malformed or repeated")
            }
            Self::UnsupportedKey(e) => write!(f, "unsupported key: {e}"),
            Self::Untrusted(failure) => {
                write!(f, "does not chain to CAPF-trust: {failure}")
            }
        }
    }
}

impl std::error::Error for ExternalLscRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NotACertificate(e) => Some(e),
            Self::UnsupportedKey(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks an LSC an external CA signed for `device`, whose request carried the phone's key
/// `public_key_der` (SubjectPublicKeyInfo DER), at `now`, in this order: it is one DER
/// certificate; it certifies exactly that key; its Common Name is the device (ignoring ASCII
/// case); its validity has begun and not ended; its KeyUsage has the LSC profile's bits
/// ([`capf_lsc::lsc_key_usage`]: digitalSignature + keyEncipherment for RSA, digitalSignature +
/// keyAgreement for EC, where RFC 5480 forbids keyEncipherment); and it chains to CAPF-trust in
/// `store`, where the administrator uploaded the external CA's root, through any of
/// `intermediates` (DER; ones that do not parse are ignored: they cannot help a chain).
///
/// The one owner of the rule: the Offline CA import and the Online CA answer both call it.
///
/// # Errors
/// The first rule the certificate breaks, as an [`ExternalLscRefusal`].
pub fn check_external_lsc(
    der: &[u8],
    device: &DeviceName,
    public_key_der: &[u8],
    intermediates: &[Vec<u8>],
    store: &TrustStore,
    now: SystemTime,
) -> Result<ExternalLsc, ExternalLscRefusal> {
    let cert = Cert::from_der(der).map_err(ExternalLscRefusal::NotACertificate)?;
    let tbs = cert.certificate().tbs_certificate();
    let spki = tbs.subject_public_key_info();
    let certified = spki
        .to_der()
        .map_err(|e| ExternalLscRefusal::NotACertificate(Error::CertificateDer(e)))?;
    if certified != public_key_der {
        return Err(ExternalLscRefusal::OtherKey);
    }
    let common_name = cert.common_name();
    if !common_name
        .as_deref()
        .is_some_and(|cn| names_device(CertificateKind::Lsc, cn, device))
    {
        return Err(ExternalLscRefusal::OtherDevice {
            device: device.clone(),
            common_name,
        });
    }
    if now < cert.not_before() {
        return Err(ExternalLscRefusal::NotYetValid {
            not_before: cert.not_before(),
        });
    }
    if now > cert.not_after() {
        return Err(ExternalLscRefusal::Expired {
            not_after: cert.not_after(),
        });
    }
    let spec = KeySpec::of_spki(spki.owned_to_ref()).map_err(ExternalLscRefusal::UnsupportedKey)?;
    let required = key_usage_names(&lsc_key_usage(spec));
    let present = match cert.key_usage() {
        Ok(Some(ku)) => key_usage_names(&ku),
        Ok(None) => Vec::new(),
        Err(_) => return Err(ExternalLscRefusal::MalformedKeyUsage),
    };
    let missing: Vec<&'static str> = required
        .into_iter()
        .filter(|bit| !present.contains(bit))
        .collect();
    if !missing.is_empty() {
        return Err(ExternalLscRefusal::KeyUsage { missing });
    }
    let intermediates: Vec<Cert> = intermediates
        .iter()
        .filter_map(|d| Cert::from_der(d).ok())
        .collect();
    let chain = match store.verify(&Purpose::CAPF_TRUST, &cert, &intermediates, now) {
        crate::ChainVerdict::Trusted(chain) => chain,
        crate::ChainVerdict::Untrusted(failure) => {
            return Err(ExternalLscRefusal::Untrusted(failure));
        }
    };
    let issued = IssuedLsc::from_certificate(cert.certificate())
        .map_err(|e| ExternalLscRefusal::NotACertificate(Error::Lsc(e)))?;
    Ok(ExternalLsc {
        cert,
        chain,
        issued,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use capf_lsc::der::Encode as _;
    use capf_lsc::{Curve, Issuer, KeySpec, LscSigner, RsaBits, ValidityDays};
    use capf_test_support::{
        ca_params, issuer_key, now, phone_key, root_and_intermediate, serials,
    };

    use super::*;
    use crate::Release;

    const DEVICE: &str = "SEP001122334455";

    fn dn(name: &str) -> DeviceName {
        DeviceName::new(name).unwrap()
    }

    /// CAPF-trust holding the external root; the intermediate that signs; a phone's RSA key.
    struct Ca {
        store: TrustStore,
        intermediate: Issuer,
        key: Vec<u8>,
    }

    fn ca() -> Ca {
        let (root, intermediate) =
            root_and_intermediate(KeySpec::Ec(Curve::P256), KeySpec::Ec(Curve::P256));
        let mut store = TrustStore::new(Release::default());
        store.insert_unchecked(&Purpose::CAPF_TRUST, Cert::from_certificate(root).unwrap());
        let key = phone_key(KeySpec::Rsa(RsaBits::B2048)).to_der().unwrap();
        Ca {
            store,
            intermediate,
            key,
        }
    }

    impl Ca {
        fn lsc(&self, device: &str) -> Vec<u8> {
            self.intermediate
                .issue_lsc_for(
                    &phone_key(KeySpec::Rsa(RsaBits::B2048)),
                    &dn(device),
                    ValidityDays::new(30).unwrap(),
                    now(),
                    &mut serials(),
                )
                .unwrap()
                .to_der()
                .unwrap()
        }

        fn intermediates(&self) -> Vec<Vec<u8>> {
            vec![self.intermediate.certificate().to_der().unwrap()]
        }

        fn check(&self, der: &[u8], at: SystemTime) -> Result<ExternalLsc, ExternalLscRefusal> {
            check_external_lsc(
                der,
                &dn(DEVICE),
                &self.key,
                &self.intermediates(),
                &self.store,
                at,
            )
        }
    }

    fn later(days: u64) -> SystemTime {
        now() + Duration::from_secs(days * 86_400)
    }

    #[test]
    fn accepts_an_lsc_for_the_key_and_device_chaining_through_the_intermediate_given() {
        let ca = ca();
        // ECDSA signatures are randomized (the default signer): one certificate, checked once.
        let lsc = ca.lsc(DEVICE);
        let ok = ca.check(&lsc, later(1)).unwrap();
        assert_eq!(ok.chain.subjects.len(), 3);
        assert_eq!(ok.issued.der, lsc);
        // The device name matches ignoring case, as UCM compares names.
        assert!(ca.check(&ca.lsc("sep001122334455"), later(1)).is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        let ca = ca();
        for garbage in [&b""[..], b"garbage", &[0x30, 0x03, 0x02, 0x01, 0x01]] {
            let refusal = ca.check(garbage, later(1)).unwrap_err();
            assert!(
                matches!(refusal, ExternalLscRefusal::NotACertificate(_)),
                "{refusal}"
            );
            assert!(refusal.to_string().starts_with("not a certificate"));
        }
    }

    #[test]
    fn refuses_a_certificate_for_another_key() {
        let ca = ca();
        let other = phone_key(KeySpec::Ec(Curve::P256)).to_der().unwrap();
        let refusal = check_external_lsc(
            &ca.lsc(DEVICE),
            &dn(DEVICE),
            &other,
            &ca.intermediates(),
            &ca.store,
            later(1),
        )
        .unwrap_err();
        assert!(matches!(refusal, ExternalLscRefusal::OtherKey));
        assert!(refusal.to_string().contains("does not certify the key"));
    }

    #[test]
    fn refuses_a_certificate_for_another_device() {
        let ca = ca();
        let refusal = ca.check(&ca.lsc("SEP0000000000FF"), later(1)).unwrap_err();
        assert!(matches!(refusal, ExternalLscRefusal::OtherDevice { .. }));
        assert_eq!(
            refusal.to_string(),
            "names device \"SEP0000000000FF\" (Common Name), not SEP001122334455"
        );
    }

    #[test]
    fn refuses_a_certificate_not_valid_yet_or_expired() {
        let ca = ca();
        let lsc = ca.lsc(DEVICE);
        let early = ca
            .check(&lsc, now() - Duration::from_secs(86_400))
            .unwrap_err();
        assert!(matches!(early, ExternalLscRefusal::NotYetValid { .. }));
        assert!(early.to_string().starts_with("not valid yet"), "{early}");
        let late = ca.check(&lsc, later(31)).unwrap_err();
        assert!(matches!(late, ExternalLscRefusal::Expired { .. }));
        assert!(late.to_string().starts_with("expired at"), "{late}");
    }

    #[test]
    fn refuses_a_certificate_without_key_encipherment() {
        let ca = ca();
        // A CA profile (digitalSignature, keyCertSign, cRLSign) over an RSA key named after the
        // device: no keyEncipherment.
        let key = issuer_key(KeySpec::Rsa(RsaBits::B2048));
        let cert = ca_params(DEVICE, Some(0))
            .issue(key.public_key(), &ca.intermediate, now(), &mut serials())
            .unwrap()
            .to_der()
            .unwrap();
        let refusal = check_external_lsc(
            &cert,
            &dn(DEVICE),
            &key.public_key().to_der().unwrap(),
            &ca.intermediates(),
            &ca.store,
            later(1),
        )
        .unwrap_err();
        assert!(
            matches!(&refusal, ExternalLscRefusal::KeyUsage { missing } if missing == &["keyEncipherment"]),
            "{refusal}"
        );
        assert_eq!(
            refusal.to_string(),
            "KeyUsage lacks keyEncipherment; secure registration fails without it"
        );
    }

    #[test]
    fn refuses_a_certificate_that_does_not_chain_to_capf_trust() {
        let ca = ca();
        // Without the intermediate, and against a store without the root.
        let refusal = check_external_lsc(
            &ca.lsc(DEVICE),
            &dn(DEVICE),
            &ca.key,
            &[],
            &ca.store,
            later(1),
        )
        .unwrap_err();
        assert!(matches!(
            refusal,
            ExternalLscRefusal::Untrusted(ChainFailure::UnknownIssuer { .. })
        ));
        let empty = TrustStore::new(Release::default());
        let refusal = check_external_lsc(
            &ca.lsc(DEVICE),
            &dn(DEVICE),
            &ca.key,
            &ca.intermediates(),
            &empty,
            later(1),
        )
        .unwrap_err();
        assert!(
            refusal
                .to_string()
                .starts_with("does not chain to CAPF-trust: "),
            "{refusal}"
        );
    }
}
