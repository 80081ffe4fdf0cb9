//! One value, one answer (PROTOCOL.md section 2): a map never holds two equal keys and a
//! set never two equal elements, equal meaning "the same canonical MessagePack encoding".
//!
//! Every decoder and [`Value::check`] call these on each map and set once its members are
//! built, so a repeated key is refused in every encoding, naming its path, before anything
//! is stored or sent. The comparison follows the canonical encoding without writing it:
//! integers by value whatever their variant, floats by their bits with every NaN as one,
//! containers in order. Maps and sets of up to [`PAIRWISE_UP_TO`] members (nearly all of
//! them) are compared pairwise without allocating; larger ones through a hash set, so
//! a big map costs linear time, never quadratic.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::error::Seg;
use crate::{CodecError, Value};

/// Up to this many members, pairwise comparison beats hashing.
const PAIRWISE_UP_TO: usize = 16;

/// The error for a repeated key of `pairs`, at the key that repeats.
pub(crate) fn check_unique_keys(pairs: &[(Value, Value)]) -> Result<(), CodecError> {
    match first_repeat(pairs.len(), |i| pairs.get(i).map(|(key, _)| key)) {
        None => Ok(()),
        Some((first, index)) => {
            let seg = match pairs.get(index) {
                Some((Value::Str(name), _)) => Seg::Key(name),
                _ => Seg::EntryKey(index),
            };
            Err(CodecError::invalid(format!(
                "duplicate map key (the key of entry {first} again)"
            ))
            .within(seg))
        }
    }
}

/// The error for a repeated element of `items`, at the element that repeats.
pub(crate) fn check_unique_items(items: &[Value]) -> Result<(), CodecError> {
    match first_repeat(items.len(), |i| items.get(i)) {
        None => Ok(()),
        Some((first, index)) => Err(CodecError::invalid(format!(
            "duplicate set element (equal to [{first}])"
        ))
        .within(Seg::Index(index))),
    }
}

/// The first member (in order) equal to an earlier one: `(earlier, later)`.
fn first_repeat<'a>(
    len: usize,
    member: impl Fn(usize) -> Option<&'a Value>,
) -> Option<(usize, usize)> {
    if len < 2 {
        return None;
    }
    if len <= PAIRWISE_UP_TO {
        for later in 1..len {
            let b = member(later)?;
            for earlier in 0..later {
                if same_encoding(member(earlier)?, b) {
                    return Some((earlier, later));
                }
            }
        }
        return None;
    }
    let mut seen: HashSet<Canonical<'a>> = HashSet::with_capacity(len);
    for later in 0..len {
        let value = member(later)?;
        if !seen.insert(Canonical(value)) {
            let earlier =
                (0..later).find(|&i| member(i).is_some_and(|v| same_encoding(v, value)))?;
            return Some((earlier, later));
        }
    }
    None
}

/// Whether two values have the same canonical MessagePack encoding.
pub(crate) fn same_encoding(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(_) | Value::UInt(_), Value::Int(_) | Value::UInt(_)) => {
            integer(a) == integer(b)
        }
        (Value::Float(x), Value::Float(y)) => float_bits(*x) == float_bits(*y),
        (Value::Str(x), Value::Str(y)) | (Value::Kw(x), Value::Kw(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Uuid(x), Value::Uuid(y)) => x == y,
        (Value::Inst(x), Value::Inst(y)) => x.secs == y.secs && x.nanos == y.nanos,
        (Value::List(x), Value::List(y)) | (Value::Set(x), Value::Set(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_encoding(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| same_encoding(xk, yk) && same_encoding(xv, yv))
        }
        _ => false,
    }
}

fn integer(value: &Value) -> i128 {
    match value {
        Value::Int(n) => i128::from(*n),
        Value::UInt(n) => i128::from(*n),
        _ => 0,
    }
}

/// The bits the encoder writes: every NaN as the one quiet NaN.
fn float_bits(f: f64) -> u64 {
    if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    }
}

/// A value hashed and compared by its canonical encoding.
struct Canonical<'a>(&'a Value);

impl PartialEq for Canonical<'_> {
    fn eq(&self, other: &Self) -> bool {
        same_encoding(self.0, other.0)
    }
}

impl Eq for Canonical<'_> {}

impl Hash for Canonical<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_value(self.0, state);
    }
}

