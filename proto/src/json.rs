//! The tagged-JSON view of [`Value`] (PROTOCOL.md section 2): the writer, the transcoder
//! from stored MessagePack, and (in [`parse`]) the depth-bounded reader.
//!
//! Types JSON lacks travel as one-member objects whose name starts with `$`: `$float`,
//! `$bytes`, `$map`, `$inst`, `$uuid`, `$kw`, `$set`. The output has no white space.

mod parse;

use std::fmt::{self, Write as _};

use crate::error::Seg;
use crate::msgpack::reader::{Reader, Token};
use crate::msgpack::{check_unique_item_bytes, check_unique_key_bytes, inner_depth, skip_value};
use crate::{CodecError, Inst, Value};

/// Appends the tagged-JSON text of `value` to `out`.
///
/// A map is a plain object when every key is a string, no name repeats and not exactly
/// one name starts with `$` (such an object would read back as a tag); any other map
/// takes the `{"$map": [[k, v], ...]}` form, so every value, duplicates included, reads
/// back as itself.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(b) => write_bool(*b, out),
        Value::Int(n) => write_display(n, out),
        Value::UInt(n) => write_display(n, out),
        Value::Float(f) => write_float(*f, out),
        Value::Str(text) => write_str(text, out),
        Value::Bytes(bytes) => write_bytes(bytes, out),
        Value::Inst(inst) => write_inst(inst, out),
        Value::Uuid(bytes) => write_uuid(bytes, out),
        Value::Kw(name) => write_kw(name, out),
        Value::List(items) => {
            out.push(b'[');
            write_items(items, out);
            out.push(b']');
        }
        Value::Set(items) => {
            out.extend_from_slice(b"{\"$set\":[");
            write_items(items, out);
            out.extend_from_slice(b"]}");
        }
        Value::Map(pairs) => {
            let as_object = object_form(pairs.iter().map(|(key, _)| key.as_str()));
            open_map(as_object, out);
            for (index, (key, value)) in pairs.iter().enumerate() {
                between_entries(as_object, index, out);
                encode_into(key, out);
                out.push(if as_object { b':' } else { b',' });
                encode_into(value, out);
                if !as_object {
                    out.push(b']');
                }
            }
            close_map(as_object, out);
        }
    }
}

/// The tagged-JSON text of `value`.
pub fn encode(value: &Value) -> String {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    // The writer emits only UTF-8 (input strings are `str`, everything else is ASCII).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Decodes one JSON document (surrounding white space allowed), containers nested at most
/// `max_depth` counted as the values they stand for.
///
/// Numbers with `.`, `e` or `E` are floats, others integers (i64, else u64, else an
/// error). An object with exactly one member whose name starts with `$` is a tag; an
/// object with more members is a map whatever its names. Duplicate member names are an
/// error. `$bytes` takes standard base64 with the padding required; `$uuid` the
/// hyphenated form in either case; `$inst` any RFC 3339 offset (see
/// [`Inst::parse_rfc3339`]). The reader's recursion is capped at `3 * max_depth + 8`
/// JSON levels (a `$map` spends three per value level) before the exact depth is
/// checked, so an absurdly deep input is refused after reading only its opening.
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    parse::parse(bytes, max_depth).map_err(CodecError::top)
}

/// Writes the tagged-JSON text of the MessagePack value `bytes` to `out` without building
/// a [`Value`], checking the input as [`crate::msgpack::decode`] does. On an error `out`
/// is left holding a partial text after its original content.
pub fn transcode_msgpack(
    bytes: &[u8],
    max_depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let mut reader = Reader::new(bytes);
    transcode_value(&mut reader, max_depth, max_depth, out).map_err(|error| {
        // Repeats are compared by their bytes, which for input in other than the
        // canonical forms can find a later repeat first: the decoder's error is the one
        // every reader gives. Only bad input pays for it (stored values are valid).
        crate::msgpack::decode(bytes, max_depth)
            .err()
            .unwrap_or_else(|| CodecError::top(error))
    })?;
    if !reader.canonical {
        // Repeats were compared by their bytes, exact only for canonical input.
        crate::msgpack::decode(bytes, max_depth)?;
    }
    match bytes.len().saturating_sub(reader.pos()) {
        0 => Ok(()),
        extra => Err(CodecError::invalid(format!(
            "{extra} bytes after the value"
        ))),
    }
}

