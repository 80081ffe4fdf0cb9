//! Conversion between [`Value`] and any serde type.

use crate::Value;

/// An error converting to or from a [`Value`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// Converts any serializable type into a [`Value`].
pub fn to_value<T: serde::Serialize + ?Sized>(item: &T) -> Result<Value, SerdeError> {
    todo!()
}

/// Converts a [`Value`] into any deserializable type.
pub fn from_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, SerdeError> {
    todo!()
}
