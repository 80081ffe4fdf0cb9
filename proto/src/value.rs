//! [`Value`]: the typed value of PROTOCOL.md section 2, its equality, its validity rules
//! (keywords, instants, depth) and the constructors and accessors applications use.

mod inst;
mod unique;

use std::fmt;

pub use inst::Inst;
pub(crate) use unique::{check_unique_items, check_unique_keys};

use crate::CodecError;
use crate::error::Seg;

/// One value of any type of the protocol's table.
///
/// Integers: `Int` holds every value in i64 range; `UInt` only values above `i64::MAX`
/// (constructors normalize, so there is exactly one representation of each integer).
/// Maps and sets keep their order as received; equality ignores that order.
/// Floats compare by value, except that NaN equals NaN (so round-trips compare equal).
#[derive(Debug, Clone)]
pub enum Value {
    /// nil / null
    Nil,
    /// boolean
    Bool(bool),
    /// an integer in i64 range
    Int(i64),
    /// an integer above i64::MAX
    UInt(u64),
    /// f64
    Float(f64),
    /// UTF-8 text
    Str(String),
    /// raw bytes
    Bytes(Vec<u8>),
    /// an ordered list
    List(Vec<Value>),
    /// a map with keys of any type
    Map(Vec<(Value, Value)>),
    /// a UTC instant
    Inst(Inst),
    /// a UUID, 16 bytes
    Uuid([u8; 16]),
    /// a keyword: `name` or `ns/name`
    Kw(String),
    /// a set
    Set(Vec<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Str(a), Value::Str(b)) | (Value::Kw(a), Value::Kw(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => same_multiset(a, b),
            (Value::Inst(a), Value::Inst(b)) => a == b,
            (Value::Uuid(a), Value::Uuid(b)) => a == b,
            (Value::Set(a), Value::Set(b)) => same_multiset(a, b),
            _ => false,
        }
    }
}

/// Whether `a` and `b` hold the same elements the same number of times, in any order.
///
/// Value equality is an equivalence relation (NaN equals NaN), so greedily pairing each
/// element of `a` with any unused equal element of `b` is exact. The common prefix, which
/// is the whole input when both sides come from the same encoding, is matched in order
/// first; only what remains pays the quadratic search.
fn same_multiset<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (
        a.get(prefix..).unwrap_or_default(),
        b.get(prefix..).unwrap_or_default(),
    );
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        used.iter_mut().zip(b).any(|(taken, y)| {
            let found = !*taken && x == y;
            *taken |= found;
            found
        })
    })
}

/// Whether `name` is a valid keyword: non-empty, no white space, not starting or ending
/// with `/` (so `name` and `ns/name` are, `/name` and `ns/` are not).
pub fn is_valid_keyword(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.chars().any(char::is_whitespace)
}

/// The error for an invalid keyword, shared by both decoders.
pub(crate) fn check_keyword(name: &str) -> Result<(), CodecError> {
    if is_valid_keyword(name) {
        Ok(())
    } else {
        Err(CodecError::invalid(format!(
            "invalid keyword {name:?} (must be non-empty, without white space, not starting or ending with '/')"
        )))
    }
}

/// The path step to the value of a map's entry `index` whose key is `key`.
pub(crate) fn entry_seg(key: &Value, index: usize) -> Seg<'_> {
    match key {
        Value::Str(name) => Seg::Key(name),
        _ => Seg::Entry(index),
    }
}

impl Value {
    /// A keyword, not checked: an invalid one encodes but fails to decode. See
    /// [`Value::try_kw`] and [`is_valid_keyword`].
    pub fn kw(name: impl Into<String>) -> Value {
        Value::Kw(name.into())
    }

    /// A keyword, or an error when `name` is not a valid one.
    pub fn try_kw(name: impl Into<String>) -> Result<Value, CodecError> {
        let name = name.into();
        check_keyword(&name)?;
        Ok(Value::Kw(name))
    }

