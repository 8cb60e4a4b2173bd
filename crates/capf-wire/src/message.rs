//! Typed messages (spec sections 3 and 8): decode from a [`Frame`], encode infallibly.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::codes::{AuthType, CertificateType, Command, Curve, KeyType, Reason, Tag};
use crate::error::Error;
use crate::frame::{Frame, HEADER_LEN, Header, MAX_BODY_LEN, Strictness};
use crate::tlv::{ELEMENT_HEADER_LEN, ElementOrder, RawElement, write_element_header};
use crate::value::{
    CertificateValue, CsrInfo, CsrSignature, FieldValue, RetryDelay, Sha2SignedData, SudiData,
    Value, check_len, check_string,
};

/// The order in which capfd writes elements (spec 2.2); messages the server sends use it. The
/// project extension's tags (spec 16) come last.
pub const SERVER_ORDER: &[Tag] = &[
    Tag::REASON,
    Tag::CERTIFICATE_TYPE,
    Tag::CERTIFICATE,
    Tag::VERSION,
    Tag::AUTH_TYPE,
    Tag::KEY_SIZE,
    Tag::KEY_TYPE,
    Tag::CURVE,
    Tag::REASON_INFO,
    Tag::RETRY_DELAY,
    Tag::CSR_INFO,
];

/// The order in which capfc writes elements (spec 2.2); messages the phone sends use it. The
/// project extension's tag (spec 16) comes last.
pub const PHONE_ORDER: &[Tag] = &[
    Tag::REASON,
    Tag::CERTIFICATE_TYPE,
    Tag::CERTIFICATE,
    Tag::SIGNED_DATA,
    Tag::VERSION,
    Tag::PASSWORD,
    Tag::DEVICE_NAME,
    Tag::SUDI_DATA,
    Tag::PUBLIC_KEY,
    Tag::SHA2_SIGNED_DATA,
    Tag::CSR_SIGNATURE,
];

/// Element order and the elements a typed message does not model (unknown tags in lenient mode,
/// known tags unexpected for the command), so that a decoded message re-encodes unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Layout<'a> {
    order: ElementOrder,
    extra: Vec<RawElement<'a>>,
}

impl Layout<'_> {
    fn into_owned(self) -> Layout<'static> {
        Layout {
            order: self.order,
            extra: self.extra.into_iter().map(RawElement::into_owned).collect(),
        }
    }

    fn write_extra(&self, tag: Tag, out: &mut Vec<u8>) {
        if let Some(e) = self.extra.iter().find(|e| e.tag == tag) {
            e.encode(out);
        }
    }

    fn extra_len(&self) -> usize {
        self.extra
            .iter()
            .map(|e| ELEMENT_HEADER_LEN + e.value.len())
            .sum()
    }
}

fn write_field<'a, T: FieldValue<'a>>(out: &mut Vec<u8>, tag: Tag, value: &T) {
    write_element_header(out, tag, value.encoded_len());
    value.encode(out);
}

fn field_len<'a, T: FieldValue<'a>>(value: &T) -> usize {
    ELEMENT_HEADER_LEN + value.encoded_len()
}

macro_rules! message {
    (
        $(#[$doc:meta])*
        $name:ident = $command:ident, $reference:ident;
        required { $($rfield:ident : $rty:ty = $rtag:ident),* $(,)? }
        optional { $($ofield:ident : $oty:ty = $otag:ident),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<'a> {
            $($rfield: $rty,)*
            $($ofield: Option<$oty>,)*
            layout: Layout<'a>,
        }

        impl<'a> $name<'a> {
            /// The command this message travels with.
            pub const COMMAND: Command = Command::$command;

            fn from_required($($rfield: $rty),*) -> Self {
                #[allow(unused_mut)]
                let mut layout = Layout::default();
                $(layout.order.insert(Tag::$rtag, $reference);)*
                $name { $($rfield,)* $($ofield: None,)* layout }
            }

            /// Decodes the body straight into a [`Payload`], so the large enum is built once, in place.
            #[allow(clippy::match_single_binding, unused_mut)]
            #[inline]
            fn decode_payload(frame: &Frame<'a>) -> Result<Payload<'a>, Error> {
                $(let mut $rfield: Option<$rty> = None;)*
                $(let mut $ofield: Option<$oty> = None;)*
                let mut layout = Layout::default();
                let mut elements = frame.elements();
                while let Some(el) = elements.step()? {
                    layout.order.push(el.tag);
                    match el.tag {
                        $(Tag::$rtag => $rfield = Some(FieldValue::decode(el, frame.strictness)?),)*
                        $(Tag::$otag => $ofield = Some(FieldValue::decode(el, frame.strictness)?),)*
                        _ => {
                            if el.tag.is_known() {
                                // Known but unexpected here: ignored (spec 2.2), yet still well-formed.
                                Value::decode_slot(el, frame.strictness)?;
                            }
                            layout.extra.push(el.into_raw());
                        }
                    }
                }
                $(let Some($rfield) = $rfield else {
                    return Err(Error::MissingElement {
                        command: Command::$command,
                        tag: Tag::$rtag,
                    });
                };)*
                Ok(Payload::$name($name {
                    $($rfield,)*
                    $($ofield,)*
                    layout,
                }))
            }

            #[allow(clippy::match_single_binding)]
            fn encode_body(&self, out: &mut Vec<u8>) {
                for &tag in self.layout.order.as_slice() {
                    match tag {
                        $(Tag::$rtag => write_field(out, tag, &self.$rfield),)*
                        $(Tag::$otag => {
                            if let Some(v) = &self.$ofield {
                                write_field(out, tag, v);
                            }
                        })*
                        _ => self.layout.write_extra(tag, out),
                    }
                }
            }

            /// Length of the encoded body.
            pub fn body_len(&self) -> usize {
                0 $(+ field_len(&self.$rfield))*
                  $(+ self.$ofield.as_ref().map_or(0, field_len))*
                  + self.layout.extra_len()
            }

            /// Records that the optional element `tag` is now present, and checks the size cap.
            #[allow(dead_code)]
            fn added(mut self, tag: Tag, len: usize) -> Result<Self, Error> {
                self.layout.order.insert(tag, $reference);
                if self.body_len() > MAX_BODY_LEN {
                    return Err(Error::ValueTooLarge { tag, len });
                }
                Ok(self)
            }

            /// The tags in the order they are (or were, for a decoded message) on the wire.
            pub fn element_order(&self) -> &[Tag] {
                self.layout.order.as_slice()
            }

            /// Elements this message type does not model, kept so they re-encode: unknown tags
            /// (lenient decoding) and known tags unexpected for the command (ignored, spec 2.2).
            pub fn extra_elements(&self) -> &[RawElement<'a>] {
                &self.layout.extra
            }

            /// The same message owning its bytes.
            pub fn into_owned(self) -> $name<'static> {
                $name {
                    $($rfield: FieldValue::into_static(self.$rfield),)*
                    $($ofield: self.$ofield.map(FieldValue::into_static),)*
                    layout: self.layout.into_owned(),
                }
            }
        }

        impl<'a> From<$name<'a>> for Payload<'a> {
            fn from(m: $name<'a>) -> Payload<'a> {
                Payload::$name(m)
            }
        }
    };
}

message! {
    /// AUTH_REQUEST (1), server -> phone: the first message, fixing the session id (spec 8.1).
    AuthRequest = AUTH_REQUEST, SERVER_ORDER;
    required { version: u8 = VERSION }
    optional { auth_type: AuthType = AUTH_TYPE }
}

impl AuthRequest<'static> {
    /// VERSION only, as UCM sends it to Jabber.
    pub fn new(version: u8) -> Self {
        Self::from_required(version)
    }

    /// VERSION and AUTH_TYPE, as capfd sends it (`AuthRequest::new(3).with_auth_type(AuthType::NONE)`).
    pub fn with_auth_type(mut self, auth_type: AuthType) -> Self {
        self.auth_type = Some(auth_type);
        self.layout.order.insert(Tag::AUTH_TYPE, SERVER_ORDER);
        self
    }
}

