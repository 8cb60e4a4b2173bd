//! The TLV layer: elements of a body (spec section 2.2).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::codes::Tag;
use crate::error::Error;
use crate::frame::{HEADER_LEN, Strictness};

/// Length of an element header: tag (u8) and value length (u16).
pub const ELEMENT_HEADER_LEN: usize = 3;
/// Most elements one message may carry. The largest real message (AUTH_RESPONSE with certificate
/// proof and SUDI data) carries 8; 32 leaves room for unknown extras in lenient mode and bounds
/// the element order kept for re-encoding.
pub const MAX_ELEMENTS: usize = 32;

/// One element as it is on the wire: tag and raw value.
#[derive(Debug, Clone, Eq)]
pub struct RawElement<'a> {
    /// The tag.
    pub tag: Tag,
    /// The value bytes (the element length is their count).
    pub value: Cow<'a, [u8]>,
    /// Offset of the element header from the start of the message (0 for elements built locally).
    pub offset: usize,
}

/// Equality of tag and value; where the element was found is not part of it.
impl PartialEq for RawElement<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.tag == other.tag && self.value == other.value
    }
}

/// An element found by the walk, borrowed from the body (the decoders' working form).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    pub(crate) tag: Tag,
    pub(crate) value: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> Slot<'a> {
    pub(crate) fn into_raw(self) -> RawElement<'a> {
        RawElement {
            tag: self.tag,
            value: Cow::Borrowed(self.value),
            offset: self.offset,
        }
    }
}

impl<'a> RawElement<'a> {
    pub(crate) fn slot(&self) -> Slot<'_> {
        Slot {
            tag: self.tag,
            value: &self.value,
            offset: self.offset,
        }
    }

    /// An element built locally.
    pub fn new(tag: Tag, value: impl Into<Cow<'a, [u8]>>) -> Self {
        RawElement {
            tag,
            value: value.into(),
            offset: 0,
        }
    }

    /// Appends the element (header and value).
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_element_header(out, self.tag, self.value.len());
        out.extend_from_slice(&self.value);
    }

    /// The same element owning its bytes.
    pub fn into_owned(self) -> RawElement<'static> {
        RawElement {
            tag: self.tag,
            value: Cow::Owned(self.value.into_owned()),
            offset: self.offset,
        }
    }
}

/// Appends an element header. Callers guarantee `len` fits u16 (constructors validate sizes).
pub(crate) fn write_element_header(out: &mut Vec<u8>, tag: Tag, len: usize) {
    out.push(tag.0);
    // Lengths are validated against MAX_MESSAGE_LEN (< u16::MAX) when values are built or decoded.
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

/// A set of tags, one bit each (no allocation), for duplicate detection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagSet([u64; 4]);

impl TagSet {
    /// Adds a tag; returns false if it was already there.
    #[inline]
    pub fn insert(&mut self, tag: Tag) -> bool {
        let (word, bit) = (usize::from(tag.0 / 64), tag.0 % 64);
        let had = self.0[word] & (1 << bit) != 0;
        self.0[word] |= 1 << bit;
        !had
    }

    /// Whether the tag is in the set.
    pub fn contains(&self, tag: Tag) -> bool {
        self.0[usize::from(tag.0 / 64)] & (1 << (tag.0 % 64)) != 0
    }
}

/// Iterator over a body's elements, checking bounds, duplicates, the element count, and
/// (strict) unknown tags. It stops after the first error.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    body: &'a [u8],
    pos: usize,
    count: usize,
    seen: TagSet,
    strictness: Strictness,
    failed: bool,
}

impl<'a> Elements<'a> {
    /// Walks `body` (offsets are reported as if it followed an 8-byte header).
    pub fn new(body: &'a [u8], strictness: Strictness) -> Self {
        Elements {
            body,
            pos: 0,
            count: 0,
            seen: TagSet::default(),
            strictness,
            failed: false,
        }
    }

