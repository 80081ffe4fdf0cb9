//! Decoding a MessagePack message without building its document values: the message's
//! own structure (its maps, the `changes` / `results` lists, a conflict's `current`) is
//! read into a [`Value`], but each document's `value` member is only checked in place and
//! kept as [`Packed`] bytes, its canonical input copied as it is.
//!
//! A catch-up page holds thousands of documents; building each value as a tree only to
//! encode it again was most of a client's catch-up time. The value's slot in the message
//! tree holds `Value::UInt(n)`, the index of its bytes in [`Slots`], which the readers in
//! `read` resolve; the checks (depth, extensions, UTF-8, keywords, instants) are the
//! codec's own, through its reader.

use crate::error::Seg;
use std::cell::RefCell;

use crate::msgpack::reader::{Reader, Token};
use crate::msgpack::{inner_depth, read_value, skip_value};
use crate::value::entry_seg;
use crate::{CodecError, Packed, Value, msgpack};

/// The document values taken out of a message, or none for a message decoded whole
/// (tagged JSON), whose values are still in the tree.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    table: Option<Vec<Packed>>,
    /// The buffer that a tree's values are encoded through, reused across documents.
    scratch: RefCell<Vec<u8>>,
}

impl Slots {
    /// The document value that `value` stands for at a `value` member.
    pub(crate) fn packed(&self, value: &Value) -> Packed {
        let held = match (&self.table, value) {
            (Some(table), Value::UInt(index)) => usize::try_from(*index)
                .ok()
                .and_then(|index| table.get(index)),
            _ => None,
        };
        // Outside a slot (a JSON message) the member is the value itself.
        held.cloned()
            .unwrap_or_else(|| Packed::from_value_in(value, &mut self.scratch.borrow_mut()))
    }
}

/// Where the walker is in a message: which members hold further message structure and
/// which one holds a document value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The message map.
    Top,
    /// A list of documents (`changes`).
    Docs,
    /// A document map (an item of `changes`, or a conflict's `current`).
    Doc,
    /// The list of push results (`results`).
    Results,
    /// One push result map.
    Result,
    /// Anything else: decoded as a plain value.
    Other,
}

/// Decodes one message that fills `bytes`, containers nested at most `max_depth` (the
/// values' nesting counted from the message's top, as [`msgpack::decode`] counts it).
pub(crate) fn decode(bytes: &[u8], max_depth: usize) -> Result<(Value, Slots), CodecError> {
    let mut walker = Walker {
        reader: Reader::new(bytes),
        bytes,
        max_depth,
        table: Vec::new(),
    };
    let message = walker.node(At::Top, max_depth).map_err(CodecError::top)?;
    let used = walker.reader.pos();
    if used != bytes.len() {
        // The codec's own message for bytes left over.
        msgpack::decode(bytes, max_depth)?;
    }
    let slots = Slots {
        table: Some(walker.table),
        scratch: RefCell::default(),
    };
    Ok((message, slots))
}

struct Walker<'a> {
    reader: Reader<'a>,
    bytes: &'a [u8],
    max_depth: usize,
    table: Vec<Packed>,
}

