//! Writing the wire messages in either encoding, straight into the output buffer.
//!
//! This is the server's hot path: a pull of 10,000 documents and every fan-out frame go
//! through here. Message maps are written field by field with their fixed keys, and each
//! stored value is spliced in as it is held ([`Packed::as_bytes`] for MessagePack,
//! [`Packed::write_json`] for JSON): no intermediate [`Value`] tree is built per document.

use super::{
    ClientFrame, Doc, Encoding, PullResponse, PushRequest, PushResponse, PushResult, ServerFrame,
};
use crate::{Packed, Value, WireError, json, msgpack};

/// A message being written: MessagePack headers or JSON punctuation, as the encoding asks.
pub(crate) struct Writer {
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
    pub(crate) fn new(encoding: Encoding, capacity: usize) -> Writer {
        Writer {
            encoding,
            out: Vec::with_capacity(capacity),
            open: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
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
    pub(crate) fn map(&mut self, len: usize) {
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
    pub(crate) fn list(&mut self, len: usize) {
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
    pub(crate) fn end(&mut self) {
        if let Some(open) = self.open.pop() {
            self.out.push(if open.list { b']' } else { b'}' });
        }
    }

    /// Writes a member name. Names are the protocol's fixed ASCII words, which need no
    /// JSON escaping.
    pub(crate) fn key(&mut self, name: &'static str) {
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

    pub(crate) fn str(&mut self, text: &str) {
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

    pub(crate) fn uint(&mut self, number: u64) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => pack::uint(&mut self.out, number),
            Encoding::Json => decimal(&mut self.out, number),
        }
    }

    pub(crate) fn bool(&mut self, flag: bool) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.push(if flag { 0xc3 } else { 0xc2 }),
            Encoding::Json => self
                .out
                .extend_from_slice(if flag { b"true" } else { b"false" }),
        }
    }

    pub(crate) fn nil(&mut self) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.push(0xc0),
            Encoding::Json => self.out.extend_from_slice(b"null"),
        }
    }

    /// Splices a stored value in without decoding it.
    pub(crate) fn packed(&mut self, value: &Packed) {
        self.before_value();
        match self.encoding {
            Encoding::MsgPack => self.out.extend_from_slice(value.as_bytes()),
            Encoding::Json => value.write_json(&mut self.out),
        }
    }

    pub(crate) fn value(&mut self, value: &Value) {
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

/// A rough size for the output buffer, so that a large pull grows it once or not at all.
fn docs_capacity(docs: &[Doc]) -> usize {
    docs.iter()
        .map(|doc| 48 + doc.key.len() + doc.value.as_ref().map_or(0, Packed::len))
        .sum::<usize>()
        + 96
}

/// `{"key", "version", "seq", "value"}` or `{"key", "version", "seq", "deleted": true}`
pub(crate) fn doc(w: &mut Writer, doc: &Doc) {
    w.map(4);
    w.key("key");
    w.str(&doc.key);
    w.key("version");
    w.uint(doc.version);
    w.key("seq");
    w.uint(doc.seq);
    match &doc.value {
        Some(value) => {
            w.key("value");
            w.packed(value);
        }
        None => {
            w.key("deleted");
            w.bool(true);
        }
    }
    w.end();
}

fn docs(w: &mut Writer, docs: &[Doc]) {
    w.list(docs.len());
    for each in docs {
        doc(w, each);
    }
    w.end();
}

fn result(w: &mut Writer, result: &PushResult) {
    match result {
        PushResult::Accepted { key, version, seq } => {
            w.map(4);
            w.key("key");
            w.str(key);
            w.key("ok");
            w.bool(true);
            w.key("version");
            w.uint(*version);
            w.key("seq");
            w.uint(*seq);
        }
        PushResult::Conflict { key, current } => {
            w.map(3);
            w.key("key");
            w.str(key);
            w.key("ok");
            w.bool(false);
            w.key("current");
            match current {
                Some(current) => doc(w, current),
                None => w.nil(),
            }
        }
    }
    w.end();
}

/// The members of a push response after `group` (shared by the body and the `pushed` frame).
fn push_response_rest(w: &mut Writer, response: &PushResponse) {
    w.key("epoch");
    w.str(&response.epoch);
    w.key("results");
    w.list(response.results.len());
    for each in &response.results {
        result(w, each);
    }
    w.end();
    w.key("seq");
    w.uint(response.seq);
}

fn results_capacity(response: &PushResponse) -> usize {
    let current = |result: &PushResult| match result {
        PushResult::Conflict {
            current: Some(doc), ..
        } => doc.value.as_ref().map_or(0, Packed::len),
        _ => 0,
    };
    response
        .results
        .iter()
        .map(|each| 64 + current(each))
        .sum::<usize>()
        + 96
}

pub(crate) fn push_response(response: &PushResponse, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, results_capacity(response));
    w.map(4);
    w.key("group");
    w.str(&response.group);
    push_response_rest(&mut w, response);
    w.end();
    w.finish()
}

pub(crate) fn pull_response(response: &PullResponse, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, docs_capacity(&response.changes));
    w.map(if response.reset { 6 } else { 5 });
    w.key("group");
    w.str(&response.group);
    w.key("epoch");
    w.str(&response.epoch);
    w.key("changes");
    docs(&mut w, &response.changes);
    w.key("seq");
    w.uint(response.seq);
    w.key("more");
    w.bool(response.more);
    if response.reset {
        w.key("reset");
        w.bool(true);
    }
    w.end();
    w.finish()
}

