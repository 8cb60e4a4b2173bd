//! The decode error, its layer, and what a server does about it (spec section 9.3).

use alloc::string::String;

use crate::codes::{Command, Reason, Tag};
use crate::device_name::DeviceNameError;
use crate::frame::{HEADER_LEN, MAX_MESSAGE_LEN};

/// Everything that can go wrong decoding or building a CAPF message.
///
/// Offsets count from the first byte of the message (the header's protocol id), so they point at
/// the byte a hex dump shows; errors about values built locally carry no offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer than 8 header bytes (at end of stream, or in a buffer given to `decode`).
    #[error("truncated header: {have} of {HEADER_LEN} bytes")]
    TruncatedHeader {
        /// How many header bytes there were.
        have: usize,
    },
    /// The protocol id (byte 0) is not 0x55.
    #[error("bad protocol id {found:#04x} (must be 0x55)")]
    BadProtocolId {
        /// The byte found.
        found: u8,
    },
    /// The header announces a message larger than [`MAX_MESSAGE_LEN`].
    #[error("message of {total} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    MessageTooLarge {
        /// Header plus announced body length.
        total: usize,
    },
    /// A command code outside the spec's table (strict decoding only).
    #[error("unknown command code {}", command.0)]
    UnknownCommand {
        /// The command byte.
        command: Command,
    },
    /// The stream or buffer ends inside the body.
    #[error("length field says {declared} body bytes but the stream ends after {available}")]
    TruncatedBody {
        /// Body length from the header.
        declared: usize,
        /// Body bytes actually present.
        available: usize,
    },
    /// Bytes follow the message in a buffer that should hold exactly one.
    #[error("{extra} bytes follow the {len}-byte message")]
    TrailingBytes {
        /// Length of the message.
        len: usize,
        /// Bytes after it.
        extra: usize,
    },
    /// Fewer than 3 bytes where an element header should start.
    #[error(
        "truncated element header: {remaining} bytes left where 3 are needed (offset {offset})"
    )]
    TruncatedElementHeader {
        /// Offset of the element header.
        offset: usize,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// An element's length runs past the end of the body.
    #[error(
        "{tag} declares {declared} value bytes but only {remaining} remain in the body (offset {offset})"
    )]
    ElementPastEnd {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// Its declared value length.
        declared: usize,
        /// Bytes left after its header.
        remaining: usize,
    },
    /// A tag outside the spec's table (strict decoding only).
    #[error("unknown element tag {} (offset {offset})", tag.0)]
    UnknownTag {
        /// Offset of the element header.
        offset: usize,
        /// The tag byte.
        tag: Tag,
    },
    /// The same tag twice in one message (a project rule: the reference programs let the last win).
    #[error("duplicate element tag {} ({tag}) (offset {offset})", tag.0)]
    DuplicateTag {
        /// Offset of the second element.
        offset: usize,
        /// The repeated tag.
        tag: Tag,
    },
    /// More elements than [`crate::MAX_ELEMENTS`].
    #[error(
        "more than {} elements in one message (offset {offset})",
        crate::MAX_ELEMENTS
    )]
    TooManyElements {
        /// Offset of the first element over the limit.
        offset: usize,
    },
    /// A fixed-width element (u8 or u16) with the wrong length.
    #[error("{tag} must be exactly {expected} byte{}, got {found} (offset {offset})", if *expected == 1 { "" } else { "s" })]
    WrongLength {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// The width the tag requires.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A string element with length 0.
    #[error(
        "{tag} has length 0; a string element needs at least its NUL terminator (offset {offset})"
    )]
    EmptyStringElement {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
    },
    /// A string element whose last byte is not 0x00.
    #[error("{tag} value does not end in 0x00 (offset {offset})")]
    MissingNul {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
    },
    /// A string element with a 0x00 before its terminator.
    #[error("{tag} has a NUL byte inside the string (offset {offset})")]
    EmbeddedNul {
        /// Offset of the NUL byte (0 for a value built locally).
        offset: usize,
        /// The element's tag.
        tag: Tag,
    },
    /// A string element that is not UTF-8.
    #[error("{tag} is not valid UTF-8 (offset {offset})")]
    InvalidUtf8 {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
    },
    /// A string outside its length limits (spec 4.2 and 6.5: device name 1-64 bytes, password
    /// at most 64).
    #[error("{tag} is {len} bytes long; it must be {min} to {max} bytes (offset {offset})")]
    StringLength {
        /// Offset of the element header (0 for a value built locally).
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// The string's length without its NUL.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A structured value shorter than its own header.
    #[error("{tag} is {len} bytes, shorter than its {need}-byte header (offset {offset})")]
    TruncatedValue {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// The value's length.
        len: usize,
        /// The bytes its header needs.
        need: usize,
    },
    /// The CERTIFICATE inner header does not start with 0x01 (spec 4.3).
    #[error("CERTIFICATE inner marker {found:#04x} (must be 0x01) (offset {offset})")]
    CertificateMarker {
        /// Offset of the element header.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// The CERTIFICATE inner length is not DER length + 2 (spec 4.3).
    #[error("CERTIFICATE inner length {inner} != DER length {der} + 2 (offset {offset})")]
    CertificateInnerLength {
        /// Offset of the element header.
        offset: usize,
        /// The inner length field.
        inner: usize,
        /// The DER bytes present.
        der: usize,
    },
    /// A nested length (SHA2_SIGNED_DATA signature, SUDI_DATA block) that does not fit its element.
    #[error(
        "{tag} {part} declares {declared} bytes but {available} remain in the element (offset {offset})"
    )]
    NestedLength {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// Which part of the value.
        part: &'static str,
        /// The declared length.
        declared: usize,
        /// Bytes left in the element.
        available: usize,
    },
    /// Bytes left over after a structured value's last part.
    #[error("{tag} has {extra} bytes after its last part (offset {offset})")]
    TrailingValueBytes {
        /// Offset of the element header.
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// The leftover bytes.
        extra: usize,
    },
    /// An opaque value outside its length limits (spec 16: CSR_INFO at least 1 byte,
    /// CSR_SIGNATURE 1 to [`crate::MAX_CSR_SIGNATURE_LEN`]).
    #[error("{tag} is {len} bytes long; it must be {min} to {max} bytes (offset {offset})")]
    ValueLength {
        /// Offset of the element header (0 for a value built locally).
        offset: usize,
        /// The element's tag.
        tag: Tag,
        /// The value's length.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// RETRY_DELAY outside 1 to [`crate::MAX_RETRY_DELAY_SECS`] seconds (spec 16).
    #[error(
        "RETRY_DELAY of {seconds} seconds is outside 1 to {} (offset {offset})",
        crate::MAX_RETRY_DELAY_SECS
    )]
    RetryDelayOutOfRange {
        /// Offset of the element header (0 for a value built locally).
        offset: usize,
        /// The delay found.
        seconds: u32,
    },
    /// A command without an element it cannot do without (for example END_SESSION without REASON).
    #[error("{command} lacks its required {tag} element")]
    MissingElement {
        /// The message's command.
        command: Command,
        /// The missing element.
        tag: Tag,
    },
    /// A value given to a constructor is too large to be encoded within [`MAX_MESSAGE_LEN`].
    #[error("{tag} of {len} bytes does not fit a {MAX_MESSAGE_LEN}-byte message")]
    ValueTooLarge {
        /// The element's tag.
        tag: Tag,
        /// The value's length.
        len: usize,
    },
    /// A name that is not a device name UCM allows (see [`crate::DeviceName`]): no device can
    /// be registered under it.
    #[error("invalid device name \"{name}\": {reason}")]
    InvalidDeviceName {
        /// The name, escaped for display.
        name: String,
        /// Why.
        reason: DeviceNameError,
    },
}

