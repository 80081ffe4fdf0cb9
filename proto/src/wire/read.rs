//! Reading the wire messages: a body is decoded to a [`Value`] with the matching codec
//! (depth-bounded), then its members are taken out by name with typed checks whose errors
//! name the path (`results[2].current.seq: must be an integer >= 0`). In MessagePack the
//! document values are not decoded but kept as their bytes, and the documents of a
//! `changes` list are read straight into [`Doc`]s (`slots`). A path is kept as its parts
//! ([`Place`]) and written out only for an error: a page of a thousand documents builds
//! no text for any of them.
//!
//! Unknown extra members are ignored, so that a newer peer can add fields; the types of
//! the known ones are strict.

use super::slots::{self, DocItem, Slots};
use super::{Doc, Encoding, PullResponse, PushResponse, PushResult, ServerFrame};
use crate::{CodecError, ErrorCode, Packed, Value, WireError, json};

/// How deep a message a client decodes: room for values twice as deep as the server's
/// default limit (64) plus a message's own nesting (at most 4, a conflict's `current`),
/// yet shallow enough that the recursive decoders stay far from the end of a 2 MiB
/// thread stack, even in a debug build, whatever a hostile peer sends.
pub const RESPONSE_MAX_DEPTH: usize = 128 + 4;

/// Decodes a whole body or frame with the codec of `encoding`. `what` names it in errors
/// (`body`, `frame`).
/// MessagePack document values are kept as bytes, not decoded (see `slots`).
pub(crate) fn decode_message(
    bytes: &[u8],
    encoding: Encoding,
    max_depth: usize,
    what: &str,
) -> Result<(Value, Slots), WireError> {
    decode_message_keeping(bytes, encoding, max_depth, what, false)
}

/// [`decode_message`], with `keep_values` for [`slots::decode`].
fn decode_message_keeping(
    bytes: &[u8],
    encoding: Encoding,
    max_depth: usize,
    what: &str,
    keep_values: bool,
) -> Result<(Value, Slots), WireError> {
    let decoded = match encoding {
        Encoding::MsgPack => slots::decode(bytes, max_depth, keep_values),
        Encoding::Json => json::decode(bytes, max_depth).map(|message| (message, Slots::default())),
    };
    decoded.map_err(|error| codec_error(what, &error))
}

/// `body: <codec error>`, the codec's path relative to the message.
pub(crate) fn codec_error(what: &str, error: &CodecError) -> WireError {
    let text = error.to_string();
    // The codec's paths start with `.` before a member name (`.changes[3].value`);
    // after `body: ` the path reads better without it.
    let text = text
        .strip_prefix(": ")
        .or_else(|| text.strip_prefix('.'))
        .unwrap_or(&text);
    WireError::bad_request(format!("{what}: {text}"))
}

/// Joins a member name onto a path: `changes[3]` + `key` = `changes[3].key`.
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Where a map is in a message (`changes[3]`, `results[0].current`), for errors: kept as
/// its parts and written out only when an error is reported, so that decoding a page of a
/// thousand documents builds no text for any of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'p> {
    /// The top-level member that holds the map, or whose list it is an item of; empty for
    /// the top of the message.
    member: &'p str,
    /// Its index in that list.
    index: Option<usize>,
    /// A member below that item (a conflict's `current`).
    below: Option<&'p str>,
}

impl<'p> Place<'p> {
    /// The top of a message.
    pub(crate) const TOP: Place<'static> = Place {
        member: "",
        index: None,
        below: None,
    };

    /// Item `index` of the top-level list `member`.
    pub(crate) fn item(member: &'p str, index: usize) -> Place<'p> {
        Place {
            member,
            index: Some(index),
            below: None,
        }
    }

    /// The member `name` of the map here. Places go two levels deep at most (a list item's
    /// member); deeper, the innermost name is kept.
    pub(crate) fn member_of(self, name: &'p str) -> Place<'p> {
        match self.index {
            None if self.member.is_empty() => Place {
                member: name,
                ..self
            },
            _ => Place {
                below: Some(name),
                ..self
            },
        }
    }

    /// The place as text: `changes[3]`, `results[0].current`, empty at the top.
    pub(crate) fn render(&self) -> String {
        let mut text = self.member.to_owned();
        if let Some(index) = self.index {
            text.push_str(&format!("[{index}]"));
        }
        match self.below {
            Some(name) => join(&text, name),
            None => text,
        }
    }
}

/// A message map whose members are looked up by name.
pub(crate) struct Fields<'a> {
    entries: &'a [(Value, Value)],
    /// Where the map is.
    place: Place<'a>,
}

