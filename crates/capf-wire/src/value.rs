//! The value layer: typed element values (spec sections 4 and 6).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::codes::{AuthType, CertificateType, Curve, HashAlgorithm, KeyType, Reason, Tag};
use crate::error::Error;
use crate::frame::{MAX_BODY_LEN, Strictness};
use crate::tlv::{ELEMENT_HEADER_LEN, RawElement, Slot};

/// Longest DEVICE_NAME, without its NUL (spec 4.2 project rule: 1-64 bytes).
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// Longest PASSWORD, without its NUL (spec 6.5 project rule: longer is malformed).
pub const MAX_PASSWORD_LEN: usize = 64;
/// Longest REASON_INFO text, without its NUL. Never seen on the wire; bounded so a log line stays
/// readable.
pub const MAX_REASON_INFO_LEN: usize = 255;
/// Largest value one element can carry in a message within the size cap.
pub const MAX_VALUE_LEN: usize = MAX_BODY_LEN - ELEMENT_HEADER_LEN;
/// Longest CSR_INFO: the whole SIGN_CERT_REQUEST body but its element header (spec 16).
pub const MAX_CSR_INFO_LEN: usize = MAX_VALUE_LEN;
/// Longest CSR_SIGNATURE (spec 16): an RSA-8192 signature is 1024 bytes, a DER ECDSA P-384 one
/// at most 104.
pub const MAX_CSR_SIGNATURE_LEN: usize = 1024;
/// Shortest RETRY_DELAY, in seconds (spec 16).
pub const MIN_RETRY_DELAY_SECS: u32 = 1;
/// Longest RETRY_DELAY, in seconds: one week (spec 16).
pub const MAX_RETRY_DELAY_SECS: u32 = 604_800;

/// Length limits of a string element: (shortest, longest), without the NUL.
fn string_limits(tag: Tag) -> (usize, usize) {
    match tag {
        Tag::DEVICE_NAME => (1, MAX_DEVICE_NAME_LEN),
        Tag::PASSWORD => (0, MAX_PASSWORD_LEN),
        _ => (0, MAX_REASON_INFO_LEN),
    }
}

/// Checks a string to be sent in a string element.
pub(crate) fn check_string(tag: Tag, s: &str) -> Result<(), Error> {
    if s.as_bytes().contains(&0) {
        return Err(Error::EmbeddedNul { offset: 0, tag });
    }
    let (min, max) = string_limits(tag);
    if s.len() < min || s.len() > max {
        return Err(Error::StringLength {
            offset: 0,
            tag,
            len: s.len(),
            min,
            max,
        });
    }
    Ok(())
}

/// Checks the size of an opaque value to be sent.
pub(crate) fn check_len(tag: Tag, len: usize) -> Result<(), Error> {
    if len > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge { tag, len });
    }
    Ok(())
}

/// A value that can be one element's content. Encoding never fails: constructors validate.
pub(crate) trait FieldValue<'a>: Sized {
    /// The same value owning its bytes.
    type Static;
    fn decode(el: Slot<'a>, strictness: Strictness) -> Result<Self, Error>;
    fn encode(&self, out: &mut Vec<u8>);
    fn encoded_len(&self) -> usize;
    fn into_static(self) -> Self::Static;
}

fn fixed<const N: usize>(el: Slot<'_>) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(el.value).map_err(|_| Error::WrongLength {
        offset: el.offset,
        tag: el.tag,
        expected: N,
        found: el.value.len(),
    })
}

macro_rules! u8_field {
    ($($ty:ty),*) => {$(
        impl<'a> FieldValue<'a> for $ty {
            type Static = $ty;
            #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
                let [b] = fixed::<1>(el)?;
                Ok(<$ty>::from(b))
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.push(u8::from(*self));
            }
            fn encoded_len(&self) -> usize {
                1
            }
            fn into_static(self) -> Self {
                self
            }
        }
    )*};
}
u8_field!(u8, Reason, AuthType, KeyType, Curve, CertificateType);

