//! [`Writer`]: one message being written in either encoding, straight into its buffer:
//! MessagePack headers or JSON punctuation as the encoding asks, stored values spliced in.

use super::Encoding;
use crate::{Packed, Value, json, msgpack};

/// A message being written: MessagePack headers or JSON punctuation, as the encoding asks.
pub(super) struct Writer {
    encoding: Encoding,
    out: Vec<u8>,
    /// JSON only: the open containers, innermost last, to know where a comma goes.
    open: Vec<Open>,
}

#[derive(Clone, Copy)]
struct Open {
    list: bool,
    empty: bool,
}

impl Writer {
    pub(super) fn new(encoding: Encoding, capacity: usize) -> Writer {
        Writer {
            encoding,
            out: Vec::with_capacity(capacity),
            open: Vec::new(),
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.out
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// Drops what was written after `len` bytes: a whole element written since then, so
    /// that the open containers are as they were (the page writer takes back a document
    /// that went over its budget this way).
    pub(super) fn truncate(&mut self, len: usize) {
        self.out.truncate(len);
    }

    /// Opens a map whose length is set later with [`Writer::set_small_map_len`]: at most 15
    /// members. Returns where its header is.
    pub(super) fn map_later(&mut self) -> usize {
        self.map(0);
        // MessagePack writes no separator: the header is the last byte written.
        self.out.len().saturating_sub(1)
    }

    /// Sets the length of a map opened with [`Writer::map_later`] (MessagePack only needs it).
    pub(super) fn set_small_map_len(&mut self, at: usize, len: usize) {
        if self.encoding == Encoding::MsgPack
            && let Some(header) = self.out.get_mut(at)
        {
            *header = 0x80 | (len.min(15) as u8);
        }
    }

    /// Opens a list whose length is set later with [`Writer::set_list_len`]: at most
    /// 65535 elements. Returns where its header is.
    pub(super) fn list_later(&mut self) -> usize {
        self.before_value();
        let at = self.out.len();
        match self.encoding {
            // The 16-bit form, shortened at the end if the list holds fewer than 16.
            Encoding::MsgPack => self.out.extend_from_slice(&[0xdc, 0, 0]),
            Encoding::Json => {
                self.out.push(b'[');
                self.open.push(Open {
                    list: true,
                    empty: true,
                });
            }
        }
        at
    }

    /// Sets the length of a list opened with [`Writer::list_later`], in the shortest form
    /// (as the canonical codec writes it): below 16 elements the header shrinks to one
    /// byte, moving what follows it.
    pub(super) fn set_list_len(&mut self, at: usize, len: usize) {
        if self.encoding != Encoding::MsgPack || at + 3 > self.out.len() {
            return;
        }
        if len < 16 {
            self.out[at] = 0x90 | len as u8;
            self.out.drain(at + 1..at + 3);
        } else {
            let len = u16::try_from(len).unwrap_or(u16::MAX);
            self.out[at + 1..at + 3].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// A JSON list element after the first needs a comma; map values follow their key.
    fn before_value(&mut self) {
        if let Some(top) = self.open.last_mut()
            && top.list
        {
            if !top.empty {
                self.out.push(b',');
            }
            top.empty = false;
        }
    }

    /// Opens a map of `len` members; close it with [`Writer::end`].
    pub(super) fn map(&mut self, len: usize) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => pack::header(&mut self.out, len, 0x80, 16, 0xde),
            Encoding::Json => {
                self.out.push(b'{');
                self.open.push(Open {
                    list: false,
                    empty: true,
                });
            }
        }
    }

    /// Opens a list of `len` elements; close it with [`Writer::end`].
    pub(super) fn list(&mut self, len: usize) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => pack::header(&mut self.out, len, 0x90, 16, 0xdc),
            Encoding::Json => {
                self.out.push(b'[');
                self.open.push(Open {
                    list: true,
                    empty: true,
                });
            }
        }
    }

