//! The canonical MessagePack codec of [`Value`] (PROTOCOL.md section 2).
//!
//! Canonical means one byte string per value: the smallest int, length and extension
//! forms, floats always as float 64, instants in the smallest timestamp form that holds
//! them. Decoding accepts every form (float 32 included) and checks every rule of the
//! table; its recursion is bounded by the depth counter, and no declared length can make
//! it allocate more than the remaining input could hold.

pub(crate) mod reader;

use crate::error::Seg;
use crate::value::{check_unique_items, check_unique_keys, entry_seg};
use crate::{CodecError, Inst, Value};
use reader::{EXT_INST, EXT_KW, EXT_SET, EXT_UUID, Reader, Token, ext_marker, inst_payload_len};

/// Appends the canonical encoding of `value` to `out`.
///
/// # Panics
///
/// If a string, byte string, list, map or extension payload holds more than `u32::MAX`
/// bytes or items, which MessagePack cannot express (far beyond any value limit).
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(n) => write_int(*n, out),
        Value::UInt(n) => write_uint(*n, out),
        Value::Float(f) => {
            out.push(0xcb);
            // Every NaN equals every other, so all are written as the one quiet NaN.
            let bits = if f.is_nan() {
                f64::NAN.to_bits()
            } else {
                f.to_bits()
            };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Str(text) => {
            write_len(text.len(), Family::Str, out);
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bytes(bytes) => {
            write_len(bytes.len(), Family::Bin, out);
            out.extend_from_slice(bytes);
        }
        Value::List(items) => {
            write_len(items.len(), Family::Array, out);
            items.iter().for_each(|item| encode_into(item, out));
        }
        Value::Map(pairs) => {
            write_len(pairs.len(), Family::Map, out);
            for (key, value) in pairs {
                encode_into(key, out);
                encode_into(value, out);
            }
        }
        Value::Inst(inst) => write_inst(inst, out),
        Value::Uuid(bytes) => {
            write_ext_header(EXT_UUID, bytes.len(), out);
            out.extend_from_slice(bytes);
        }
        Value::Kw(name) => {
            write_ext_header(EXT_KW, name.len(), out);
            out.extend_from_slice(name.as_bytes());
        }
        Value::Set(items) => write_set(items, out),
    }
}

/// The canonical encoding of `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Decodes exactly one value that fills `bytes`, containers nested at most `max_depth`.
///
/// The recursion goes at most `max_depth` levels deep, so `max_depth` must suit the
/// thread's stack (the protocol's default is 64).
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    let (value, used) = decode_prefix(bytes, max_depth)?;
    check_filled(bytes, used)?;
    Ok(value)
}

/// Decodes the one value at the start of `bytes` and says how many bytes it took; what
/// follows is not looked at.
pub fn decode_prefix(bytes: &[u8], max_depth: usize) -> Result<(Value, usize), CodecError> {
    let mut reader = Reader::new(bytes);
    let value = read_value(&mut reader, max_depth, max_depth).map_err(CodecError::top)?;
    Ok((value, reader.pos()))
}

/// Checks that `bytes` hold exactly one valid value nested at most `max_depth`, without
/// building it. `Ok(true)` when the bytes are also the canonical encoding, `Ok(false)`
/// when they are valid but not canonical (float 32, a longer form than needed).
///
/// Repeated map keys and set elements are refused like [`decode`] refuses them (their
/// bytes are compared; input that is not canonical is decoded to compare the values).
pub fn validate(bytes: &[u8], max_depth: usize) -> Result<bool, CodecError> {
    let mut reader = Reader::new(bytes);
    let checked = skip_value(&mut reader, max_depth, max_depth)
        .map_err(CodecError::top)
        .and_then(|()| check_filled(bytes, reader.pos()));
    if !reader.canonical {
        // Two keys written in different forms have different bytes: only the values
        // tell, both whether any repeats and which repeat comes first (so that the error
        // is the one `decode` gives). Rare (canonical writers never produce it), so
        // building the values is fine.
        decode(bytes, max_depth)?;
    }
    checked.map(|()| reader.canonical)
}

