//! Values that travel between a session and its application: key requests, decisions,
//! certificates, the phone's proof of identity, deadlines.

use core::fmt;
use std::time::Duration;

use capf_wire::{
    AuthResponse, CertificateType, CertificateValue, Curve, DeviceName, KeyGenRequest, KeyRequest,
    KeyType, Reason, Sha2SignedData, SudiData,
};

/// How long a session waits for its peer (spec section 1 project rule). Waits on the application
/// (device lookup, issuance, key generation on the phone) have no session deadline: the driver
/// owns those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Between messages: 30 s by default.
    pub message: Duration,
    /// From KEY_GEN_REQUEST (and from each REQUEST_IN_PROGRESS) to the phone's next message:
    /// 60 minutes by default, since old phones generate keys at low priority.
    pub key_generation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            message: Duration::from_secs(30),
            key_generation: Duration::from_secs(60 * 60),
        }
    }
}

/// Reads a KEY_GEN_REQUEST as a phone does: a missing KEY_TYPE means RSA (spec 5.4 project
/// rule; stock capfc fails there instead).
pub(crate) fn read_key_request(m: &KeyGenRequest<'_>) -> Result<KeyRequest, crate::Error> {
    let missing = |key_type, missing| crate::Error::IncompleteKeyGenRequest { key_type, missing };
    match m.key_type() {
        None => m
            .key_size()
            .map(KeyRequest::RsaKeySizeOnly)
            .ok_or(missing(KeyType::RSA, capf_wire::Tag::KEY_SIZE)),
        Some(KeyType::RSA) => m
            .key_size()
            .map(KeyRequest::Rsa)
            .ok_or(missing(KeyType::RSA, capf_wire::Tag::KEY_SIZE)),
        Some(KeyType::EC) => m
            .curve()
            .map(KeyRequest::Ec)
            .ok_or(missing(KeyType::EC, capf_wire::Tag::CURVE)),
        Some(key_type) => Err(crate::Error::UnknownKeyType { key_type }),
    }
}

/// Spec 8.11, owned here alone: only a client of VERSION 3 can be asked for an EC key; below
/// (Jabber sends 2) it understands RSA as KEY_SIZE only.
pub(crate) fn key_request_for_version(
    key: KeyRequest,
    version: u8,
) -> Result<KeyRequest, crate::Error> {
    match key {
        _ if version >= 3 => Ok(key),
        KeyRequest::Rsa(bits) => Ok(KeyRequest::RsaKeySizeOnly(bits)),
        KeyRequest::Ec(_) => Err(crate::Error::EcKeyNeedsVersion3 { version }),
        KeyRequest::RsaKeySizeOnly(_) => Ok(key),
    }
}

/// What the server application decided after [`crate::ServerEvent::Authenticate`]: the device
/// lookup and authentication of spec section 7 (steps 4-6), in one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The device name is not known: END_SESSION 9 (spec 7 step 4; phones depend on getting 9).
    UnknownDevice,
    /// The proof does not match the device's authentication mode: END_SESSION 7 (step 5).
    AuthenticationFailed,
    /// Authenticated, nothing scheduled: END_SESSION 0 (spec 8.6).
    NoPendingOperation,
    /// Install/Upgrade: KEY_GEN_REQUEST for this key (spec 8.2, 8.3).
    Install(KeyRequest),
    /// Troubleshoot: FETCH_CERT_REQUEST (spec 8.4).
    Fetch,
    /// Delete: DELETE_CERT_REQUEST (spec 8.5).
    Delete,
    /// Refuse with END_SESSION and this REASON (for example 7 when the key-generation queue is
    /// full, or UCM's "certificate already issued").
    Refuse(Reason),
    /// The device's certificate is still with the CA: RETRY_LATER with this RETRY_DELAY
    /// (1-604800 seconds), then END_SESSION 1; the session ends as [`crate::Outcome::Ended`]
    /// with REASON 1 (spec 16.y, project extension).
    RetryLater {
        /// Seconds until the phone should come back.
        delay_secs: u32,
    },
}

/// What a SIGN_CERT_RESPONSE says, read by the one rule of spec 16: REASON 1 comes with
/// CSR_SIGNATURE, any other REASON alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CsrAnswer<'m> {
    /// The phone signed.
    Signed(&'m [u8]),
    /// The phone could not sign.
    Failed(Reason),
}

