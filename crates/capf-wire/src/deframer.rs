//! Streaming deframer: splits a byte stream (TLS reads of any size) into whole messages.

use alloc::vec::Vec;

use crate::error::Error;
use crate::frame::{Frame, HEADER_LEN, Header, MAX_MESSAGE_LEN, Strictness};

/// Splits a byte stream into [`Frame`]s, whatever the chunking: a header split across reads,
/// several messages in one read (spec section 1: a receiver must reassemble, unlike capfd).
///
/// A message that arrives whole in one input is returned borrowed from it, without copying; only
/// a message split across inputs is copied, and never more than one message of at most
/// [`MAX_MESSAGE_LEN`] bytes is buffered: the header is checked (protocol id, size cap, command)
/// as soon as its 8 bytes are in, before any body byte is kept.
///
/// Every error is final for the stream.
///
/// ```
/// use capf_wire::{Deframer, Message, Strictness};
///
/// let stream = [
///     &[0x55, 0x11, 0x00, 0x01, 0x23, 0x45, 0x00, 0x00][..], // REQUEST_IN_PROGRESS
///     // KEY_GEN_RESPONSE failure: REASON 7
///     &[0x55, 0x04, 0x00, 0x01, 0x23, 0x45, 0x00, 0x04, 0x01, 0x00, 0x01, 0x07][..],
/// ]
/// .concat();
/// let mut deframer = Deframer::new(Strictness::Strict);
/// let mut commands = Vec::new();
/// // Feed it one byte at a time, the worst chunking there is.
/// for chunk in stream.chunks(1) {
///     let mut input = chunk;
///     while !input.is_empty() {
///         let (used, frame) = deframer.push(input)?;
///         input = &input[used..];
///         if let Some(frame) = frame {
///             commands.push(Message::from_frame(&frame)?.command().0);
///         }
///     }
/// }
/// deframer.finish()?;
/// assert_eq!(commands, [17, 4]);
/// # Ok::<(), capf_wire::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Deframer {
    buf: Vec<u8>,
    strictness: Strictness,
    /// The buffer holds a message already returned; clear it before the next input.
    returned: bool,
}

impl Deframer {
    /// A deframer judging headers with `strictness`.
    pub fn new(strictness: Strictness) -> Self {
        Deframer {
            buf: Vec::new(),
            strictness,
            returned: false,
        }
    }

    /// Takes bytes from `input`: returns how many it used and the message they completed, if any.
    /// Call again with the rest of the input until it is used up.
    pub fn push<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Option<Frame<'a>>), Error> {
        if self.returned {
            self.buf.clear();
            self.returned = false;
        }
        if self.buf.is_empty() {
            if input.len() >= HEADER_LEN {
                let header = Header::parse(input, self.strictness)?;
                let len = header.message_len();
                if input.len() >= len {
                    // The whole message is here: hand it out without copying.
                    return Ok((
                        len,
                        Some(Frame {
                            header,
                            body: &input[HEADER_LEN..len],
                            strictness: self.strictness,
                        }),
                    ));
                }
            } else if input.is_empty() {
                return Ok((0, None));
            }
        }
        let mut used = 0;
        if self.buf.len() < HEADER_LEN {
            let take = (HEADER_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            used = take;
            if self.buf.len() < HEADER_LEN {
                return Ok((used, None));
            }
        }
        let header = Header::parse(&self.buf, self.strictness)?;
        let len = header.message_len();
        let take = (len - self.buf.len()).min(input.len() - used);
        self.buf.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.buf.len() < len {
            return Ok((used, None));
        }
        self.returned = true;
        Ok((
            used,
            Some(Frame {
                header,
                body: &self.buf[HEADER_LEN..len],
                strictness: self.strictness,
            }),
        ))
    }

    /// Frees the buffer of a message already returned, once the caller is done with it: a
    /// connection that waits minutes for its next message then holds no buffer (a phone
    /// generating its key, issue 19's memory per idle session).
    pub fn reclaim(&mut self) {
        if self.returned {
            self.buf = Vec::new();
            self.returned = false;
        }
    }

