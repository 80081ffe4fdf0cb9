//! Conversion between [`Value`] and any serde type ([`to_value`], [`from_value`]), so that
//! applications keep their own structs and still store typed values.
//!
//! - Serializing: structs and maps become maps (struct fields as string keys), sequences
//!   and tuples lists, `()` and `None` nil, bytes bytes, chars strings, integers their one
//!   normalized form, enums serde's externally tagged form (`"Unit"`, `{"Variant": ..}`).
//! - Deserializing: maps read as maps or structs, lists and sets as sequences, keywords as
//!   strings, instants as their RFC 3339 strings, UUIDs as hyphenated strings (so a
//!   `String` or a `uuid::Uuid` field reads them), bytes as bytes, nil as `None` or `()`,
//!   enums from a name or a map of one entry.
//! - A [`Value`] field keeps every type through both: `Value` implements `Serialize` and
//!   `Deserialize`, and this module's serializer and deserializer recognize it by private
//!   marker names (see `ser` and `de`).

mod de;
mod ser;

use crate::Value;

/// An error converting to or from a [`Value`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// Marker names of the newtype structs `Value` serializes its typed values as; the `$`
/// keeps them apart from any Rust type name.
const KW: &str = "$atomsync::Kw";
const SET: &str = "$atomsync::Set";
const INST: &str = "$atomsync::Inst";
const UUID: &str = "$atomsync::Uuid";
/// The newtype name a `Value` asks a deserializer for, to be handed its types.
const VALUE: &str = "$atomsync::Value";

/// Converts any serializable type into a [`Value`].
///
/// ```
/// use atomsync_proto::{Value, to_value};
/// #[derive(serde::Serialize)]
/// struct Item { text: String, done: bool }
/// let value = to_value(&Item { text: "Buy milk".into(), done: false }).unwrap();
/// assert_eq!(value.get("text"), Some(&Value::from("Buy milk")));
/// ```
pub fn to_value<T: serde::Serialize + ?Sized>(item: &T) -> Result<Value, SerdeError> {
    item.serialize(ser::ValueSerializer)
}

/// Converts a [`Value`] into any deserializable type.
///
/// ```
/// use atomsync_proto::{Value, from_value};
/// let value = Value::map([("text", Value::from("Buy milk")), ("tags", Value::set([Value::kw("home")]))]);
/// #[derive(serde::Deserialize)]
/// struct Item { text: String, tags: Vec<String> }
/// let item: Item = from_value(&value).unwrap();
/// assert_eq!(item.tags, ["home"]);
/// ```
pub fn from_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, SerdeError> {
    T::deserialize(de::ValueDeserializer(value))
}