    /// The next element, `None` at the end of the body. After an error, always `None`.
    #[inline]
    pub(crate) fn step(&mut self) -> Result<Option<Slot<'a>>, Error> {
        if self.failed || self.pos >= self.body.len() {
            return Ok(None);
        }
        let item = self.next_element();
        self.failed = item.is_err();
        item.map(Some)
    }

    #[inline]
    fn next_element(&mut self) -> Result<Slot<'a>, Error> {
        let offset = HEADER_LEN + self.pos;
        let rest = &self.body[self.pos..];
        let Some(&[tag, hi, lo]) = rest.first_chunk::<ELEMENT_HEADER_LEN>() else {
            return Err(Error::TruncatedElementHeader {
                offset,
                remaining: rest.len(),
            });
        };
        let tag = Tag(tag);
        let declared = usize::from(u16::from_be_bytes([hi, lo]));
        let remaining = rest.len() - ELEMENT_HEADER_LEN;
        if declared > remaining {
            return Err(Error::ElementPastEnd {
                offset,
                tag,
                declared,
                remaining,
            });
        }
        if self.strictness == Strictness::Strict && !tag.is_known() {
            return Err(Error::UnknownTag { offset, tag });
        }
        if !self.seen.insert(tag) {
            return Err(Error::DuplicateTag { offset, tag });
        }
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return Err(Error::TooManyElements { offset });
        }
        let value = &rest[ELEMENT_HEADER_LEN..ELEMENT_HEADER_LEN + declared];
        self.pos += ELEMENT_HEADER_LEN + declared;
        Ok(Slot { tag, value, offset })
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<RawElement<'a>, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.step().map(|s| s.map(Slot::into_raw)).transpose()
    }
}

/// The order elements appear in, kept inline (no allocation) so a decoded message re-encodes
/// byte-exact and a built one follows the spec's reference order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ElementOrder {
    tags: [Tag; MAX_ELEMENTS],
    len: u8,
}

impl Default for ElementOrder {
    fn default() -> Self {
        ElementOrder {
            tags: [Tag(0); MAX_ELEMENTS],
            len: 0,
        }
    }
}

impl core::fmt::Debug for ElementOrder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl ElementOrder {
    /// The tags in order.
    pub fn as_slice(&self) -> &[Tag] {
        &self.tags[..usize::from(self.len)]
    }

    /// Appends a tag (decoding). The element walk enforces [`MAX_ELEMENTS`] before this is reached.
    #[inline]
    pub(crate) fn push(&mut self, tag: Tag) {
        if usize::from(self.len) < MAX_ELEMENTS {
            self.tags[usize::from(self.len)] = tag;
            self.len += 1;
        }
    }

    /// Places `tag` where `reference` puts it relative to the tags already present (building);
    /// a tag already present stays where it is.
    pub(crate) fn insert(&mut self, tag: Tag, reference: &[Tag]) {
        if self.as_slice().contains(&tag) || usize::from(self.len) >= MAX_ELEMENTS {
            return;
        }
        let rank = |t: Tag| reference.iter().position(|r| *r == t).unwrap_or(usize::MAX);
        let at = self
            .as_slice()
            .iter()
            .position(|t| rank(*t) > rank(tag))
            .unwrap_or(usize::from(self.len));
        let len = usize::from(self.len);
        self.tags.copy_within(at..len, at + 1);
        self.tags[at] = tag;
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PHONE_ORDER;

    #[test]
    fn insert_places_tags_in_reference_order() {
        let mut order = ElementOrder::default();
        for tag in [Tag::DEVICE_NAME, Tag::REASON, Tag::PASSWORD, Tag::VERSION] {
            order.insert(tag, PHONE_ORDER);
        }
        assert_eq!(
            order.as_slice(),
            [Tag::REASON, Tag::VERSION, Tag::PASSWORD, Tag::DEVICE_NAME]
        );
        order.insert(Tag::PASSWORD, PHONE_ORDER);
        assert_eq!(
            order.as_slice().len(),
            4,
            "a present tag is not added twice"
        );
    }

    #[test]
    fn tag_set_detects_repeats_across_all_256_tags() {
        let mut set = TagSet::default();
        for t in 0..=255u8 {
            assert!(set.insert(Tag(t)));
        }
        for t in 0..=255u8 {
            assert!(set.contains(Tag(t)));
            assert!(!set.insert(Tag(t)));
        }
    }

    #[test]
    fn rejects_more_elements_than_the_limit() {
        let mut body = alloc::vec::Vec::new();
        for t in 0..=MAX_ELEMENTS as u8 {
            RawElement::new(Tag(100 + t), &[][..]).encode(&mut body);
        }
        let err = Elements::new(&body, Strictness::Lenient)
            .find_map(Result::err)
            .unwrap();
        assert_eq!(
            err,
            Error::TooManyElements {
                offset: 8 + 3 * MAX_ELEMENTS
            }
        );
    }

    #[test]
    fn stops_after_the_first_error() {
        let body = [0x0e, 0, 0, 0x0e];
        let mut it = Elements::new(&body, Strictness::Strict);
        assert!(matches!(it.next(), Some(Err(Error::UnknownTag { .. }))));
        assert!(it.next().is_none());
    }
}
