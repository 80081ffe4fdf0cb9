//! The envelope of a client frame that does not decode as a whole: its `id` and `group`,
//! read past whatever else in it is broken, so that the error frame can name them
//! (PROTOCOL.md section 6). A client with many pushes in flight must learn which failed.
//!
//! Both scanners follow only the structure (lengths in MessagePack; brackets, strings and
//! separators in JSON) of the other members, so a value that fails to decode (a bad
//! `$uuid`, `NaN`, `1e400`, a 3-byte uuid extension, timestamp nanos of 1e9, nesting too
//! deep) does not stop them. Neither recurses nor allocates beyond the two members it
//! keeps, so a hostile frame costs one pass over its bytes.

use super::Encoding;
use super::read::is_scalar;
use crate::msgpack::reader::{Reader, Token};
use crate::{Value, json};

/// The frame's top-level `id` (a scalar) and `group` (a string), when the frame is a map
/// whose structure can be followed up to them.
pub(crate) fn recover(bytes: &[u8], encoding: Encoding) -> (Option<Value>, Option<String>) {
    match encoding {
        Encoding::MsgPack => msgpack_envelope(bytes),
        Encoding::Json => json_envelope(bytes),
    }
    .unwrap_or((None, None))
}

type Envelope = (Option<Value>, Option<String>);

fn msgpack_envelope(bytes: &[u8]) -> Option<Envelope> {
    let (mut pos, entries) = map_header(bytes)?;
    let (mut id, mut group) = (None, None);
    for _ in 0..entries {
        // Past a structure that cannot be followed, what was found before it stands.
        let Some(key_end) = skip_msgpack(bytes, pos) else {
            break;
        };
        let Some(value_end) = skip_msgpack(bytes, key_end) else {
            break;
        };
        let key = Reader::new(bytes.get(pos..key_end)?).next().ok();
        let value = bytes.get(key_end..value_end)?;
        match key {
            Some(Token::Str("id")) => {
                id = crate::msgpack::decode(value, 0).ok().filter(is_scalar);
            }
            Some(Token::Str("group")) => {
                group = match Reader::new(value).next() {
                    Ok(Token::Str(name)) => Some(name.to_owned()),
                    _ => None,
                };
            }
            _ => {}
        }
        pos = value_end;
    }
    Some((id, group))
}

/// The position after a map header at the start of `bytes`, and its entry count.
fn map_header(bytes: &[u8]) -> Option<(usize, usize)> {
    let marker = *bytes.first()?;
    match marker {
        0x80..=0x8f => Some((1, usize::from(marker & 0x0f))),
        0xde => Some((3, usize::try_from(be_uint(bytes.get(1..3)?)).ok()?)),
        0xdf => Some((5, usize::try_from(be_uint(bytes.get(1..5)?)).ok()?)),
        _ => None,
    }
}

fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| n << 8 | u64::from(*b))
}

/// The position after the MessagePack value at `pos`, following lengths only: extension
/// payloads are skipped unread. Iterative: `pending` counts the values still to skip.
fn skip_msgpack(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(pos)?;
        let length =
            |width: usize| -> Option<u64> { Some(be_uint(bytes.get(pos + 1..pos + 1 + width)?)) };
        let (size, children): (u64, u64) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0),
            0x80..=0x8f => (1, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (1, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (1 + u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (2 + length(1)?, 0),
            0xc5 | 0xda => (3 + length(2)?, 0),
            0xc6 | 0xdb => (5 + length(4)?, 0),
            0xc7 => (3 + length(1)?, 0),
            0xc8 => (4 + length(2)?, 0),
            0xc9 => (6 + length(4)?, 0),
            0xca => (5, 0),
            0xcb => (9, 0),
            0xcc | 0xd0 => (2, 0),
            0xcd | 0xd1 => (3, 0),
            0xce | 0xd2 => (5, 0),
            0xcf | 0xd3 => (9, 0),
            0xd4 => (3, 0),
            0xd5 => (4, 0),
            0xd6 => (6, 0),
            0xd7 => (10, 0),
            0xd8 => (18, 0),
            0xdc => (3, length(2)?),
            0xdd => (5, length(4)?),
            0xde => (3, 2 * length(2)?),
            0xdf => (5, 2 * length(4)?),
            0xc1 => return None,
        };
        pos = pos.checked_add(usize::try_from(size).ok()?)?;
        if pos > bytes.len() {
            return None;
        }
        // Every value takes at least a byte: more pending values than bytes left is a lie.
        pending = pending.checked_add(children)?;
        if pending > (bytes.len() - pos) as u64 {
            return None;
        }
    }
    Some(pos)
}

