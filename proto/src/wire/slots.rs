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
//!
//! The items of a top-level `changes` list (a pull page, a `changes` frame) are read
//! straight into [`Doc`]s: no map of members, no member names copied, only the key. An
//! item that is not a well-formed document is read again as a tree, for the readers in
//! `read` to refuse with the message they always gave. A client that keeps values in
//! memory asks for each value decoded in the same reading (`keep_values`), rather than
//! checked here and decoded from its bytes later.

use crate::error::Seg;
use std::cell::RefCell;

use crate::msgpack::reader::{Reader, Token};
use crate::msgpack::{inner_depth, read_value, skip_value};
use crate::value::entry_seg;
use crate::wire::Doc;
use crate::{CodecError, Packed, Value, msgpack};

/// The document values taken out of a message, or none for a message decoded whole
/// (tagged JSON), whose values are still in the tree.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    table: Option<Vec<Packed>>,
    /// The items of the message's top-level `changes` list, read straight into documents
    /// (its place in the tree holds an empty list); taken once by the message reader.
    changes: RefCell<Option<Vec<DocItem>>>,
    /// The buffer that a tree's values are encoded through, reused across documents.
    scratch: RefCell<Vec<u8>>,
}

/// One item of a top-level `changes` list.
#[derive(Debug)]
pub(crate) enum DocItem {
    /// A well-formed document, read without building its map; with its value decoded as
    /// well when the message was decoded keeping values.
    Read(Doc, Option<Value>),
    /// Anything else, as a tree, for the message reader to check and name what is wrong.
    Tree(Value),
}