    /// Bytes.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(bytes.into())
    }

    /// A UUID from its 16 bytes.
    pub fn uuid(bytes: [u8; 16]) -> Value {
        Value::Uuid(bytes)
    }

    /// A list of the items, in order.
    pub fn list<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
        Value::List(items.into_iter().map(Into::into).collect())
    }

    /// A set of the items, in the given order. A repeated item is kept as given, and
    /// makes the value fail [`Value::check`]: no encoding may carry it (PROTOCOL.md
    /// section 2), so the server refuses it and the client never sends it.
    pub fn set<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
        Value::Set(items.into_iter().map(Into::into).collect())
    }

    /// A map of the pairs, in order.
    pub fn map<K: Into<Value>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// An integer in the normalized form; `None` outside `i64::MIN..=u64::MAX`.
    pub fn int(number: i128) -> Option<Value> {
        match i64::try_from(number) {
            Ok(small) => Some(Value::Int(small)),
            Err(_) => u64::try_from(number).ok().map(Value::UInt),
        }
    }

    /// The type's name as the protocol's table says it (`keyword`, `set`, ...), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Inst(_) => "instant",
            Value::Uuid(_) => "uuid",
            Value::Kw(_) => "keyword",
            Value::Set(_) => "set",
        }
    }

    /// True for nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
    /// The boolean.
    pub fn as_bool(&self) -> Option<bool> {
        if let Value::Bool(b) = self {
            Some(*b)
        } else {
            None
        }
    }
    /// The integer, when it fits i64.
    pub fn as_i64(&self) -> Option<i64> {
        if let Value::Int(n) = self {
            Some(*n)
        } else {
            None
        }
    }
    /// The integer, when it is >= 0.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }
    /// The float (integers are not floats).
    pub fn as_f64(&self) -> Option<f64> {
        if let Value::Float(f) = self {
            Some(*f)
        } else {
            None
        }
    }
    /// The string's text.
    pub fn as_str(&self) -> Option<&str> {
        if let Value::Str(s) = self {
            Some(s)
        } else {
            None
        }
    }
    /// The keyword's text.
    pub fn as_kw(&self) -> Option<&str> {
        if let Value::Kw(s) = self {
            Some(s)
        } else {
            None
        }
    }
    /// The bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if let Value::Bytes(b) = self {
            Some(b)
        } else {
            None
        }
    }
    /// The list's items.
    pub fn as_list(&self) -> Option<&[Value]> {
        if let Value::List(items) = self {
            Some(items)
        } else {
            None
        }
    }
    /// The set's items.
    pub fn as_set(&self) -> Option<&[Value]> {
        if let Value::Set(items) = self {
            Some(items)
        } else {
            None
        }
    }
    /// The map's entries, in order.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        if let Value::Map(pairs) = self {
            Some(pairs)
        } else {
            None
        }
    }
    /// The instant.
    pub fn as_inst(&self) -> Option<Inst> {
        if let Value::Inst(i) = self {
            Some(*i)
        } else {
            None
        }
    }
    /// The UUID's bytes.
    pub fn as_uuid(&self) -> Option<[u8; 16]> {
        if let Value::Uuid(u) = self {
            Some(*u)
        } else {
            None
        }
    }

    /// The value under the string key `key` of a map (the first such entry); `None` for a
    /// missing key or a value that is not a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The containers (list, map, set) on the deepest path: a scalar is 0, `[[1]]` is 2,
    /// `[]` is 1.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) | Value::Set(items) => {
                1 + items.iter().map(Value::depth).max().unwrap_or(0)
            }
            Value::Map(pairs) => {
                1 + pairs
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Checks what a decoder would: keywords valid, instants in range, nesting at most
    /// `max_depth`, no map key and no set element repeated (equal meaning the same
    /// canonical MessagePack encoding). A value built in code passes this iff its
    /// encodings decode. The error names the place (`tags[2]: duplicate set element ...`).
    /// Linear in the value's size (large maps and sets are checked through a hash set).
    pub fn check(&self, max_depth: usize) -> Result<(), CodecError> {
        self.check_level(max_depth, max_depth, true)
            .map_err(CodecError::top)
    }

    /// [`Value::check`] without the uniqueness rule, for a decoder that checked it while
    /// building the value.
    pub(crate) fn check_decoded(&self, max_depth: usize) -> Result<(), CodecError> {
        self.check_level(max_depth, max_depth, false)
            .map_err(CodecError::top)
    }

    /// [`Value::check`] for a value that may still hold `depth_left` levels of containers.
    fn check_level(
        &self,
        depth_left: usize,
        max_depth: usize,
        unique: bool,
    ) -> Result<(), CodecError> {
        let inner = || {
            depth_left
                .checked_sub(1)
                .ok_or_else(|| CodecError::too_deep(max_depth))
        };
        match self {
            Value::Kw(name) => check_keyword(name),
            Value::Inst(inst) => Inst::new(inst.secs, inst.nanos).map(drop),
            Value::List(items) | Value::Set(items) => {
                let inner = inner()?;
                for (index, item) in items.iter().enumerate() {
                    item.check_level(inner, max_depth, unique)
                        .map_err(|e| e.within(Seg::Index(index)))?;
                }
                // After the items: their depth is checked, so hashing them is bounded.
                match self {
                    Value::Set(items) if unique => check_unique_items(items),
                    _ => Ok(()),
                }
            }
            Value::Map(pairs) => {
                let inner = inner()?;
                for (index, (key, value)) in pairs.iter().enumerate() {
                    key.check_level(inner, max_depth, unique)
                        .map_err(|e| e.within(Seg::EntryKey(index)))?;
                    value
                        .check_level(inner, max_depth, unique)
                        .map_err(|e| e.within(entry_seg(key, index)))?;
                }
                if unique {
                    check_unique_keys(pairs)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Value {
    /// The tagged-JSON text (as [`crate::json::encode`] writes it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::json::encode(self))
    }
}

macro_rules! from_via {
    ($($source:ty => $variant:ident($wide:ty)),* $(,)?) => {$(
        impl From<$source> for Value {
            fn from(v: $source) -> Value {
                Value::$variant(<$wide>::from(v))
            }
        }
    )*};
}

from_via!(
    bool => Bool(bool),
    i8 => Int(i64), i16 => Int(i64), i32 => Int(i64), i64 => Int(i64),
    u8 => Int(i64), u16 => Int(i64), u32 => Int(i64),
    f32 => Float(f64), f64 => Float(f64),
    &str => Str(String), String => Str(String),
    Vec<Value> => List(Vec<Value>),
    Inst => Inst(Inst),
);

impl From<u64> for Value {
    /// `Int` up to `i64::MAX`, `UInt` above (the normalized form).
    fn from(v: u64) -> Value {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::from(u64::try_from(v).unwrap_or(u64::MAX))
    }
}

impl From<uuid::Uuid> for Value {
    fn from(v: uuid::Uuid) -> Value {
        Value::Uuid(v.into_bytes())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` is nil.
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Nil, Into::into)
    }
}

impl FromIterator<Value> for Value {
    /// A list.
    fn from_iter<I: IntoIterator<Item = Value>>(items: I) -> Value {
        Value::List(items.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
