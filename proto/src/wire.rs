//! The wire messages of PROTOCOL.md sections 3, 4, 6 and 8, both encodings, and validation.
//!
//! This module holds the message types, names and content types; the work is split by
//! direction:
//! - `write`: every message in either encoding, written straight into the output with
//!   stored values spliced in (the server's hot path), through `writer::Writer`;
//! - `read`: decoding what the server sends (client side), with errors that name a path;
//! - `push`: decoding and validating what a client sends, in the protocol's error order;
//! - `admin`: the operator's endpoints beside the contract (admin API, one-document read).

mod admin;
mod envelope;
mod page;
mod push;
mod read;
mod slots;
mod write;
mod writer;

pub use admin::{DocAnswer, DocsPage, GroupInfo, GroupsPage, encode_doc};
pub use page::PageWriter;
pub use read::{RESPONSE_MAX_DEPTH, decode_error};

/// The envelope scanner, which the fuzz properties hold to the full decoder.
#[cfg(any(test, fuzzing))]
pub(crate) use envelope::recover as recover_envelope;

use crate::{ErrorCode, Packed, Value, WireError, json, msgpack};

/// The two encodings of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// MessagePack (`application/msgpack`), binary WebSocket frames.
    MsgPack,
    /// Tagged JSON (`application/json`), text WebSocket frames.
    Json,
}

/// The configurable limits on what a request may carry (PROTOCOL.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One value's size in its MessagePack encoding. Default 1 MiB.
    pub max_value_bytes: usize,
    /// One value's nesting depth. Default 64.
    pub max_depth: usize,
    /// Changes in one push. Default 10000.
    pub max_changes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 1 << 20,
            max_depth: 64,
            max_changes: 10_000,
        }
    }
}

/// A document at its latest state, as pull, catch-up and conflicts return it.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// The document's key.
    pub key: String,
    /// Its version (>= 1 for any document that appears on the wire).
    pub version: u64,
    /// The group sequence number of its latest write.
    pub seq: u64,
    /// Its value; `None` for a tombstone (`"deleted": true`).
    pub value: Option<Packed>,
}

/// What one change does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `"value": X`
    Set(Packed),
    /// `"deleted": true`
    Delete,
}

/// One change of a push, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The document's key, 1..1024 bytes.
    pub key: String,
    /// The version the change was based on (0: never seen).
    pub base: u64,
    /// Set or delete.
    pub op: Op,
}

/// A push whose shape is checked (the group name is valid, `changes` is a list) but whose
/// changes are not yet validated: the server checks the group's permission in between,
/// as PROTOCOL.md section 3 orders the errors.
#[derive(Debug, Clone, PartialEq)]
pub struct UncheckedPush {
    /// The group, a valid name.
    pub group: String,
    /// The raw change maps, as decoded.
    pub changes: Vec<Value>,
}

/// A push, validated: what `POST /sync` and a WebSocket `push` carry.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRequest {
    /// The group.
    pub group: String,
    /// The changes, in request order; no key repeats.
    pub changes: Vec<Change>,
}

/// The outcome of one change of a push.
#[derive(Debug, Clone, PartialEq)]
pub enum PushResult {
    /// `{"key", "ok": true, "version", "seq"}`
    Accepted {
        /// The key.
        key: String,
        /// Its new version.
        version: u64,
        /// The group seq of this write.
        seq: u64,
    },
    /// `{"key", "ok": false, "current"}`: the base was stale; nothing changed.
    Conflict {
        /// The key.
        key: String,
        /// The document as it is on the server; `None` when never written.
        current: Option<Doc>,
    },
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushResponse {
    /// The group.
    pub group: String,
    /// The database's epoch.
    pub epoch: String,
    /// One result per change, in request order.
    pub results: Vec<PushResult>,
    /// The group's sequence after this request.
    pub seq: u64,
}

/// The answer to a pull.
#[derive(Debug, Clone, PartialEq)]
pub struct PullResponse {
    /// The group.
    pub group: String,
    /// The database's epoch.
    pub epoch: String,
    /// Documents with `seq > since`, ascending by seq.
    pub changes: Vec<Doc>,
    /// The cursor for the next pull.
    pub seq: u64,
    /// More changes remain after `seq`.
    pub more: bool,
    /// The pull was answered from 0 because `since` was below the group's floor.
    pub reset: bool,
    /// The group's compaction floor: the highest seq among the tombstones it removed (0:
    /// none removed, and the member is left out).
    pub floor: u64,
}

/// A WebSocket frame from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `{"type": "subscribe", "group", "since"}`
    Subscribe {
        /// The group (valid name).
        group: String,
        /// The cursor (exclusive).
        since: u64,
    },
    /// `{"type": "unsubscribe", "group"}`
    Unsubscribe {
        /// The group (valid name).
        group: String,
    },
    /// `{"type": "push", "id", "group", "changes"}`; validate `push.changes` after the
    /// permission check.
    Push {
        /// The client's id for the push, echoed in the answer.
        id: Value,
        /// The push, shape-checked.
        push: UncheckedPush,
    },
}

