//! The tagged-JSON reader: a small recursive-descent parser over bytes whose recursion is
//! capped, turning tags into the values they stand for.
//!
//! Written here rather than on serde_json because the protocol needs what a generic
//! parser hides: whether a number was written as a float (`1.0`) or an integer, integers
//! beyond u64 refused rather than rounded, duplicate names refused, and error paths in
//! the value's own terms (`.tags[2]`).

use base64::Engine as _;

use crate::error::Seg;
use crate::value::{check_keyword, check_unique_items, check_unique_keys};
use crate::{CodecError, Inst, Value};

/// Tags whose payload sits one member deep: an error inside one is reported at the
/// value the tag stands for, without a `.$set` step.
const TAGS: [&str; 7] = ["$float", "$bytes", "$map", "$inst", "$uuid", "$kw", "$set"];

pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    // A `$map` spends three JSON levels (object, array, pair) per value level, and a
    // scalar tag one more: no valid value needs more than this.
    let json_levels = max_depth.saturating_mul(3).saturating_add(8);
    let mut parser = Parser {
        bytes,
        pos: 0,
        max_depth,
    };
    parser.skip_ws();
    let value = parser.value(json_levels)?;
    parser.skip_ws();
    if parser.pos != bytes.len() {
        return Err(parser.syntax("unexpected text after the value"));
    }
    // The exact depth, now that every tag has become the value it stands for (maps and
    // sets were checked for repeats as they were built).
    value.check_decoded(max_depth)?;
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Incomplete at the end of the input, else Invalid naming the byte offset.
    fn syntax(&self, what: &str) -> CodecError {
        match self.peek() {
            None => CodecError::incomplete(),
            Some(_) => CodecError::invalid(format!("{what} (byte {})", self.pos)),
        }
    }

    fn too_deep(&self) -> CodecError {
        CodecError::too_deep(self.max_depth)
    }

    /// One value; `levels` is how many more arrays and objects may open.
    fn value(&mut self, levels: usize) -> Result<Value, CodecError> {
        match self.peek() {
            None => Err(CodecError::incomplete()),
            Some(b'n') => self.literal(b"null", Value::Nil),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                let inner = levels.checked_sub(1).ok_or_else(|| self.too_deep())?;
                self.array(inner).map(Value::List)
            }
            Some(b'{') => {
                let inner = levels.checked_sub(1).ok_or_else(|| self.too_deep())?;
                self.object(inner)
            }
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, CodecError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else if word.starts_with(rest) {
            Err(CodecError::incomplete())
        } else {
            Err(self.syntax("expected a value"))
        }
    }

    fn array(&mut self, levels: usize) -> Result<Vec<Value>, CodecError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_ws();
            let index = items.len();
            items.push(
                self.value(levels)
                    .map_err(|e| e.within(Seg::Index(index)))?,
            );
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.syntax("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, levels: usize) -> Result<Value, CodecError> {
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        // The first byte of the first member's value: a `$float` payload must be a
        // number or a string, not an object that merely decodes to a float.
        let mut first_payload = None;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Map(Vec::new()));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a member name"));
            }
            let name = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let maybe_tag = members.is_empty() && TAGS.contains(&name.as_str());
            if members.is_empty() {
                first_payload = self.peek();
            }
            let value = self.value(levels).map_err(|e| {
                if maybe_tag {
                    e
                } else {
                    e.within(Seg::Key(&name))
                }
            })?;
            members.push((name, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.syntax("expected ',' or '}'")),
            }
        }
        if let [(name, _)] = members.as_slice()
            && name.starts_with('$')
            && let Some((name, payload)) = members.pop()
        {
            return tag(&name, payload, first_payload);
        }
        let pairs: Vec<(Value, Value)> = members
            .into_iter()
            .map(|(name, value)| (Value::Str(name), value))
            .collect();
        // A JSON object cannot name a member twice, as no map can hold a key twice.
        check_unique_keys(&pairs)?;
        Ok(Value::Map(pairs))
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            let run_start = self.pos;
            while matches!(self.peek(), Some(byte) if byte != b'"' && byte != b'\\' && byte >= 0x20)
            {
                self.pos += 1;
            }
            // Runs end only at ASCII bytes, so each is whole UTF-8 on its own.
            let run = self.bytes.get(run_start..self.pos).unwrap_or_default();
            let run = std::str::from_utf8(run)
                .map_err(|_| CodecError::invalid("string is not valid UTF-8"))?;
            text.push_str(run);
            match self.peek() {
                None => return Err(CodecError::incomplete()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    text.push(self.escape()?);
                }
                Some(_) => return Err(self.syntax("control character in a string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, CodecError> {
        let Some(byte) = self.peek() else {
            return Err(CodecError::incomplete());
        };
        let simple = match byte {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'u' => None,
            _ => return Err(self.syntax("invalid escape")),
        };
        self.pos += 1;
        if let Some(c) = simple {
            return Ok(c);
        }
        let unpaired = |parser: &Parser<'_>| parser.syntax("unpaired surrogate in a \\u escape");
        let unit = self.hex4()?;
        let code = match unit {
            0xd800..=0xdbff => {
                match self.bytes.get(self.pos..self.pos + 2) {
                    Some(b"\\u") => self.pos += 2,
                    None if self.bytes.len() < self.pos + 2 => return Err(CodecError::incomplete()),
                    _ => return Err(unpaired(self)),
                }
                let low = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&low) {
                    return Err(unpaired(self));
                }
                0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(unpaired(self)),
            _ => unit,
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, CodecError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return Err(CodecError::incomplete());
        };
        let mut unit = 0;
        for &digit in digits {
            let nibble = char::from(digit)
                .to_digit(16)
                .ok_or_else(|| self.syntax("invalid \\u escape"))?;
            unit = unit * 16 + nibble;
        }
        self.pos += 4;
        Ok(unit)
    }

    fn digits(&mut self) -> Result<(), CodecError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.syntax("expected a digit"));
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Value, CodecError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        // JSON allows no leading zeros: after a `0` comes no digit.
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits()?;
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
            is_float = true;
        }
        let text = self.bytes.get(start..self.pos).unwrap_or_default();
        // The grammar above admits only ASCII digits, signs, '.', 'e' and 'E'.
        let text = std::str::from_utf8(text).unwrap_or_default();
        let out_of_range = |kind: &str| CodecError::invalid(format!("{kind} {text} out of range"));
        if is_float {
            let float: f64 = text.parse().map_err(|_| out_of_range("number"))?;
            if float.is_finite() {
                Ok(Value::Float(float))
            } else {
                Err(out_of_range("float"))
            }
        } else if negative {
            text.parse()
                .map(Value::Int)
                .map_err(|_| out_of_range("integer"))
        } else {
            text.parse::<u64>()
                .map(Value::from)
                .map_err(|_| out_of_range("integer"))
        }
    }
}

