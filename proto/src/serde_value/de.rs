//! A [`serde::Deserializer`] over a borrowed [`Value`], and [`Deserialize`] for [`Value`].
//!
//! Types serde has no words for are offered in their plain forms: a keyword as its name,
//! a set as a sequence, an instant as its RFC 3339 string and a UUID as its hyphenated
//! string, so that `String`, `Vec<_>` or `uuid::Uuid` fields read them. Only when the
//! target is itself a [`Value`] (it asks for the private `VALUE` newtype) does this
//! deserializer hand over the type, through `visit_enum` with a marker variant, which no
//! other deserializer calls for a newtype struct.

use serde::de::value::{I128Deserializer, StrDeserializer, U128Deserializer};
use serde::de::{self, Deserialize, DeserializeSeed, IntoDeserializer, Visitor};

use super::{SerdeError, VALUE};
use crate::{Inst, Value};

impl de::Error for SerdeError {
    fn custom<T: std::fmt::Display>(message: T) -> SerdeError {
        SerdeError(message.to_string())
    }
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Reads a borrowed [`Value`] as any deserializable type.
pub(super) struct ValueDeserializer<'de>(pub(super) &'de Value);

/// The elements of a list or set, one by one.
struct Elements<'de>(std::slice::Iter<'de, Value>);

/// The entries of a map, one by one.
struct Entries<'de> {
    entries: std::slice::Iter<'de, (Value, Value)>,
    value: Option<&'de Value>,
}

/// An enum variant in serde's externally tagged form: a name alone (a unit variant) or
/// `{name: payload}`.
struct Variant<'de> {
    name: &'de Value,
    payload: Option<&'de Value>,
}