impl AuthRequest<'_> {
    /// The protocol version the server offers.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// AUTH_TYPE, if sent (phones ignore it: spec 5.2).
    pub fn auth_type(&self) -> Option<AuthType> {
        self.auth_type
    }
}

message! {
    /// AUTH_RESPONSE (2), phone -> server: who the phone is, and its proof (spec 8.1, 8.9).
    AuthResponse = AUTH_RESPONSE, PHONE_ORDER;
    required { device_name: Cow<'a, str> = DEVICE_NAME }
    optional {
        reason: Reason = REASON,
        version: u8 = VERSION,
        password: Cow<'a, str> = PASSWORD,
        certificate: CertificateValue<'a> = CERTIFICATE,
        signed_data: Cow<'a, [u8]> = SIGNED_DATA,
        sha2_signed_data: Sha2SignedData<'a> = SHA2_SIGNED_DATA,
        sudi_data: SudiData<'a> = SUDI_DATA,
    }
}

impl<'a> AuthResponse<'a> {
    /// REASON 1, VERSION and DEVICE_NAME: the part every phone sends. The name must be 1-64 bytes
    /// without NUL (spec 4.2).
    pub fn new(device_name: impl Into<Cow<'a, str>>, version: u8) -> Result<Self, Error> {
        let device_name = device_name.into();
        check_string(Tag::DEVICE_NAME, &device_name)?;
        let mut m = Self::from_required(device_name);
        m.reason = Some(Reason::UPDATE_CERTIFICATE);
        m.version = Some(version);
        m.layout.order.insert(Tag::REASON, PHONE_ORDER);
        m.layout.order.insert(Tag::VERSION, PHONE_ORDER);
        Ok(m)
    }

    /// Adds the authentication string (at most 64 bytes; empty is what capfc sends for none).
    pub fn with_password(mut self, password: impl Into<Cow<'a, str>>) -> Result<Self, Error> {
        let password = password.into();
        check_string(Tag::PASSWORD, &password)?;
        let len = password.len() + 1;
        self.password = Some(password);
        self.added(Tag::PASSWORD, len)
    }

    /// Adds the certificate the phone authenticates with (its LSC or MIC).
    pub fn with_certificate(mut self, certificate: CertificateValue<'a>) -> Result<Self, Error> {
        let len = certificate.encoded_len();
        self.certificate = Some(certificate);
        self.added(Tag::CERTIFICATE, len)
    }

    /// Adds SIGNED_DATA (SHA-1 signature, spec 6.2).
    pub fn with_signed_data(mut self, signature: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
        let signature = signature.into();
        check_len(Tag::SIGNED_DATA, signature.len())?;
        let len = signature.len();
        self.signed_data = Some(signature);
        self.added(Tag::SIGNED_DATA, len)
    }

    /// Adds SHA2_SIGNED_DATA (spec 6.3).
    pub fn with_sha2_signed_data(mut self, data: Sha2SignedData<'a>) -> Result<Self, Error> {
        let len = data.encoded_len();
        self.sha2_signed_data = Some(data);
        self.added(Tag::SHA2_SIGNED_DATA, len)
    }

    /// Adds SUDI_DATA (spec 6.4).
    pub fn with_sudi_data(mut self, data: SudiData<'a>) -> Result<Self, Error> {
        let len = data.encoded_len();
        self.sudi_data = Some(data);
        self.added(Tag::SUDI_DATA, len)
    }

    /// REASON (phones send 1; its meaning is unknown, spec 5.1).
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// VERSION, if sent (the session decides what is acceptable: spec 5.3).
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// DEVICE_NAME.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// PASSWORD (the authentication string), if sent.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// CERTIFICATE, if sent.
    pub fn certificate(&self) -> Option<&CertificateValue<'a>> {
        self.certificate.as_ref()
    }

    /// SIGNED_DATA, if sent.
    pub fn signed_data(&self) -> Option<&[u8]> {
        self.signed_data.as_deref()
    }

    /// SHA2_SIGNED_DATA, if sent.
    pub fn sha2_signed_data(&self) -> Option<&Sha2SignedData<'a>> {
        self.sha2_signed_data.as_ref()
    }

    /// SUDI_DATA, if sent.
    pub fn sudi_data(&self) -> Option<&SudiData<'a>> {
        self.sudi_data.as_ref()
    }
}

