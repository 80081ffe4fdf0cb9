//! Malformed input of every kind is an error with a path, never a panic.