impl Walker<'_> {
    fn node(&mut self, at: At, depth_left: usize) -> Result<Value, CodecError> {
        let max_depth = self.max_depth;
        if at == At::Other {
            return read_value(&mut self.reader, depth_left, max_depth);
        }
        let mut ahead = self.reader.clone();
        match (ahead.next()?, at) {
            (Token::Map(len), At::Top | At::Doc | At::Result) => {
                self.reader = ahead;
                let inner = inner_depth(depth_left, max_depth)?;
                let mut pairs = Vec::with_capacity(len.min(self.reader.remaining() / 2));
                for index in 0..len {
                    let key = read_value(&mut self.reader, inner, max_depth)
                        .map_err(|e| e.within(Seg::EntryKey(index)))?;
                    let value = self
                        .member(at, &key, inner)
                        .map_err(|e| e.within(entry_seg(&key, index)))?;
                    pairs.push((key, value));
                }
                Ok(Value::Map(pairs))
            }
            (Token::Array(len), At::Docs | At::Results) => {
                self.reader = ahead;
                let inner = inner_depth(depth_left, max_depth)?;
                let item = if at == At::Docs { At::Doc } else { At::Result };
                let mut items = Vec::with_capacity(len.min(self.reader.remaining()));
                for index in 0..len {
                    items.push(
                        self.node(item, inner)
                            .map_err(|e| e.within(Seg::Index(index)))?,
                    );
                }
                Ok(Value::List(items))
            }
            // Not the expected shape: the message readers name what is wrong.
            _ => read_value(&mut self.reader, depth_left, max_depth),
        }
    }

    /// The member `key` of a map at `at`, with `depth_left` for it.
    fn member(&mut self, at: At, key: &Value, depth_left: usize) -> Result<Value, CodecError> {
        let name = match key {
            Value::Str(name) => name.as_str(),
            _ => "",
        };
        let next = match (at, name) {
            (At::Top, "changes") => At::Docs,
            (At::Top, "results") => At::Results,
            (At::Result, "current") => At::Doc,
            (At::Doc, "value") => return self.slot(depth_left),
            _ => At::Other,
        };
        self.node(next, depth_left)
    }

    /// Checks the document value here and keeps its bytes; returns its placeholder.
    fn slot(&mut self, depth_left: usize) -> Result<Value, CodecError> {
        let start = self.reader.pos();
        let canonical_before = self.reader.canonical;
        self.reader.canonical = true;
        if let Err(error) = skip_value(&mut self.reader, depth_left, self.max_depth) {
            // Repeats were compared by their bytes, which in other than the canonical forms
            // can find a later repeat first: the decoder names the first, as elsewhere.
            if self.reader.canonical {
                return Err(error);
            }
            let rest = self.bytes.get(start..).unwrap_or_default();
            return Err(
                read_value(&mut Reader::new(rest), depth_left, self.max_depth)
                    .err()
                    .unwrap_or(error),
            );
        }
        let canonical = self.reader.canonical;
        self.reader.canonical = canonical_before && canonical;
        let bytes = self
            .bytes
            .get(start..self.reader.pos())
            .ok_or_else(CodecError::incomplete)?;
        let packed = if canonical {
            Packed::from_checked(bytes)
        } else {
            // Valid but in a longer form than needed (a float 32, ...): re-encoded.
            Packed::from_value(&msgpack::decode(bytes, depth_left)?)
        };
        let index = self.table.len();
        self.table.push(packed);
        Ok(Value::UInt(index as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Encoding, PullResponse, PushResponse, PushResult};

    /// `{"group": "g", "epoch": "e", "changes": [DOC], "seq": 1, "more": false}` with the
    /// document's value given as raw bytes.
    fn pull_body(value: &[u8]) -> Vec<u8> {
        let doc = Value::Map(vec![
            ("key".into(), "k".into()),
            ("version".into(), 1u64.into()),
            ("seq".into(), 1u64.into()),
            ("value".into(), Value::Nil),
        ]);
        let body = msgpack::encode(&Value::Map(vec![
            ("group".into(), "g".into()),
            ("epoch".into(), "e".into()),
            ("changes".into(), Value::List(vec![doc])),
            ("seq".into(), 1u64.into()),
            ("more".into(), false.into()),
        ]));
        // The nil (0xc0) is the only one in the body: swap the raw value in for it.
        let at = body
            .iter()
            .position(|&byte| byte == 0xc0)
            .unwrap_or(body.len());
        let (head, tail) = body.split_at(at);
        [head, value, tail.get(1..).unwrap_or_default()].concat()
    }

    fn first_value(body: &[u8]) -> Result<Vec<u8>, String> {
        let page = PullResponse::decode(body, Encoding::MsgPack).map_err(|e| e.message)?;
        let doc = page.changes.first().ok_or("no document")?;
        Ok(doc
            .value
            .as_ref()
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default())
    }

    #[test]
    fn values_are_kept_as_bytes_and_non_canonical_ones_re_encoded() {
        let canonical = msgpack::encode(&Value::list([1.5]));
        assert_eq!(first_value(&pull_body(&canonical)), Ok(canonical.clone()));
        let float32 = [0x91, 0xca, 0x3f, 0xc0, 0x00, 0x00];
        assert_eq!(first_value(&pull_body(&float32)), Ok(canonical));
    }

    #[test]
    fn a_bad_value_is_refused_with_its_path() {
        // A keyword extension that is not a valid keyword, and a string that is not UTF-8.
        for bad in [&[0xd4, 0x02, b' '][..], &[0xa1, 0xff]] {
            let error = first_value(&pull_body(bad)).unwrap_err();
            assert!(error.starts_with("body: changes[0].value"), "{error}");
        }
        let error = first_value(&[pull_body(&[0x01]), vec![0x01]].concat()).unwrap_err();
        assert!(error.contains("1 bytes after the value"), "{error}");
    }

    #[test]
    fn a_repeat_in_a_value_not_in_canonical_form_is_named_as_the_decoder_names_it() {
        // A set of 5 (written as uint 8), 5, 1, 1: the first repeat is [1], not [3].
        let set = [0xc7, 0x06, 0x03, 0x94, 0xcc, 0x05, 0x05, 0x01, 0x01];
        let error = first_value(&pull_body(&set)).unwrap_err();
        assert_eq!(
            error,
            "body: changes[0].value[1]: duplicate set element (equal to [0])"
        );
        let in_a_map = [&[0x81, 0xa1, b'a'][..], &set].concat();
        let error = first_value(&pull_body(&in_a_map)).unwrap_err();
        assert_eq!(
            error,
            "body: changes[0].value.a[1]: duplicate set element (equal to [0])"
        );
    }

    #[test]
    fn a_conflicts_current_value_is_kept_as_bytes() {
        let current = crate::wire::Doc {
            key: "k".into(),
            version: 2,
            seq: 9,
            value: Some(Packed::from_value(&Value::list([1, 2]))),
        };
        let response = PushResponse {
            group: "g".into(),
            epoch: "e".into(),
            results: vec![PushResult::Conflict {
                key: "k".into(),
                current: Some(current),
            }],
            seq: 9,
        };
        for encoding in [Encoding::MsgPack, Encoding::Json] {
            let decoded = PushResponse::decode(&response.encode(encoding), encoding);
            assert_eq!(decoded.as_ref(), Ok(&response));
        }
    }
}
