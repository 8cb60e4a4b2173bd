//! Certificate revocation lists of revoked LSCs, signed by the issuer that signed them
//! (RFC 5280 section 5: a v2 CRL with a CRL number).

use std::time::SystemTime;

use capf_lsc::Issuer;
use capf_lsc::der::asn1::{BitString, OctetString, Uint};
use capf_lsc::der::oid::AssociatedOid;
use capf_lsc::der::pem::LineEnding;
use capf_lsc::der::{Encode, EncodePem};
use capf_lsc::x509_cert::certificate::{Rfc5280, Version};
use capf_lsc::x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use capf_lsc::x509_cert::ext::Extension;
use capf_lsc::x509_cert::ext::pkix::CrlNumber;
use capf_lsc::x509_cert::serial_number::SerialNumber;
use capf_lsc::x509_cert::time::Time;

use crate::Error;

/// One revoked certificate: its serial number and when it was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedSerial<'a> {
    /// The serial number's bytes (big-endian, as in the certificate).
    pub serial: &'a [u8],
    /// When it was revoked (the entry's revocationDate).
    pub revoked_at: SystemTime,
}

fn crl_part(what: &'static str) -> impl FnOnce(capf_lsc::der::Error) -> Error {
    move |source| Error::Crl { what, source }
}

/// A CRL of `revoked`, signed by `issuer`, as PEM (`X509 CRL`): thisUpdate `now`, nextUpdate
/// `next_update`, and a CRL number of `now` in seconds since 1970, so a newer CRL has a
/// larger number (RFC 5280 section 5.2.3).
///
/// # Errors
/// [`Error::Crl`] when a time or serial number cannot be encoded; [`Error::CrlSignature`]
/// when the signer fails.
pub fn build_crl(
    issuer: &Issuer,
    revoked: &[RevokedSerial<'_>],
    now: SystemTime,
    next_update: SystemTime,
) -> Result<String, Error> {
    let signer = issuer.signer();
    let time = |t: SystemTime| Time::try_from(t).map_err(crl_part("a CRL time"));
    let entries = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCert::<Rfc5280> {
                serial_number: SerialNumber::new(r.serial).map_err(crl_part("an LSC serial"))?,
                revocation_date: time(r.revoked_at)?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let number = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let number = CrlNumber(Uint::new(&number.to_be_bytes()).map_err(crl_part("the CRL number"))?);
    let extension = Extension {
        extn_id: CrlNumber::OID,
        critical: false,
        extn_value: OctetString::new(number.to_der().map_err(crl_part("the CRL number"))?)
            .map_err(crl_part("the CRL number"))?,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: signer.signature_algorithm(),
        issuer: issuer.certificate().tbs_certificate().subject().clone(),
        this_update: time(now)?,
        next_update: Some(time(next_update)?),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: Some(vec![extension]),
    };
    let signature = signer
        .sign(&tbs.to_der().map_err(crl_part("the CRL"))?)
        .map_err(|source| Error::CrlSignature { source })?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(crl_part("the CRL signature"))?,
    };
    crl.to_pem(LineEnding::LF).map_err(crl_part("the CRL"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use capf_lsc::der::referenced::OwnedToRef;

    use capf_lsc::der::{DecodePem, Encode};
    use capf_lsc::x509_cert::certificate::Rfc5280;
    use capf_lsc::x509_cert::crl::CertificateList;
    use capf_lsc::{Curve, KeySpec};

    use super::{RevokedSerial, build_crl};

    #[test]
    fn signs_a_crl_of_the_revoked_serials() {
        let issuer = capf_test_support::capf_issuer(KeySpec::Ec(Curve::P256));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let revoked = [
            RevokedSerial {
                serial: &[0x71, 0x01],
                revoked_at: now - Duration::from_secs(60),
            },
            RevokedSerial {
                serial: &[0x71, 0x02],
                revoked_at: now,
            },
        ];
        let pem = build_crl(&issuer, &revoked, now, now + Duration::from_secs(86_400)).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
        let crl = CertificateList::<Rfc5280>::from_pem(pem.as_bytes()).unwrap();
        let tbs = &crl.tbs_cert_list;
        assert_eq!(
            &tbs.issuer,
            issuer.certificate().tbs_certificate().subject()
        );
        let serials: Vec<&[u8]> = tbs
            .revoked_certificates
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.serial_number.as_bytes())
            .collect();
        assert_eq!(serials, [&[0x71, 0x01][..], &[0x71, 0x02][..]]);
        assert_eq!(tbs.this_update.to_system_time(), now);
        assert_eq!(tbs.crl_extensions.as_ref().unwrap().len(), 1);
        capf_lsc::verify_signed_data(
            &tbs.to_der().unwrap(),
            &crl.signature_algorithm,
            crl.signature.raw_bytes(),
            issuer
                .certificate()
                .tbs_certificate()
                .subject_public_key_info()
                .owned_to_ref(),
        )
        .unwrap();
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list() {
        let issuer = capf_test_support::capf_issuer(KeySpec::Ec(Curve::P256));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let pem = build_crl(&issuer, &[], now, now + Duration::from_secs(60)).unwrap();
        let crl = CertificateList::<Rfc5280>::from_pem(pem.as_bytes()).unwrap();
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
    }
}
