//! What a client sends: a push (`POST /sync` or a `push` frame) and the other client
//! frames, decoded in the order PROTOCOL.md section 3 answers errors: the shape first
//! ([`UncheckedPush::decode`], [`ClientFrame::decode`]), then, after the server's
//! permission check, every change ([`UncheckedPush::validate`]).

use std::collections::HashMap;

use super::envelope;
use super::read::{Fields, Place, VALUE_OR_DELETED, codec_error, is_scalar, quoted};
use super::{
    Change, ClientFrame, Encoding, FrameError, Limits, Op, PushRequest, UncheckedPush, check_group,
    check_key,
};
use crate::{CodecError, Packed, Value, WireError, json, msgpack};

/// The containers a message wraps around a value: the message map, the `changes` list and
/// the change map. A body may nest that much deeper than one value may.
const MESSAGE_NESTING: usize = 3;

/// Decodes a client message with room for values of `limits.max_depth`. A value nested
/// too deep is refused while decoding, and named the way validation names it
/// (`changes[3].value: nesting deeper than 64`), not by the codec's position deep inside.
fn decode_push(
    bytes: &[u8],
    encoding: Encoding,
    limits: &Limits,
    what: &str,
) -> Result<Value, WireError> {
    let max_depth = limits.max_depth.saturating_add(MESSAGE_NESTING);
    let decoded = match encoding {
        Encoding::MsgPack => msgpack::decode(bytes, max_depth),
        Encoding::Json => json::decode(bytes, max_depth),
    };
    decoded.map_err(|error| match &error {
        CodecError::TooDeep { path, .. } => match change_value_path(path) {
            Some(value_path) => WireError::bad_request(format!(
                "{value_path}: nesting deeper than {}",
                limits.max_depth
            )),
            // Outside any value: the message's own shape nests too deep.
            None => WireError::bad_request(format!(
                "{what}: nesting deeper than a message's shape allows (values nest at most {} \
                 levels)",
                limits.max_depth
            )),
        },
        _ => codec_error(what, &error),
    })
}

/// `changes[3].value` when `path` lies inside that change's value.
fn change_value_path(path: &str) -> Option<&str> {
    let path = path.strip_prefix('.').unwrap_or(path);
    let rest = path.strip_prefix("changes[")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let after = rest.get(digits..)?.strip_prefix("].value")?;
    let inside = after.is_empty() || after.starts_with('[') || after.starts_with('.');
    (digits > 0 && inside)
        .then(|| path.get(..path.len() - after.len()))
        .flatten()
}

/// A valid group name from `fields`.
fn group<'a>(fields: &Fields<'a>) -> Result<&'a str, WireError> {
    let group = fields.string("group")?;
    check_group(group).map_err(|reason| {
        WireError::bad_request(format!("{}: {reason}", fields.path_of("group")))
    })?;
    Ok(group)
}

/// Checks the shape of a push (a valid group, a `changes` list), then takes the changes
/// out of the decoded message without copying them.
fn shape(message: Value, what: &str) -> Result<UncheckedPush, WireError> {
    let group = {
        let fields = Fields::top(&message, what)?;
        let group = group(&fields)?.to_owned();
        fields.list("changes")?;
        group
    };
    let changes = match message {
        Value::Map(entries) => entries
            .into_iter()
            .find_map(|(name, value)| match (name, value) {
                (Value::Str(name), Value::List(changes)) if name == "changes" => Some(changes),
                _ => None,
            }),
        _ => None,
    };
    // Found above: `Fields::list` succeeded on this very map.
    Ok(UncheckedPush {
        group,
        changes: changes.unwrap_or_default(),
    })
}