impl<'a> FieldValue<'a> for u16 {
    type Static = u16;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        Ok(u16::from_be_bytes(fixed::<2>(el)?))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn encoded_len(&self) -> usize {
        2
    }
    fn into_static(self) -> Self {
        self
    }
}

/// Strings: UTF-8, exactly one terminating NUL, length limits per tag (spec 4.2).
impl<'a> FieldValue<'a> for Cow<'a, str> {
    type Static = Cow<'static, str>;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        let (offset, tag) = (el.offset, el.tag);
        let Some((&last, text)) = el.value.split_last() else {
            return Err(Error::EmptyStringElement { offset, tag });
        };
        if last != 0 {
            return Err(Error::MissingNul { offset, tag });
        }
        if let Some(at) = text.iter().position(|b| *b == 0) {
            return Err(Error::EmbeddedNul {
                offset: offset + ELEMENT_HEADER_LEN + at,
                tag,
            });
        }
        let (min, max) = string_limits(tag);
        if text.len() < min || text.len() > max {
            return Err(Error::StringLength {
                offset,
                tag,
                len: text.len(),
                min,
                max,
            });
        }
        core::str::from_utf8(text)
            .map(Cow::Borrowed)
            .map_err(|_| Error::InvalidUtf8 { offset, tag })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
        out.push(0);
    }
    fn encoded_len(&self) -> usize {
        self.len() + 1
    }
    fn into_static(self) -> Self::Static {
        Cow::Owned(self.into_owned())
    }
}

/// Opaque bytes (PUBLIC_KEY, SIGNED_DATA and the named-only tags).
impl<'a> FieldValue<'a> for Cow<'a, [u8]> {
    type Static = Cow<'static, [u8]>;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        Ok(Cow::Borrowed(el.value))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn encoded_len(&self) -> usize {
        self.len()
    }
    fn into_static(self) -> Self::Static {
        Cow::Owned(self.into_owned())
    }
}

/// Length of the CERTIFICATE inner header (spec 4.3).
pub const CERTIFICATE_HEADER_LEN: usize = 5;

/// The CERTIFICATE element: a 5-byte inner header, then one DER certificate (spec 4.3).
///
/// `01 | u16(n + 2) | 00 | type | DER(n)`. The first and fourth bytes have no known meaning; they
/// are kept as received so that a lenient decode re-encodes unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateValue<'a> {
    marker: u8,
    inner_length: u16,
    reserved: u8,
    certificate_type: CertificateType,
    der: Cow<'a, [u8]>,
}

impl<'a> CertificateValue<'a> {
    /// A certificate of the given type, with the header every known implementation writes.
    pub fn new(
        certificate_type: CertificateType,
        der: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Self, Error> {
        let der = der.into();
        check_len(Tag::CERTIFICATE, der.len() + CERTIFICATE_HEADER_LEN)?;
        Ok(CertificateValue {
            marker: 1,
            // check_len bounds der.len() well below u16::MAX.
            inner_length: (der.len() + 2) as u16,
            reserved: 0,
            certificate_type,
            der,
        })
    }

    /// An LSC.
    pub fn lsc(der: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
        Self::new(CertificateType::LSC, der)
    }

    /// The type byte (1 LSC, 2 MIC). Not reliable for authentication (spec 4.3): classify a
    /// certificate by the trust anchor it chains to.
    pub fn certificate_type(&self) -> CertificateType {
        self.certificate_type
    }

    /// The DER certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The inner header's first byte (always 1 when strict).
    pub fn marker(&self) -> u8 {
        self.marker
    }

    /// The inner length field (DER length + 2 when strict).
    pub fn inner_length(&self) -> u16 {
        self.inner_length
    }

    /// The inner header's fourth byte (0 in every observation; not checked).
    pub fn reserved(&self) -> u8 {
        self.reserved
    }

    /// Whether the inner header is the one the spec describes (lenient decoding accepts others).
    pub fn is_well_formed(&self) -> bool {
        self.marker == 1 && usize::from(self.inner_length) == self.der.len() + 2
    }

    /// The same value owning its bytes.
    pub fn into_owned(self) -> CertificateValue<'static> {
        CertificateValue {
            der: Cow::Owned(self.der.into_owned()),
            ..self
        }
    }
}