/// A typed value handed to [`Value`]'s own visitor as a marker variant.
enum Typed<'de> {
    Kw(&'de str),
    Set(&'de [Value]),
    Inst(Inst),
    Uuid([u8; 16]),
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(*flag),
            Value::Int(number) => visitor.visit_i64(*number),
            Value::UInt(number) => visitor.visit_u64(*number),
            Value::Float(number) => visitor.visit_f64(*number),
            Value::Str(text) | Value::Kw(text) => visitor.visit_borrowed_str(text),
            Value::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
            Value::List(items) | Value::Set(items) => visitor.visit_seq(Elements(items.iter())),
            Value::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
            Value::Inst(inst) => visitor.visit_string(inst.to_rfc3339()),
            Value::Uuid(bytes) => {
                let mut text = uuid::Uuid::encode_buffer();
                visitor.visit_str(
                    uuid::Uuid::from_bytes(*bytes)
                        .hyphenated()
                        .encode_lower(&mut text),
                )
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        if name != VALUE {
            return visitor.visit_newtype_struct(self);
        }
        let typed = match self.0 {
            Value::Kw(name) => Typed::Kw(name),
            Value::Set(items) => Typed::Set(items),
            Value::Inst(inst) => Typed::Inst(*inst),
            Value::Uuid(bytes) => Typed::Uuid(*bytes),
            _ => return self.deserialize_any(visitor),
        };
        visitor.visit_enum(typed)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.0 {
            Value::Str(_) | Value::Kw(_) => visitor.visit_enum(Variant {
                name: self.0,
                payload: None,
            }),
            Value::Map(entries) => match entries.as_slice() {
                [(name, payload)] => visitor.visit_enum(Variant {
                    name,
                    payload: Some(payload),
                }),
                _ => Err(SerdeError(format!(
                    "an enum must be a name or a map of one entry, not {} entries",
                    entries.len()
                ))),
            },
            other => Err(SerdeError(format!(
                "an enum must be a name or a map of one entry, not a {}",
                other.type_name()
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

impl<'de> de::SeqAccess<'de> for Elements<'de> {
    type Error = SerdeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        self.0
            .next()
            .map(|item| seed.deserialize(ValueDeserializer(item)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = SerdeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(ValueDeserializer(key)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, SerdeError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| SerdeError("a map value was read before its key".to_owned()))?;
        seed.deserialize(ValueDeserializer(value))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = SerdeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        Ok((seed.deserialize(ValueDeserializer(self.name))?, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = SerdeError;
    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.payload {
            None | Some(Value::Nil) => Ok(()),
            Some(other) => Err(SerdeError(format!(
                "a unit variant carries nothing, not a {}",
                other.type_name()
            ))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        seed.deserialize(ValueDeserializer(self.payload.unwrap_or(&Value::Nil)))
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.payload {
            Some(Value::List(items)) => visitor.visit_seq(Elements(items.iter())),
            _ => Err(SerdeError("a tuple variant must carry a list".to_owned())),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.payload {
            Some(Value::Map(entries)) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
            _ => Err(SerdeError("a struct variant must carry a map".to_owned())),
        }
    }
}

impl<'de> de::EnumAccess<'de> for Typed<'de> {
    type Error = SerdeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        let name = match self {
            Typed::Kw(_) => "Kw",
            Typed::Set(_) => "Set",
            Typed::Inst(_) => "Inst",
            Typed::Uuid(_) => "Uuid",
        };
        Ok((
            seed.deserialize(StrDeserializer::<SerdeError>::new(name))?,
            self,
        ))
    }
}

impl<'de> de::VariantAccess<'de> for Typed<'de> {
    type Error = SerdeError;
    fn unit_variant(self) -> Result<(), SerdeError> {
        Err(SerdeError("a typed value is not a unit variant".to_owned()))
    }
    /// The payloads are the cheapest exact forms: the name, the elements, the instant in
    /// nanoseconds, the UUID as one big-endian integer.
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        match self {
            Typed::Kw(name) => seed.deserialize(name.into_deserializer()),
            Typed::Set(items) => seed.deserialize(ElementsDeserializer(items)),
            Typed::Inst(inst) => {
                let nanos = i128::from(inst.secs) * NANOS_PER_SEC + i128::from(inst.nanos);
                seed.deserialize(I128Deserializer::<SerdeError>::new(nanos))
            }
            Typed::Uuid(bytes) => seed.deserialize(U128Deserializer::<SerdeError>::new(
                u128::from_be_bytes(bytes),
            )),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, SerdeError> {
        Err(SerdeError(
            "a typed value is not a tuple variant".to_owned(),
        ))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, SerdeError> {
        Err(SerdeError(
            "a typed value is not a struct variant".to_owned(),
        ))
    }
}

/// A set's elements as a sequence (the payload of the `Set` marker variant).
struct ElementsDeserializer<'de>(&'de [Value]);

impl<'de> de::Deserializer<'de> for ElementsDeserializer<'de> {
    type Error = SerdeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_seq(Elements(self.0.iter()))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Builds a [`Value`] from whatever a deserializer offers.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Value::int(v)
            .ok_or_else(|| E::custom(format!("integer {v} is outside the i64 and u64 ranges")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| E::custom(format!("integer {v} is above the u64 range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    /// Another deserializer answering our `VALUE` request: read its plain data model (a
    /// second `Value::deserialize` here would ask for the newtype again, forever).
    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // The hint comes from the input: cap it so a lying one cannot allocate much.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
    /// The typed values this module's deserializer hands over as marker variants.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use de::VariantAccess;
        let (name, variant): (String, _) = data.variant()?;
        match name.as_str() {
            "Kw" => Ok(Value::Kw(variant.newtype_variant()?)),
            "Set" => Ok(Value::Set(variant.newtype_variant()?)),
            "Inst" => {
                let nanos: i128 = variant.newtype_variant()?;
                let secs =
                    i64::try_from(nanos.div_euclid(NANOS_PER_SEC)).map_err(de::Error::custom)?;
                let within =
                    u32::try_from(nanos.rem_euclid(NANOS_PER_SEC)).map_err(de::Error::custom)?;
                Inst::new(secs, within)
                    .map(Value::Inst)
                    .map_err(de::Error::custom)
            }
            "Uuid" => Ok(Value::Uuid(
                variant.newtype_variant::<u128>()?.to_be_bytes(),
            )),
            other => Err(de::Error::custom(format!(
                "a value has no variant {other:?}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Reads any self-describing input. From [`crate::from_value`] every type survives;
    /// from another deserializer, values come back in serde's data model (a keyword
    /// serialized through serde_json reads back as a string).
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_newtype_struct(VALUE, ValueVisitor)
    }
}