message! {
    /// KEY_GEN_REQUEST (3), server -> phone: generate a key pair (spec 8.2, 8.3, 5.4).
    KeyGenRequest = KEY_GEN_REQUEST, SERVER_ORDER;
    required {}
    optional { key_size: u16 = KEY_SIZE, key_type: KeyType = KEY_TYPE, curve: Curve = CURVE }
}

impl KeyGenRequest<'static> {
    /// An RSA key of `bits` bits: KEY_SIZE and KEY_TYPE, as capfd sends it.
    pub fn rsa(bits: u16) -> Self {
        let mut m = Self::from_required();
        m.key_size = Some(bits);
        m.key_type = Some(KeyType::RSA);
        m.layout.order.insert(Tag::KEY_SIZE, SERVER_ORDER);
        m.layout.order.insert(Tag::KEY_TYPE, SERVER_ORDER);
        m
    }

    /// KEY_SIZE only, as UCM asks Jabber-style (version 2) clients (spec 8.11).
    pub fn rsa_key_size_only(bits: u16) -> Self {
        let mut m = Self::from_required();
        m.key_size = Some(bits);
        m.layout.order.insert(Tag::KEY_SIZE, SERVER_ORDER);
        m
    }

    /// An EC key on `curve`: KEY_TYPE and CURVE.
    pub fn ec(curve: Curve) -> Self {
        let mut m = Self::from_required();
        m.key_type = Some(KeyType::EC);
        m.curve = Some(curve);
        m.layout.order.insert(Tag::KEY_TYPE, SERVER_ORDER);
        m.layout.order.insert(Tag::CURVE, SERVER_ORDER);
        m
    }
}

impl KeyGenRequest<'_> {
    /// KEY_SIZE, if sent.
    pub fn key_size(&self) -> Option<u16> {
        self.key_size
    }

    /// KEY_TYPE, if sent (a phone treats a missing one as RSA: spec 5.4).
    pub fn key_type(&self) -> Option<KeyType> {
        self.key_type
    }

    /// CURVE, if sent.
    pub fn curve(&self) -> Option<Curve> {
        self.curve
    }
}

message! {
    /// KEY_GEN_RESPONSE (4), phone -> server: the public key, or REASON alone on failure (spec 8.8).
    KeyGenResponse = KEY_GEN_RESPONSE, PHONE_ORDER;
    required {}
    optional { reason: Reason = REASON, public_key: Cow<'a, [u8]> = PUBLIC_KEY }
}

impl<'a> KeyGenResponse<'a> {
    /// The new public key, as DER SubjectPublicKeyInfo (not checked here: see capf-lsc).
    pub fn with_public_key(spki_der: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
        let spki = spki_der.into();
        let len = spki.len();
        check_len(Tag::PUBLIC_KEY, len)?;
        let mut m = Self::from_required();
        m.public_key = Some(spki);
        m.added(Tag::PUBLIC_KEY, len)
    }

    /// Key generation failed.
    pub fn failure(reason: Reason) -> Self {
        let mut m = Self::from_required();
        m.reason = Some(reason);
        m.layout.order.insert(Tag::REASON, PHONE_ORDER);
        m
    }

    /// REASON, if sent.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// PUBLIC_KEY (DER SubjectPublicKeyInfo), if sent.
    pub fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }
}

message! {
    /// STORE_CERT_REQUEST (9), server -> phone: the issued certificate (spec 8.2).
    StoreCertificateRequest = STORE_CERT_REQUEST, SERVER_ORDER;
    required { certificate: CertificateValue<'a> = CERTIFICATE }
    optional { certificate_type: CertificateType = CERTIFICATE_TYPE }
}

impl<'a> StoreCertificateRequest<'a> {
    /// CERTIFICATE_TYPE (the certificate's type) and CERTIFICATE, as capfd and UCM send them.
    pub fn new(certificate: CertificateValue<'a>) -> Result<Self, Error> {
        let ty = certificate.certificate_type();
        let mut m = Self::from_required(certificate);
        m.certificate_type = Some(ty);
        m.added(Tag::CERTIFICATE_TYPE, 1)
    }

    /// CERTIFICATE.
    pub fn certificate(&self) -> &CertificateValue<'a> {
        &self.certificate
    }

    /// CERTIFICATE_TYPE, if sent.
    pub fn certificate_type(&self) -> Option<CertificateType> {
        self.certificate_type
    }
}

macro_rules! reason_only {
    ($(#[$doc:meta])* $name:ident = $command:ident, $reference:ident) => {
        message! {
            $(#[$doc])*
            $name = $command, $reference;
            required { reason: Reason = REASON }
            optional {}
        }

        impl $name<'static> {
            /// The message with this REASON.
            pub fn new(reason: Reason) -> Self {
                Self::from_required(reason)
            }
        }

        impl $name<'_> {
            /// REASON.
            pub fn reason(&self) -> Reason {
                self.reason
            }
        }
    };
}