impl<'a> FieldValue<'a> for CertificateValue<'a> {
    type Static = CertificateValue<'static>;
    #[inline]
    fn decode(el: Slot<'a>, strictness: Strictness) -> Result<Self, Error> {
        let v = el.value;
        let Some(&[marker, hi, lo, reserved, ty]) = v.first_chunk::<CERTIFICATE_HEADER_LEN>()
        else {
            return Err(Error::TruncatedValue {
                offset: el.offset,
                tag: el.tag,
                len: v.len(),
                need: CERTIFICATE_HEADER_LEN,
            });
        };
        let inner_length = u16::from_be_bytes([hi, lo]);
        let der_len = v.len() - CERTIFICATE_HEADER_LEN;
        if strictness == Strictness::Strict {
            if marker != 1 {
                return Err(Error::CertificateMarker {
                    offset: el.offset,
                    found: marker,
                });
            }
            if usize::from(inner_length) != der_len + 2 {
                return Err(Error::CertificateInnerLength {
                    offset: el.offset,
                    inner: usize::from(inner_length),
                    der: der_len,
                });
            }
        }
        Ok(CertificateValue {
            marker,
            inner_length,
            reserved,
            certificate_type: CertificateType(ty),
            der: Cow::Borrowed(&v[CERTIFICATE_HEADER_LEN..]),
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.marker);
        out.extend_from_slice(&self.inner_length.to_be_bytes());
        out.push(self.reserved);
        out.push(self.certificate_type.0);
        out.extend_from_slice(&self.der);
    }
    fn encoded_len(&self) -> usize {
        CERTIFICATE_HEADER_LEN + self.der.len()
    }
    fn into_static(self) -> Self::Static {
        self.into_owned()
    }
}

/// Reads `lead u8 | u16 length | bytes` at `pos`, as SHA2_SIGNED_DATA and each SUDI block are laid out.
fn read_block<'a>(
    el: Slot<'a>,
    pos: usize,
    part: &'static str,
) -> Result<(u8, Cow<'a, [u8]>, usize), Error> {
    let v = el.value;
    let Some(&[lead, hi, lo]) = v[pos..].first_chunk::<3>() else {
        return Err(Error::TruncatedValue {
            offset: el.offset,
            tag: el.tag,
            len: v.len(),
            need: pos + 3,
        });
    };
    let declared = usize::from(u16::from_be_bytes([hi, lo]));
    let available = v.len() - pos - 3;
    if declared > available {
        return Err(Error::NestedLength {
            offset: el.offset,
            tag: el.tag,
            part,
            declared,
            available,
        });
    }
    let end = pos + 3 + declared;
    Ok((lead, Cow::Borrowed(&v[pos + 3..end]), end))
}

fn no_trailing(el: Slot<'_>, end: usize) -> Result<(), Error> {
    if end != el.value.len() {
        return Err(Error::TrailingValueBytes {
            offset: el.offset,
            tag: el.tag,
            extra: el.value.len() - end,
        });
    }
    Ok(())
}

fn write_block(out: &mut Vec<u8>, lead: u8, data: &[u8]) {
    out.push(lead);
    // Block sizes are bounded by check_len at construction or by the element when decoded.
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// SHA2_SIGNED_DATA: hash id, u16 length, signature (spec 6.3). Which hash ids are acceptable is
/// a semantic check (capfd requires 3, SHA-512), not the codec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha2SignedData<'a> {
    hash_algorithm: HashAlgorithm,
    signature: Cow<'a, [u8]>,
}

