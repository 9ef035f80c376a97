//! The protobuf wire format at the byte level: a bounds-checked reader that
//! never panics on hostile input, and the few writers the encoder needs.
//! Varints come from prost, so their edge cases are prost's tested ones.

use prost::encoding::{WireType, decode_varint, encode_varint};

/// Wire type numbers, as they appear in a field key.
pub(crate) const VARINT: u8 = WireType::Varint as u8;
pub(crate) const FIXED64: u8 = WireType::SixtyFourBit as u8;
pub(crate) const LEN: u8 = WireType::LengthDelimited as u8;
pub(crate) const FIXED32: u8 = WireType::ThirtyTwoBit as u8;

/// Reads fields from one message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// One varint.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut rest = self.buf;
        let v = decode_varint(&mut rest).map_err(|_| "truncated or invalid varint".to_string())?;
        self.buf = rest;
        Ok(v)
    }

    /// A field key: (field number, wire type).
    pub fn key(&mut self) -> Result<(u32, u8), String> {
        let key = self.varint()?;
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(format!("invalid field number {tag}"));
        }
        Ok((tag as u32, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "field of {n} bytes overruns the {} left",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A length-delimited payload.
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| format!("length {len} is too large"))?;
        self.take(len)
    }

    /// Four little-endian bytes.
    pub fn fixed32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Eight little-endian bytes.
    pub fn fixed64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// Skips the value of a field this reader has no use for.
    pub fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

/// Appends a field key.
pub(crate) fn put_key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    encode_varint((u64::from(tag) << 3) | u64::from(wire), out);
}

/// Appends a varint field.
pub(crate) fn put_varint(out: &mut Vec<u8>, tag: u32, value: u64) {
    put_key(out, tag, VARINT);
    encode_varint(value, out);
}

/// Appends a length-delimited field.
pub(crate) fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, LEN);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_truncation_instead_of_panicking() {
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[0x05, 1, 2]).bytes().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .bytes()
                .is_err()
        );
        assert!(Reader::new(&[1, 2, 3]).fixed32().is_err());
        assert!(Reader::new(&[0x00]).key().is_err());
        assert!(Reader::new(&[]).skip(3).is_err());
    }

    #[test]
    fn writer_and_reader_agree() {
        let mut out = Vec::new();
        put_varint(&mut out, 7, u64::MAX);
        put_bytes(&mut out, 300, b"hello");
        let mut r = Reader::new(&out);
        assert_eq!(r.key(), Ok((7, VARINT)));
        assert_eq!(r.varint(), Ok(u64::MAX));
        assert_eq!(r.key(), Ok((300, LEN)));
        assert_eq!(r.bytes(), Ok(&b"hello"[..]));
        assert!(r.is_empty());
    }
}