/// Hashes what [`same_encoding`] compares. Recursion is bounded by the value's depth,
/// which the callers have checked before (members are checked before their container).
fn hash_value<H: Hasher>(value: &Value, state: &mut H) {
    match value {
        Value::Nil => state.write_u8(0),
        Value::Bool(b) => {
            state.write_u8(1);
            b.hash(state);
        }
        Value::Int(_) | Value::UInt(_) => {
            state.write_u8(2);
            integer(value).hash(state);
        }
        Value::Float(f) => {
            state.write_u8(3);
            float_bits(*f).hash(state);
        }
        Value::Str(text) => {
            state.write_u8(4);
            text.hash(state);
        }
        Value::Bytes(bytes) => {
            state.write_u8(5);
            bytes.hash(state);
        }
        Value::Kw(name) => {
            state.write_u8(6);
            name.hash(state);
        }
        Value::Uuid(bytes) => {
            state.write_u8(7);
            bytes.hash(state);
        }
        Value::Inst(inst) => {
            state.write_u8(8);
            inst.secs.hash(state);
            inst.nanos.hash(state);
        }
        Value::List(items) | Value::Set(items) => {
            state.write_u8(if matches!(value, Value::List(_)) {
                9
            } else {
                10
            });
            state.write_usize(items.len());
            items.iter().for_each(|item| hash_value(item, state));
        }
        Value::Map(pairs) => {
            state.write_u8(11);
            state.write_usize(pairs.len());
            for (key, item) in pairs {
                hash_value(key, state);
                hash_value(item, state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Inst, msgpack};

    /// Equal by this module exactly when the encoder writes the same bytes.
    #[test]
    fn same_encoding_is_equal_bytes() {
        let values = [
            Value::Nil,
            Value::Bool(false),
            Value::Int(1),
            Value::UInt(1),
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(1.0),
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::Float(-f64::NAN),
            Value::from("a"),
            Value::kw("a"),
            Value::bytes(*b"a"),
            Value::uuid([1; 16]),
            Value::Inst(Inst { secs: 1, nanos: 0 }),
            Value::list([1, 2]),
            Value::list([2, 1]),
            Value::set([1, 2]),
            Value::map([("a", 1)]),
            Value::map([("a", 1), ("b", 2)]),
            Value::map([("b", 2), ("a", 1)]),
        ];
        for a in &values {
            for b in &values {
                let bytes_equal = msgpack::encode(a) == msgpack::encode(b);
                assert_eq!(same_encoding(a, b), bytes_equal, "{a:?} vs {b:?}");
                if bytes_equal {
                    let hash = |v| {
                        let mut h = std::hash::DefaultHasher::new();
                        hash_value(v, &mut h);
                        h.finish()
                    };
                    assert_eq!(hash(a), hash(b), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn repeats_are_found_at_the_later_member() {
        let err = check_unique_keys(&[
            (Value::from("a"), Value::Int(1)),
            (Value::from("b"), Value::Int(2)),
            (Value::from("a"), Value::Int(3)),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            ".a: duplicate map key (the key of entry 0 again)"
        );
        let err = check_unique_keys(&[(Value::Int(1), Value::Nil), (Value::UInt(1), Value::Nil)])
            .unwrap_err();
        assert_eq!(err.path(), "{key 1}");
        let err = check_unique_items(&[
            Value::Float(f64::NAN),
            Value::Int(0),
            Value::Float(-f64::NAN),
        ])
        .unwrap_err();
        assert_eq!(err.to_string(), "[2]: duplicate set element (equal to [0])");
        // 0.0 and -0.0, 1 and 1.0, a string and a keyword: different encodings.
        check_unique_items(&[
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Int(1),
            Value::Float(1.0),
        ])
        .unwrap();
        check_unique_items(&[Value::from("a"), Value::kw("a")]).unwrap();
    }

    #[test]
    fn large_maps_and_sets_are_checked_in_linear_time() {
        let distinct: Vec<Value> = (0..100_000).map(Value::from).collect();
        check_unique_items(&distinct).unwrap();
        let mut repeated = distinct.clone();
        repeated.push(Value::Int(77_777));
        let err = check_unique_items(&repeated).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[100000]: duplicate set element (equal to [77777])"
        );
        let pairs: Vec<(Value, Value)> = (0..20)
            .map(|i| (Value::list([Value::from(i % 19)]), Value::Nil))
            .collect();
        let err = check_unique_keys(&pairs).unwrap_err();
        assert_eq!(err.path(), "{key 19}");
    }
}