impl<'a> Sha2SignedData<'a> {
    /// A signature made with `hash_algorithm`.
    pub fn new(
        hash_algorithm: HashAlgorithm,
        signature: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Self, Error> {
        let signature = signature.into();
        check_len(Tag::SHA2_SIGNED_DATA, signature.len() + 3)?;
        Ok(Sha2SignedData {
            hash_algorithm,
            signature,
        })
    }

    /// The hash id.
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.hash_algorithm
    }

    /// The signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The same value owning its bytes.
    pub fn into_owned(self) -> Sha2SignedData<'static> {
        Sha2SignedData {
            hash_algorithm: self.hash_algorithm,
            signature: Cow::Owned(self.signature.into_owned()),
        }
    }
}

impl<'a> FieldValue<'a> for Sha2SignedData<'a> {
    type Static = Sha2SignedData<'static>;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        let (lead, signature, end) = read_block(el, 0, "signature")?;
        no_trailing(el, end)?;
        Ok(Sha2SignedData {
            hash_algorithm: HashAlgorithm(lead),
            signature,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        write_block(out, self.hash_algorithm.0, &self.signature);
    }
    fn encoded_len(&self) -> usize {
        3 + self.signature.len()
    }
    fn into_static(self) -> Self::Static {
        self.into_owned()
    }
}

/// One SUDI_DATA block: a lead byte and length-prefixed bytes, borrowed from the [`SudiData`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudiBlock<'b> {
    /// The lead byte: 0 before the certificate, the hash id before each signature.
    pub lead: u8,
    /// The block's bytes.
    pub data: &'b [u8],
}

/// SUDI_DATA: the SUDI certificate and two signatures over the session id (4 bytes,
/// little-endian) + the certificate DER (spec 6.4).
///
/// Kept as the element's bytes plus where the second and third blocks start, so a decoded
/// message stays small; the blocks are read on access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudiData<'a> {
    value: Cow<'a, [u8]>,
    second: u16,
    third: u16,
}

impl<'a> SudiData<'a> {
    /// SUDI data as capfc lays it out: lead 0 before the certificate, SHA-1 signature with lead 1,
    /// SHA-512 signature with lead 3.
    pub fn new(
        certificate_der: &[u8],
        sha1_signature: &[u8],
        sha512_signature: &[u8],
    ) -> Result<Self, Error> {
        let len = 9 + certificate_der.len() + sha1_signature.len() + sha512_signature.len();
        check_len(Tag::SUDI_DATA, len)?;
        let mut value = Vec::with_capacity(len);
        write_block(&mut value, 0, certificate_der);
        let second = value.len() as u16;
        write_block(&mut value, HashAlgorithm::SHA1.0, sha1_signature);
        let third = value.len() as u16;
        write_block(&mut value, HashAlgorithm::SHA512.0, sha512_signature);
        Ok(SudiData {
            value: Cow::Owned(value),
            second,
            third,
        })
    }

    fn block(&self, at: u16, end: usize) -> SudiBlock<'_> {
        let at = usize::from(at);
        SudiBlock {
            lead: self.value[at],
            data: &self.value[at + 3..end],
        }
    }

    /// The SUDI certificate block (DER).
    pub fn certificate(&self) -> SudiBlock<'_> {
        self.block(0, usize::from(self.second))
    }

    /// The first signature block (lead byte: hash id, 1 = SHA-1).
    pub fn signed_data(&self) -> SudiBlock<'_> {
        self.block(self.second, usize::from(self.third))
    }

    /// The second signature block (lead byte: hash id, 3 = SHA-512).
    pub fn sha2_signed_data(&self) -> SudiBlock<'_> {
        self.block(self.third, self.value.len())
    }

    /// The same value owning its bytes.
    pub fn into_owned(self) -> SudiData<'static> {
        SudiData {
            value: Cow::Owned(self.value.into_owned()),
            second: self.second,
            third: self.third,
        }
    }
}