fn transcode_value(
    reader: &mut Reader<'_>,
    depth_left: usize,
    max_depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match reader.next()? {
        Token::Nil => out.extend_from_slice(b"null"),
        Token::Bool(b) => write_bool(b, out),
        Token::Int(n) => write_display(&n, out),
        Token::UInt(n) => write_display(&n, out),
        Token::Float(f) => write_float(f, out),
        Token::Str(text) => write_str(text, out),
        Token::Bin(bytes) => write_bytes(bytes, out),
        Token::Inst(inst) => write_inst(&inst, out),
        Token::Uuid(bytes) => write_uuid(&bytes, out),
        Token::Kw(name) => write_kw(name, out),
        Token::Array(len) => {
            out.push(b'[');
            transcode_items(reader, len, depth_left, max_depth, out)?;
            out.push(b']');
        }
        Token::Set { len, outer_end } => {
            let mut lookahead = reader.clone();
            let inner = inner_depth(depth_left, max_depth)?;
            let mut items = Vec::with_capacity(len.min(lookahead.remaining()));
            for index in 0..len {
                let start = lookahead.pos();
                skip_value(&mut lookahead, inner, max_depth)
                    .map_err(|e| e.within(Seg::Index(index)))?;
                items.push(lookahead.slice(start));
            }
            // In the order `msgpack::decode` checks them, so both refuse with one error.
            lookahead.end_set(outer_end)?;
            check_unique_item_bytes(&items)?;
            out.extend_from_slice(b"{\"$set\":[");
            transcode_items(reader, len, depth_left, max_depth, out)?;
            reader.end_set(outer_end)?;
            out.extend_from_slice(b"]}");
        }
        Token::Map(len) => {
            let inner = inner_depth(depth_left, max_depth)?;
            // The form depends on all the keys, so look at them first, skipping the values.
            let mut lookahead = reader.clone();
            let mut keys = Vec::with_capacity(len.min(lookahead.remaining() / 2));
            let mut key_bytes = Vec::with_capacity(keys.capacity());
            for index in 0..len {
                let key = match lookahead.clone().next() {
                    Ok(Token::Str(name)) => Some(name),
                    _ => None,
                };
                keys.push(key);
                let start = lookahead.pos();
                skip_value(&mut lookahead, inner, max_depth)
                    .map_err(|e| e.within(Seg::EntryKey(index)))?;
                key_bytes.push(lookahead.slice(start));
                skip_value(&mut lookahead, inner, max_depth).map_err(|e| match key {
                    Some(name) => e.within(Seg::Key(name)),
                    None => e.within(Seg::Entry(index)),
                })?;
            }
            check_unique_key_bytes(&key_bytes)?;
            let as_object = object_form(keys.iter().copied());
            open_map(as_object, out);
            for (index, key) in keys.iter().enumerate() {
                between_entries(as_object, index, out);
                transcode_value(reader, inner, max_depth, out)
                    .map_err(|e| e.within(Seg::EntryKey(index)))?;
                out.push(if as_object { b':' } else { b',' });
                transcode_value(reader, inner, max_depth, out).map_err(|e| match key {
                    Some(name) => e.within(Seg::Key(name)),
                    None => e.within(Seg::Entry(index)),
                })?;
                if !as_object {
                    out.push(b']');
                }
            }
            close_map(as_object, out);
        }
    }
    Ok(())
}

fn transcode_items(
    reader: &mut Reader<'_>,
    len: usize,
    depth_left: usize,
    max_depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let inner = inner_depth(depth_left, max_depth)?;
    for index in 0..len {
        if index > 0 {
            out.push(b',');
        }
        transcode_value(reader, inner, max_depth, out).map_err(|e| e.within(Seg::Index(index)))?;
    }
    Ok(())
}

