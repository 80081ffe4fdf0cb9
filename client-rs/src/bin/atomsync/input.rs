//! What the user types, checked before anything is sent: group names, keys, and values in
//! the tagged JSON of PROTOCOL.md section 2 (`{"$kw": "groceries"}`, `{"$set": [...]}`),
//! from the command line or from standard input (`-`).

use std::io::Read;

use atomsync_proto::wire::{RESPONSE_MAX_DEPTH, check_group, check_key};
use atomsync_proto::{Packed, json};

use crate::error::{CliError, io};

/// How deep a value may nest here. The server checks its own limit (64 by default); this
/// one only keeps the parser's recursion bounded, high enough never to refuse first.
pub const MAX_DEPTH: usize = RESPONSE_MAX_DEPTH;

/// A group name the protocol allows.
pub fn group(name: &str) -> Result<&str, CliError> {
    check_group(name)
        .map(|()| name)
        .map_err(|e| CliError::Input(format!("GROUP {name:?}: {e}")))
}

/// A key the protocol allows.
pub fn key(key: &str) -> Result<&str, CliError> {
    check_key(key)
        .map(|()| key)
        .map_err(|e| CliError::Input(format!("KEY {key:?}: {e}")))
}

/// The value of `put`: the argument itself, or all of standard input for `-`.
pub fn value(arg: &str) -> Result<Packed, CliError> {
    if arg == "-" {
        let mut text = Vec::new();
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|e| io("standard input", &e))?;
        parse_value(&text, "VALUE (standard input)")
    } else {
        parse_value(arg.as_bytes(), "VALUE")
    }
}

/// One value in tagged JSON; `what` names it in the error.
pub fn parse_value(text: &[u8], what: &str) -> Result<Packed, CliError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(CliError::Input(format!(
            "{what}: empty; give a value in tagged JSON, e.g. '\"text\"' or '{{\"n\": 1}}'"
        )));
    }
    let value = json::decode(text, MAX_DEPTH).map_err(|e| {
        let hint = if text.first().is_some_and(u8::is_ascii_alphabetic) {
            " (a string needs JSON quotes: '\"text\"')"
        } else {
            ""
        };
        CliError::Input(format!("{what}: not tagged JSON: {e}{hint}"))
    })?;
    Ok(Packed::from_value(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_types() {
        let packed = parse_value(
            br#"{"text": "Buy milk", "tags": {"$set": [{"$kw": "groceries"}]}, "n": 1, "f": 1.0}"#,
            "VALUE",
        )
        .unwrap();
        assert_eq!(
            packed.to_json(),
            r#"{"text":"Buy milk","tags":{"$set":[{"$kw":"groceries"}]},"n":1,"f":1.0}"#
        );
    }

    #[test]
    fn bad_values_say_what_and_where() {
        let err = parse_value(b"milk", "VALUE").unwrap_err().to_string();
        assert!(
            err.starts_with("VALUE: not tagged JSON") && err.contains("JSON quotes"),
            "{err}"
        );
        let err = parse_value(br#"{"a": {"$kw": 3}}"#, "VALUE")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a"), "{err}");
        let err = parse_value(b"  \n", "VALUE").unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        assert!(group("todo").is_ok());
        let err = group("bad group").unwrap_err().to_string();
        assert!(
            err.starts_with("GROUP \"bad group\": must be 1..128"),
            "{err}"
        );
        assert!(key("").unwrap_err().to_string().contains("1..1024 bytes"));
    }
}