/// The decoding layer an error belongs to, named as the vectors' `error_layer` field names them
/// (spec section 9.3). The session-id and semantic checks sit above the codec, in `capf-session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// Header, length, size cap, command code.
    Frame,
    /// Element walk: element headers, bounds, duplicates, unknown tags.
    Tlv,
    /// Typed values: fixed widths, strings, nested structures.
    Value,
    /// Elements a command requires (the spec counts these among the semantic checks).
    Message,
}

impl Layer {
    /// The name the vectors file uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Frame => "frame",
            Layer::Tlv => "tlv",
            Layer::Value => "value",
            Layer::Message => "semantic",
        }
    }
}

/// What a CAPF server does when a phone's message fails to decode (spec section 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// The framing is intact: send END_SESSION with this reason, then close.
    EndSession(Reason),
    /// The framing is broken: close without a message.
    Close,
}

/// How a server answers decode errors (spec 9.3 project rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPolicy {
    /// Answer a bad protocol id with END_SESSION 7, as capfd does (the compatibility flag, on by
    /// default); when false, close silently.
    pub end_session_on_bad_protocol_id: bool,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self {
            end_session_on_bad_protocol_id: true,
        }
    }
}

impl Error {
    /// The layer that rejects the input.
    pub const fn layer(&self) -> Layer {
        match self {
            Error::TruncatedHeader { .. }
            | Error::BadProtocolId { .. }
            | Error::MessageTooLarge { .. }
            | Error::UnknownCommand { .. }
            | Error::TruncatedBody { .. }
            | Error::TrailingBytes { .. } => Layer::Frame,
            Error::TruncatedElementHeader { .. }
            | Error::ElementPastEnd { .. }
            | Error::UnknownTag { .. }
            | Error::DuplicateTag { .. }
            | Error::TooManyElements { .. } => Layer::Tlv,
            Error::MissingElement { .. } => Layer::Message,
            Error::WrongLength { .. }
            | Error::EmptyStringElement { .. }
            | Error::MissingNul { .. }
            | Error::EmbeddedNul { .. }
            | Error::InvalidUtf8 { .. }
            | Error::StringLength { .. }
            | Error::TruncatedValue { .. }
            | Error::CertificateMarker { .. }
            | Error::CertificateInnerLength { .. }
            | Error::NestedLength { .. }
            | Error::TrailingValueBytes { .. }
            | Error::ValueLength { .. }
            | Error::RetryDelayOutOfRange { .. }
            | Error::ValueTooLarge { .. }
            | Error::InvalidDeviceName { .. } => Layer::Value,
        }
    }