/// Whether a map with these keys (`None` for a key that is not a string) is written as
/// a plain object: every key a string, the names distinct (a JSON object cannot repeat
/// one), and not exactly one name starting with `$` (which a reader could take for a tag).
pub(crate) fn object_form<'k, I>(keys: I) -> bool
where
    I: Iterator<Item = Option<&'k str>> + Clone,
{
    let mut count = 0usize;
    let mut dollars = 0usize;
    for key in keys.clone() {
        let Some(name) = key else { return false };
        count += 1;
        dollars += usize::from(name.starts_with('$'));
    }
    if dollars == 1 {
        return false;
    }
    // Small maps (the usual case) compare pairwise without allocating.
    if count <= 16 {
        return keys
            .clone()
            .enumerate()
            .all(|(index, a)| keys.clone().skip(index + 1).all(|b| a != b));
    }
    let mut names: Vec<&str> = keys.flatten().collect();
    names.sort_unstable();
    names
        .windows(2)
        .all(|pair| !matches!(pair, [a, b] if a == b))
}

fn open_map(as_object: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if as_object { b"{" } else { b"{\"$map\":[" });
}

fn between_entries(as_object: bool, index: usize, out: &mut Vec<u8>) {
    if index > 0 {
        out.push(b',');
    }
    if !as_object {
        out.push(b'[');
    }
}

fn close_map(as_object: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if as_object { b"}" } else { b"]}" });
}

fn write_items(items: &[Value], out: &mut Vec<u8>) {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        encode_into(item, out);
    }
}

/// `fmt` into the output buffer, for numbers and instants.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

fn write_display(item: &dyn fmt::Display, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail, and the Display impls used here never do.
    let _ = write!(VecWriter(out), "{item}");
}

fn write_bool(b: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A finite float as its shortest round-trip text, which Rust's `{:?}` gives and always
/// with a `.` or an exponent (`1.0`, `1e300`, `5e-324`), so it reads back as a float.
fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        let _ = write!(VecWriter(out), "{f:?}");
    } else if f.is_nan() {
        out.extend_from_slice(b"{\"$float\":\"NaN\"}");
    } else if f > 0.0 {
        out.extend_from_slice(b"{\"$float\":\"Infinity\"}");
    } else {
        out.extend_from_slice(b"{\"$float\":\"-Infinity\"}");
    }
}

/// A JSON string: `"` and `\` escaped, control characters as `\n`-style or `\u00XX`.
fn write_str(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(run_start..index).unwrap_or_default());
        if short.is_empty() {
            let (high, low) = (HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            out.extend_from_slice(short);
        }
        run_start = index + 1;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// `{"$bytes":"..."}` in standard base64 with padding.
fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 0x3f) as usize];
    out.extend_from_slice(b"{\"$bytes\":\"");
    out.reserve(bytes.len().div_ceil(3) * 4 + 2);
    for chunk in bytes.chunks(3) {
        let [a, b, c] = match *chunk {
            [a, b, c] => [a, b, c],
            [a, b] => [a, b, 0],
            [a] => [a, 0, 0],
            _ => [0, 0, 0],
        };
        let n = u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c);
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12)]);
        out.push(if chunk.len() > 1 { sextet(n, 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sextet(n, 0) } else { b'=' });
    }
    out.extend_from_slice(b"\"}");
}

fn write_inst(inst: &Inst, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"$inst\":\"");
    write_display(inst, out);
    out.extend_from_slice(b"\"}");
}

/// `{"$uuid":"..."}`, lower-case hyphenated.
fn write_uuid(bytes: &[u8; 16], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"{\"$uuid\":\"");
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
    out.extend_from_slice(b"\"}");
}

fn write_kw(name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"$kw\":");
    write_str(name, out);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `msgpack` fuzz target: a set whose payload both repeats an element and
    /// holds bytes after its array was refused for the repeat by the transcoder but for the
    /// extra bytes by the decoder. Every reader must give the same answer.
    #[test]
    fn transcoding_refuses_a_bad_set_as_decoding_does() {
        // A set payload of 4 bytes: the array [1, 1], then a stray 0.
        let bytes = [0xc7, 0x04, 0x03, 0x92, 0x01, 0x01, 0x00];
        let decoded = crate::msgpack::decode(&bytes, 64).unwrap_err();
        assert_eq!(
            decoded,
            CodecError::invalid("set payload holds bytes after its array")
        );
        let mut out = Vec::new();
        assert_eq!(transcode_msgpack(&bytes, 64, &mut out), Err(decoded));
    }
}