    /// Bytes of an incomplete message held.
    pub fn buffered(&self) -> usize {
        if self.returned { 0 } else { self.buf.len() }
    }

    /// The stream has ended: an error if it ended inside a message (framing broken, spec 9.3).
    pub fn finish(&self) -> Result<(), Error> {
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        if have < HEADER_LEN {
            return Err(Error::TruncatedHeader { have });
        }
        let header = Header::parse(&self.buf, self.strictness)?;
        Err(Error::TruncatedBody {
            declared: usize::from(header.length),
            available: have - HEADER_LEN,
        })
    }
}

const _: () = assert!(MAX_MESSAGE_LEN <= u16::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    const IN_PROGRESS: [u8; 8] = [0x55, 0x11, 0, 1, 0x23, 0x45, 0, 0];
    const END_SESSION_1: [u8; 12] = [0x55, 0x0f, 0, 1, 0x23, 0x45, 0, 4, 1, 0, 1, 1];

    #[test]
    fn returns_whole_messages_borrowed_from_the_input() {
        let stream = [&IN_PROGRESS[..], &END_SESSION_1[..]].concat();
        let mut d = Deframer::new(Strictness::Strict);
        let (used, frame) = d.push(&stream).unwrap();
        assert_eq!(used, 8);
        assert_eq!(frame.unwrap().body, &[] as &[u8]);
        let (used, frame) = d.push(&stream[8..]).unwrap();
        assert_eq!(used, 12);
        assert_eq!(frame.unwrap().body, &END_SESSION_1[8..]);
        assert_eq!(d.buffered(), 0);
        d.finish().unwrap();
    }

    #[test]
    fn reassembles_a_header_split_across_reads() {
        let mut d = Deframer::new(Strictness::Strict);
        assert_eq!(d.push(&END_SESSION_1[..5]).unwrap(), (5, None));
        assert_eq!(d.buffered(), 5);
        assert_eq!(d.push(&END_SESSION_1[5..10]).unwrap(), (5, None));
        let (used, frame) = d.push(&END_SESSION_1[10..]).unwrap();
        assert_eq!(used, 2);
        assert_eq!(frame.unwrap().header.command, crate::Command::END_SESSION);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn takes_only_what_completes_the_buffered_message() {
        let mut d = Deframer::new(Strictness::Strict);
        d.push(&END_SESSION_1[..3]).unwrap();
        let rest = [&END_SESSION_1[3..], &IN_PROGRESS[..]].concat();
        let (used, frame) = d.push(&rest).unwrap();
        assert_eq!(used, 9);
        assert!(frame.is_some());
        let (used, frame) = d.push(&rest[9..]).unwrap();
        assert_eq!((used, frame.map(|f| f.header.length)), (8, Some(0)));
    }

    #[test]
    fn rejects_an_oversized_header_before_buffering_its_body() {
        let mut d = Deframer::new(Strictness::Strict);
        let header = [0x55, 0x02, 0, 1, 0x23, 0x45, 0x3f, 0xf9];
        assert_eq!(
            d.push(&header).unwrap_err(),
            Error::MessageTooLarge { total: 16385 }
        );
    }

    #[test]
    fn end_of_stream_inside_a_message_is_framing_broken() {
        let mut d = Deframer::new(Strictness::Strict);
        d.push(&END_SESSION_1[..10]).unwrap();
        let err = d.finish().unwrap_err();
        assert_eq!(
            err,
            Error::TruncatedBody {
                declared: 4,
                available: 2
            }
        );
        assert!(err.is_framing_broken());
        let mut d = Deframer::new(Strictness::Strict);
        d.push(&END_SESSION_1[..3]).unwrap();
        assert_eq!(d.finish().unwrap_err(), Error::TruncatedHeader { have: 3 });
    }

    #[test]
    fn lenient_deframer_accepts_unknown_command_codes() {
        let msg = [0x55, 24, 0, 0, 0, 1, 0, 0];
        assert!(Deframer::new(Strictness::Strict).push(&msg).is_err());
        let mut d = Deframer::new(Strictness::Lenient);
        assert!(d.push(&msg).unwrap().1.is_some());
    }
}
