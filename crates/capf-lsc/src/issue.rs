//! Issuance: the LSC and CA profiles as x509-cert `BuilderProfile`s, and [`Issuer`].

use std::time::{SystemTime, UNIX_EPOCH};

use const_oid::AssociatedOid;
use der::asn1::{Any, BitString, Ia5String, OctetString, PrintableStringRef, Utf8StringRef};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::bundle::CertificateAndKey;
use crate::cert_info::{self, key_identifier};
use crate::keys::{KeySpec, PhonePublicKey};
use crate::signer::{BuilderSigner, LscSigner, check_issuer_spec};
use crate::validity::ValidityDays;
use crate::{Error, oid};
use capf_wire::DeviceName;

/// Where serial numbers come from: 16 random bytes per certificate.
///
/// Any `FnMut() -> [u8; 16]` is a source, so a CSPRNG, an HSM or a deterministic test
/// counter plugs in. The bytes are made positive and non-zero (RFC 5280 4.1.2.2).
pub trait SerialSource {
    /// The next 16 bytes.
    fn next_serial(&mut self) -> [u8; 16];
}

impl<F: FnMut() -> [u8; 16]> SerialSource for F {
    fn next_serial(&mut self) -> [u8; 16] {
        self()
    }
}

/// A positive, non-zero serial number from 16 bytes.
pub fn serial_from_bytes(mut bytes: [u8; 16]) -> Result<SerialNumber, Error> {
    // Clearing the top bit keeps the INTEGER positive without a leading 0x00 byte.
    bytes[0] &= 0x7f;
    if bytes.iter().all(|&b| b == 0) {
        bytes[15] = 1;
    }
    SerialNumber::new(&bytes).map_err(|source| Error::Der {
        what: "serial number",
        source,
    })
}

fn time(what: &'static str, t: SystemTime) -> Result<Time, Error> {
    // Whole seconds: certificates carry no fractions, and DER forbids them in UTCTime.
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::TimeOutOfRange { what })?
        .as_secs();
    Time::try_from(UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .map_err(|_| Error::TimeOutOfRange { what })
}

fn validity(now: SystemTime, days: ValidityDays) -> Result<Validity, Error> {
    Ok(Validity::new(
        time("notBefore", now)?,
        time("notAfter", days.not_after(now))?,
    ))
}

pub(crate) fn ext<T: AssociatedOid + Encode>(
    critical: bool,
    value: &T,
) -> x509_cert::builder::Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// BasicConstraints, critical in both profiles (RFC 5280 4.2.1.9 for a CA; the LSC profile
/// marks CA:FALSE critical too).
fn basic_constraints(ca: bool, path_len: Option<u8>) -> x509_cert::builder::Result<Extension> {
    ext(
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: path_len,
        },
    )
}

/// SubjectKeyIdentifier of `spk` (method 1) and AuthorityKeyIdentifier `authority_key_id`,
/// neither critical (RFC 5280 4.2.1.1-2).
fn key_identifiers(
    spk: SubjectPublicKeyInfoRef<'_>,
    authority_key_id: &[u8],
) -> x509_cert::builder::Result<[Extension; 2]> {
    Ok([
        ext(
            false,
            &SubjectKeyIdentifier(OctetString::new(key_identifier(spk).as_slice())?),
        )?,
        ext(
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(authority_key_id)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
    ])
}

fn rdn(oid: const_oid::ObjectIdentifier, value: Any) -> Result<RelativeDistinguishedName, Error> {
    RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue { oid, value }]).map_err(
        |source| Error::Der {
            what: "relative distinguished name",
            source,
        },
    )
}

fn utf8_rdn(
    attribute: &'static str,
    oid: const_oid::ObjectIdentifier,
    value: &str,
    max: usize,
) -> Result<RelativeDistinguishedName, Error> {
    let bad = |reason| Error::InvalidNameAttribute { attribute, reason };
    if value.chars().count() > max {
        return Err(bad("longer than the RFC 5280 upper bound"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    let s = Utf8StringRef::new(value).map_err(|_| bad("not a valid UTF8String"))?;
    rdn(oid, Any::encode_from(&s).map_err(|_| bad("not encodable"))?)
}

fn name_from_rdns(rdns: Vec<RelativeDistinguishedName>) -> Result<Name, Error> {
    let seq = RdnSequence::from(rdns);
    // Name has no public constructor from an RdnSequence without the hazmat feature; the DER
    // round trip also validates the result.
    let der = seq.to_der().map_err(|source| Error::Der {
        what: "name",
        source,
    })?;
    Name::from_der(&der).map_err(|source| Error::Der {
        what: "name",
        source,
    })
}

/// Key-usage bits of an LSC: digitalSignature + keyEncipherment for RSA keys (what capfd
/// and UCM issue, and what the guide says secure registration needs); digitalSignature +
/// keyAgreement for EC keys, because RFC 5480 section 3 forbids keyEncipherment with
/// id-ecPublicKey and an EC key does ECDH instead.
pub fn lsc_key_usage(spec: KeySpec) -> KeyUsage {
    match spec {
        KeySpec::Rsa(_) => KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
        KeySpec::Ec(_) => KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyAgreement),
    }
}

/// Key-usage bits of a CA (CAPF) certificate: digitalSignature + keyCertSign (the guide,
/// from 14SU2) plus cRLSign so the CAPF can sign the CRL of revoked LSCs.
pub fn ca_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign)
}