fn json_envelope(bytes: &[u8]) -> Option<Envelope> {
    let mut pos = skip_ws(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    let (mut id, mut group) = (None, None);
    loop {
        pos = skip_ws(bytes, pos);
        match bytes.get(pos)? {
            b'}' => return Some((id, group)),
            b'"' => {}
            _ => return Some((id, group)),
        }
        let name_end = skip_json_string(bytes, pos)?;
        let name = bytes.get(pos..name_end)?;
        pos = skip_ws(bytes, name_end);
        if bytes.get(pos) != Some(&b':') {
            return Some((id, group));
        }
        let value_start = skip_ws(bytes, pos + 1);
        let value_end = skip_json_value(bytes, value_start)?;
        let value = bytes.get(value_start..value_end)?;
        if is_name(name, "id") {
            id = json::decode(value, 0).ok().filter(is_scalar);
        } else if is_name(name, "group") {
            group = match json::decode(value, 0) {
                Ok(Value::Str(name)) => Some(name),
                _ => None,
            };
        }
        pos = skip_ws(bytes, value_end);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            _ => return Some((id, group)),
        }
    }
}

/// Whether the quoted member name `quoted` reads as `name`, escapes resolved as the
/// decoder resolves them (`"\u0069d"` is `id`).
fn is_name(quoted: &[u8], name: &str) -> bool {
    let inner = quoted
        .strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""));
    match inner {
        Some(inner) if !inner.contains(&b'\\') => inner == name.as_bytes(),
        _ => json::decode(quoted, 0).is_ok_and(|decoded| decoded.as_str() == Some(name)),
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// The position after the JSON string that starts at `pos` (a `"`).
fn skip_json_string(bytes: &[u8], mut pos: usize) -> Option<usize> {
    pos += 1;
    loop {
        match bytes.get(pos)? {
            b'"' => return Some(pos + 1),
            b'\\' => pos += 2,
            _ => pos += 1,
        }
    }
}

/// The position after the member value at `pos`: up to the `,` or `}` that ends it at
/// its own level, whatever tokens it holds (`NaN`, `1e400` pass as text).
fn skip_json_value(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth: usize = 0;
    loop {
        match bytes.get(pos) {
            None => return (depth == 0).then_some(pos),
            Some(b'"') => {
                pos = skip_json_string(bytes, pos)?;
                continue;
            }
            Some(b'[' | b'{') => depth += 1,
            Some(b']' | b'}') if depth > 0 => depth -= 1,
            Some(b',' | b'}' | b']') if depth == 0 => return Some(pos),
            Some(_) => {}
        }
        pos += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Envelope {
        recover(text.as_bytes(), Encoding::Json)
    }

    #[test]
    fn json_envelopes_survive_broken_values() {
        for bad in [
            r#"{"$uuid":"zzz"}"#,
            "NaN",
            "1e400",
            r#"{"$inst":"2026-13-01T00:00:00Z"}"#,
            r#"{"$set":[1,1]}"#,
            "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
            r#""unterminated \" quote, } ] tricks""#,
        ] {
            let frame = format!(
                r#"{{"type":"push","id":7,"group":"todo","changes":[{{"key":"x","base":0,"value":{bad}}}]}}"#
            );
            assert_eq!(
                json(&frame),
                (Some(Value::Int(7)), Some("todo".into())),
                "{bad}"
            );
            // In any member order.
            let frame = format!(
                r#"{{"changes":[{{"key":"x","value":{bad},"base":0}}], "type":"push", "group" : "todo" , "id":"p-1"}}"#
            );
            assert_eq!(
                json(&frame),
                (Some(Value::from("p-1")), Some("todo".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_envelopes_keep_only_what_they_can_read() {
        assert_eq!(json(r#"{"id":[1],"group":3}"#), (None, None));
        assert_eq!(json(r#"{"id":NaN,"group":"g"}"#), (None, Some("g".into())));
        assert_eq!(
            json(r#"{"id":1,"group":"g""#),
            (Some(Value::Int(1)), Some("g".into()))
        );
        assert_eq!(json("[1,2]"), (None, None));
        // A missing separator runs the members together: neither reads as itself.
        assert_eq!(json(r#"{"id":1 "group":"g"}"#), (None, None));
        assert_eq!(json(""), (None, None));
    }

    /// A member name may be written with escapes; the decoder reads `"\u0069d"` as `id`,
    /// and so must the envelope, or a frame that decodes names its id while the same frame
    /// with a broken value does not.
    #[test]
    fn json_envelopes_read_escaped_member_names() {
        assert_eq!(
            json(r#"{"\u0069d":5,"gro\u0075p":"g","changes":[{"$uuid":"x"}]}"#),
            (Some(Value::Int(5)), Some("g".into()))
        );
        assert_eq!(json(r#"{"i\"d":5}"#), (None, None));
    }

    /// A push frame in MessagePack whose one change value is `value_bytes`.
    fn msgpack_frame(value_bytes: &[u8], id_first: bool) -> Vec<u8> {
        let mut out = vec![0x84];
        let mut id = vec![0xa2, b'i', b'd', 0x07];
        let mut group = vec![0xa5];
        group.extend_from_slice(b"group");
        group.extend_from_slice(&[0xa4, b't', b'o', b'd', b'o']);
        let mut kind = vec![0xa4];
        kind.extend_from_slice(b"type");
        kind.extend_from_slice(&[0xa4, b'p', b'u', b's', b'h']);
        let mut changes = vec![0xa7];
        changes.extend_from_slice(b"changes");
        changes.extend_from_slice(&[0x91, 0x83, 0xa3, b'k', b'e', b'y', 0xa1, b'x']);
        changes.extend_from_slice(&[0xa4, b'b', b'a', b's', b'e', 0x00]);
        changes.extend_from_slice(&[0xa5, b'v', b'a', b'l', b'u', b'e']);
        changes.extend_from_slice(value_bytes);
        if id_first {
            for part in [&mut id, &mut group, &mut kind, &mut changes] {
                out.append(part);
            }
        } else {
            for part in [&mut changes, &mut kind, &mut group, &mut id] {
                out.append(part);
            }
        }
        out
    }

    #[test]
    fn msgpack_envelopes_survive_broken_values() {
        let nanos = (1_000_000_000u64 << 34).to_be_bytes();
        let mut bad_inst = vec![0xd7, 0xff];
        bad_inst.extend_from_slice(&nanos);
        for bad in [
            vec![0xc7, 3, 1, 1, 2, 3],                // a 3-byte uuid
            bad_inst,                                 // timestamp nanos of 1e9
            vec![0xd4, 9, 0],                         // an unknown extension type
            vec![0xc7, 3, 3, 0x92, 1, 1],             // a set with a repeated element
            vec![0x82, 0xa1, b'a', 1, 0xa1, b'a', 2], // a map with a repeated key
            vec![0xa2, 0xff, 0xfe],                   // a string that is not UTF-8
        ] {
            for id_first in [true, false] {
                assert_eq!(
                    recover(&msgpack_frame(&bad, id_first), Encoding::MsgPack),
                    (Some(Value::Int(7)), Some("todo".into())),
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn msgpack_lies_end_the_scan_without_harm() {
        // A map claiming 2^32 - 1 entries in 5 bytes; an array claiming 65535 items.
        assert_eq!(
            recover(&[0xdf, 0xff, 0xff, 0xff, 0xff], Encoding::MsgPack),
            (None, None)
        );
        let mut frame = vec![0x82, 0xa2, b'i', b'd', 0x01, 0xa1, b'x', 0xdc, 0xff, 0xff];
        assert_eq!(
            recover(&frame, Encoding::MsgPack),
            (Some(Value::Int(1)), None)
        );
        frame.truncate(4);
        assert_eq!(recover(&frame, Encoding::MsgPack), (None, None));
        assert_eq!(recover(&[0xc1], Encoding::MsgPack), (None, None));
    }
}
