//! The value codecs against the contract of PROTOCOL.md section 2: exact bytes and text
//! for every type (`golden`), round trips and cross-encoding agreement over generated
//! values (`props`), and refusal without panic of every kind of malformed input (`malformed`).

#[path = "codec/golden.rs"]
mod golden;
#[path = "codec/malformed.rs"]
mod malformed;
#[path = "codec/props.rs"]
mod props;

use atomsync_proto::{Inst, Value};

/// The protocol's default depth limit.
pub const MAX_DEPTH: usize = 64;

/// Bytes from hex text with optional spaces.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// An instant that must be valid.
pub fn inst(secs: i64, nanos: u32) -> Value {
    Value::Inst(Inst::new(secs, nanos).unwrap())
}