    /// Whether the byte stream can no longer be split into messages: the peer cannot be sent
    /// a meaningful answer (length over the cap, end of stream inside a message).
    pub const fn is_framing_broken(&self) -> bool {
        matches!(
            self,
            Error::TruncatedHeader { .. }
                | Error::MessageTooLarge { .. }
                | Error::TruncatedBody { .. }
                | Error::TrailingBytes { .. }
        )
    }

    /// The byte offset the error points at, where it has one.
    pub const fn offset(&self) -> Option<usize> {
        match self {
            Error::BadProtocolId { .. } | Error::UnknownCommand { .. } => Some(0),
            Error::TruncatedBody { .. } | Error::MessageTooLarge { .. } => Some(6),
            Error::TruncatedElementHeader { offset, .. }
            | Error::ElementPastEnd { offset, .. }
            | Error::UnknownTag { offset, .. }
            | Error::DuplicateTag { offset, .. }
            | Error::TooManyElements { offset }
            | Error::WrongLength { offset, .. }
            | Error::EmptyStringElement { offset, .. }
            | Error::MissingNul { offset, .. }
            | Error::EmbeddedNul { offset, .. }
            | Error::InvalidUtf8 { offset, .. }
            | Error::StringLength { offset, .. }
            | Error::TruncatedValue { offset, .. }
            | Error::CertificateMarker { offset, .. }
            | Error::CertificateInnerLength { offset, .. }
            | Error::NestedLength { offset, .. }
            | Error::TrailingValueBytes { offset, .. }
            | Error::ValueLength { offset, .. }
            | Error::RetryDelayOutOfRange { offset, .. } => Some(*offset),
            Error::TruncatedHeader { .. }
            | Error::TrailingBytes { .. }
            | Error::MissingElement { .. }
            | Error::ValueTooLarge { .. }
            | Error::InvalidDeviceName { .. } => None,
        }
    }

    /// What a server does about this error (spec 9.3): END_SESSION 7 when the framing is intact
    /// (9 for a device name no device can have), a silent close when it is broken. The one place decode errors map to END_SESSION reasons.
    pub const fn server_action(&self, policy: ErrorPolicy) -> ServerAction {
        match self {
            Error::BadProtocolId { .. } if !policy.end_session_on_bad_protocol_id => {
                ServerAction::Close
            }
            _ if self.is_framing_broken() => ServerAction::Close,
            // No device can have this name: the answer to an unknown device (spec 7 step 4;
            // phones depend on getting 9).
            Error::InvalidDeviceName { .. } => ServerAction::EndSession(Reason::UNKNOWN_DEVICE),
            _ => ServerAction::EndSession(Reason::INVALID_ELEMENT),
        }
    }
}
