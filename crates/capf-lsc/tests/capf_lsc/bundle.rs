//! The one certificate-with-key loader (`CertificateAndKey`) and the certificate summary.

use capf_lsc::*;
use capf_test_support as support;

fn capf() -> (String, String) {
    let issuer = support::capf_issuer(KeySpec::Ec(Curve::P256));
    let cert = certificate_to_pem(issuer.certificate()).unwrap();
    (cert, support::key_pem(KeySpec::Ec(Curve::P256)).to_owned())
}

#[test]
fn reads_a_bundle_in_either_order() {
    let (cert, key) = capf();
    for text in [format!("{cert}{key}"), format!("{key}\n{cert}")] {
        let both = CertificateAndKey::from_pem(&text).unwrap();
        assert_eq!(
            LscSigner::public_key(both.require_key().unwrap()),
            both.certificate.tbs_certificate().subject_public_key_info()
        );
    }
}

#[test]
fn reads_a_certificate_alone_as_pem_or_der() {
    let (cert, _) = capf();
    let pem = CertificateAndKey::from_pem_or_der(cert.as_bytes()).unwrap();
    assert!(pem.key.is_none());
    assert!(matches!(
        pem.require_key(),
        Err(Error::MissingPemBlock {
            label: "PRIVATE KEY"
        })
    ));
    let der = certificate_to_der(&pem.certificate).unwrap();
    let from_der = CertificateAndKey::from_pem_or_der(&der).unwrap();
    assert_eq!(from_der.certificate, pem.certificate);
}

#[test]
fn refuses_a_key_alone_and_non_pkcs8_keys() {
    let (_, key) = capf();
    assert!(matches!(
        CertificateAndKey::from_pem(&key),
        Err(Error::MissingPemBlock {
            label: "CERTIFICATE"
        })
    ));
    let (cert, _) = capf();
    let legacy =
        format!("{cert}-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
    assert!(matches!(
        CertificateAndKey::from_pem(&legacy),
        Err(Error::UnexpectedPemLabel { .. })
    ));
}

#[test]
fn summarises_a_capf_certificate() {
    let issuer = support::capf_issuer(KeySpec::Ec(Curve::P256));
    let s = CertificateSummary::of(issuer.certificate()).unwrap();
    assert_eq!(s.subject, s.issuer);
    assert_eq!(*s.key.as_ref().unwrap(), KeySpec::Ec(Curve::P256));
    assert_eq!(s.constraints_text().unwrap(), "CA:TRUE pathlen:0");
    let usage = s.key_usage.unwrap();
    assert!(usage.contains(&"digitalSignature") && usage.contains(&"keyCertSign"));
    assert!(!s.serial_hex.is_empty() && s.serial_hex.bytes().all(|b| b.is_ascii_hexdigit()));
}