impl<'a> Fields<'a> {
    /// The top of a message: a map with string keys. `what` names it in errors.
    pub(crate) fn top(value: &'a Value, what: &str) -> Result<Fields<'a>, WireError> {
        Fields::at_place(value, Place::TOP, || what.to_owned())
    }

    /// A map inside a message, at `place`.
    pub(crate) fn nested(value: &'a Value, place: Place<'a>) -> Result<Fields<'a>, WireError> {
        Fields::at_place(value, place, || place.render())
    }

    fn at_place(
        value: &'a Value,
        place: Place<'a>,
        shown: impl FnOnce() -> String,
    ) -> Result<Fields<'a>, WireError> {
        let Value::Map(entries) = value else {
            return Err(WireError::bad_request(format!(
                "{}: must be a map",
                shown()
            )));
        };
        if entries.iter().any(|(key, _)| !matches!(key, Value::Str(_))) {
            return Err(WireError::bad_request(format!(
                "{}: must be a map with string keys",
                shown()
            )));
        }
        Ok(Fields { entries, place })
    }

    /// The place of member `name`.
    pub(crate) fn place_of(&self, name: &'a str) -> Place<'a> {
        self.place.member_of(name)
    }

    /// The path of a member, for errors.
    pub(crate) fn path_of(&self, name: &str) -> String {
        join(&self.place.render(), name)
    }

    /// A 400 about member `name`.
    pub(crate) fn fail(&self, name: &str, what: &str) -> WireError {
        WireError::bad_request(format!("{}: {what}", self.path_of(name)))
    }

    /// A 400 about the map itself.
    pub(crate) fn fail_here(&self, what: &str) -> WireError {
        WireError::bad_request(format!("{}: {what}", self.place.render()))
    }

    /// The member `name`, if present. A name given twice is refused rather than resolved
    /// one way or the other, since peers would disagree on which one counts.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&'a Value>, WireError> {
        let mut found = None;
        for (key, value) in self.entries {
            if matches!(key, Value::Str(key) if key == name) {
                if found.is_some() {
                    return Err(self.fail(name, "appears more than once"));
                }
                found = Some(value);
            }
        }
        Ok(found)
    }

    pub(crate) fn string(&self, name: &str) -> Result<&'a str, WireError> {
        match self.get(name)? {
            Some(Value::Str(text)) => Ok(text),
            _ => Err(self.fail(name, "must be a string")),
        }
    }

    pub(crate) fn uint(&self, name: &str) -> Result<u64, WireError> {
        self.get(name)?
            .and_then(as_uint)
            .ok_or_else(|| self.fail(name, "must be an integer >= 0"))
    }

    /// An optional `uint`: absent gives `None`, present must be an integer >= 0.
    pub(crate) fn opt_uint(&self, name: &str) -> Result<Option<u64>, WireError> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) => as_uint(value)
                .map(Some)
                .ok_or_else(|| self.fail(name, "must be an integer >= 0")),
        }
    }

    pub(crate) fn opt_bool(&self, name: &str) -> Result<Option<bool>, WireError> {
        match self.get(name)? {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.fail(name, "must be true or false")),
        }
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<bool, WireError> {
        self.opt_bool(name)?
            .ok_or_else(|| self.fail(name, "must be true or false"))
    }

    pub(crate) fn list(&self, name: &str) -> Result<&'a [Value], WireError> {
        match self.get(name)? {
            Some(Value::List(items)) => Ok(items),
            _ => Err(self.fail(name, "must be a list")),
        }
    }

    /// A member that must be present, of any type.
    pub(crate) fn any(&self, name: &str) -> Result<&'a Value, WireError> {
        self.get(name)?
            .ok_or_else(|| self.fail(name, "must be present"))
    }
}

