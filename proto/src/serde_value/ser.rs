//! A [`serde::Serializer`] whose output is a [`Value`], and [`Serialize`] for [`Value`].
//!
//! Serde's data model has no keywords, sets, instants or UUIDs, so `Value` serializes them
//! as newtype structs with private marker names around a plain form (a string, a list).
//! This serializer recognizes the markers and rebuilds the typed value; any other
//! serializer just sees the plain form (see [`Value`]'s `Serialize`).

use serde::ser::{self, Serialize};

use super::{INST, KW, SET, SerdeError, UUID};
use crate::{Inst, Value};

impl ser::Error for SerdeError {
    fn custom<T: std::fmt::Display>(message: T) -> SerdeError {
        SerdeError(message.to_string())
    }
}

/// Serializes any value into a [`Value`].
pub(super) struct ValueSerializer;

/// A list in the making (sequences, tuples, tuple structs; and a tuple variant's payload).
pub(super) struct ListBuilder {
    variant: Option<&'static str>,
    items: Vec<Value>,
}

/// A map in the making (maps, structs; and a struct variant's payload).
pub(super) struct MapBuilder {
    variant: Option<&'static str>,
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
}

/// `{variant: payload}`: serde's externally tagged form of an enum variant.
fn tagged(variant: &'static str, payload: Value) -> Value {
    Value::Map(vec![(Value::from(variant), payload)])
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = ListBuilder;
    type SerializeTuple = ListBuilder;
    type SerializeTupleStruct = ListBuilder;
    type SerializeTupleVariant = ListBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerdeError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        Value::int(v)
            .ok_or_else(|| SerdeError(format!("integer {v} is outside the i64 and u64 ranges")))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| SerdeError(format!("integer {v} is above the u64 range")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerdeError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Value::from(variant))
    }

    /// Rebuilds the typed values that [`Value`]'s `Serialize` wrapped in a marker.
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let plain = value.serialize(ValueSerializer)?;
        let typed = match (name, plain) {
            (KW, Value::Str(name)) => {
                Value::try_kw(name).map_err(|error| SerdeError(error.to_string()))?
            }
            (SET, Value::List(items)) => Value::Set(items),
            (INST, Value::Str(text)) => Value::Inst(
                Inst::parse_rfc3339(&text).map_err(|error| SerdeError(error.to_string()))?,
            ),
            (UUID, Value::Str(text)) => Value::Uuid(
                uuid::Uuid::parse_str(&text)
                    .map_err(|error| SerdeError(format!("uuid {text:?}: {error}")))?
                    .into_bytes(),
            ),
            (KW | SET | INST | UUID, plain) => {
                return Err(SerdeError(format!(
                    "{name} cannot hold a {}",
                    plain.type_name()
                )));
            }
            (_, plain) => plain,
        };
        Ok(typed)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        Ok(tagged(variant, value.serialize(ValueSerializer)?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ListBuilder, SerdeError> {
        Ok(ListBuilder {
            variant: None,
            items: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<ListBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<ListBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<ListBuilder, SerdeError> {
        Ok(ListBuilder {
            variant: Some(variant),
            items: Vec::with_capacity(len),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            variant: None,
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, SerdeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            variant: Some(variant),
            entries: Vec::with_capacity(len),
            key: None,
        })
    }
}

impl ListBuilder {
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn done(self) -> Result<Value, SerdeError> {
        let list = Value::List(self.items);
        Ok(match self.variant {
            Some(variant) => tagged(variant, list),
            None => list,
        })
    }
}

impl ser::SerializeSeq for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl ser::SerializeTuple for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl ser::SerializeTupleStruct for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl ser::SerializeTupleVariant for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl MapBuilder {
    fn field<T: ?Sized + Serialize>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.entries
            .push((Value::from(name), value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn done(self) -> Result<Value, SerdeError> {
        let map = Value::Map(self.entries);
        Ok(match self.variant {
            Some(variant) => tagged(variant, map),
            None => map,
        })
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerdeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| SerdeError("a map value came without its key".to_owned()))?;
        self.entries.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.field(name, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.field(name, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        self.done()
    }
}

impl Serialize for Value {
    /// Serializes the value in serde's data model. Through [`crate::to_value`] every type
    /// survives. Through another serializer (serde_json, rmp-serde, ...) the types serde
    /// has no words for lose their type: a keyword becomes its name, a set a list, an
    /// instant its RFC 3339 string and a UUID its hyphenated string.
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(flag) => serializer.serialize_bool(*flag),
            Value::Int(number) => serializer.serialize_i64(*number),
            Value::UInt(number) => serializer.serialize_u64(*number),
            Value::Float(number) => serializer.serialize_f64(*number),
            Value::Str(text) => serializer.serialize_str(text),
            Value::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Value::List(items) => serializer.collect_seq(items),
            Value::Map(entries) => {
                serializer.collect_map(entries.iter().map(|(key, value)| (key, value)))
            }
            Value::Inst(inst) => serializer.serialize_newtype_struct(INST, &inst.to_rfc3339()),
            Value::Uuid(bytes) => {
                let mut text = uuid::Uuid::encode_buffer();
                let text = uuid::Uuid::from_bytes(*bytes)
                    .hyphenated()
                    .encode_lower(&mut text);
                serializer.serialize_newtype_struct(UUID, &*text)
            }
            Value::Kw(name) => serializer.serialize_newtype_struct(KW, name.as_str()),
            Value::Set(items) => serializer.serialize_newtype_struct(SET, items.as_slice()),
        }
    }
}