impl<'a> FieldValue<'a> for SudiData<'a> {
    type Static = SudiData<'static>;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        let (_, _, second) = read_block(el, 0, "certificate")?;
        let (_, _, third) = read_block(el, second, "signature 1")?;
        let (_, _, end) = read_block(el, third, "signature 2")?;
        no_trailing(el, end)?;
        // Offsets lie within the element, which the size cap keeps below u16::MAX.
        Ok(SudiData {
            value: Cow::Borrowed(el.value),
            second: second as u16,
            third: third as u16,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value);
    }
    fn encoded_len(&self) -> usize {
        self.value.len()
    }
    fn into_static(self) -> Self::Static {
        self.into_owned()
    }
}

/// Checks an opaque value's length against its limits (spec 16); `offset` 0 for a value built
/// locally.
fn check_value_len(offset: usize, tag: Tag, len: usize, max: usize) -> Result<(), Error> {
    if len == 0 || len > max {
        return Err(Error::ValueLength {
            offset,
            tag,
            len,
            min: 1,
            max,
        });
    }
    Ok(())
}

/// RETRY_DELAY: how many seconds the phone waits before it comes back, 1 to
/// [`MAX_RETRY_DELAY_SECS`] (u32 big-endian, L = 4; spec 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetryDelay(u32);

impl RetryDelay {
    /// A delay of `seconds`, refused outside 1 to [`MAX_RETRY_DELAY_SECS`].
    pub const fn new(seconds: u32) -> Result<Self, Error> {
        if seconds < MIN_RETRY_DELAY_SECS || seconds > MAX_RETRY_DELAY_SECS {
            return Err(Error::RetryDelayOutOfRange { offset: 0, seconds });
        }
        Ok(RetryDelay(seconds))
    }

