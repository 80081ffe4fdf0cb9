//! The MessagePack tokenizer: turns bytes into [`Token`]s, one header or scalar at a time,
//! checking every format rule that does not need the surrounding structure.
//!
//! Containers come back as their declared element count only; the walkers in the parent
//! module recurse under a depth counter, so neither a deep nor a lying input can exhaust
//! the stack or drive an allocation. The reader also notes whether every format it read
//! was the canonical (smallest) one, so stored bytes can be kept as they came.

use crate::error::CodecError;
use crate::value::{Inst, check_keyword};

/// Extension types of PROTOCOL.md section 2.
pub(crate) const EXT_INST: i8 = -1;
pub(crate) const EXT_UUID: i8 = 1;
pub(crate) const EXT_KW: i8 = 2;
pub(crate) const EXT_SET: i8 = 3;

/// One header or scalar. Strings and bytes borrow from the input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    /// A list of this many items follows.
    Array(usize),
    /// A map of this many key/value pairs follows.
    Map(usize),
    Inst(Inst),
    Uuid([u8; 16]),
    Kw(&'a str),
    /// A set of `len` items follows, inside an extension payload; once they are read,
    /// [`Reader::end_set`] with `outer_end` checks the payload held nothing else.
    Set {
        len: usize,
        outer_end: usize,
    },
}

