//! [`Value`]: the typed value of PROTOCOL.md section 2.

/// A UTC instant with nanosecond precision, years 0001 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Inst {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds within the second, 0..1_000_000_000.
    pub nanos: u32,
}

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
        todo!()
    }
}
