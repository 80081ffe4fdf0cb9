//! Writing the wire messages in either encoding, straight into the output buffer.
//!
//! This is the server's hot path: a pull of 10,000 documents and every fan-out frame go
//! through here. Message maps are written field by field with their fixed keys, and each
//! stored value is spliced in as it is held ([`Packed::as_bytes`] for MessagePack,
//! [`Packed::write_json`] for JSON): no intermediate [`Value`](crate::Value) tree is built per document.

use super::writer::Writer;
use super::{
    ClientFrame, Doc, Encoding, PullResponse, PushRequest, PushResponse, PushResult, ServerFrame,
};
use crate::{Packed, WireError};

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
    w.map(5 + usize::from(response.reset) + usize::from(response.floor > 0));
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
    if response.floor > 0 {
        w.key("floor");
        w.uint(response.floor);
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
            floor,
        } => {
            let mut w = Writer::new(encoding, 96);
            w.map(4 + usize::from(*reset) + usize::from(*floor > 0));
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
            if *floor > 0 {
                w.key("floor");
                w.uint(*floor);
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