/// The LSC profile: Subject CN = device name plus O, OU, L, ST, C copied from the issuer's
/// subject; Issuer = the issuing certificate's subject; BasicConstraints CA:FALSE
/// (critical); KeyUsage (critical, see [`lsc_key_usage`]); ExtendedKeyUsage serverAuth,
/// clientAuth, ipsecEndSystem; SubjectAltName URI = device name (as capfd issues, which
/// phones accept); SubjectKeyIdentifier and AuthorityKeyIdentifier.
#[derive(Clone, Debug)]
pub struct LscProfile {
    subject: Name,
    issuer: Name,
    device: DeviceName,
    authority_key_id: Vec<u8>,
}

impl LscProfile {
    /// The profile for `device`, issued by the holder of `issuer_cert`.
    ///
    /// # Errors
    /// [`Error::Der`] if the issuer's subject cannot be re-encoded.
    pub fn new(issuer_cert: &Certificate, device: &DeviceName) -> Result<Self, Error> {
        let template = subject_template(issuer_cert.tbs_certificate().subject());
        Self::from_parts(
            &template,
            issuer_cert.tbs_certificate().subject().clone(),
            device,
            cert_info::subject_key_id(issuer_cert),
        )
    }

    fn from_parts(
        template: &[RelativeDistinguishedName],
        issuer: Name,
        device: &DeviceName,
        authority_key_id: Vec<u8>,
    ) -> Result<Self, Error> {
        let mut rdns = template.to_vec();
        rdns.push(utf8_rdn("CN", oid::AT_COMMON_NAME, device.as_str(), 64)?);
        Ok(LscProfile {
            subject: name_from_rdns(rdns)?,
            issuer,
            device: device.clone(),
            authority_key_id,
        })
    }
}

/// The O, OU, L, ST and C attributes of the issuer's subject, in the issuer's order and
/// string types (capfd copies them the same way, spec section 10).
fn subject_template(issuer_subject: &Name) -> Vec<RelativeDistinguishedName> {
    let copied = [
        oid::AT_ORGANIZATION,
        oid::AT_ORGANIZATIONAL_UNIT,
        oid::AT_LOCALITY,
        oid::AT_STATE,
        oid::AT_COUNTRY,
    ];
    issuer_subject
        .iter_rdn()
        .filter(|rdn| rdn.iter().all(|atv| copied.contains(&atv.oid)))
        .cloned()
        .collect()
}

impl BuilderProfile for LscProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = lsc_subject_extensions(&self.device, spk.algorithm.oid)?.to_vec();
        let [ski, aki] = key_identifiers(spk, &self.authority_key_id)?;
        extensions.extend([ski, aki]);
        Ok(extensions)
    }
}

/// The LSC profile's extensions that describe the subject rather than the issuer:
/// BasicConstraints CA:FALSE, KeyUsage, ExtendedKeyUsage and SubjectAltName URI. The one
/// definition, shared by the LSC CAPF signs and the endpoint CSR an external CA signs.
pub(crate) fn lsc_subject_extensions(
    device: &DeviceName,
    key_algorithm: const_oid::ObjectIdentifier,
) -> x509_cert::builder::Result<[Extension; 4]> {
    // The key was validated when the PhonePublicKey was parsed; only its type matters.
    let key_usage = if key_algorithm == oid::EC_PUBLIC_KEY {
        KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyAgreement)
    } else {
        KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment)
    };
    let uri = Ia5String::new(device.as_str())?;
    Ok([
        basic_constraints(false, None)?,
        ext(true, &key_usage)?,
        ext(
            false,
            &ExtendedKeyUsage(vec![
                oid::KP_SERVER_AUTH,
                oid::KP_CLIENT_AUTH,
                oid::KP_IPSEC_END_SYSTEM,
            ]),
        )?,
        ext(
            false,
            &SubjectAltName(vec![GeneralName::UniformResourceIdentifier(uri)]),
        )?,
    ])
}