reason_only! {
    /// STORE_CERT_RESPONSE (10), phone -> server: REASON 1 stored, 7 could not store.
    StoreCertificateResponse = STORE_CERT_RESPONSE, PHONE_ORDER
}

reason_only! {
    /// DELETE_CERT_RESPONSE (14), phone -> server: REASON 1 deleted, 7 nothing deleted.
    DeleteCertificateResponse = DELETE_CERT_RESPONSE, PHONE_ORDER
}

message! {
    /// END_SESSION (15), server -> phone: the session is over (spec 5.1, 8.12).
    EndSession = END_SESSION, SERVER_ORDER;
    required { reason: Reason = REASON }
    optional { reason_info: Cow<'a, str> = REASON_INFO }
}

impl EndSession<'static> {
    /// END_SESSION with this REASON.
    pub fn new(reason: Reason) -> Self {
        Self::from_required(reason)
    }
}

impl<'a> EndSession<'a> {
    /// REASON.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// REASON_INFO text, if sent (never seen on the wire: spec 4.1).
    pub fn reason_info(&self) -> Option<&str> {
        self.reason_info.as_deref()
    }
}

message! {
    /// FETCH_CERT_RESPONSE (12), phone -> server: REASON 1 with the certificate, or REASON 7 (spec 8.4).
    FetchCertificateResponse = FETCH_CERT_RESPONSE, PHONE_ORDER;
    required { reason: Reason = REASON }
    optional { certificate: CertificateValue<'a> = CERTIFICATE }
}

impl<'a> FetchCertificateResponse<'a> {
    /// REASON 1 and the phone's certificate.
    pub fn found(certificate: CertificateValue<'a>) -> Result<Self, Error> {
        let len = certificate.encoded_len();
        let mut m = Self::from_required(Reason::UPDATE_CERTIFICATE);
        m.certificate = Some(certificate);
        m.added(Tag::CERTIFICATE, len)
    }

    /// Nothing to return (REASON 7 in the recordings).
    pub fn not_found(reason: Reason) -> Self {
        Self::from_required(reason)
    }

    /// REASON.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// CERTIFICATE, if sent.
    pub fn certificate(&self) -> Option<&CertificateValue<'a>> {
        self.certificate.as_ref()
    }
}

macro_rules! empty {
    ($(#[$doc:meta])* $name:ident = $command:ident, $reference:ident) => {
        message! {
            $(#[$doc])*
            $name = $command, $reference;
            required {}
            optional {}
        }

        impl $name<'static> {
            /// The message (an empty body).
            pub fn new() -> Self {
                Self::from_required()
            }
        }

        impl Default for $name<'static> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

empty! {
    /// REQUEST_IN_PROGRESS (17), phone -> server: key generation has started (spec 8.2).
    RequestInProgress = REQUEST_IN_PROGRESS, PHONE_ORDER
}

empty! {
    /// FETCH_CERT_REQUEST (11), server -> phone: send your certificate (Troubleshoot, spec 8.4).
    FetchCertificateRequest = FETCH_CERT_REQUEST, SERVER_ORDER
}

empty! {
    /// DELETE_CERT_REQUEST (13), server -> phone: delete your LSC (spec 8.5).
    DeleteCertificateRequest = DELETE_CERT_REQUEST, SERVER_ORDER
}

message! {
    /// RETRY_LATER (16), server -> phone: the certificate is not ready; come back after
    /// RETRY_DELAY seconds. END_SESSION 1 follows (project extension, spec 16).
    RetryLater = RETRY_LATER, SERVER_ORDER;
    required { retry_delay: RetryDelay = RETRY_DELAY }
    optional {}
}

impl RetryLater<'static> {
    /// RETRY_LATER with this delay.
    pub fn new(retry_delay: RetryDelay) -> Self {
        Self::from_required(retry_delay)
    }
}

impl RetryLater<'_> {
    /// RETRY_DELAY.
    pub fn retry_delay(&self) -> RetryDelay {
        self.retry_delay
    }
}

message! {
    /// SIGN_CERT_REQUEST (22), server -> phone: sign this CertificationRequestInfo with the key
    /// just generated (project extension, spec 16).
    SignCertRequest = SIGN_CERT_REQUEST, SERVER_ORDER;
    required { csr_info: CsrInfo<'a> = CSR_INFO }
    optional {}
}

impl<'a> SignCertRequest<'a> {
    /// SIGN_CERT_REQUEST carrying `csr_info` (whose limit keeps the message within the cap).
    pub fn new(csr_info: CsrInfo<'a>) -> Self {
        Self::from_required(csr_info)
    }

    /// CSR_INFO.
    pub fn csr_info(&self) -> &CsrInfo<'a> {
        &self.csr_info
    }
}

message! {
    /// SIGN_CERT_RESPONSE (23), phone -> server: REASON 1 with CSR_SIGNATURE, or another REASON
    /// alone when the phone could not sign (project extension, spec 16). Which combinations are
    /// acceptable is a semantic check (capf-session), not the codec's.
    SignCertResponse = SIGN_CERT_RESPONSE, PHONE_ORDER;
    required { reason: Reason = REASON }
    optional { csr_signature: CsrSignature<'a> = CSR_SIGNATURE }
}

impl<'a> SignCertResponse<'a> {
    /// REASON 1 and the signature over CSR_INFO.
    pub fn signed(signature: CsrSignature<'a>) -> Result<Self, Error> {
        let len = signature.encoded_len();
        let mut m = Self::from_required(Reason::UPDATE_CERTIFICATE);
        m.csr_signature = Some(signature);
        m.added(Tag::CSR_SIGNATURE, len)
    }

    /// The phone could not sign: REASON alone (any REASON but 1, which needs a signature).
    pub fn failure(reason: Reason) -> Self {
        Self::from_required(reason)
    }

    /// REASON.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// CSR_SIGNATURE, if sent.
    pub fn csr_signature(&self) -> Option<&CsrSignature<'a>> {
        self.csr_signature.as_ref()
    }
}

/// A message of a command that has no typed form: the named-only commands (5-8, 18-21),
/// and in lenient mode unknown command codes. Its elements are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage<'a> {
    command: Command,
    elements: Vec<RawElement<'a>>,
}

