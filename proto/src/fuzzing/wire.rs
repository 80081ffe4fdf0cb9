//! What a client sends: the `push` and `client_frame` fuzz targets.
//!
//! A target's first byte chooses the encoding (bit 0) and the limits (bits 1 to 7, see
//! [`limits`]); the rest is the body or frame. What is refused is refused with a 400 or a
//! 413 and a message that names a place; what is accepted obeys every rule of PROTOCOL.md
//! section 4 and comes back equal through either encoding.

use std::collections::HashSet;

use super::codec::accepted;
use crate::wire::{
    ClientFrame, FrameError, Op, PushRequest, UncheckedPush, check_group, check_key,
    recover_envelope,
};
use crate::{Encoding, ErrorCode, Limits, Value, WireError};

/// The `push` target: a `POST /sync` body through [`UncheckedPush::decode`] and
/// [`UncheckedPush::validate`].
pub fn push(data: &[u8]) {
    let Some((encoding, limits, body)) = split(data) else {
        return;
    };
    let unchecked = match UncheckedPush::decode(body, encoding, &limits) {
        Ok(unchecked) => unchecked,
        Err(error) => return refused(&error, false),
    };
    assert_eq!(
        check_group(&unchecked.group),
        Ok(()),
        "an invalid group passed"
    );
    validated(unchecked, &limits);
}

/// The `client_frame` target: a WebSocket frame through [`ClientFrame::decode`] (and a
/// push's changes through [`UncheckedPush::validate`]). A refused frame echoes the `id`
/// and `group` it carried, read by the full decoder when the frame decodes as a value, and
/// by the envelope scanner when it does not; the two must agree, also once another member
/// of the frame is made undecodable.
pub fn client_frame(data: &[u8]) {
    let Some((encoding, limits, frame)) = split(data) else {
        return;
    };
    let decoded = ClientFrame::decode(frame, encoding, &limits);
    if let Some(echo) = readable_echo(frame, encoding, &limits) {
        if let Err(error) = &decoded {
            assert_echo(error, &echo, "the frame's error");
        }
        envelope_agrees(frame, encoding, &limits, &echo);
    }
    match decoded {
        Err(error) => {
            refused(&error.error, false);
            assert!(error.id.as_ref().is_none_or(is_scalar), "a container id");
        }
        Ok(ClientFrame::Push { id, push }) => {
            assert!(is_scalar(&id), "a container id passed");
            assert_eq!(check_group(&push.group), Ok(()), "an invalid group passed");
            if let Some(request) = validated(push, &limits) {
                let frame = ClientFrame::Push {
                    id,
                    push: request.to_unchecked(),
                };
                frame_round_trip(&frame, &limits, |decoded| match decoded {
                    ClientFrame::Push { push, .. } => {
                        push.validate(&limits).ok() == Some(request.clone())
                    }
                    _ => false,
                });
            }
        }
        Ok(ClientFrame::Subscribe { group, since }) => {
            assert_eq!(check_group(&group), Ok(()), "an invalid group passed");
            let frame = ClientFrame::Subscribe { group, since };
            frame_round_trip(&frame, &limits, |decoded| decoded == frame);
        }
        Ok(ClientFrame::Unsubscribe { group }) => {
            assert_eq!(check_group(&group), Ok(()), "an invalid group passed");
            let frame = ClientFrame::Unsubscribe { group };
            frame_round_trip(&frame, &limits, |decoded| decoded == frame);
        }
    }
}

/// The encoding, the limits and the rest of a target's input.
fn split(data: &[u8]) -> Option<(Encoding, Limits, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    let encoding = if selector & 1 == 0 {
        Encoding::MsgPack
    } else {
        Encoding::Json
    };
    Some((encoding, limits(selector), rest))
}