/// The subject of an LSC request: CN = the device name alone (the CA adds what its policy
/// adds).
pub(crate) fn device_subject(device: &DeviceName) -> Result<Name, Error> {
    name_from_rdns(vec![utf8_rdn(
        "CN",
        oid::AT_COMMON_NAME,
        device.as_str(),
        64,
    )?])
}

/// The CA profile (the CAPF certificate, or an intermediate CA): BasicConstraints CA:TRUE
/// with the path length (critical); KeyUsage digitalSignature + keyCertSign + cRLSign
/// (critical); SubjectKeyIdentifier; AuthorityKeyIdentifier.
#[derive(Clone, Debug)]
pub struct CaProfile {
    subject: Name,
    issuer: Option<Name>,
    path_len: Option<u8>,
    authority_key_id: Option<Vec<u8>>,
}

impl BuilderProfile for CaProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let issuer_key_id = key_identifier(issuer_spk);
        let aki = self.authority_key_id.as_deref().unwrap_or(&issuer_key_id);
        let [ski, aki] = key_identifiers(spk, aki)?;
        Ok(vec![
            basic_constraints(true, self.path_len)?,
            ext(true, &ca_key_usage())?,
            ski,
            aki,
        ])
    }
}

/// What an administrator chooses for an LSC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LscParams {
    /// The device name (validated at issuance, see [`DeviceName`]; [`Issuer::issue_lsc_for`]
    /// takes one already validated).
    pub device_name: String,
    /// How long the LSC is valid (default 1825 days, UCM's default of five years).
    pub validity: ValidityDays,
}

impl LscParams {
    /// The device name, validated.
    fn device(&self) -> Result<DeviceName, Error> {
        DeviceName::new(&self.device_name).map_err(Error::InvalidDeviceName)
    }
}

/// Subject and extensions of a CA certificate: the CAPF certificate or, for tests and
/// third-party setups, a root or intermediate CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificateParams {
    /// Subject CN (for the CAPF certificate `CAPF-` + 8 hex digits, see
    /// [`CaCertificateParams::capf`]).
    pub common_name: String,
    /// Subject O (omitted when empty).
    pub organization: String,
    /// Subject OU (omitted when empty).
    pub organizational_unit: String,
    /// Subject L (omitted when empty).
    pub locality: String,
    /// Subject ST (omitted when empty).
    pub state: String,
    /// Subject C: two letters (omitted when empty).
    pub country: String,
    /// BasicConstraints pathLenConstraint: `Some(0)` for the CAPF certificate, which signs
    /// only end-entity LSCs; `None` (unlimited) for a root above an intermediate.
    pub path_len: Option<u8>,
    /// Validity.
    pub validity: ValidityDays,
}

impl Default for CaCertificateParams {
    fn default() -> Self {
        Self::capf(0)
    }
}

/// The reserved CN form of a CAPF certificate: `CAPF-` followed by 8 hex digits.
pub fn is_capf_common_name(cn: &str) -> bool {
    cn.len() == 13
        && cn.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("CAPF-"))
        && cn.as_bytes()[5..].iter().all(u8::is_ascii_hexdigit)
}

impl CaCertificateParams {
    /// A CAPF certificate: CN `CAPF-` + `capf_id` as 8 lower-case hex digits, pathlen 0,
    /// 1825 days, empty O/OU/L/ST/C.
    pub fn capf(capf_id: u32) -> Self {
        CaCertificateParams {
            common_name: format!("CAPF-{capf_id:08x}"),
            organization: String::new(),
            organizational_unit: String::new(),
            locality: String::new(),
            state: String::new(),
            country: String::new(),
            path_len: Some(0),
            validity: ValidityDays::default(),
        }
    }

