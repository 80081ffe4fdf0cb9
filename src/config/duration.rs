//! Durations in the config file as people write them, and the parsers that flags and the
//! environment share with it. Timeouts take seconds as a number (`30`, `0.5`) or a text
//! (`"30s"`, `"500ms"`); compaction's horizons, where a unit mistaken for another removes
//! data for good, must say their unit (`"30d"`, `"1h"`). The `timeout`, `horizon` and
//! `horizon_option` modules are serde's `with` adapters for the config's fields.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// What a key may hold: a number of seconds, or a text with units.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Seconds(f64),
    Text(String),
}

pub(super) mod timeout {
    use super::*;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        match Written::deserialize(d)? {
            Written::Seconds(number) => seconds(number),
            Written::Text(text) => parse_seconds_or_duration(&text),
        }
        .map_err(serde::de::Error::custom)
    }
}

pub(super) mod horizon {
    use super::*;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

pub(super) mod horizon_option {
    use super::*;

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::horizon::deserialize(d).map(Some)
    }
}

/// A number of seconds (fractions allowed) as a `Duration`; the error says what was wrong.
fn seconds(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{seconds} is not a number of seconds >= 0"))
}

/// A timeout as people write it: seconds (`"30"`, `"0.5"`) or a duration (`"30s"`,
/// `"500ms"`, `"1m"`); the error says what was expected. For flags and environment
/// variables as for the config file.
pub fn parse_seconds_or_duration(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(number) => seconds(number),
        Err(_) => humantime::parse_duration(text.trim()).map_err(|e| {
            format!("{text:?} is neither seconds nor a duration ({e}); write it like 30, 0.5 or \"500ms\"")
        }),
    }
}

/// A duration as people write it (`"30d"`, `"12h"`, `"1h 30m"`, `"45s"`); the error says
/// what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write it like \"30d\", \"12h\" or \"90s\"")
    })
}