/// The defaults when bit 1 is clear; else limits small enough for short inputs to reach
/// each of them: a value of 8 to 64 bytes (bits 2 and 3), a depth of 0 to 3 (bits 4 and
/// 5), 1 to 4 changes (bits 6 and 7).
fn limits(selector: u8) -> Limits {
    if selector & 2 == 0 {
        return Limits::default();
    }
    Limits {
        max_value_bytes: 8 << (selector >> 2 & 3),
        max_depth: usize::from(selector >> 4 & 3),
        max_changes: usize::from(selector >> 6) + 1,
    }
}

/// Validates a decoded push, checks what it accepts, and answers it; `None` when refused.
///
/// A refusal at `changes[i]` is the first error in request order: the changes before it
/// pass on their own.
fn validated(unchecked: UncheckedPush, limits: &Limits) -> Option<PushRequest> {
    let before = unchecked.clone();
    match unchecked.validate(limits) {
        Ok(request) => {
            accepted_push(&request, limits);
            Some(request)
        }
        Err(error) => {
            refused(&error, true);
            if let Some(index) = failing_change(&error.message) {
                let prefix = UncheckedPush {
                    group: before.group,
                    changes: before.changes.into_iter().take(index).collect(),
                };
                if let Err(earlier) = prefix.validate(limits) {
                    panic!("{:?} answered before {earlier:?}", error.message);
                }
            }
            None
        }
    }
}

/// The index `i` of an error message `changes[i]...`.
fn failing_change(message: &str) -> Option<usize> {
    let rest = message.strip_prefix("changes[")?;
    rest.get(..rest.find(']')?)?.parse().ok()
}

/// Every rule an accepted push obeys (PROTOCOL.md section 4), and its round trip through
/// both encodings.
fn accepted_push(request: &PushRequest, limits: &Limits) {
    assert_eq!(
        check_group(&request.group),
        Ok(()),
        "an invalid group passed"
    );
    assert!(
        request.changes.len() <= limits.max_changes,
        "too many changes"
    );
    let mut keys = HashSet::new();
    for change in &request.changes {
        assert_eq!(check_key(&change.key), Ok(()), "an invalid key passed");
        assert!(keys.insert(change.key.as_str()), "a key repeats");
        if let Op::Set(packed) = &change.op {
            assert!(
                packed.len() <= limits.max_value_bytes,
                "a value over the size"
            );
            let (canonical, _) = accepted(&packed.to_value(), limits.max_depth);
            assert_eq!(packed.as_bytes(), canonical.as_slice(), "a stored value");
        }
    }
    for encoding in [Encoding::MsgPack, Encoding::Json] {
        let body = request.encode(encoding);
        let again = UncheckedPush::decode(&body, encoding, limits)
            .and_then(|push| push.validate(limits))
            .unwrap_or_else(|e| panic!("an accepted push re-encoded in {encoding:?}: {e:?}"));
        assert_eq!(&again, request, "push round trip in {encoding:?}");
    }
}

/// A frame written in either encoding decodes to what `same` accepts.
fn frame_round_trip(frame: &ClientFrame, limits: &Limits, same: impl Fn(ClientFrame) -> bool) {
    for encoding in [Encoding::MsgPack, Encoding::Json] {
        let bytes = frame.encode(encoding);
        let decoded = ClientFrame::decode(&bytes, encoding, limits)
            .unwrap_or_else(|e| panic!("a decoded frame re-encoded in {encoding:?}: {e:?}"));
        if let (ClientFrame::Push { id: a, .. }, ClientFrame::Push { id: b, .. }) =
            (frame, &decoded)
        {
            assert_eq!(encode(a), encode(b), "the frame's id in {encoding:?}");
        }
        assert!(same(decoded), "frame round trip in {encoding:?}");
    }
}

/// A 400 or (for a limit, while validating changes) a 413, with a message that names a
/// place (`changes[3].key: ...`).
fn refused(error: &WireError, validating: bool) {
    match error.code {
        ErrorCode::BadRequest => {}
        ErrorCode::PayloadTooLarge if validating => {}
        other => panic!("refused with {other:?}: {}", error.message),
    }
    assert!(
        error.message.contains(": "),
        "a message that names no place: {:?}",
        error.message
    );
}