    /// The delay in seconds.
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

impl<'a> FieldValue<'a> for RetryDelay {
    type Static = RetryDelay;
    #[inline]
    fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
        let seconds = u32::from_be_bytes(fixed::<4>(el)?);
        RetryDelay::new(seconds).map_err(|_| Error::RetryDelayOutOfRange {
            offset: el.offset,
            seconds,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }
    fn encoded_len(&self) -> usize {
        4
    }
    fn into_static(self) -> Self {
        self
    }
}

/// An opaque value whose length has limits: CSR_INFO and CSR_SIGNATURE (spec 16).
macro_rules! bounded_bytes {
    ($(#[$doc:meta])* $name:ident = $tag:ident, $max:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<'a>(Cow<'a, [u8]>);

        impl<'a> $name<'a> {
            /// The value, refused when empty or longer than its limit.
            pub fn new(bytes: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
                let bytes = bytes.into();
                check_value_len(0, Tag::$tag, bytes.len(), $max)?;
                Ok($name(bytes))
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The same value owning its bytes.
            pub fn into_owned(self) -> $name<'static> {
                $name(Cow::Owned(self.0.into_owned()))
            }
        }

        impl<'a> FieldValue<'a> for $name<'a> {
            type Static = $name<'static>;
            #[inline]
            fn decode(el: Slot<'a>, _: Strictness) -> Result<Self, Error> {
                check_value_len(el.offset, el.tag, el.value.len(), $max)?;
                Ok($name(Cow::Borrowed(el.value)))
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
            fn encoded_len(&self) -> usize {
                self.0.len()
            }
            fn into_static(self) -> Self::Static {
                self.into_owned()
            }
        }
    };
}

bounded_bytes! {
    /// CSR_INFO: the DER of the PKCS#10 CertificationRequestInfo (RFC 2986) the server asks the
    /// phone to sign, 1 to [`MAX_CSR_INFO_LEN`] bytes (spec 16). Not parsed here: see capf-lsc.
    CsrInfo = CSR_INFO, MAX_CSR_INFO_LEN
}

bounded_bytes! {
    /// CSR_SIGNATURE: the phone's signature over CSR_INFO's bytes, 1 to
    /// [`MAX_CSR_SIGNATURE_LEN`] bytes (spec 16): RSA PKCS#1 v1.5 with SHA-256, or DER
    /// ECDSA-Sig-Value over SHA-256. Not verified here: see capf-lsc.
    CsrSignature = CSR_SIGNATURE, MAX_CSR_SIGNATURE_LEN
}

/// Any element's value, typed by its tag: what a dissector shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// REASON.
    Reason(Reason),
    /// CERTIFICATE_TYPE.
    CertificateType(CertificateType),
    /// AUTH_TYPE.
    AuthType(AuthType),
    /// KEY_TYPE.
    KeyType(KeyType),
    /// CURVE.
    Curve(Curve),
    /// VERSION.
    Version(u8),
    /// KEY_SIZE.
    KeySize(u16),
    /// DEVICE_NAME, PASSWORD, REASON_INFO.
    Text(Cow<'a, str>),
    /// CERTIFICATE.
    Certificate(CertificateValue<'a>),
    /// SHA2_SIGNED_DATA.
    Sha2SignedData(Sha2SignedData<'a>),
    /// SUDI_DATA.
    SudiData(SudiData<'a>),
    /// RETRY_DELAY (spec 16).
    RetryDelay(RetryDelay),
    /// CSR_INFO (spec 16).
    CsrInfo(CsrInfo<'a>),
    /// CSR_SIGNATURE (spec 16).
    CsrSignature(CsrSignature<'a>),
    /// PUBLIC_KEY (DER SubjectPublicKeyInfo), SIGNED_DATA, named-only and unknown tags.
    Opaque(Cow<'a, [u8]>),
}

impl<'a> Value<'a> {
    /// Decodes an element's value according to its tag.
    pub fn decode(el: &'a RawElement<'_>, strictness: Strictness) -> Result<Value<'a>, Error> {
        Self::decode_slot(el.slot(), strictness)
    }

    pub(crate) fn decode_slot(el: Slot<'a>, strictness: Strictness) -> Result<Value<'a>, Error> {
        Ok(match el.tag {
            Tag::REASON => Value::Reason(FieldValue::decode(el, strictness)?),
            Tag::CERTIFICATE_TYPE => Value::CertificateType(FieldValue::decode(el, strictness)?),
            Tag::AUTH_TYPE => Value::AuthType(FieldValue::decode(el, strictness)?),
            Tag::KEY_TYPE => Value::KeyType(FieldValue::decode(el, strictness)?),
            Tag::CURVE => Value::Curve(FieldValue::decode(el, strictness)?),
            Tag::VERSION => Value::Version(FieldValue::decode(el, strictness)?),
            Tag::KEY_SIZE => Value::KeySize(FieldValue::decode(el, strictness)?),
            Tag::DEVICE_NAME | Tag::PASSWORD | Tag::REASON_INFO => {
                Value::Text(FieldValue::decode(el, strictness)?)
            }
            Tag::CERTIFICATE => Value::Certificate(FieldValue::decode(el, strictness)?),
            Tag::SHA2_SIGNED_DATA => Value::Sha2SignedData(FieldValue::decode(el, strictness)?),
            Tag::SUDI_DATA => Value::SudiData(FieldValue::decode(el, strictness)?),
            Tag::RETRY_DELAY => Value::RetryDelay(FieldValue::decode(el, strictness)?),
            Tag::CSR_INFO => Value::CsrInfo(FieldValue::decode(el, strictness)?),
            Tag::CSR_SIGNATURE => Value::CsrSignature(FieldValue::decode(el, strictness)?),
            _ => Value::Opaque(Cow::Borrowed(el.value)),
        })
    }
}
