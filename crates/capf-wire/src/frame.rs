//! The frame layer: the 8-byte header and the body it delimits (spec section 2.1).

use crate::codes::Command;
use crate::error::Error;
use crate::tlv::Elements;

/// The protocol id, byte 0 of every header.
pub const PROTOCOL_ID: u8 = 0x55;
/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Largest message, header included. A project rule (spec section 1): every message must fit one
/// TLS record (2^14 plaintext bytes); the largest legitimate message seen is about 3 KB.
pub const MAX_MESSAGE_LEN: usize = 16384;
/// Largest body: [`MAX_MESSAGE_LEN`] less the header.
pub const MAX_BODY_LEN: usize = MAX_MESSAGE_LEN - HEADER_LEN;

/// How strictly peer input is judged.
///
/// Strict (the default) enforces every rule of the spec's project rules. Lenient accepts the
/// quirks real peers and the reference programs produce (spec sections 9 and 15), and keeps what
/// it accepts so that it re-encodes unchanged:
/// - command codes outside 1-23 (decoded as [`crate::RawMessage`]);
/// - element tags outside the tag table (kept as extra elements);
/// - a CERTIFICATE inner header whose marker is not 1 or whose inner length is off (capfd and
///   capfc skip those 5 bytes unchecked).
///
/// Both modes reject what no implementation can make sense of: truncation, lengths past the end,
/// duplicate tags, wrong fixed widths, strings without their NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Reject everything the spec's project rules reject.
    #[default]
    Strict,
    /// Accept the documented peer quirks.
    Lenient,
}

/// The 8-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The command.
    pub command: Command,
    /// The session id the server assigned in AUTH_REQUEST.
    pub session_id: u32,
    /// Body length in bytes, header excluded.
    pub length: u16,
}

impl Header {
    /// Parses and checks a header from the first 8 bytes of `bytes`: protocol id, size cap and
    /// (strict only) command code.
    #[inline]
    pub fn parse(bytes: &[u8], strictness: Strictness) -> Result<Header, Error> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::TruncatedHeader { have: bytes.len() });
        };
        if h[0] != PROTOCOL_ID {
            return Err(Error::BadProtocolId { found: h[0] });
        }
        let length = u16::from_be_bytes([h[6], h[7]]);
        let total = HEADER_LEN + usize::from(length);
        if total > MAX_MESSAGE_LEN {
            return Err(Error::MessageTooLarge { total });
        }
        let command = Command(h[1]);
        if strictness == Strictness::Strict && !command.is_known() {
            return Err(Error::UnknownCommand { command });
        }
        Ok(Header {
            command,
            session_id: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
            length,
        })
    }

    /// Length of the whole message, header included.
    pub const fn message_len(&self) -> usize {
        HEADER_LEN + self.length as usize
    }

    /// Appends the 8 header bytes.
    pub fn encode(&self, out: &mut alloc::vec::Vec<u8>) {
        out.push(PROTOCOL_ID);
        out.push(self.command.0);
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// One whole message, split into header and body but not yet into elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub header: Header,
    /// Exactly `header.length` body bytes.
    pub body: &'a [u8],
    /// The strictness the frame was parsed with, used for the layers above.
    pub strictness: Strictness,
}

impl<'a> Frame<'a> {
    /// Splits `bytes`, which must hold exactly one message, into header and body.
    #[inline]
    pub fn parse(bytes: &'a [u8], strictness: Strictness) -> Result<Frame<'a>, Error> {
        let header = Header::parse(bytes, strictness)?;
        let len = header.message_len();
        if bytes.len() < len {
            return Err(Error::TruncatedBody {
                declared: usize::from(header.length),
                available: bytes.len() - HEADER_LEN,
            });
        }
        if bytes.len() > len {
            return Err(Error::TrailingBytes {
                len,
                extra: bytes.len() - len,
            });
        }
        Ok(Frame {
            header,
            body: &bytes[HEADER_LEN..],
            strictness,
        })
    }

    /// Walks the body's elements (the TLV layer).
    #[inline]
    pub fn elements(&self) -> Elements<'a> {
        Elements::new(self.body, self.strictness)
    }
}