/// The value a tag stands for. `first_byte` is where the payload's text began.
fn tag(name: &str, payload: Value, first_byte: Option<u8>) -> Result<Value, CodecError> {
    let bad = |what: &str| CodecError::invalid(format!("{name} payload must be {what}"));
    let float_payload = "\"NaN\", \"Infinity\", \"-Infinity\" or a number";
    let map_payload = "an array of [key, value] arrays";
    match (name, payload) {
        ("$float", Value::Str(text)) => match text.as_str() {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "Infinity" => Ok(Value::Float(f64::INFINITY)),
            "-Infinity" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => Err(bad(float_payload)),
        },
        ("$float", Value::Float(f)) if first_byte != Some(b'{') => Ok(Value::Float(f)),
        // An integer payload names the nearest float, as any JSON number does.
        ("$float", Value::Int(n)) => Ok(Value::Float(n as f64)),
        ("$float", Value::UInt(n)) => Ok(Value::Float(n as f64)),
        ("$bytes", Value::Str(text)) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Value::Bytes)
            .map_err(|_| bad("standard base64 with padding")),
        ("$map", Value::List(entries)) => {
            let mut pairs = Vec::with_capacity(entries.len());
            for (index, entry) in entries.into_iter().enumerate() {
                let Value::List(pair) = entry else {
                    return Err(bad(map_payload).within(Seg::Index(index)));
                };
                let Ok([key, value]) = <[Value; 2]>::try_from(pair) else {
                    return Err(bad(map_payload).within(Seg::Index(index)));
                };
                pairs.push((key, value));
            }
            check_unique_keys(&pairs)?;
            Ok(Value::Map(pairs))
        }
        ("$inst", Value::Str(text)) => Inst::parse_rfc3339(&text).map(Value::Inst),
        ("$uuid", Value::Str(text)) => parse_uuid(&text)
            .map(Value::Uuid)
            .ok_or_else(|| bad("a hyphenated UUID")),
        ("$kw", Value::Str(text)) => check_keyword(&text).map(|()| Value::Kw(text)),
        ("$set", Value::List(items)) => check_unique_items(&items).map(|()| Value::Set(items)),
        ("$float", _) => Err(bad(float_payload)),
        ("$bytes" | "$inst" | "$uuid" | "$kw", _) => Err(bad("a string")),
        ("$map", _) => Err(bad(map_payload)),
        ("$set", _) => Err(bad("an array")),
        _ => Err(CodecError::invalid(format!("unknown tag {name:?}"))),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in either case.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.as_bytes();
    if text.len() != 36 {
        return None;
    }
    let mut nibbles = Vec::with_capacity(32);
    for (index, &c) in text.iter().enumerate() {
        match (matches!(index, 8 | 13 | 18 | 23), c) {
            (true, b'-') => {}
            (true, _) => return None,
            (false, _) => nibbles.push(u8::try_from(char::from(c).to_digit(16)?).ok()?),
        }
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(nibbles.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = high << 4 | low;
        }
    }
    Some(bytes)
}