/// A WebSocket frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// `{"type": "changes", "group", "changes", "seq"}`
    Changes {
        /// The group.
        group: String,
        /// The documents, ascending by seq.
        changes: Vec<Doc>,
        /// The seq of the last document in the frame.
        seq: u64,
    },
    /// `{"type": "subscribed", "group", "epoch", "seq"}` (and `"reset": true` when reset,
    /// `"floor": F` once the group has one)
    Subscribed {
        /// The group.
        group: String,
        /// The database's epoch.
        epoch: String,
        /// The cursor after catch-up.
        seq: u64,
        /// Catch-up restarted from 0 because `since` was below the floor.
        reset: bool,
        /// The group's compaction floor (0: none, and the member is left out).
        floor: u64,
    },
    /// `{"type": "unsubscribed", "group"}`
    Unsubscribed {
        /// The group.
        group: String,
    },
    /// `{"type": "pushed", "id", "group", "epoch", "results", "seq"}`
    Pushed {
        /// The push's id, echoed.
        id: Value,
        /// The push's outcome.
        response: PushResponse,
    },
    /// `{"type": "error", "id"?, "group"?, "error", "message"}`
    Error {
        /// The id of the frame that caused it, when it had one.
        id: Option<Value>,
        /// The group of the frame that caused it, when it had one.
        group: Option<String>,
        /// What went wrong.
        error: WireError,
    },
}

/// A client frame that could not be decoded or validated, with what it carried of `id` and
/// `group`, so that the error frame can name them.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// The frame's `id`, when it had a readable one.
    pub id: Option<Value>,
    /// The frame's `group`, when it had a readable one.
    pub group: Option<String>,
    /// What was wrong.
    pub error: WireError,
}

/// Checks a group name: 1 to 128 characters from `A-Z a-z 0-9 _ - . :`.
/// The error says what is wrong, without a path (callers prefix it).
pub fn check_group(name: &str) -> Result<(), String> {
    let allowed =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':');
    // Every allowed character is one ASCII byte, so the byte count is the character count.
    if (1..=128).contains(&name.len()) && name.bytes().all(allowed) {
        Ok(())
    } else {
        Err("must be 1..128 characters from A-Z a-z 0-9 _ - . :".to_owned())
    }
}

/// Checks a key: 1 to 1024 UTF-8 bytes.
pub fn check_key(key: &str) -> Result<(), String> {
    if (1..=1024).contains(&key.len()) {
        Ok(())
    } else {
        Err("must be 1..1024 bytes".to_owned())
    }
}

impl Encoding {
    /// The encoding a `Content-Type` value names (parameters such as `; charset=utf-8`
    /// ignored, case ignored): `application/msgpack`, `application/x-msgpack`,
    /// `application/json`.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/msgpack")
            || media.eq_ignore_ascii_case("application/x-msgpack")
        {
            Some(Encoding::MsgPack)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The first of the two encodings that an `Accept` header names, in list order,
    /// q-values ignored. Wildcards (`*/*`, `application/*`) name neither.
    pub fn from_accept(accept: &str) -> Option<Encoding> {
        accept.split(',').find_map(Encoding::from_content_type)
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::MsgPack => "application/msgpack",
            Encoding::Json => "application/json",
        }
    }
}

impl WireError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }

    /// A 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> WireError {
        WireError::new(ErrorCode::BadRequest, message)
    }

    /// A 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> WireError {
        WireError::new(ErrorCode::PayloadTooLarge, message)
    }
}

impl PushRequest {
    /// Encodes the request as a client sends it.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        write::push_request(self, encoding)
    }

    /// The request as the maps it is sent as, e.g. to send it in a [`ClientFrame::Push`].
    pub fn to_unchecked(&self) -> UncheckedPush {
        UncheckedPush::from(self)
    }
}

impl PushResponse {
    /// Encodes the response.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        write::push_response(self, encoding)
    }
}

impl PullResponse {
    /// Encodes the response; `reset` is written only when true, `floor` only above 0.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        write::pull_response(self, encoding)
    }
}

impl ClientFrame {
    /// Encodes a frame (client side). A `Push` is written from its unchecked changes.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        write::client_frame(self, encoding)
    }
}

impl ServerFrame {
    /// Encodes a frame (server side).
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        write::server_frame(self, encoding)
    }
}

/// Encodes a `{"type": "changes", "group", "changes", "seq"}` frame from borrowed
/// documents: what a fan-out sends, encoded once per encoding and shared by every
/// subscriber, without building a [`ServerFrame`].
pub fn encode_changes(group: &str, changes: &[Doc], seq: u64, encoding: Encoding) -> Vec<u8> {
    write::changes_frame(group, changes, seq, encoding)
}

/// Encodes an error body `{"error": CODE, "message": TEXT}`.
pub fn encode_error(error: &WireError, encoding: Encoding) -> Vec<u8> {
    write::error_body(error, encoding)
}

/// Encodes any value as a message body, e.g. `{"status": "ok"}`.
pub fn encode_value(value: &Value, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::MsgPack => msgpack::encode(value),
        Encoding::Json => json::encode(value).into_bytes(),
    }
}