/// Reads a SIGN_CERT_RESPONSE's REASON and CSR_SIGNATURE (spec 16, semantic layer).
pub(crate) fn csr_answer(
    reason: Reason,
    signature: Option<&[u8]>,
) -> Result<CsrAnswer<'_>, crate::Error> {
    match (reason, signature) {
        (Reason::UPDATE_CERTIFICATE, Some(signature)) => Ok(CsrAnswer::Signed(signature)),
        (Reason::UPDATE_CERTIFICATE, None) => Err(crate::Error::MissingCsrSignature),
        (reason, Some(_)) => Err(crate::Error::UnexpectedCsrSignature { reason }),
        (reason, None) => Ok(CsrAnswer::Failed(reason)),
    }
}

/// A certificate as it travels in a CERTIFICATE element: its type byte and its DER.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    /// 1 = LSC, 2 = MIC (the inner type byte, spec 4.3; not reliable for authentication).
    pub certificate_type: CertificateType,
    /// The DER X.509 certificate.
    pub der: Vec<u8>,
}

impl Certificate {
    /// An LSC.
    pub fn lsc(der: impl Into<Vec<u8>>) -> Self {
        Certificate {
            certificate_type: CertificateType::LSC,
            der: der.into(),
        }
    }

    pub(crate) fn from_value(v: &CertificateValue<'_>) -> Self {
        Certificate {
            certificate_type: v.certificate_type(),
            der: v.der().to_vec(),
        }
    }

    pub(crate) fn to_value(&self) -> Result<CertificateValue<'_>, capf_wire::Error> {
        CertificateValue::new(self.certificate_type, self.der.as_slice())
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("certificate_type", &self.certificate_type)
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// Who the phone says it is and its proof, from AUTH_RESPONSE (spec 8.1, 8.9), owned so the
/// application can look the device up and verify the proof at its own pace.
///
/// The session checks nothing here beyond the codec and VERSION: the device lookup, the
/// authentication string (compare in constant time) and the signatures (spec 6) are the
/// application's; capf-trust's `DeviceProof::from_auth_response` reads the proof from
/// [`Authentication::response`]. `Debug` does not show the authentication string.
#[derive(Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The session id the server assigned: the challenge in the SUDI signatures (spec 6.4).
    pub session_id: u32,
    /// DEVICE_NAME (SEP + MAC for phones, CSF... for Jabber), validated once here: the value
    /// the application looks up, records and issues to.
    pub device_name: DeviceName,
    /// The VERSION the phone sent (1-3; below 3 it can only be asked for RSA, KEY_SIZE only).
    pub version: u8,
    response: AuthResponse<'static>,
}

impl Authentication {
    /// The phone's AUTH_RESPONSE in the session `session_id`, whose VERSION the session
    /// accepted as `version`.
    ///
    /// # Errors
    /// [`capf_wire::Error::InvalidDeviceName`] for a DEVICE_NAME no device can have.
    pub(crate) fn from_message(
        session_id: u32,
        version: u8,
        m: &AuthResponse<'_>,
    ) -> Result<Self, capf_wire::Error> {
        Ok(Authentication {
            session_id,
            device_name: DeviceName::new(m.device_name())?,
            version,
            response: m.clone().into_owned(),
        })
    }