    /// Closes the innermost map or list.
    pub(super) fn end(&mut self) {
        if let Some(open) = self.open.pop() {
            self.out.push(if open.list { b']' } else { b'}' });
        }
    }

    /// Writes a member name. Names are the protocol's fixed ASCII words, which need no
    /// JSON escaping.
    pub(super) fn key(&mut self, name: &'static str) {
        match self.encoding {
            Encoding::MsgPack => pack::str(&mut self.out, name),
            Encoding::Json => {
                if let Some(top) = self.open.last_mut() {
                    if !top.empty {
                        self.out.push(b',');
                    }
                    top.empty = false;
                }
                self.out.push(b'"');
                self.out.extend_from_slice(name.as_bytes());
                self.out.extend_from_slice(b"\":");
            }
        }
    }

    pub(super) fn str(&mut self, text: &str) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => pack::str(&mut self.out, text),
            // serde_json writes through io::Write, and writing into a Vec cannot fail:
            // there is no error to handle.
            Encoding::Json => {
                let _cannot_fail = serde_json::to_writer(&mut self.out, text);
            }
        }
    }

    pub(super) fn uint(&mut self, number: u64) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => pack::uint(&mut self.out, number),
            Encoding::Json => decimal(&mut self.out, number),
        }
    }

    pub(super) fn bool(&mut self, flag: bool) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.push(if flag { 0xc3 } else { 0xc2 }),
            Encoding::Json => self
                .out
                .extend_from_slice(if flag { b"true" } else { b"false" }),
        }
    }

    pub(super) fn nil(&mut self) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.push(0xc0),
            Encoding::Json => self.out.extend_from_slice(b"null"),
        }
    }

    /// Splices a stored value in without decoding it.
    pub(super) fn packed(&mut self, value: &Packed) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.extend_from_slice(value.as_bytes()),
            Encoding::Json => value.write_json(&mut self.out),
        }
    }

    pub(super) fn value(&mut self, value: &Value) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => msgpack::encode_into(value, &mut self.out),
            Encoding::Json => json::encode_into(value, &mut self.out),
        }
    }
}

/// Writes `number` in decimal without going through a formatter.
fn decimal(out: &mut Vec<u8>, mut number: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (number % 10) as u8;
        number /= 10;
        start -= 1;
        if number == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The few MessagePack headers the messages need, in their shortest forms (as the
/// canonical codec writes them). Written by hand because writing into a `Vec` cannot
/// fail, so there is no `Result` to carry.
mod pack {
    /// A map or array header: the fix form for short lengths, else the 16- or 32-bit form
    /// (`long` is the 16-bit marker, the 32-bit one follows it).
    pub(super) fn header(out: &mut Vec<u8>, len: usize, fix: u8, fix_limit: usize, long: u8) {
        if len < fix_limit {
            out.push(fix | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(long);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            // A message cannot hold 4 billion elements: memory runs out long before.
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            out.push(long + 1);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }

    pub(super) fn str(out: &mut Vec<u8>, text: &str) {
        let len = text.len();
        if len < 32 {
            out.push(0xa0 | len as u8);
        } else if let Ok(len) = u8::try_from(len) {
            out.extend_from_slice(&[0xd9, len]);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(0xda);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            out.push(0xdb);
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(text.as_bytes());
    }

    pub(super) fn uint(out: &mut Vec<u8>, number: u64) {
        if number < 128 {
            out.push(number as u8);
        } else if let Ok(number) = u8::try_from(number) {
            out.extend_from_slice(&[0xcc, number]);
        } else if let Ok(number) = u16::try_from(number) {
            out.push(0xcd);
            out.extend_from_slice(&number.to_be_bytes());
        } else if let Ok(number) = u32::try_from(number) {
            out.push(0xce);
            out.extend_from_slice(&number.to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&number.to_be_bytes());
        }
    }
}