fn check_filled(bytes: &[u8], used: usize) -> Result<(), CodecError> {
    match bytes.len().saturating_sub(used) {
        0 => Ok(()),
        extra => Err(CodecError::invalid(format!(
            "{extra} bytes after the value"
        ))),
    }
}

/// The depth left for the items of a container at a place that had `depth_left`.
pub(crate) fn inner_depth(depth_left: usize, max_depth: usize) -> Result<usize, CodecError> {
    depth_left
        .checked_sub(1)
        .ok_or_else(|| CodecError::too_deep(max_depth))
}

pub(crate) fn read_value(
    reader: &mut Reader<'_>,
    depth_left: usize,
    max_depth: usize,
) -> Result<Value, CodecError> {
    Ok(match reader.next()? {
        Token::Nil => Value::Nil,
        Token::Bool(b) => Value::Bool(b),
        Token::Int(n) => Value::Int(n),
        Token::UInt(n) => Value::UInt(n),
        Token::Float(f) => Value::Float(f),
        Token::Str(text) => Value::Str(text.to_owned()),
        Token::Bin(bytes) => Value::Bytes(bytes.to_vec()),
        Token::Inst(inst) => Value::Inst(inst),
        Token::Uuid(bytes) => Value::Uuid(bytes),
        Token::Kw(name) => Value::Kw(name.to_owned()),
        Token::Array(len) => Value::List(read_items(reader, len, depth_left, max_depth)?),
        Token::Set { len, outer_end } => {
            let items = read_items(reader, len, depth_left, max_depth)?;
            reader.end_set(outer_end)?;
            check_unique_items(&items)?;
            Value::Set(items)
        }
        Token::Map(len) => {
            let inner = inner_depth(depth_left, max_depth)?;
            // Every pair takes at least two bytes, so the input bounds the allocation.
            let mut pairs = Vec::with_capacity(len.min(reader.remaining() / 2));
            for index in 0..len {
                let key = read_value(reader, inner, max_depth)
                    .map_err(|e| e.within(Seg::EntryKey(index)))?;
                let value = read_value(reader, inner, max_depth)
                    .map_err(|e| e.within(entry_seg(&key, index)))?;
                pairs.push((key, value));
            }
            check_unique_keys(&pairs)?;
            Value::Map(pairs)
        }
    })
}

fn read_items(
    reader: &mut Reader<'_>,
    len: usize,
    depth_left: usize,
    max_depth: usize,
) -> Result<Vec<Value>, CodecError> {
    let inner = inner_depth(depth_left, max_depth)?;
    // Every item takes at least one byte, so the input bounds the allocation.
    let mut items = Vec::with_capacity(len.min(reader.remaining()));
    for index in 0..len {
        items.push(read_value(reader, inner, max_depth).map_err(|e| e.within(Seg::Index(index)))?);
    }
    Ok(items)
}

/// Reads past one value, checking it as [`read_value`] does, building nothing.
pub(crate) fn skip_value(
    reader: &mut Reader<'_>,
    depth_left: usize,
    max_depth: usize,
) -> Result<(), CodecError> {
    match reader.next()? {
        Token::Array(len) => skip_items(reader, len, depth_left, max_depth),
        Token::Set { len, outer_end } => {
            let inner = inner_depth(depth_left, max_depth)?;
            let mut items = Vec::with_capacity(len.min(reader.remaining()));
            for index in 0..len {
                let start = reader.pos();
                skip_value(reader, inner, max_depth).map_err(|e| e.within(Seg::Index(index)))?;
                items.push(reader.slice(start));
            }
            reader.end_set(outer_end)?;
            check_unique_item_bytes(&items)
        }
        Token::Map(len) => {
            let inner = inner_depth(depth_left, max_depth)?;
            let mut keys = Vec::with_capacity(len.min(reader.remaining() / 2));
            for index in 0..len {
                // The key is read again only if its value fails, to name the place.
                let at_key = reader.clone();
                let start = reader.pos();
                skip_value(reader, inner, max_depth).map_err(|e| e.within(Seg::EntryKey(index)))?;
                keys.push(reader.slice(start));
                skip_value(reader, inner, max_depth).map_err(|e| match at_key.clone().next() {
                    Ok(Token::Str(name)) => e.within(Seg::Key(name)),
                    _ => e.within(Seg::Entry(index)),
                })?;
            }
            check_unique_key_bytes(&keys)
        }
        _ => Ok(()),
    }
}