    /// The subject name (C, ST, L, O, OU, CN; empty attributes omitted).
    ///
    /// # Errors
    /// [`Error::InvalidNameAttribute`] for an empty CN, a country that is not two letters,
    /// or an over-long or control-character attribute.
    pub fn subject(&self) -> Result<Name, Error> {
        let mut rdns = Vec::new();
        if !self.country.is_empty() {
            let bad = |reason| Error::InvalidNameAttribute {
                attribute: "C",
                reason,
            };
            if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad("must be two letters (ISO 3166)"));
            }
            let c = PrintableStringRef::new(&self.country).map_err(|_| bad("not printable"))?;
            rdns.push(rdn(
                oid::AT_COUNTRY,
                Any::encode_from(&c).map_err(|_| bad("not encodable"))?,
            )?);
        }
        // Upper bounds from RFC 5280 appendix A.1.
        for (attribute, oid, value, max) in [
            ("ST", oid::AT_STATE, &self.state, 128),
            ("L", oid::AT_LOCALITY, &self.locality, 128),
            ("O", oid::AT_ORGANIZATION, &self.organization, 64),
            (
                "OU",
                oid::AT_ORGANIZATIONAL_UNIT,
                &self.organizational_unit,
                64,
            ),
        ] {
            if !value.is_empty() {
                rdns.push(utf8_rdn(attribute, oid, value, max)?);
            }
        }
        if self.common_name.is_empty() {
            return Err(Error::InvalidNameAttribute {
                attribute: "CN",
                reason: "is empty",
            });
        }
        rdns.push(utf8_rdn("CN", oid::AT_COMMON_NAME, &self.common_name, 64)?);
        name_from_rdns(rdns)
    }

    /// A self-signed CA certificate for `key` (the CAPF certificate when made with
    /// [`CaCertificateParams::capf`]), valid from `now`.
    ///
    /// # Errors
    /// A name error, [`Error::IssuerKeyNotAllowed`] for a key that may not sign
    /// certificates, or a signing error.
    pub fn self_signed(
        &self,
        key: &dyn LscSigner,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<Certificate, Error> {
        check_issuer_spec(KeySpec::of_spki(key.public_key().owned_to_ref())?)?;
        let profile = CaProfile {
            subject: self.subject()?,
            issuer: None,
            path_len: self.path_len,
            authority_key_id: None,
        };
        build_and_sign(
            profile,
            serial_from_bytes(serials.next_serial())?,
            validity(now, self.validity)?,
            key.public_key().clone(),
            key,
        )
    }

    /// A CA certificate for `subject_key`, signed by `issuer` (an intermediate CA).
    ///
    /// # Errors
    /// As [`CaCertificateParams::self_signed`].
    pub fn issue(
        &self,
        subject_key: &SubjectPublicKeyInfoOwned,
        issuer: &Issuer,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<Certificate, Error> {
        check_issuer_spec(KeySpec::of_spki(subject_key.owned_to_ref())?)?;
        let profile = CaProfile {
            subject: self.subject()?,
            issuer: Some(issuer.certificate.tbs_certificate().subject().clone()),
            path_len: self.path_len,
            authority_key_id: Some(issuer.authority_key_id.clone()),
        };
        build_and_sign(
            profile,
            serial_from_bytes(serials.next_serial())?,
            validity(now, self.validity)?,
            subject_key.clone(),
            issuer.signer.as_ref(),
        )
    }
}

fn builder<P: BuilderProfile>(
    profile: P,
    serial: SerialNumber,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    signer: &dyn LscSigner,
) -> Result<(CertificateBuilder<P>, Vec<u8>), Error> {
    let mut builder = CertificateBuilder::new(profile, serial, validity, spki)?;
    let tbs = builder.finalize(&BuilderSigner(signer))?;
    Ok((builder, tbs))
}

fn build_and_sign<P: BuilderProfile>(
    profile: P,
    serial: SerialNumber,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    signer: &dyn LscSigner,
) -> Result<Certificate, Error> {
    let (builder, tbs) = builder(profile, serial, validity, spki, signer)?;
    let signature = signer.sign(&tbs)?;
    let signature = BitString::from_bytes(&signature).map_err(|source| Error::Der {
        what: "signature",
        source,
    })?;
    Ok(builder.assemble(signature, &BuilderSigner(signer))?)
}

/// A certificate and the key that signs with it: the CAPF, or a CA it is subordinate to.
pub struct Issuer {
    certificate: Certificate,
    signer: Box<dyn LscSigner + Send + Sync>,
    subject_template: Vec<RelativeDistinguishedName>,
    authority_key_id: Vec<u8>,
}

impl core::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Issuer")
            .field(
                "subject",
                &self.certificate.tbs_certificate().subject().to_string(),
            )
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Pairs the issuing certificate with its key.
    ///
    /// # Errors
    /// [`Error::IssuerKeyMismatch`] when the key is not the certificate's,
    /// [`Error::IssuerNotCa`] when the certificate is not a CA (BasicConstraints CA:TRUE),
    /// [`Error::IssuerKeyNotAllowed`] for keys other than RSA 2048/3072/4096, P-256, P-384.
    pub fn new(
        certificate: Certificate,
        signer: Box<dyn LscSigner + Send + Sync>,
    ) -> Result<Self, Error> {
        if signer.public_key() != certificate.tbs_certificate().subject_public_key_info() {
            return Err(Error::IssuerKeyMismatch);
        }
        check_issuer_spec(KeySpec::of_spki(signer.public_key().owned_to_ref())?)?;
        match cert_info::extension::<BasicConstraints>(&certificate)? {
            Some(bc) if bc.ca => {}
            _ => return Err(Error::IssuerNotCa),
        }
        let subject_template = subject_template(certificate.tbs_certificate().subject());
        let authority_key_id = cert_info::subject_key_id(&certificate);
        Ok(Issuer {
            certificate,
            signer,
            subject_template,
            authority_key_id,
        })
    }

    /// An issuer from PEM text holding its `CERTIFICATE` and its PKCS#8 `PRIVATE KEY`, in
    /// any order (one bundle file, or two files' contents concatenated). With a chain, the
    /// first certificate is the issuer's.
    ///
    /// # Errors
    /// [`Error::MissingPemBlock`] when either is absent, else as [`Issuer::new`] and
    /// [`CertificateAndKey::from_pem`].
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        // One loader for every certificate-with-key input (crate::bundle).
        let CertificateAndKey { certificate, key } = CertificateAndKey::from_pem(pem)?;
        let key = key.ok_or(Error::MissingPemBlock {
            label: "PRIVATE KEY",
        })?;
        Issuer::new(certificate, Box::new(key))
    }

    /// The issuing certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The signing key.
    pub fn signer(&self) -> &(dyn LscSigner + Send + Sync) {
        self.signer.as_ref()
    }

    fn lsc_builder(
        &self,
        key: &PhonePublicKey,
        device: &DeviceName,
        days: ValidityDays,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<(CertificateBuilder<LscProfile>, Vec<u8>), Error> {
        let profile = LscProfile::from_parts(
            &self.subject_template,
            self.certificate.tbs_certificate().subject().clone(),
            device,
            self.authority_key_id.clone(),
        )?;
        builder(
            profile,
            serial_from_bytes(serials.next_serial())?,
            validity(now, days)?,
            key.spki().clone(),
            self.signer.as_ref(),
        )
    }

    /// The DER TBSCertificate of an LSC, unsigned: what [`Issuer::issue_lsc`] signs. Exposed
    /// for external (asynchronous) signing and for measuring issuance overhead.
    ///
    /// # Errors
    /// As [`Issuer::issue_lsc`], except signing errors.
    pub fn lsc_tbs_der(
        &self,
        key: &PhonePublicKey,
        params: &LscParams,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<Vec<u8>, Error> {
        let device = params.device()?;
        Ok(self
            .lsc_builder(key, &device, params.validity, now, serials)?
            .1)
    }

    /// Issues an LSC for the phone's `key`, valid from `now` for `params.validity`.
    ///
    /// # Errors
    /// [`Error::InvalidDeviceName`], a time out of the certificate range, or a signing error.
    pub fn issue_lsc(
        &self,
        key: &PhonePublicKey,
        params: &LscParams,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<Certificate, Error> {
        let device = params.device()?;
        self.issue_lsc_for(key, &device, params.validity, now, serials)
    }

    /// Issues an LSC for the phone's `key` to `device`, a name already validated (by the
    /// session that received it), valid from `now` for `validity`.
    ///
    /// # Errors
    /// A time out of the certificate range, or a signing error.
    pub fn issue_lsc_for(
        &self,
        key: &PhonePublicKey,
        device: &DeviceName,
        validity: ValidityDays,
        now: SystemTime,
        serials: &mut dyn SerialSource,
    ) -> Result<Certificate, Error> {
        let (builder, tbs) = self.lsc_builder(key, device, validity, now, serials)?;
        let signature = self.signer.sign(&tbs)?;
        let signature = BitString::from_bytes(&signature).map_err(|source| Error::Der {
            what: "signature",
            source,
        })?;
        Ok(builder.assemble(signature, &BuilderSigner(self.signer.as_ref()))?)
    }
}

/// The `-----BEGIN ...-----` to `-----END ...-----` blocks of `text`.
pub(crate) fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(end) = after.find("-----END ") else {
            break;
        };
        let tail = &after[end + 9..];
        let close = tail.find("-----").map_or(tail.len(), |i| i + 5);
        let len = end + 9 + close;
        blocks.push(&after[..len]);
        rest = &after[len..];
    }
    blocks
}