impl UncheckedPush {
    /// Decodes a `POST /sync` body: a map with a valid `group` and a `changes` list.
    /// Containers are bounded at `limits.max_depth` plus the request's own nesting.
    /// Errors are 400 `bad_request` with a path (`group: ...`, `changes: must be a list`).
    pub fn decode(
        body: &[u8],
        encoding: Encoding,
        limits: &Limits,
    ) -> Result<UncheckedPush, WireError> {
        shape(decode_push(body, encoding, limits, "body")?, "body")
    }

    /// Validates every change: count (413), key (400), base, exactly one of value /
    /// `deleted: true` (400), value depth (400) and size (413), keys unique (400).
    /// Messages name the place: `changes[3].key: must be 1..1024 bytes`. The first error
    /// in request order is the one answered; the count comes before any change.
    pub fn validate(self, limits: &Limits) -> Result<PushRequest, WireError> {
        let count = self.changes.len();
        if count > limits.max_changes {
            return Err(WireError::too_large(format!(
                "changes: {count} changes, over the limit of {}",
                limits.max_changes
            )));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(count);
        let mut changes = Vec::with_capacity(count);
        let mut scratch = Vec::new();
        for (index, raw) in self.changes.iter().enumerate() {
            let fields = Fields::nested(raw, Place::item("changes", index))?;
            let key = fields.string("key")?;
            check_key(key).map_err(|reason| {
                WireError::bad_request(format!("{}: {reason}", fields.path_of("key")))
            })?;
            if let Some(first) = seen.get(key) {
                return Err(WireError::bad_request(format!(
                    "changes[{index}].key: {} repeats changes[{first}].key",
                    quoted(key)
                )));
            }
            seen.insert(key, index);
            changes.push(change(&fields, key, limits, &mut scratch)?);
        }
        Ok(PushRequest {
            group: self.group,
            changes,
        })
    }
}

/// Validates the rest of a change whose key is checked.
fn change(
    fields: &Fields<'_>,
    key: &str,
    limits: &Limits,
    scratch: &mut Vec<u8>,
) -> Result<Change, WireError> {
    let base = fields.uint("base")?;
    let deleted = fields.opt_bool("deleted")? == Some(true);
    let op = match (fields.get("value")?, deleted) {
        (Some(value), false) => Op::Set(checked_value(value, fields, limits, scratch)?),
        (None, true) => Op::Delete,
        _ => return Err(fields.fail_here(VALUE_OR_DELETED)),
    };
    Ok(Change {
        key: key.to_owned(),
        base,
        op,
    })
}

/// A change's value within the depth (400) and size (413) limits, packed (encoded
/// through `scratch`, reused across the changes of a push).
fn checked_value(
    value: &Value,
    fields: &Fields<'_>,
    limits: &Limits,
    scratch: &mut Vec<u8>,
) -> Result<Packed, WireError> {
    if value.depth() > limits.max_depth {
        return Err(WireError::bad_request(format!(
            "{}: nesting deeper than {}",
            fields.path_of("value"),
            limits.max_depth
        )));
    }
    let packed = Packed::from_value_in(value, scratch);
    if packed.len() > limits.max_value_bytes {
        return Err(WireError::too_large(format!(
            "{}: {} bytes, over the limit of {}",
            fields.path_of("value"),
            packed.len(),
            limits.max_value_bytes
        )));
    }
    Ok(packed)
}

impl From<&PushRequest> for UncheckedPush {
    /// The request as the maps it is sent as, e.g. to send it in a [`ClientFrame::Push`].
    fn from(request: &PushRequest) -> UncheckedPush {
        let text = |text: &str| Value::Str(text.to_owned());
        let changes = request
            .changes
            .iter()
            .map(|change| {
                let last = match &change.op {
                    Op::Set(value) => (text("value"), value.to_value()),
                    Op::Delete => (text("deleted"), Value::Bool(true)),
                };
                Value::Map(vec![
                    (text("key"), text(&change.key)),
                    (text("base"), Value::from(change.base)),
                    last,
                ])
            })
            .collect();
        UncheckedPush {
            group: request.group.clone(),
            changes,
        }
    }
}

impl ClientFrame {
    /// Decodes a frame from a client (server side); a push's changes still need
    /// [`UncheckedPush::validate`]. A `subscribe` without `since` starts from 0.
    ///
    /// The error carries the frame's `id` (any scalar) and `group` (a string) whenever the
    /// frame was a readable map, even when the rest of it is wrong, so that the error
    /// frame can name them.
    pub fn decode(
        bytes: &[u8],
        encoding: Encoding,
        limits: &Limits,
    ) -> Result<ClientFrame, FrameError> {
        let message = decode_push(bytes, encoding, limits, "frame").map_err(|error| {
            // The frame as a whole does not decode; its envelope may still name itself.
            let (id, group) = envelope::recover(bytes, encoding);
            FrameError { id, group, error }
        })?;
        let (id, group_echo) = echo(&message);
        let with_echo = |error| FrameError {
            id: id.clone(),
            group: group_echo.clone(),
            error,
        };
        frame(message).map_err(with_echo)
    }
}

/// The `id` (a scalar) and `group` (a string) of a decoded frame, read whatever else the
/// frame holds (keys that are not strings included), as the envelope scanner reads them
/// from a frame that does not decode.
fn echo(message: &Value) -> (Option<Value>, Option<String>) {
    let member = |name: &str| {
        message
            .as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, member)| member)
    };
    let id = member("id").filter(|id| is_scalar(id)).cloned();
    let group = member("group").and_then(Value::as_str).map(str::to_owned);
    (id, group)
}