pub(crate) fn push_request(request: &PushRequest, encoding: Encoding) -> Vec<u8> {
    let capacity = request
        .changes
        .iter()
        .map(|change| 48 + change.key.len())
        .sum::<usize>();
    let mut w = Writer::new(encoding, capacity + 64);
    w.map(2);
    w.key("group");
    w.str(&request.group);
    w.key("changes");
    w.list(request.changes.len());
    for change in &request.changes {
        w.map(3);
        w.key("key");
        w.str(&change.key);
        w.key("base");
        w.uint(change.base);
        match &change.op {
            super::Op::Set(value) => {
                w.key("value");
                w.packed(value);
            }
            super::Op::Delete => {
                w.key("deleted");
                w.bool(true);
            }
        }
        w.end();
    }
    w.end();
    w.end();
    w.finish()
}

/// `{"type": "changes", "group", "changes", "seq"}` from borrowed documents, so that a
/// fan-out encodes a commit once per encoding without building a [`ServerFrame`].
pub(crate) fn changes_frame(group: &str, changes: &[Doc], seq: u64, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, docs_capacity(changes));
    w.map(4);
    w.key("type");
    w.str("changes");
    w.key("group");
    w.str(group);
    w.key("changes");
    docs(&mut w, changes);
    w.key("seq");
    w.uint(seq);
    w.end();
    w.finish()
}

pub(crate) fn server_frame(frame: &ServerFrame, encoding: Encoding) -> Vec<u8> {
    match frame {
        ServerFrame::Changes {
            group,
            changes,
            seq,
        } => changes_frame(group, changes, *seq, encoding),
        ServerFrame::Subscribed {
            group,
            epoch,
            seq,
            reset,
        } => {
            let mut w = Writer::new(encoding, 96);
            w.map(if *reset { 5 } else { 4 });
            w.key("type");
            w.str("subscribed");
            w.key("group");
            w.str(group);
            w.key("epoch");
            w.str(epoch);
            w.key("seq");
            w.uint(*seq);
            if *reset {
                w.key("reset");
                w.bool(true);
            }
            w.end();
            w.finish()
        }
        ServerFrame::Unsubscribed { group } => {
            let mut w = Writer::new(encoding, 64);
            w.map(2);
            w.key("type");
            w.str("unsubscribed");
            w.key("group");
            w.str(group);
            w.end();
            w.finish()
        }
        ServerFrame::Pushed { id, response } => {
            let mut w = Writer::new(encoding, results_capacity(response));
            w.map(6);
            w.key("type");
            w.str("pushed");
            w.key("id");
            w.value(id);
            w.key("group");
            w.str(&response.group);
            push_response_rest(&mut w, response);
            w.end();
            w.finish()
        }
        ServerFrame::Error { id, group, error } => {
            let mut w = Writer::new(encoding, 96 + error.message.len());
            w.map(3 + usize::from(id.is_some()) + usize::from(group.is_some()));
            w.key("type");
            w.str("error");
            if let Some(id) = id {
                w.key("id");
                w.value(id);
            }
            if let Some(group) = group {
                w.key("group");
                w.str(group);
            }
            error_members(&mut w, error);
            w.end();
            w.finish()
        }
    }
}

pub(crate) fn client_frame(frame: &ClientFrame, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, 64);
    match frame {
        ClientFrame::Subscribe { group, since } => {
            w.map(3);
            w.key("type");
            w.str("subscribe");
            w.key("group");
            w.str(group);
            w.key("since");
            w.uint(*since);
        }
        ClientFrame::Unsubscribe { group } => {
            w.map(2);
            w.key("type");
            w.str("unsubscribe");
            w.key("group");
            w.str(group);
        }
        ClientFrame::Push { id, push } => {
            w.map(4);
            w.key("type");
            w.str("push");
            w.key("id");
            w.value(id);
            w.key("group");
            w.str(&push.group);
            w.key("changes");
            w.list(push.changes.len());
            for change in &push.changes {
                w.value(change);
            }
            w.end();
        }
    }
    w.end();
    w.finish()
}

fn error_members(w: &mut Writer, error: &WireError) {
    w.key("error");
    w.str(error.code.as_str());
    w.key("message");
    w.str(&error.message);
}

pub(crate) fn error_body(error: &WireError, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, 48 + error.message.len());
    w.map(2);
    error_members(&mut w, error);
    w.end();
    w.finish()
}