impl<'a> RawMessage<'a> {
    /// A message of `command` with these elements. Fails if a tag repeats or the body is too large.
    pub fn new(command: Command, elements: Vec<RawElement<'a>>) -> Result<Self, Error> {
        let mut seen = crate::tlv::TagSet::default();
        let mut len = 0;
        for e in &elements {
            if !seen.insert(e.tag) {
                return Err(Error::DuplicateTag {
                    offset: 0,
                    tag: e.tag,
                });
            }
            len += ELEMENT_HEADER_LEN + e.value.len();
            if len > MAX_BODY_LEN {
                return Err(Error::ValueTooLarge {
                    tag: e.tag,
                    len: e.value.len(),
                });
            }
        }
        Ok(RawMessage { command, elements })
    }

    fn decode_frame(frame: &Frame<'a>) -> Result<Self, Error> {
        let mut elements = Vec::new();
        let mut walk = frame.elements();
        while let Some(el) = walk.step()? {
            if el.tag.is_known() {
                Value::decode_slot(el, frame.strictness)?;
            }
            elements.push(el.into_raw());
        }
        Ok(RawMessage {
            command: frame.header.command,
            elements,
        })
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The elements, in order.
    pub fn elements(&self) -> &[RawElement<'a>] {
        &self.elements
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        for e in &self.elements {
            e.encode(out);
        }
    }

    /// The same message owning its bytes.
    pub fn into_owned(self) -> RawMessage<'static> {
        RawMessage {
            command: self.command,
            elements: self
                .elements
                .into_iter()
                .map(RawElement::into_owned)
                .collect(),
        }
    }
}

impl<'a> From<RawMessage<'a>> for Payload<'a> {
    fn from(m: RawMessage<'a>) -> Payload<'a> {
        Payload::Raw(m)
    }
}