/// An integer >= 0, whichever of the two integer forms holds it.
pub(crate) fn as_uint(value: &Value) -> Option<u64> {
    match value {
        Value::Int(number) => u64::try_from(*number).ok(),
        Value::UInt(number) => Some(*number),
        _ => None,
    }
}

/// True for a value that may serve as a frame `id`: anything but a container.
pub(crate) fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::List(_) | Value::Map(_) | Value::Set(_))
}

/// The message when a change or document has both or neither of `value` and `deleted: true`.
pub(crate) const VALUE_OR_DELETED: &str = "must have either value or deleted: true, not both";

/// A DOC at `place`.
pub(crate) fn doc(value: &Value, place: Place<'_>, slots: &Slots) -> Result<Doc, WireError> {
    let fields = Fields::nested(value, place)?;
    let key = fields.string("key")?.to_owned();
    let version = fields.uint("version")?;
    let seq = fields.uint("seq")?;
    let deleted = fields.opt_bool("deleted")? == Some(true);
    let value = match (fields.get("value")?, deleted) {
        (Some(value), false) => Some(slots.packed(value)),
        (None, true) => None,
        _ => return Err(fields.fail_here(VALUE_OR_DELETED)),
    };
    Ok(Doc {
        key,
        version,
        seq,
        value,
    })
}

/// The top-level list `changes` of documents; with `keep_values`, also each document's
/// value as a [`Value`] (`None` for a tombstone), in the same order.
fn changes(
    fields: &Fields<'_>,
    slots: &Slots,
    keep_values: bool,
) -> Result<(Vec<Doc>, Vec<Option<Value>>), WireError> {
    let name = "changes";
    let items = fields.list(name)?;
    let decoded = |doc: &Doc| doc.value.as_ref().map(Packed::to_value);
    let mut docs = Vec::new();
    let mut values = Vec::new();
    if let Some(read) = slots.take_changes() {
        docs.reserve_exact(read.len());
        for (index, item) in read.into_iter().enumerate() {
            let (doc, value) = match item {
                DocItem::Read(doc, value) => (doc, value),
                DocItem::Tree(tree) => {
                    let doc = self::doc(&tree, Place::item(name, index), slots)?;
                    let value = if keep_values { decoded(&doc) } else { None };
                    (doc, value)
                }
            };
            if keep_values {
                values.push(value);
            }
            docs.push(doc);
        }
    } else {
        for (index, item) in items.iter().enumerate() {
            docs.push(doc(item, Place::item(name, index), slots)?);
        }
        if keep_values {
            values = docs.iter().map(decoded).collect();
        }
    }
    Ok((docs, values))
}

fn result(value: &Value, place: Place<'_>, slots: &Slots) -> Result<PushResult, WireError> {
    let fields = Fields::nested(value, place)?;
    let key = fields.string("key")?.to_owned();
    if fields.boolean("ok")? {
        Ok(PushResult::Accepted {
            key,
            version: fields.uint("version")?,
            seq: fields.uint("seq")?,
        })
    } else {
        let current = match fields.get("current")? {
            None | Some(Value::Nil) => None,
            Some(current) => Some(doc(current, fields.place_of("current"), slots)?),
        };
        Ok(PushResult::Conflict { key, current })
    }
}

/// The members of a push response (a body, or a `pushed` frame).
fn push_response(fields: &Fields<'_>, slots: &Slots) -> Result<PushResponse, WireError> {
    let group = fields.string("group")?.to_owned();
    let epoch = fields.string("epoch")?.to_owned();
    let results = fields
        .list("results")?
        .iter()
        .enumerate()
        .map(|(index, item)| result(item, Place::item("results", index), slots))
        .collect::<Result<_, _>>()?;
    Ok(PushResponse {
        group,
        epoch,
        results,
        seq: fields.uint("seq")?,
    })
}