/// The frame types a client may send.
enum Kind {
    Subscribe,
    Unsubscribe,
    Push,
}

fn frame(message: Value) -> Result<ClientFrame, WireError> {
    let fields = Fields::top(&message, "frame")?;
    let kind = match fields.string("type")? {
        "subscribe" => Kind::Subscribe,
        "unsubscribe" => Kind::Unsubscribe,
        "push" => Kind::Push,
        other => {
            return Err(WireError::bad_request(format!(
                "type: unknown frame type {}",
                quoted(other)
            )));
        }
    };
    match kind {
        Kind::Subscribe => Ok(ClientFrame::Subscribe {
            group: group(&fields)?.to_owned(),
            since: fields.opt_uint("since")?.unwrap_or(0),
        }),
        Kind::Unsubscribe => Ok(ClientFrame::Unsubscribe {
            group: group(&fields)?.to_owned(),
        }),
        Kind::Push => {
            let id = fields.any("id")?;
            if !is_scalar(id) {
                return Err(WireError::bad_request(
                    "id: must be a number, a string or another scalar",
                ));
            }
            let id = id.clone();
            Ok(ClientFrame::Push {
                id,
                push: shape(message, "frame")?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `client_frame` fuzz target: a frame that decoded but had a key that is
    /// not a string lost its `id` in the error, although a frame broken anywhere else kept it.
    #[test]
    fn a_frame_with_a_key_that_is_not_a_string_keeps_its_id_and_group() {
        // {"type": "push", "id": 7, "group": "todo", 86: nil}
        let mut frame = vec![0x84, 0xa4];
        frame.extend_from_slice(b"type\xa4push\xa2id\x07\xa5group\xa4todo\x56\xc0");
        let error = ClientFrame::decode(&frame, Encoding::MsgPack, &Limits::default())
            .expect_err("keys must be strings");
        assert_eq!(error.id, Some(Value::Int(7)));
        assert_eq!(error.group.as_deref(), Some("todo"));
        assert_eq!(error.error.message, "frame: must be a map with string keys");

        let json = br#"{"$map":[["id","p-1"],["group","g"],[1,2]]}"#;
        let error = ClientFrame::decode(json, Encoding::Json, &Limits::default()).unwrap_err();
        assert_eq!(
            (error.id, error.group.as_deref()),
            (Some(Value::from("p-1")), Some("g"))
        );
    }
}