impl Slots {
    /// The items of the top-level `changes` list, when it was read into documents (a
    /// MessagePack message); `None` for a JSON message, whose list is in the tree.
    pub(crate) fn take_changes(&self) -> Option<Vec<DocItem>> {
        self.changes.borrow_mut().take()
    }

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
/// With `keep_values`, the values of the documents of a top-level `changes` list are
/// decoded as well as kept as bytes, in the same reading (see [`DocItem::Read`]).
pub(crate) fn decode(
    bytes: &[u8],
    max_depth: usize,
    keep_values: bool,
) -> Result<(Value, Slots), CodecError> {
    let mut walker = Walker {
        reader: Reader::new(bytes),
        bytes,
        max_depth,
        table: Vec::new(),
        changes: None,
        keep_values,
    };
    let message = walker.node(At::Top, max_depth).map_err(CodecError::top)?;
    let used = walker.reader.pos();
    if used != bytes.len() {
        // The codec's own message for bytes left over.
        msgpack::decode(bytes, max_depth)?;
    }
    let slots = Slots {
        table: Some(walker.table),
        changes: RefCell::new(walker.changes),
        scratch: RefCell::default(),
    };
    Ok((message, slots))
}

struct Walker<'a> {
    reader: Reader<'a>,
    bytes: &'a [u8],
    max_depth: usize,
    table: Vec<Packed>,
    changes: Option<Vec<DocItem>>,
    keep_values: bool,
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
            (Token::Array(len), At::Docs) => {
                self.reader = ahead;
                let inner = inner_depth(depth_left, max_depth)?;
                let mut items = Vec::with_capacity(len.min(self.reader.remaining()));
                for index in 0..len {
                    items.push(
                        self.doc_item(inner)
                            .map_err(|e| e.within(Seg::Index(index)))?,
                    );
                }
                self.changes = Some(items);
                Ok(Value::List(Vec::new()))
            }
            (Token::Array(len), At::Results) => {
                self.reader = ahead;
                let inner = inner_depth(depth_left, max_depth)?;
                let mut items = Vec::with_capacity(len.min(self.reader.remaining()));
                for index in 0..len {
                    items.push(
                        self.node(At::Result, inner)
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

    /// One item of a `changes` list: a well-formed document is read straight into a
    /// [`Doc`] (no map of members built, no text copied but its key); anything else is
    /// read again as a tree, so that the message reader reports it as it always has.
    fn doc_item(&mut self, depth_left: usize) -> Result<DocItem, CodecError> {
        let start = self.reader.clone();
        if let Some((doc, value)) = self.plain_doc(depth_left) {
            return Ok(DocItem::Read(doc, value));
        }
        self.reader = start;
        self.node(At::Doc, depth_left).map(DocItem::Tree)
    }

    /// A document map with a string `key`, integers >= 0 `version` and `seq`, and either
    /// a valid `value` or `deleted: true`, each member once (others are checked and
    /// skipped); `None` for anything else, including bytes that do not decode. With its
    /// value decoded when the walker keeps values.
    fn plain_doc(&mut self, depth_left: usize) -> Option<(Doc, Option<Value>)> {
        let Ok(Token::Map(len)) = self.reader.next() else {
            return None;
        };
        let inner = inner_depth(depth_left, self.max_depth).ok()?;
        let (mut key, mut version, mut seq, mut deleted, mut value, mut decoded) =
            (None, None, None, None, None, None);
        for _ in 0..len {
            let Ok(Token::Str(name)) = self.reader.next() else {
                return None;
            };
            let fresh = match name {
                "key" => match self.reader.next() {
                    Ok(Token::Str(text)) => key.replace(text).is_none(),
                    _ => return None,
                },
                "version" => version.replace(self.uint()?).is_none(),
                "seq" => seq.replace(self.uint()?).is_none(),
                "deleted" => match self.reader.next() {
                    Ok(Token::Bool(flag)) => deleted.replace(flag).is_none(),
                    _ => return None,
                },
                "value" if self.keep_values => {
                    let (packed, read) = self.packed_and_value(inner).ok()?;
                    decoded = Some(read);
                    value.replace(packed).is_none()
                }
                "value" => value.replace(self.packed(inner).ok()?).is_none(),
                _ => skip_value(&mut self.reader, inner, self.max_depth).is_ok(),
            };
            if !fresh {
                return None;
            }
        }
        let value = match (value, deleted == Some(true)) {
            (Some(value), false) => Some(value),
            (None, true) => None,
            _ => return None,
        };
        let doc = Doc {
            key: key?.to_owned(),
            version: version?,
            seq: seq?,
            value,
        };
        Some((doc, decoded))
    }

    /// An integer >= 0, whichever of the two integer forms holds it.
    fn uint(&mut self) -> Option<u64> {
        match self.reader.next().ok()? {
            Token::UInt(number) => Some(number),
            Token::Int(number) => u64::try_from(number).ok(),
            _ => None,
        }
    }

    /// Checks the document value here and keeps its bytes; returns its placeholder.
    fn slot(&mut self, depth_left: usize) -> Result<Value, CodecError> {
        let packed = self.packed(depth_left)?;
        let index = self.table.len();
        self.table.push(packed);
        Ok(Value::UInt(index as u64))
    }

    /// Reads the document value here, once, into both its canonical bytes and a [`Value`].
    fn packed_and_value(&mut self, depth_left: usize) -> Result<(Packed, Value), CodecError> {
        let start = self.reader.pos();
        let canonical_before = self.reader.canonical;
        self.reader.canonical = true;
        let value = read_value(&mut self.reader, depth_left, self.max_depth)?;
        let canonical = self.reader.canonical;
        self.reader.canonical = canonical_before && canonical;
        let bytes = self
            .bytes
            .get(start..self.reader.pos())
            .ok_or_else(CodecError::incomplete)?;
        let packed = if canonical {
            Packed::from_checked(bytes)
        } else {
            Packed::from_value(&value)
        };
        Ok((packed, value))
    }

    /// Checks the document value here and returns its canonical bytes.
    fn packed(&mut self, depth_left: usize) -> Result<Packed, CodecError> {
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
        Ok(if canonical {
            Packed::from_checked(bytes)
        } else {
            // Valid but in a longer form than needed (a float 32, ...): re-encoded.
            Packed::from_value(&msgpack::decode(bytes, depth_left)?)
        })
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

    /// A `changes` frame holding `docs`, in `encoding`.
    fn changes_frame(docs: Vec<Value>, encoding: Encoding) -> Vec<u8> {
        let frame = Value::Map(vec![
            ("type".into(), "changes".into()),
            ("group".into(), "g".into()),
            ("changes".into(), Value::List(docs)),
            ("seq".into(), 9u64.into()),
        ]);
        match encoding {
            Encoding::MsgPack => msgpack::encode(&frame),
            Encoding::Json => crate::json::encode(&frame).into_bytes(),
        }
    }

    #[test]
    fn documents_read_directly_decode_and_fail_as_the_tree_reader_does() {
        use crate::wire::ServerFrame;
        let map = |members: &[(&str, Value)]| {
            Value::Map(
                members
                    .iter()
                    .map(|(name, value)| (Value::from(*name), value.clone()))
                    .collect(),
            )
        };
        let good = map(&[
            ("key", "a".into()),
            ("version", 2u64.into()),
            ("seq", 1u64.into()),
            ("value", Value::list([1, 2])),
        ]);
        let cases = [
            good.clone(),
            map(&[
                ("seq", 2u64.into()),
                ("deleted", true.into()),
                ("version", 3u64.into()),
                ("key", "b".into()),
                ("extra", Value::set([1, 2])),
            ]),
            map(&[
                ("key", "c".into()),
                ("version", 1u64.into()),
                ("seq", 3u64.into()),
                ("deleted", false.into()),
                ("value", Value::Nil),
            ]),
            Value::from(5u64),
            Value::Map(vec![(1u64.into(), "x".into())]),
            map(&[
                ("key", 7u64.into()),
                ("version", 1u64.into()),
                ("seq", 4u64.into()),
            ]),
            map(&[
                ("key", "d".into()),
                ("version", (-1i64).into()),
                ("seq", 4u64.into()),
                ("value", 1.into()),
            ]),
            map(&[
                ("key", "d".into()),
                ("version", 1u64.into()),
                ("value", 1.into()),
            ]),
            map(&[
                ("key", "d".into()),
                ("version", 1u64.into()),
                ("seq", 4u64.into()),
            ]),
            map(&[
                ("key", "d".into()),
                ("version", 1u64.into()),
                ("seq", 4u64.into()),
                ("value", 1.into()),
                ("deleted", true.into()),
            ]),
            map(&[
                ("key", "d".into()),
                ("version", 1u64.into()),
                ("seq", 4u64.into()),
                ("deleted", "yes".into()),
                ("value", 1.into()),
            ]),
        ];
        for case in cases {
            // The second document shows that a bad first one is named, not a later one.
            let docs = vec![case.clone(), good.clone()];
            let read = |encoding| {
                ServerFrame::decode(&changes_frame(docs.clone(), encoding), encoding)
                    .map_err(|e| e.message)
            };
            assert_eq!(read(Encoding::MsgPack), read(Encoding::Json), "{case:?}");
        }
        // A member given twice: JSON refuses the repeated key as it decodes, MessagePack
        // messages leave it to the reader.
        let twice = map(&[
            ("key", "d".into()),
            ("key", "e".into()),
            ("version", 1u64.into()),
            ("seq", 4u64.into()),
            ("value", 1.into()),
        ]);
        let frame = changes_frame(vec![good, twice], Encoding::MsgPack);
        assert_eq!(
            ServerFrame::decode(&frame, Encoding::MsgPack).map_err(|e| e.message),
            Err("changes[1].key: appears more than once".to_owned())
        );
    }

    #[test]
    fn values_decoded_with_the_frame_equal_the_values_of_its_bytes() {
        use crate::wire::ServerFrame;
        let doc = |key: &str, value: Option<Value>| {
            let mut members = vec![
                (Value::from("key"), Value::from(key)),
                ("version".into(), 1u64.into()),
                ("seq".into(), 1u64.into()),
            ];
            match value {
                Some(value) => members.push(("value".into(), value)),
                None => members.push(("deleted".into(), true.into())),
            }
            Value::Map(members)
        };
        let docs = vec![
            doc(
                "a",
                Some(Value::map([
                    ("n", Value::from(1)),
                    ("tags", Value::set(["x", "y"])),
                    ("t", Value::List(vec![1.5.into(), "s".into(), Value::Nil])),
                ])),
            ),
            doc("b", None),
            doc("c", Some(Value::Nil)),
        ];
        for encoding in [Encoding::MsgPack, Encoding::Json] {
            let mut bytes = changes_frame(docs.clone(), encoding);
            if encoding == Encoding::MsgPack {
                // The float 64 of 1.5 written as a float 32: valid, not canonical.
                let float64 = [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
                let at = bytes.windows(9).position(|w| w == float64).unwrap();
                bytes.splice(at..at + 9, [0xca, 0x3f, 0xc0, 0, 0]);
            }
            let plain = ServerFrame::decode(&bytes, encoding).unwrap();
            let (frame, values) = ServerFrame::decode_with_values(&bytes, encoding).unwrap();
            assert_eq!(frame, plain);
            let ServerFrame::Changes { changes, .. } = frame else {
                panic!("not a changes frame: {frame:?}");
            };
            let expected: Vec<Option<Value>> = changes
                .iter()
                .map(|doc| doc.value.as_ref().map(Packed::to_value))
                .collect();
            assert_eq!(values, expected, "{encoding:?}");
            assert_eq!(values[1], None);
        }
        let subscribed = msgpack::encode(&Value::map([
            ("type", Value::from("subscribed")),
            ("group", "g".into()),
            ("epoch", "e".into()),
            ("seq", 1u64.into()),
        ]));
        let (_, values) = ServerFrame::decode_with_values(&subscribed, Encoding::MsgPack).unwrap();
        assert!(values.is_empty());
    }
}