/// [`crate::value`]'s rule on encoded keys: the error at the first key whose bytes repeat
/// an earlier key's. Exact for canonical bytes.
pub(crate) fn check_unique_key_bytes(keys: &[&[u8]]) -> Result<(), CodecError> {
    let Some((first, index)) = first_equal_bytes(keys) else {
        return Ok(());
    };
    let message = format!("duplicate map key (the key of entry {first} again)");
    let key = keys.get(index).and_then(|k| Reader::new(k).next().ok());
    Err(match key {
        Some(Token::Str(name)) => CodecError::invalid(message).within(Seg::Key(name)),
        _ => CodecError::invalid(message).within(Seg::EntryKey(index)),
    })
}

/// The same for the encoded elements of a set.
pub(crate) fn check_unique_item_bytes(items: &[&[u8]]) -> Result<(), CodecError> {
    match first_equal_bytes(items) {
        None => Ok(()),
        Some((first, index)) => Err(CodecError::invalid(format!(
            "duplicate set element (equal to [{first}])"
        ))
        .within(Seg::Index(index))),
    }
}

/// The first member equal to an earlier one, by bytes: `(earlier, later)`. Small lists
/// are compared pairwise; large ones through a hash set.
fn first_equal_bytes(members: &[&[u8]]) -> Option<(usize, usize)> {
    if members.len() <= 16 {
        return members.iter().enumerate().skip(1).find_map(|(later, b)| {
            members
                .iter()
                .take(later)
                .position(|a| a == b)
                .map(|earlier| (earlier, later))
        });
    }
    let mut seen = std::collections::HashMap::with_capacity(members.len());
    members
        .iter()
        .enumerate()
        .find_map(|(later, bytes)| seen.insert(*bytes, later).map(|earlier| (earlier, later)))
}

fn skip_items(
    reader: &mut Reader<'_>,
    len: usize,
    depth_left: usize,
    max_depth: usize,
) -> Result<(), CodecError> {
    let inner = inner_depth(depth_left, max_depth)?;
    for index in 0..len {
        skip_value(reader, inner, max_depth).map_err(|e| e.within(Seg::Index(index)))?;
    }
    Ok(())
}