    /// The AUTH_RESPONSE as received: every element of the proof.
    pub fn response(&self) -> &AuthResponse<'static> {
        &self.response
    }

    /// REASON (phones send 1; meaning unknown, spec 5.1).
    pub fn reason(&self) -> Option<Reason> {
        self.response.reason()
    }

    /// PASSWORD: the authentication string (empty is what capfc sends for none).
    pub fn password(&self) -> Option<&str> {
        self.response.password()
    }

    /// CERTIFICATE: the LSC or MIC the phone authenticates with.
    pub fn certificate(&self) -> Option<&CertificateValue<'static>> {
        self.response.certificate()
    }

    /// SIGNED_DATA: SHA-1 signature over [`Authentication::signed_content`] (spec 6.2).
    pub fn signed_data(&self) -> Option<&[u8]> {
        self.response.signed_data()
    }

    /// SHA2_SIGNED_DATA: hash id and signature over the same content (spec 6.3).
    pub fn sha2_signed_data(&self) -> Option<&Sha2SignedData<'static>> {
        self.response.sha2_signed_data()
    }

    /// SUDI_DATA: the SUDI certificate and its two signatures over
    /// [`Authentication::sudi_signed_content`] (spec 6.4).
    pub fn sudi_data(&self) -> Option<&SudiData<'static>> {
        self.response.sudi_data()
    }

    /// Whether this client can be asked for an EC key (spec 8.11: VERSION 3 only): what a key
    /// policy needs to choose the key for [`crate::Decision::Install`].
    pub fn can_request_ec(&self) -> bool {
        key_request_for_version(KeyRequest::Ec(Curve::SECP256R1), self.version).is_ok()
    }

    /// What SIGNED_DATA and SHA2_SIGNED_DATA sign (spec 6.1): capf-wire's
    /// [`capf_wire::auth_signed_content`] over the device name and CERTIFICATE. `None` without a
    /// certificate.
    pub fn signed_content(&self) -> Option<Vec<u8>> {
        let cert = self.certificate()?;
        Some(capf_wire::auth_signed_content(
            &self.device_name,
            cert.der(),
        ))
    }

    /// What the SUDI signatures sign (spec 6.4): capf-wire's [`capf_wire::sudi_signed_content`]
    /// over the id the server assigned (never the phone's message's) and the SUDI certificate.
    /// `None` without SUDI_DATA.
    pub fn sudi_signed_content(&self) -> Option<Vec<u8>> {
        let sudi = self.sudi_data()?;
        Some(capf_wire::sudi_signed_content(
            self.session_id,
            sudi.certificate().data,
        ))
    }
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The authentication string is a secret: log only whether one was sent.
        let password = self.password().map(|p| {
            if p.is_empty() {
                "<empty>"
            } else {
                "<redacted>"
            }
        });
        f.debug_struct("Authentication")
            .field("session_id", &self.session_id)
            .field("device_name", &self.device_name)
            .field("version", &self.version)
            .field("reason", &self.reason())
            .field("password", &password)
            .field(
                "certificate",
                &self
                    .certificate()
                    .map(|c| (c.certificate_type(), c.der().len())),
            )
            .field("signed_data_len", &self.signed_data().map(<[u8]>::len))
            .field(
                "sha2_signed_data",
                &self.sha2_signed_data().map(Sha2SignedData::hash_algorithm),
            )
            .field("sudi_data", &self.sudi_data().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_type_reads_as_rsa_key_size_only() {
        let m = KeyGenRequest::rsa_key_size_only(2048);
        assert_eq!(
            read_key_request(&m).unwrap(),
            KeyRequest::RsaKeySizeOnly(2048)
        );
        assert_eq!(KeyRequest::RsaKeySizeOnly(2048).key_type(), KeyType::RSA);
    }

    #[test]
    fn key_requests_round_trip_through_their_messages() {
        for k in [
            KeyRequest::Rsa(2048),
            KeyRequest::Ec(Curve::SECP384R1),
            KeyRequest::RsaKeySizeOnly(1024),
        ] {
            assert_eq!(read_key_request(&k.to_message()).unwrap(), k);
        }
    }

    #[test]
    fn signed_content_is_name_nul_der_and_sudi_content_is_little_endian_id() {
        let response = AuthResponse::new("SEP001A2B3C4D5E", 3)
            .unwrap()
            .with_password("123456")
            .unwrap()
            .with_certificate(CertificateValue::lsc(vec![0x30, 0x03, 1, 2, 3]).unwrap())
            .unwrap()
            .with_sudi_data(SudiData::new(&[0x30, 0x00], &[1], &[2]).unwrap())
            .unwrap();
        let auth = Authentication::from_message(0x0001_2345, 3, &response).unwrap();
        assert_eq!(
            auth.signed_content().unwrap(),
            b"SEP001A2B3C4D5E\0\x30\x03\x01\x02\x03"
        );
        assert_eq!(
            auth.sudi_signed_content().unwrap(),
            [0x45, 0x23, 0x01, 0x00, 0x30, 0x00]
        );
        let shown = format!("{auth:?}");
        assert!(!shown.contains("123456"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