/// A read position over MessagePack bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the innermost enclosing extension payload (or the input) ends.
    end: usize,
    /// False once a non-canonical form (float 32, a longer length or int form than
    /// needed, ...) has been read.
    pub(crate) canonical: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            end: bytes.len(),
            canonical: true,
        }
    }

    /// Bytes read so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes from `start` to the current position.
    pub(crate) fn slice(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    /// Bytes left before the end of the current payload: an upper bound on how many
    /// items can follow, whatever a header claims.
    pub(crate) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// After a set's items: the payload must end exactly here.
    pub(crate) fn end_set(&mut self, outer_end: usize) -> Result<(), CodecError> {
        if self.pos != self.end {
            return Err(CodecError::invalid(
                "set payload holds bytes after its array",
            ));
        }
        self.end = outer_end;
        Ok(())
    }

    fn short(&self) -> CodecError {
        if self.end == self.bytes.len() {
            CodecError::incomplete()
        } else {
            CodecError::invalid("extension payload ends in the middle of a value")
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if len > self.remaining() {
            return Err(self.short());
        }
        let slice = self
            .bytes
            .get(self.pos..self.pos + len)
            .ok_or_else(|| self.short())?;
        self.pos += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let slice = self.take(N)?;
        <[u8; N]>::try_from(slice).map_err(|_| self.short())
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a length of `bytes` bytes and notes whether it needed this form: `least` is
    /// the smallest length the next smaller form cannot hold.
    fn len(&mut self, bytes: usize, least: usize) -> Result<usize, CodecError> {
        let len = match bytes {
            1 => usize::from(self.u8()?),
            2 => usize::from(self.u16()?),
            _ => usize::try_from(self.u32()?).unwrap_or(usize::MAX),
        };
        self.canonical &= len >= least;
        Ok(len)
    }

    fn str(&mut self, len: usize) -> Result<Token<'a>, CodecError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Token::Str)
            .map_err(|_| CodecError::invalid("string is not valid UTF-8"))
    }

    /// The next token.
    pub(crate) fn next(&mut self) -> Result<Token<'a>, CodecError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Token::Int(i64::from(marker)),
            0x80..=0x8f => Token::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Token::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
            0xc0 => Token::Nil,
            0xc1 => return Err(CodecError::invalid("reserved byte 0xc1")),
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => Token::Bin(self.bin(1, 0)?),
            0xc5 => Token::Bin(self.bin(2, 0x100)?),
            0xc6 => Token::Bin(self.bin(4, 0x1_0000)?),
            0xc7 => self.ext_len(marker, 1)?,
            0xc8 => self.ext_len(marker, 2)?,
            0xc9 => self.ext_len(marker, 4)?,
            0xca => {
                self.canonical = false;
                Token::Float(f64::from(f32::from_bits(self.u32()?)))
            }
            0xcb => {
                let float = f64::from_bits(self.u64()?);
                self.canonical &= !float.is_nan() || float.to_bits() == f64::NAN.to_bits();
                Token::Float(float)
            }
            0xcc => {
                let v = self.u8()?;
                self.uint(u64::from(v), 0x7f)
            }
            0xcd => {
                let v = self.u16()?;
                self.uint(u64::from(v), 0xff)
            }
            0xce => {
                let v = self.u32()?;
                self.uint(u64::from(v), 0xffff)
            }
            0xcf => {
                let v = self.u64()?;
                self.uint(v, 0xffff_ffff)
            }
            0xd0 => {
                let v = i8::from_be_bytes(self.array()?);
                self.int(i64::from(v), -32)
            }
            0xd1 => {
                let v = i16::from_be_bytes(self.array()?);
                self.int(i64::from(v), i64::from(i8::MIN))
            }
            0xd2 => {
                let v = i32::from_be_bytes(self.array()?);
                self.int(i64::from(v), i64::from(i16::MIN))
            }
            0xd3 => {
                let v = i64::from_be_bytes(self.array()?);
                self.int(v, i64::from(i32::MIN))
            }
            0xd4 => self.ext(marker, 1)?,
            0xd5 => self.ext(marker, 2)?,
            0xd6 => self.ext(marker, 4)?,
            0xd7 => self.ext(marker, 8)?,
            0xd8 => self.ext(marker, 16)?,
            0xd9 => {
                let len = self.len(1, 32)?;
                self.str(len)?
            }
            0xda => {
                let len = self.len(2, 0x100)?;
                self.str(len)?
            }
            0xdb => {
                let len = self.len(4, 0x1_0000)?;
                self.str(len)?
            }
            0xdc => Token::Array(self.len(2, 16)?),
            0xdd => Token::Array(self.len(4, 0x1_0000)?),
            0xde => Token::Map(self.len(2, 16)?),
            0xdf => Token::Map(self.len(4, 0x1_0000)?),
            0xe0..=0xff => Token::Int(i64::from(i8::from_be_bytes([marker]))),
        })
    }

    fn bin(&mut self, len_bytes: usize, least: usize) -> Result<&'a [u8], CodecError> {
        let len = self.len(len_bytes, least)?;
        self.take(len)
    }

    /// A uint form; canonical only when the value needs it (`above` is the largest value
    /// the next smaller form holds).
    fn uint(&mut self, value: u64, above: u64) -> Token<'a> {
        self.canonical &= value > above;
        i64::try_from(value).map_or(Token::UInt(value), Token::Int)
    }

    /// An int form; canonical only for a negative value below what the next smaller form
    /// holds (non-negative values belong in the uint forms).
    fn int(&mut self, value: i64, below: i64) -> Token<'a> {
        self.canonical &= value < below;
        Token::Int(value)
    }

    fn ext_len(&mut self, marker: u8, len_bytes: usize) -> Result<Token<'a>, CodecError> {
        let len = match len_bytes {
            1 => usize::from(self.u8()?),
            2 => usize::from(self.u16()?),
            _ => usize::try_from(self.u32()?).unwrap_or(usize::MAX),
        };
        self.ext(marker, len)
    }

    fn ext(&mut self, marker: u8, len: usize) -> Result<Token<'a>, CodecError> {
        self.canonical &= ext_marker(len) == marker;
        let ext_type = i8::from_be_bytes(self.array()?);
        match ext_type {
            EXT_INST => {
                let inst = match len {
                    4 => Inst::new(i64::from(self.u32()?), 0)?,
                    8 => {
                        let packed = self.u64()?;
                        let secs = i64::try_from(packed & ((1 << 34) - 1)).unwrap_or(i64::MAX);
                        let nanos = u32::try_from(packed >> 34).unwrap_or(u32::MAX);
                        Inst::new(secs, nanos)?
                    }
                    12 => {
                        let nanos = self.u32()?;
                        Inst::new(i64::from_be_bytes(self.array()?), nanos)?
                    }
                    _ => {
                        return Err(CodecError::invalid(format!(
                            "timestamp payload of {len} bytes (must be 4, 8 or 12)"
                        )));
                    }
                };
                self.canonical &= inst_payload_len(&inst) == len;
                Ok(Token::Inst(inst))
            }
            EXT_UUID => match self.take(len)?.try_into() {
                Ok(bytes) => Ok(Token::Uuid(bytes)),
                Err(_) => Err(CodecError::invalid(format!(
                    "uuid payload of {len} bytes (must be 16)"
                ))),
            },
            EXT_KW => {
                let text = std::str::from_utf8(self.take(len)?)
                    .map_err(|_| CodecError::invalid("keyword is not valid UTF-8"))?;
                check_keyword(text)?;
                Ok(Token::Kw(text))
            }
            EXT_SET => {
                if len > self.remaining() {
                    return Err(self.short());
                }
                let outer_end = self.end;
                self.end = self.pos + len;
                let is_array = matches!(self.bytes.get(self.pos), Some(0x90..=0x9f | 0xdc | 0xdd));
                if !is_array || len == 0 {
                    return Err(CodecError::invalid("set payload must be one array"));
                }
                match self.next()? {
                    Token::Array(len) => Ok(Token::Set { len, outer_end }),
                    _ => Err(CodecError::invalid("set payload must be one array")),
                }
            }
            other => Err(CodecError::invalid(format!(
                "unknown extension type {other}"
            ))),
        }
    }
}

/// The marker of the smallest extension form for a payload of `len` bytes.
pub(crate) fn ext_marker(len: usize) -> u8 {
    match len {
        1 => 0xd4,
        2 => 0xd5,
        4 => 0xd6,
        8 => 0xd7,
        16 => 0xd8,
        0..=0xff => 0xc7,
        0x100..=0xffff => 0xc8,
        _ => 0xc9,
    }
}

/// The canonical timestamp payload size: 4 bytes when whole seconds fit u32, 8 when the
/// seconds fit 34 bits, else 12.
pub(crate) fn inst_payload_len(inst: &Inst) -> usize {
    match inst.secs {
        0..=0xffff_ffff if inst.nanos == 0 => 4,
        0..=0x3_ffff_ffff => 8,
        _ => 12,
    }
}