/// The `id` and `group` a frame carries.
type Echo = (Option<Value>, Option<String>);

/// The `id` (a scalar) and `group` (a string) of a frame that decodes as a map, read from
/// the decoded value; `None` when the frame does not decode or is not a map. A JSON frame
/// written as a `$map` tag is left out: the envelope scanner follows plain objects only.
fn readable_echo(frame: &[u8], encoding: Encoding, limits: &Limits) -> Option<Echo> {
    let depth = limits.max_depth.saturating_add(3);
    let value = match encoding {
        Encoding::MsgPack => crate::msgpack::decode(frame, depth),
        Encoding::Json => crate::json::decode(frame, depth),
    }
    .ok()?;
    if encoding == Encoding::Json && is_map_tag(frame) {
        return None;
    }
    let member = |name: &str| {
        value
            .as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, member)| member)
    };
    value.as_map()?;
    let id = member("id").filter(|id| is_scalar(id)).cloned();
    let group = member("group").and_then(Value::as_str).map(str::to_owned);
    Some((id, group))
}

/// Whether a JSON text is one object whose only member is `$map`.
fn is_map_tag(frame: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(frame) {
        Ok(object) => object.len() == 1 && object.contains_key("$map"),
        // Past serde_json's nesting limit: assume the worst, skip the comparison.
        Err(_) => true,
    }
}

/// The envelope scanner reads the same `id` and `group` as the full decoder, and still
/// does once a member that cannot be decoded is put in front of the others.
fn envelope_agrees(frame: &[u8], encoding: Encoding, limits: &Limits, echo: &Echo) {
    let scanned = recover_envelope(frame, encoding);
    assert_eq!(
        encode_echo(&scanned),
        encode_echo(echo),
        "envelope vs decoder"
    );
    let Some(broken) = with_broken_member(frame, encoding) else {
        return;
    };
    match ClientFrame::decode(&broken, encoding, limits) {
        Ok(decoded) => panic!("a frame with a broken member decoded: {decoded:?}"),
        Err(error) => assert_echo(&error, echo, "a frame with a broken member"),
    }
}

fn assert_echo(error: &FrameError, echo: &Echo, what: &str) {
    let got = (error.id.clone(), error.group.clone());
    assert_eq!(encode_echo(&got), encode_echo(echo), "{what}: {error:?}");
}

/// The frame with `"~": <a uuid of 3 bytes>` as its first member.
fn with_broken_member(frame: &[u8], encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::MsgPack => {
            const MEMBER: [u8; 8] = [0xa1, b'~', 0xc7, 3, 1, 1, 2, 3];
            let (&marker, rest) = frame.split_first()?;
            let (header, rest) = match marker {
                0x80..=0x8e => (vec![marker + 1], rest),
                0x8f => (vec![0xde, 0, 16], rest),
                0xde => {
                    let count = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
                    let [a, b] = count.checked_add(1)?.to_be_bytes();
                    (vec![0xde, a, b], rest.get(2..)?)
                }
                _ => return None,
            };
            Some([header.as_slice(), &MEMBER, rest].concat())
        }
        Encoding::Json => {
            let open = frame.iter().position(|b| !b.is_ascii_whitespace())?;
            let (head, rest) = frame.split_at(open + 1);
            let empty = rest
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'}');
            let member: &[u8] = if empty {
                br#""~":{"$uuid":"x"}"#
            } else {
                br#""~":{"$uuid":"x"},"#
            };
            Some([head, member, rest].concat())
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::List(_) | Value::Map(_) | Value::Set(_))
}

/// Compares by canonical bytes: `Value`'s `==` takes 0.0 and -0.0 as equal.
fn encode(value: &Value) -> Vec<u8> {
    crate::msgpack::encode(value)
}

fn encode_echo((id, group): &Echo) -> (Option<Vec<u8>>, Option<&str>) {
    (id.as_ref().map(encode), group.as_deref())
}