impl PushResponse {
    /// Decodes a response (client side).
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<PushResponse, WireError> {
        let (message, slots) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        push_response(&Fields::top(&message, "body")?, &slots)
    }
}

impl PullResponse {
    /// Decodes a response (client side). An absent `reset` is false, an absent `floor` 0.
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<PullResponse, WireError> {
        let (message, slots) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        let fields = Fields::top(&message, "body")?;
        Ok(PullResponse {
            group: fields.string("group")?.to_owned(),
            epoch: fields.string("epoch")?.to_owned(),
            changes: changes(&fields, &slots, false)?.0,
            seq: fields.uint("seq")?,
            more: fields.boolean("more")?,
            reset: fields.opt_bool("reset")?.unwrap_or(false),
            floor: fields.opt_uint("floor")?.unwrap_or(0),
        })
    }
}

/// The `error` and `message` members of an error body or frame.
fn error_members(fields: &Fields<'_>) -> Result<WireError, WireError> {
    let name = fields.string("error")?;
    let code = ErrorCode::parse(name)
        .ok_or_else(|| fields.fail("error", &format!("unknown error code {}", quoted(name))))?;
    Ok(WireError::new(code, fields.string("message")?))
}

/// Text in double quotes, escaped as JSON escapes it, for messages that quote input.
pub(crate) fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

impl ServerFrame {
    /// Decodes a frame (client side).
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<ServerFrame, WireError> {
        decode_frame(bytes, encoding, false).map(|(frame, _)| frame)
    }

    /// Decodes a frame as [`ServerFrame::decode`] does and, for a `changes` frame, also
    /// each document's value as a [`Value`], in the order of `changes` (`None` for a
    /// tombstone; empty for any other frame). For a client that keeps values in memory:
    /// each value is read once into both its bytes and its `Value`, rather than checked
    /// here and decoded again from the bytes.
    pub fn decode_with_values(
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<(ServerFrame, Vec<Option<Value>>), WireError> {
        decode_frame(bytes, encoding, true)
    }
}

/// A frame, and with `keep_values` its documents' values (see
/// [`ServerFrame::decode_with_values`]).
fn decode_frame(
    bytes: &[u8],
    encoding: Encoding,
    keep_values: bool,
) -> Result<(ServerFrame, Vec<Option<Value>>), WireError> {
    let (message, slots) =
        decode_message_keeping(bytes, encoding, RESPONSE_MAX_DEPTH, "frame", keep_values)?;
    let fields = Fields::top(&message, "frame")?;
    let group = || fields.string("group").map(str::to_owned);
    let mut values = Vec::new();
    let frame = match fields.string("type")? {
        "changes" => {
            let group = group()?;
            let (changes, decoded) = changes(&fields, &slots, keep_values)?;
            values = decoded;
            Ok(ServerFrame::Changes {
                group,
                changes,
                seq: fields.uint("seq")?,
            })
        }
        "subscribed" => Ok(ServerFrame::Subscribed {
            group: group()?,
            epoch: fields.string("epoch")?.to_owned(),
            seq: fields.uint("seq")?,
            reset: fields.opt_bool("reset")?.unwrap_or(false),
            floor: fields.opt_uint("floor")?.unwrap_or(0),
        }),
        "unsubscribed" => Ok(ServerFrame::Unsubscribed { group: group()? }),
        "pushed" => Ok(ServerFrame::Pushed {
            id: fields.any("id")?.clone(),
            response: push_response(&fields, &slots)?,
        }),
        "error" => {
            let group = match fields.get("group")? {
                None => None,
                Some(_) => Some(group()?),
            };
            Ok(ServerFrame::Error {
                id: fields.get("id")?.cloned(),
                group,
                error: error_members(&fields)?,
            })
        }
        other => Err(fields.fail("type", &format!("unknown frame type {}", quoted(other)))),
    }?;
    Ok((frame, values))
}

/// Decodes an error body (client side).
pub fn decode_error(bytes: &[u8], encoding: Encoding) -> Result<WireError, WireError> {
    let (message, _) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
    error_members(&Fields::top(&message, "body")?)
}