/// The body of a message, typed by its command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload<'a> {
    /// AUTH_REQUEST.
    AuthRequest(AuthRequest<'a>),
    /// AUTH_RESPONSE.
    AuthResponse(AuthResponse<'a>),
    /// KEY_GEN_REQUEST.
    KeyGenRequest(KeyGenRequest<'a>),
    /// KEY_GEN_RESPONSE.
    KeyGenResponse(KeyGenResponse<'a>),
    /// STORE_CERT_REQUEST.
    StoreCertificateRequest(StoreCertificateRequest<'a>),
    /// STORE_CERT_RESPONSE.
    StoreCertificateResponse(StoreCertificateResponse<'a>),
    /// FETCH_CERT_REQUEST.
    FetchCertificateRequest(FetchCertificateRequest<'a>),
    /// FETCH_CERT_RESPONSE.
    FetchCertificateResponse(FetchCertificateResponse<'a>),
    /// DELETE_CERT_REQUEST.
    DeleteCertificateRequest(DeleteCertificateRequest<'a>),
    /// DELETE_CERT_RESPONSE.
    DeleteCertificateResponse(DeleteCertificateResponse<'a>),
    /// END_SESSION.
    EndSession(EndSession<'a>),
    /// REQUEST_IN_PROGRESS.
    RequestInProgress(RequestInProgress<'a>),
    /// RETRY_LATER (project extension, spec 16).
    RetryLater(RetryLater<'a>),
    /// SIGN_CERT_REQUEST (project extension, spec 16).
    SignCertRequest(SignCertRequest<'a>),
    /// SIGN_CERT_RESPONSE (project extension, spec 16).
    SignCertResponse(SignCertResponse<'a>),
    /// Any other command.
    Raw(RawMessage<'a>),
}

macro_rules! for_each_payload {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            Payload::AuthRequest($m) => $e,
            Payload::AuthResponse($m) => $e,
            Payload::KeyGenRequest($m) => $e,
            Payload::KeyGenResponse($m) => $e,
            Payload::StoreCertificateRequest($m) => $e,
            Payload::StoreCertificateResponse($m) => $e,
            Payload::FetchCertificateRequest($m) => $e,
            Payload::FetchCertificateResponse($m) => $e,
            Payload::DeleteCertificateRequest($m) => $e,
            Payload::DeleteCertificateResponse($m) => $e,
            Payload::EndSession($m) => $e,
            Payload::RequestInProgress($m) => $e,
            Payload::RetryLater($m) => $e,
            Payload::SignCertRequest($m) => $e,
            Payload::SignCertResponse($m) => $e,
            Payload::Raw($m) => $e,
        }
    };
}

macro_rules! map_payload {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            Payload::AuthRequest($m) => Payload::AuthRequest($e),
            Payload::AuthResponse($m) => Payload::AuthResponse($e),
            Payload::KeyGenRequest($m) => Payload::KeyGenRequest($e),
            Payload::KeyGenResponse($m) => Payload::KeyGenResponse($e),
            Payload::StoreCertificateRequest($m) => Payload::StoreCertificateRequest($e),
            Payload::StoreCertificateResponse($m) => Payload::StoreCertificateResponse($e),
            Payload::FetchCertificateRequest($m) => Payload::FetchCertificateRequest($e),
            Payload::FetchCertificateResponse($m) => Payload::FetchCertificateResponse($e),
            Payload::DeleteCertificateRequest($m) => Payload::DeleteCertificateRequest($e),
            Payload::DeleteCertificateResponse($m) => Payload::DeleteCertificateResponse($e),
            Payload::EndSession($m) => Payload::EndSession($e),
            Payload::RequestInProgress($m) => Payload::RequestInProgress($e),
            Payload::RetryLater($m) => Payload::RetryLater($e),
            Payload::SignCertRequest($m) => Payload::SignCertRequest($e),
            Payload::SignCertResponse($m) => Payload::SignCertResponse($e),
            Payload::Raw($m) => Payload::Raw($e),
        }
    };
}

impl<'a> Payload<'a> {
    /// The command this payload travels with.
    pub fn command(&self) -> Command {
        match self {
            Payload::Raw(m) => m.command,
            Payload::AuthRequest(_) => AuthRequest::COMMAND,
            Payload::AuthResponse(_) => AuthResponse::COMMAND,
            Payload::KeyGenRequest(_) => KeyGenRequest::COMMAND,
            Payload::KeyGenResponse(_) => KeyGenResponse::COMMAND,
            Payload::StoreCertificateRequest(_) => StoreCertificateRequest::COMMAND,
            Payload::StoreCertificateResponse(_) => StoreCertificateResponse::COMMAND,
            Payload::FetchCertificateRequest(_) => FetchCertificateRequest::COMMAND,
            Payload::FetchCertificateResponse(_) => FetchCertificateResponse::COMMAND,
            Payload::DeleteCertificateRequest(_) => DeleteCertificateRequest::COMMAND,
            Payload::DeleteCertificateResponse(_) => DeleteCertificateResponse::COMMAND,
            Payload::EndSession(_) => EndSession::COMMAND,
            Payload::RequestInProgress(_) => RequestInProgress::COMMAND,
            Payload::RetryLater(_) => RetryLater::COMMAND,
            Payload::SignCertRequest(_) => SignCertRequest::COMMAND,
            Payload::SignCertResponse(_) => SignCertResponse::COMMAND,
        }
    }

    /// Decodes the frame's body according to its command (element and value layers).
    #[inline]
    pub fn decode(frame: &Frame<'a>) -> Result<Payload<'a>, Error> {
        match frame.header.command {
            Command::AUTH_REQUEST => AuthRequest::decode_payload(frame),
            Command::AUTH_RESPONSE => AuthResponse::decode_payload(frame),
            Command::KEY_GEN_REQUEST => KeyGenRequest::decode_payload(frame),
            Command::KEY_GEN_RESPONSE => KeyGenResponse::decode_payload(frame),
            Command::STORE_CERT_REQUEST => StoreCertificateRequest::decode_payload(frame),
            Command::STORE_CERT_RESPONSE => StoreCertificateResponse::decode_payload(frame),
            Command::FETCH_CERT_REQUEST => FetchCertificateRequest::decode_payload(frame),
            Command::FETCH_CERT_RESPONSE => FetchCertificateResponse::decode_payload(frame),
            Command::DELETE_CERT_REQUEST => DeleteCertificateRequest::decode_payload(frame),
            Command::DELETE_CERT_RESPONSE => DeleteCertificateResponse::decode_payload(frame),
            Command::END_SESSION => EndSession::decode_payload(frame),
            Command::REQUEST_IN_PROGRESS => RequestInProgress::decode_payload(frame),
            Command::RETRY_LATER => RetryLater::decode_payload(frame),
            Command::SIGN_CERT_REQUEST => SignCertRequest::decode_payload(frame),
            Command::SIGN_CERT_RESPONSE => SignCertResponse::decode_payload(frame),
            _ => RawMessage::decode_frame(frame).map(Payload::Raw),
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        for_each_payload!(self, m => m.encode_body(out))
    }

    /// The same payload owning its bytes.
    pub fn into_owned(self) -> Payload<'static> {
        map_payload!(self, m => m.into_owned())
    }
}

/// One CAPF message: the session id and a typed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The session id (assigned by the server in AUTH_REQUEST, repeated in every message).
    pub session_id: u32,
    /// The command and its elements.
    pub payload: Payload<'a>,
}

impl<'a> Message<'a> {
    /// A message for `session_id`.
    pub fn new(session_id: u32, payload: impl Into<Payload<'a>>) -> Self {
        Message {
            session_id,
            payload: payload.into(),
        }
    }

    /// Decodes exactly one message from `bytes`, strictly.
    #[inline]
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, Error> {
        Self::decode_with(bytes, Strictness::Strict)
    }

    /// Decodes exactly one message from `bytes` with the given strictness.
    #[inline]
    pub fn decode_with(bytes: &'a [u8], strictness: Strictness) -> Result<Message<'a>, Error> {
        Self::from_frame(&Frame::parse(bytes, strictness)?)
    }

    /// Decodes a frame (from [`Frame::parse`] or the [`crate::Deframer`]).
    #[inline]
    pub fn from_frame(frame: &Frame<'a>) -> Result<Message<'a>, Error> {
        Ok(Message {
            session_id: frame.header.session_id,
            payload: Payload::decode(frame)?,
        })
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.payload.command()
    }

    /// Appends the whole message (header and body) to `out`; build it in one buffer and hand it to
    /// TLS in one write (spec section 1, rule T9).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        Header {
            command: self.command(),
            session_id: self.session_id,
            length: 0,
        }
        .encode(out);
        self.payload.encode_body(out);
        // Constructors and the decoder keep every body within MAX_BODY_LEN, so it fits u16.
        let len = (out.len() - start - HEADER_LEN) as u16;
        out[start + 6..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// The encoded message in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The same message owning its bytes.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            session_id: self.session_id,
            payload: self.payload.into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;
    use crate::value::{MAX_CSR_SIGNATURE_LEN, MAX_RETRY_DELAY_SECS};
    use alloc::vec;

    /// A message of `command` whose body is the given (tag, value) elements.
    fn raw(command: u8, elements: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (tag, value) in elements {
            RawElement::new(Tag(*tag), *value).encode(&mut body);
        }
        let mut m = vec![0x55, command, 0, 1, 0x23, 0x45];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    const NAME: (u8, &[u8]) = (13, b"SEP001A2B3C4D5E\0");

    #[test]
    fn rejects_a_nul_inside_a_string() {
        let m = raw(2, &[(13, b"SEP\0X\0")]);
        assert_eq!(
            Message::decode(&m).unwrap_err(),
            Error::EmbeddedNul {
                offset: 14,
                tag: Tag::DEVICE_NAME
            }
        );
    }

    #[test]
    fn rejects_strings_outside_their_length_limits() {
        let long = [b'1'; 65];
        let password = [&long[..], b"\0"].concat();
        let err = Message::decode(&raw(2, &[NAME, (11, &password)])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::StringLength {
                    len: 65,
                    max: 64,
                    ..
                }
            ),
            "{err}"
        );
        let err = Message::decode(&raw(2, &[(13, b"\0")])).unwrap_err();
        assert!(
            matches!(err, Error::StringLength { len: 0, min: 1, .. }),
            "{err}"
        );
        let err = Message::decode(&raw(2, &[(13, b"\xff\xfe\0")])).unwrap_err();
        assert!(matches!(err, Error::InvalidUtf8 { .. }), "{err}");
    }

    #[test]
    fn rejects_bad_nested_lengths() {
        // SHA2_SIGNED_DATA claims 4 signature bytes, has 3.
        let err = Message::decode(&raw(2, &[NAME, (20, &[3, 0, 4, 1, 2, 3])])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NestedLength {
                    declared: 4,
                    available: 3,
                    ..
                }
            ),
            "{err}"
        );
        // ... or has one too many.
        let err = Message::decode(&raw(2, &[NAME, (20, &[3, 0, 1, 1, 2])])).unwrap_err();
        assert!(
            matches!(err, Error::TrailingValueBytes { extra: 1, .. }),
            "{err}"
        );
        // SUDI_DATA with only two blocks.
        let err = Message::decode(&raw(2, &[NAME, (16, &[0, 0, 1, 0x30, 1, 0, 0])])).unwrap_err();
        assert!(matches!(err, Error::TruncatedValue { .. }), "{err}");
        assert_eq!(err.layer(), Layer::Value);
        // CERTIFICATE shorter than its inner header.
        let err = Message::decode(&raw(9, &[(4, &[1, 0, 2])])).unwrap_err();
        assert!(
            matches!(err, Error::TruncatedValue { need: 5, .. }),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_certificate_marker_other_than_one_when_strict() {
        let m = raw(9, &[(4, &[2, 0, 3, 0, 1, 0x30])]);
        assert!(matches!(
            Message::decode(&m).unwrap_err(),
            Error::CertificateMarker { found: 2, .. }
        ));
        let lenient = Message::decode_with(&m, Strictness::Lenient).unwrap();
        assert_eq!(lenient.to_bytes(), m);
    }

    #[test]
    fn requires_the_elements_a_command_cannot_do_without() {
        let err = Message::decode(&raw(15, &[])).unwrap_err();
        assert_eq!(
            err,
            Error::MissingElement {
                command: Command::END_SESSION,
                tag: Tag::REASON
            }
        );
        assert_eq!(err.layer(), Layer::Message);
        assert!(Message::decode(&raw(2, &[(1, &[1]), (7, &[3])])).is_err());
    }

    #[test]
    fn keeps_known_but_unexpected_elements_and_checks_them() {
        // KEY_SIZE in an AUTH_RESPONSE: ignored by the typed message, kept for re-encoding.
        let m = raw(2, &[NAME, (10, &[8, 0])]);
        let decoded = Message::decode(&m).unwrap();
        let Payload::AuthResponse(a) = &decoded.payload else {
            panic!()
        };
        assert_eq!(a.extra_elements().len(), 1);
        assert_eq!(decoded.to_bytes(), m);
        // ... but a malformed one is still malformed.
        let bad = raw(2, &[NAME, (10, &[8])]);
        assert!(matches!(
            Message::decode(&bad).unwrap_err(),
            Error::WrongLength { .. }
        ));
    }

    #[test]
    fn named_only_commands_decode_as_raw_messages() {
        // RETRY_LATER (16), once this test's example, is typed since spec 16: STATUS_REQUEST is
        // still named only.
        let m = raw(18, &[(5, &[0, 30])]);
        let decoded = Message::decode(&m).unwrap();
        let Payload::Raw(r) = &decoded.payload else {
            panic!()
        };
        assert_eq!(r.command(), Command::STATUS_REQUEST);
        assert_eq!(decoded.to_bytes(), m);
    }

    #[test]
    fn constructors_refuse_what_cannot_be_encoded() {
        assert!(matches!(
            AuthResponse::new("", 3),
            Err(Error::StringLength { .. })
        ));
        assert!(matches!(
            AuthResponse::new("SEP\0", 3),
            Err(Error::EmbeddedNul { .. })
        ));
        assert!(AuthResponse::new("x".repeat(65), 3).is_err());
        let auth = AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap();
        assert!(auth.clone().with_password("1".repeat(65)).is_err());
        let big = vec![0u8; MAX_BODY_LEN];
        assert!(matches!(
            KeyGenResponse::with_public_key(big.as_slice()),
            Err(Error::ValueTooLarge { .. })
        ));
        // Two values that fit alone but not together.
        let half = vec![0u8; MAX_BODY_LEN / 2];
        let auth = auth.with_signed_data(half.as_slice()).unwrap();
        let cert = CertificateValue::lsc(half.as_slice()).unwrap();
        assert!(matches!(
            auth.with_certificate(cert),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(
            RawMessage::new(
                Command::STATUS_REQUEST,
                vec![
                    RawElement::new(Tag::REASON, &[1][..]),
                    RawElement::new(Tag::REASON, &[1][..])
                ]
            )
            .is_err()
        );
    }

    #[test]
    fn built_messages_match_the_spec_worked_examples() {
        // Spec section 12.
        let hex = |m: Message<'_>| {
            m.to_bytes()
                .iter()
                .map(|b| alloc::format!("{b:02x}"))
                .collect::<alloc::string::String>()
        };
        let auth = AuthResponse::new("SEP001A2B3C4D5E", 3)
            .unwrap()
            .with_password("123456")
            .unwrap();
        assert_eq!(
            hex(Message::new(0x12345, auth)),
            "550200012345002501000101070001030b00073132333435360\
             00d001053455030303141324233433444354500"
        );
        assert_eq!(
            hex(Message::new(0x12345, KeyGenRequest::rsa(2048))),
            "55030001234500090a0002080011000100"
        );
        assert_eq!(
            hex(Message::new(0x12345, KeyGenRequest::ec(Curve::SECP256R1))),
            "55030001234500081100010112000100"
        );
        assert_eq!(
            hex(Message::new(0x12345, RequestInProgress::new())),
            "5511000123450000"
        );
        assert_eq!(
            hex(Message::new(
                0x12345,
                StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE)
            )),
            "550a00012345000401000101"
        );
    }

    #[test]
    fn endpoint_csr_messages_are_built_in_reference_order_and_byte_exact() {
        // Spec 16 (project extension).
        let retry = RetryLater::new(RetryDelay::new(3600).unwrap());
        assert_eq!(
            Message::new(0x12345, retry).to_bytes(),
            raw(16, &[(12, &[0, 0, 0x0e, 0x10])])
        );
        let request = SignCertRequest::new(CsrInfo::new(&[0x30, 0x00][..]).unwrap());
        assert_eq!(request.csr_info().as_bytes(), [0x30, 0x00]);
        assert_eq!(
            Message::new(0x12345, request).to_bytes(),
            raw(22, &[(21, &[0x30, 0x00])])
        );
        let signed = SignCertResponse::signed(CsrSignature::new(&[7, 8][..]).unwrap()).unwrap();
        assert_eq!(signed.element_order(), [Tag::REASON, Tag::CSR_SIGNATURE]);
        assert_eq!(
            Message::new(0x12345, signed).to_bytes(),
            raw(23, &[(1, &[1]), (22, &[7, 8])])
        );
        let failed = SignCertResponse::failure(Reason::INVALID_ELEMENT);
        assert_eq!(failed.csr_signature(), None);
        assert_eq!(
            Message::new(0x12345, failed).to_bytes(),
            raw(23, &[(1, &[7])])
        );
    }

    #[test]
    fn endpoint_csr_values_are_checked_on_decode_and_construction() {
        for bad in [0u32, MAX_RETRY_DELAY_SECS + 1, u32::MAX] {
            assert_eq!(
                RetryDelay::new(bad),
                Err(Error::RetryDelayOutOfRange {
                    offset: 0,
                    seconds: bad
                })
            );
            let err = Message::decode(&raw(16, &[(12, &bad.to_be_bytes())])).unwrap_err();
            assert_eq!(
                err,
                Error::RetryDelayOutOfRange {
                    offset: 8,
                    seconds: bad
                }
            );
            assert_eq!(err.layer(), Layer::Value);
        }
        for ok in [1, MAX_RETRY_DELAY_SECS] {
            let m = raw(16, &[(12, &ok.to_be_bytes())]);
            let Payload::RetryLater(r) = Message::decode(&m).unwrap().payload else {
                panic!()
            };
            assert_eq!(r.retry_delay().seconds(), ok);
        }
        assert!(matches!(
            Message::decode(&raw(16, &[(12, &[0, 30])])).unwrap_err(),
            Error::WrongLength { expected: 4, .. }
        ));
        assert!(matches!(
            CsrInfo::new(&[][..]),
            Err(Error::ValueLength { len: 0, .. })
        ));
        let long = vec![1u8; MAX_CSR_SIGNATURE_LEN + 1];
        assert!(matches!(
            CsrSignature::new(long.as_slice()),
            Err(Error::ValueLength { len: 1025, .. })
        ));
        assert!(CsrSignature::new(&long[1..]).is_ok());
        let err = Message::decode(&raw(23, &[(1, &[1]), (22, &long)])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ValueLength {
                    offset: 12,
                    max: 1024,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            Message::decode(&raw(22, &[(21, &[])])).unwrap_err(),
            Error::ValueLength { .. }
        ));
        // The codec requires REASON and CSR_INFO; which REASON goes with a signature is the
        // session's rule.
        assert!(matches!(
            Message::decode(&raw(23, &[(22, &[1])])).unwrap_err(),
            Error::MissingElement { .. }
        ));
        assert!(matches!(
            Message::decode(&raw(22, &[])).unwrap_err(),
            Error::MissingElement { .. }
        ));
        assert!(Message::decode(&raw(23, &[(1, &[1])])).is_ok());
    }

    #[test]
    fn endpoint_csr_tags_are_known_so_strict_decoding_keeps_them_elsewhere() {
        // CSR_INFO in an END_SESSION: known but unexpected, kept and re-encoded (spec 2.2).
        let m = raw(15, &[(1, &[1]), (21, &[0x30])]);
        assert_eq!(Message::decode(&m).unwrap().to_bytes(), m);
        // ... and still checked.
        assert!(Message::decode(&raw(15, &[(1, &[1]), (21, &[])])).is_err());
    }
}