fn write_uint(n: u64, out: &mut Vec<u8>) {
    match n {
        0..=0x7f => out.push(n as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn write_int(n: i64, out: &mut Vec<u8>) {
    // The `as` casts below only ever narrow a value the match arm proved to fit.
    match n {
        0.. => write_uint(n.unsigned_abs(), out),
        -32..=-1 => out.push(n as i8 as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -32_768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2_147_483_648..=-32_769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("MessagePack cannot express a length above u32::MAX")
}

/// The header families that carry a length.
#[derive(Clone, Copy)]
enum Family {
    Str,
    Bin,
    Array,
    Map,
}

/// Writes the smallest length header of `family` for `len`.
fn write_len(len: usize, family: Family, out: &mut Vec<u8>) {
    // (fix form base and its limit, 8-bit form, 16-bit form, 32-bit form)
    let (fix, len8, len16, len32) = match family {
        Family::Str => (Some((0xa0, 32)), Some(0xd9), 0xda, 0xdb),
        Family::Bin => (None, Some(0xc4), 0xc5, 0xc6),
        Family::Array => (Some((0x90, 16)), None, 0xdc, 0xdd),
        Family::Map => (Some((0x80, 16)), None, 0xde, 0xdf),
    };
    if let Some((base, limit)) = fix
        && len < limit
    {
        out.push(base | len as u8);
    } else if let Some(marker) = len8
        && len <= 0xff
    {
        out.extend_from_slice(&[marker, len as u8]);
    } else if len <= 0xffff {
        out.push(len16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(len32);
        out.extend_from_slice(&len_u32(len).to_be_bytes());
    }
}

/// The smallest extension header for a payload of `len` bytes: its bytes and how many
/// of them are used.
fn ext_header(ext_type: i8, len: usize) -> ([u8; 6], usize) {
    let marker = ext_marker(len);
    let [type_byte] = ext_type.to_be_bytes();
    match marker {
        0xc7 => ([marker, len as u8, type_byte, 0, 0, 0], 3),
        0xc8 => {
            let [a, b] = (len as u16).to_be_bytes();
            ([marker, a, b, type_byte, 0, 0], 4)
        }
        0xc9 => {
            let [a, b, c, d] = len_u32(len).to_be_bytes();
            ([marker, a, b, c, d, type_byte], 6)
        }
        _ => ([marker, type_byte, 0, 0, 0, 0], 2),
    }
}

fn write_ext_header(ext_type: i8, len: usize, out: &mut Vec<u8>) {
    let (header, used) = ext_header(ext_type, len);
    out.extend_from_slice(header.get(..used).unwrap_or_default());
}

fn write_inst(inst: &Inst, out: &mut Vec<u8>) {
    let len = inst_payload_len(inst);
    write_ext_header(EXT_INST, len, out);
    // The casts are exact: `inst_payload_len` chose the form by the range of `secs`.
    match len {
        4 => out.extend_from_slice(&(inst.secs as u32).to_be_bytes()),
        8 => {
            out.extend_from_slice(&((u64::from(inst.nanos) << 34) | inst.secs as u64).to_be_bytes())
        }
        _ => {
            out.extend_from_slice(&inst.nanos.to_be_bytes());
            out.extend_from_slice(&inst.secs.to_be_bytes());
        }
    }
}

/// A set is extension 3 around an array. The payload's size is known only once it is
/// written, so it is written after room for the largest header, then moved down over
/// the part of that room the actual header does not use: no scratch buffer, one move.
fn write_set(items: &[Value], out: &mut Vec<u8>) {
    const ROOM: usize = 6;
    let start = out.len();
    out.resize(start + ROOM, 0);
    write_len(items.len(), Family::Array, out);
    items.iter().for_each(|item| encode_into(item, out));
    let payload_len = out.len() - start - ROOM;
    let (header, used) = ext_header(EXT_SET, payload_len);
    out.copy_within(start + ROOM.., start + used);
    out.truncate(start + used + payload_len);
    if let (Some(slot), Some(header)) = (out.get_mut(start..start + used), header.get(..used)) {
        slot.copy_from_slice(header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `msgpack` fuzz target: in input not in the canonical forms, comparing
    /// bytes found a later repeat first, so `validate` (and `Packed::from_bytes`) named
    /// another element than `decode` did.
    #[test]
    fn every_reader_names_the_first_repeat_of_a_value() {
        // A set of 5 (written as uint 8), 5, 1, 1: the first repeat is [1], equal to [0].
        let bytes = [0xc7, 0x06, 0x03, 0x94, 0xcc, 0x05, 0x05, 0x01, 0x01];
        let first =
            CodecError::invalid("duplicate set element (equal to [0])").within(Seg::Index(1));
        assert_eq!(decode(&bytes, 64), Err(first.clone()));
        assert_eq!(validate(&bytes, 64), Err(first.clone()));
        let mut out = Vec::new();
        assert_eq!(
            crate::json::transcode_msgpack(&bytes, 64, &mut out),
            Err(first)
        );
    }
}
