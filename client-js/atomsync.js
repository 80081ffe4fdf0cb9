/**
 * # atomsync.js: the Atomsync browser client
 *
 * One dependency-free ES module, no build step. It owns, in this order:
 *
 * 1. **Values**: the typed values of PROTOCOL.md section 2 in JavaScript terms
 *    (`kw`, `uuid`, `inst`, `float`, `equals`).
 * 2. **MessagePack**: our own small encoder/decoder (`encode`, `decode`).
 * 3. **Storage**: where a group's state lives: IndexedDB in browsers (`IdbStorage`),
 *    memory for tests and for pages that must not persist (`MemoryStorage`).
 * 4. **Sync**: `open(name)` → `conn.syncedAtom(group, options)`: the offline-first synced
 *    atom (`ready`, `deref`, `swap`, `watch`, `status`, `watchStatus`), its network
 *    session (WebSocket, HTTP fallback) and the coordination of several tabs.
 *
 * It is one file because the server embeds and serves exactly one module at
 * `GET /atomsync.js`; the sections above are the modules it would otherwise be.
 *
 * ## Why binary MessagePack
 *
 * Every value must survive a round trip with the Rust client with its type intact.
 * JSON cannot carry that on its own in a browser: `JSON.parse` turns every number into a
 * double, so an integer beyond 2^53 is silently rounded and `1.0` becomes `1`; a lossless
 * JSON path would need our own JSON parser anyway. MessagePack says int or float in the
 * type byte, carries bytes natively, and names instants, UUIDs, keywords and sets with
 * extension types, so the decoder never guesses. It is also the server's storage format:
 * a document we did not change is kept and pushed back as the exact bytes the server sent.
 *
 * ## Values in JavaScript
 *
 * | protocol | JavaScript |
 * |---|---|
 * | nil | `null` (`undefined` is refused: it is not a value) |
 * | integer | a `number` when it is a safe integer (|n| < 2^53), else a `BigInt`, both ways; never rounded |
 * | float | a non-integral `number` (also NaN, ±Infinity, -0); a float whose value is an integer decodes as a {@link Float} wrapper (see below) |
 * | string, boolean | string, boolean |
 * | bytes | `Uint8Array` |
 * | list | `Array` |
 * | map | a plain object when every key is a string, else a `Map`; both encode as maps |
 * | instant | {@link Inst} (ns precision; `inst(date)`, `inst("2026-11-24T10:00:00.123456789Z")`, `.toDate()`); a `Date` also encodes as an instant |
 * | uuid | {@link Uuid} (`uuid("550e8400-...")`, `uuid()` for a random v4) |
 * | keyword | {@link Keyword} (`kw("groceries")`); interned, so `kw("a") === kw("a")` and keywords work as `Map` keys and `Set` members |
 * | set | `Set` |
 *
 * Integers and floats: JavaScript has one number type, and `1.0 === 1`. A JS number that
 * is a safe integer encodes as an int; to write a float with an integral value, wrap it:
 * `float(1)`. Symmetrically, a float64 from the wire whose value is a safe integer decodes
 * as `Float` (whose `valueOf` makes arithmetic work: `float(2) * 3 === 6`), so a Rust
 * `Float(1.0)` read and written back by a browser stays a float. Every other float
 * decodes as a plain number, which can only encode as a float again.
 *
 * Values are immutable snapshots: replace a value in `swap` rather than mutating the
 * object you got from `deref`.
 *
 * @module atomsync
 */

// ---------------------------------------------------------------------------------------
// 1. Values
// ---------------------------------------------------------------------------------------

/** Only the module creates Keyword/Float/Raw instances through their factories. */
const INTERNAL = Symbol("atomsync.internal");

/** Rust's `char::is_whitespace` set, which the server uses to validate keywords. */
const WHITE_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;

/** A keyword: `name` or `ns/name`. Create with {@link kw}. */
export class Keyword {
  /** @param {symbol} token @param {string} name */
  constructor(token, name) {
    if (token !== INTERNAL) throw new TypeError("use kw(name) to make a keyword");
    /** The keyword's text, as on the wire (`"groceries"`, `"todo/done"`). @type {string} */
    this.name = name;
    Object.freeze(this);
  }
  /** The part before `/`, or null. @returns {string | null} */
  get namespace() {
    const slash = this.name.indexOf("/");
    return slash > 0 ? this.name.slice(0, slash) : null;
  }
  toString() {
    return ":" + this.name;
  }
  toJSON() {
    return { $kw: this.name };
  }
}

/** Interned keywords: identity equality makes them usable as Map keys and Set members. */
const keywordTable = new Map();

/**
 * The keyword `name` (interned).
 * @param {string} name non-empty, no white space, not starting or ending with `/`
 * @returns {Keyword}
 */
export function kw(name) {
  if (typeof name !== "string" || name === "" || name.startsWith("/") || name.endsWith("/") || WHITE_SPACE.test(name)) {
    throw new TypeError(`invalid keyword ${JSON.stringify(name)} (must be non-empty, without white space, not starting or ending with '/')`);
  }
  let keyword = keywordTable.get(name);
  if (!keyword) {
    keyword = new Keyword(INTERNAL, name);
    keywordTable.set(name, keyword);
  }
  return keyword;
}

/** A UUID (16 bytes). Create with {@link uuid}. */
export class Uuid {
  /** @param {Uint8Array} bytes exactly 16 bytes */
  constructor(bytes) {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 16) throw new TypeError("a uuid is exactly 16 bytes");
    /** @type {Uint8Array} */
    this.bytes = Uint8Array.from(bytes);
    Object.freeze(this);
  }
  /** The canonical lower-case hyphenated form. */
  toString() {
    const hex = toHex(this.bytes);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  toJSON() {
    return { $uuid: this.toString() };
  }
}

/**
 * A UUID from its text form or 16 bytes; with no argument, a random (version 4) one.
 * @param {string | Uint8Array} [from]
 * @returns {Uuid}
 */
export function uuid(from) {
  if (from === undefined) {
    const bytes = new Uint8Array(16);
    globalThis.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    return new Uuid(bytes);
  }
  if (from instanceof Uint8Array) return new Uuid(from);
  const match = typeof from === "string" && /^([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})$/i.exec(from);
  if (!match) throw new TypeError(`invalid uuid ${JSON.stringify(from)}`);
  return new Uuid(fromHex(match.slice(1).join("")));
}

const SECS_PER_DAY = 86400;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the protocol's instant range. */
const MIN_SECS = -62135596800;
const MAX_SECS = 253402300799;

/** A UTC instant with nanosecond precision, years 0001 to 9999. Create with {@link inst}. */
export class Inst {
  /**
   * @param {number} secs whole seconds since 1970-01-01T00:00:00Z (negative before)
   * @param {number} nanos 0 to 999999999
   */
  constructor(secs, nanos) {
    if (!Number.isInteger(secs) || secs < MIN_SECS || secs > MAX_SECS) throw new RangeError(`instant seconds ${secs} outside years 0001 to 9999`);
    if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999999999) throw new RangeError(`instant nanoseconds ${nanos} outside 0..999999999`);
    /** @type {number} */
    this.secs = secs;
    /** @type {number} */
    this.nanos = nanos;
    Object.freeze(this);
  }
  /** A `Date` (millisecond precision: the nanoseconds below a millisecond are dropped). */
  toDate() {
    return new Date(this.secs * 1000 + Math.floor(this.nanos / 1e6));
  }
  /** Nanoseconds since the Unix epoch, exactly. @returns {bigint} */
  get epochNanos() {
    return BigInt(this.secs) * 1000000000n + BigInt(this.nanos);
  }
  /** RFC 3339 as the server writes it: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, no trailing zeros. */
  toString() {
    const days = Math.floor(this.secs / SECS_PER_DAY);
    const secOfDay = this.secs - days * SECS_PER_DAY;
    const [year, month, day] = civilFromDays(days);
    const pad = (n, width) => String(n).padStart(width, "0");
    let text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(Math.floor(secOfDay / 3600), 2)}:${pad(Math.floor(secOfDay / 60) % 60, 2)}:${pad(secOfDay % 60, 2)}`;
    if (this.nanos) text += "." + pad(this.nanos, 9).replace(/0+$/, "");
    return text + "Z";
  }
  toJSON() {
    return { $inst: this.toString() };
  }
}

/**
 * An instant: now (no argument), from a `Date`, from RFC 3339 text (any offset, up to 9
 * fraction digits), or from whole seconds and nanoseconds since the Unix epoch.
 * @param {Date | string | number} [from]
 * @param {number} [nanos]
 * @returns {Inst}
 */
export function inst(from, nanos = 0) {
  if (from === undefined) from = new Date();
  if (from instanceof Date) {
    const ms = from.getTime();
    if (Number.isNaN(ms)) throw new RangeError("invalid Date");
    const secs = Math.floor(ms / 1000);
    return new Inst(secs, (ms - secs * 1000) * 1e6);
  }
  if (typeof from === "number") return new Inst(from, nanos);
  if (typeof from === "string") return parseRfc3339(from);
  throw new TypeError("inst() takes a Date, an RFC 3339 string, or seconds and nanoseconds");
}

/** @param {string} text @returns {Inst} */
function parseRfc3339(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(text);
  if (!match) throw new RangeError(`instant ${JSON.stringify(text)}: not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), at most 9 fraction digits)`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const daysInMonth = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (!daysInMonth || day < 1 || day > daysInMonth) throw new RangeError(`instant ${JSON.stringify(text)}: no such date`);
  if (hour > 23 || minute > 59 || second > 59) throw new RangeError(`instant ${JSON.stringify(text)}: no such time of day`);
  const offHour = Number(match[10] ?? 0);
  const offMinute = Number(match[11] ?? 0);
  if (offHour > 23 || offMinute > 59) throw new RangeError(`instant ${JSON.stringify(text)}: offset out of range`);
  const offset = (match[9] === "-" ? -1 : 1) * (offHour * 3600 + offMinute * 60);
  const secs = daysFromCivil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset;
  const nanos = match[7] ? Number(match[7].padEnd(9, "0")) : 0;
  if (secs < MIN_SECS || secs > MAX_SECS) throw new RangeError(`instant ${JSON.stringify(text)}: outside years 0001 to 9999`);
  return new Inst(secs, nanos);
}

/** @param {number} year */
function isLeap(year) {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** The inverse of {@link daysFromCivil}: `[year, month, day]`. */
function civilFromDays(days) {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

/** A float64 whose value happens to be an integer: see the module doc. Create with {@link float}. */
export class Float {
  /** @param {symbol} token @param {number} value */
  constructor(token, value) {
    if (token !== INTERNAL) throw new TypeError("use float(x) to make a Float");
    /** @type {number} */
    this.value = value;
    Object.freeze(this);
  }
  valueOf() {
    return this.value;
  }
  toString() {
    return Number.isInteger(this.value) ? this.value.toFixed(1) : String(this.value);
  }
  toJSON() {
    return this.value;
  }
}

/**
 * Marks `x` as a float, so that an integral value is written as float64, not int.
 * @param {number | Float} x
 * @returns {Float}
 */
export function float(x) {
  if (x instanceof Float) return x;
  if (typeof x !== "number") throw new TypeError("float() takes a number");
  return new Float(INTERNAL, x);
}

/** The number a value is, for display and arithmetic: unwraps {@link Float}. */
export function num(x) {
  return x instanceof Float ? x.value : x;
}

/**
 * Equality of two values as the protocol sees them: maps and sets ignore order, a plain
 * object equals a string-keyed `Map` with the same entries, `5` equals `5n`, but the int
 * `1` differs from `float(1)`, and NaN equals NaN. Throws on anything that is not a value.
 * @param {unknown} a
 * @param {unknown} b
 */
export function equals(a, b) {
  return canonical(a, 0) === canonical(b, 0);
}

/** A text that two values share exactly when {@link equals} holds. */
function canonical(value, depth) {
  if (depth > 512) throw new RangeError("value nested too deeply to compare");
  if (value === null) return "n";
  switch (typeof value) {
    case "boolean":
      return value ? "T" : "F";
    case "number":
      return isIntNumber(value) ? "i" + value : "d" + floatText(value);
    case "bigint":
      return "i" + value.toString();
    case "string":
      return "s" + JSON.stringify(value);
  }
  const inner = (v) => canonical(v, depth + 1);
  if (value instanceof Float) return "d" + floatText(value.value);
  if (value instanceof Uint8Array) return "b" + toHex(value);
  if (value instanceof Keyword) return "k" + JSON.stringify(value.name);
  if (value instanceof Uuid) return "u" + value.toString();
  if (value instanceof Inst) return "@" + value.secs + "." + value.nanos;
  if (value instanceof Date) return canonical(inst(value), depth);
  if (Array.isArray(value)) return "[" + value.map(inner).join(",") + "]";
  if (value instanceof Set) return "#{" + [...value].map(inner).sort().join(",") + "}";
  const entries = mapEntries(value);
  if (entries) return "{" + entries.map(([k, v]) => inner(k) + ":" + inner(v)).sort().join(",") + "}";
  throw new TypeError(`not a value: ${describe(value)}`);
}

/** @param {number} x */
function floatText(x) {
  return Object.is(x, -0) ? "-0" : String(x);
}

/** A JS number that the protocol treats as an int. */
function isIntNumber(x) {
  return Number.isSafeInteger(x) && !Object.is(x, -0);
}

/** The entries of a Map or plain object, else null. */
function mapEntries(value) {
  if (value instanceof Map) return [...value];
  if (typeof value === "object" && value !== null) {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return Object.entries(value);
  }
  return null;
}

/** @param {unknown} value */
function describe(value) {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  return value?.constructor?.name ? `a ${value.constructor.name}` : typeof value;
}

/** @param {Uint8Array} bytes */
function toHex(bytes) {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** @param {string} hex an even number of hex digits */
function fromHex(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

// ---------------------------------------------------------------------------------------
// 2. MessagePack
// ---------------------------------------------------------------------------------------

const EXT_INST = -1;
const EXT_UUID = 1;
const EXT_KW = 2;
const EXT_SET = 3;

/** The protocol's default limits on one value (PROTOCOL.md section 2). */
export const MAX_VALUE_BYTES = 1 << 20;
export const MAX_DEPTH = 64;

const MAX_U64 = (1n << 64n) - 1n;
const MIN_I64 = -(1n << 63n);

/** A value that cannot be encoded or bytes that cannot be decoded. */
export class CodecError extends Error {
  /**
   * @param {string} message what was wrong and where
   * @param {boolean} [incomplete] the input ended too early (more bytes could fix it)
   */
  constructor(message, incomplete = false) {
    super(message);
    this.name = "CodecError";
    /** @type {boolean} */
    this.incomplete = incomplete;
  }
}

/** Bytes that are already a valid encoding, written as they are (kept server values). */
class Raw {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** A growable output buffer. */
class Writer {
  constructor() {
    this.buf = new Uint8Array(64);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  /** @param {number} n */
  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(b) {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }
  u16(n) {
    this.reserve(2);
    this.view.setUint16(this.pos, n);
    this.pos += 2;
  }
  u32(n) {
    this.reserve(4);
    this.view.setUint32(this.pos, n);
    this.pos += 4;
  }
  /** @param {bigint} n */
  u64(n) {
    this.reserve(8);
    this.view.setBigUint64(this.pos, n);
    this.pos += 8;
  }
  /** @param {bigint} n */
  i64(n) {
    this.reserve(8);
    this.view.setBigInt64(this.pos, n);
    this.pos += 8;
  }
  f64(x) {
    this.reserve(8);
    this.view.setFloat64(this.pos, x);
    this.pos += 8;
  }
  /** @param {Uint8Array} bytes */
  bytes(bytes) {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  result() {
    return this.buf.slice(0, this.pos);
  }
}

/**
 * The canonical MessagePack encoding of `value` (smallest int, length and extension
 * forms; floats as float64; instants in the smallest timestamp form), the one the Rust
 * side writes too.
 * @param {unknown} value
 * @param {{maxDepth?: number}} [options] containers nested deeper than this are refused (default 64)
 * @returns {Uint8Array}
 */
export function encode(value, { maxDepth = MAX_DEPTH } = {}) {
  const writer = new Writer();
  writeValue(writer, value, maxDepth, "value");
  return writer.result();
}

/**
 * @param {Writer} w
 * @param {unknown} value
 * @param {number} depthLeft containers that may still be entered
 * @param {string} path where `value` is, for error messages
 */
function writeValue(w, value, depthLeft, path) {
  if (value === null) return w.u8(0xc0);
  switch (typeof value) {
    case "boolean":
      return w.u8(value ? 0xc3 : 0xc2);
    case "number":
      return isIntNumber(value) ? writeInt(w, BigInt(value)) : writeFloat(w, value);
    case "bigint":
      if (value < MIN_I64 || value > MAX_U64) throw new CodecError(`${path}: integer ${value} outside the i64/u64 range`);
      return writeInt(w, value);
    case "string": {
      const bytes = utf8Encoder.encode(value);
      writeLength(w, bytes.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
      return w.bytes(bytes);
    }
  }
  if (value instanceof Raw) return w.bytes(value.bytes);
  if (value instanceof Float) return writeFloat(w, value.value);
  if (value instanceof Uint8Array) {
    writeLength(w, value.length, -1, 0, 0xc4, 0xc5, 0xc6);
    return w.bytes(value);
  }
  if (value instanceof Keyword) return writeExt(w, EXT_KW, utf8Encoder.encode(value.name));
  if (value instanceof Uuid) return writeExt(w, EXT_UUID, value.bytes);
  if (value instanceof Inst) return writeInst(w, value);
  if (value instanceof Date) return writeInst(w, inst(value));
  const container = value instanceof Set || Array.isArray(value) || mapEntries(value);
  if (!container) throw new CodecError(`${path}: ${describe(value)} is not a value`);
  if (depthLeft <= 0) throw new CodecError(`${path}: nested deeper than the limit`);
  if (Array.isArray(value)) {
    writeLength(w, value.length, 0x90, 16, -1, 0xdc, 0xdd);
    value.forEach((item, i) => writeValue(w, item, depthLeft - 1, `${path}[${i}]`));
  } else if (value instanceof Set) {
    // The payload is an array whose length we only know once written: encode it apart.
    const payload = new Writer();
    writeLength(payload, value.size, 0x90, 16, -1, 0xdc, 0xdd);
    let i = 0;
    for (const item of value) writeValue(payload, item, depthLeft - 1, `${path}#${i++}`);
    writeExt(w, EXT_SET, payload.result());
  } else {
    const entries = /** @type {[unknown, unknown][]} */ (container);
    writeLength(w, entries.length, 0x80, 16, -1, 0xde, 0xdf);
    for (const [key, item] of entries) {
      const where = typeof key === "string" ? `${path}.${key}` : `${path}{key}`;
      writeValue(w, key, depthLeft - 1, where);
      writeValue(w, item, depthLeft - 1, where);
    }
  }
}

/** @param {Writer} w @param {bigint} n */
function writeInt(w, n) {
  if (n >= 0n) {
    if (n < 0x80n) w.u8(Number(n));
    else if (n <= 0xffn) (w.u8(0xcc), w.u8(Number(n)));
    else if (n <= 0xffffn) (w.u8(0xcd), w.u16(Number(n)));
    else if (n <= 0xffffffffn) (w.u8(0xce), w.u32(Number(n)));
    else (w.u8(0xcf), w.u64(n));
  } else if (n >= -32n) w.u8(Number(n) & 0xff);
  else if (n >= -128n) (w.u8(0xd0), w.u8(Number(n) & 0xff));
  else if (n >= -32768n) (w.u8(0xd1), w.u16(Number(n) & 0xffff));
  else if (n >= -2147483648n) (w.u8(0xd2), w.u32(Number(n) >>> 0));
  else (w.u8(0xd3), w.i64(n));
}

/** @param {Writer} w @param {number} x */
function writeFloat(w, x) {
  w.u8(0xcb);
  w.f64(x);
}

/**
 * The smallest header for a length: a fix form (`fixBase | len` below `fixLimit`, none
 * when `fixBase` is -1), then the 8-, 16- and 32-bit forms (no 8-bit form when -1).
 */
function writeLength(w, len, fixBase, fixLimit, marker8, marker16, marker32) {
  if (fixBase >= 0 && len < fixLimit) w.u8(fixBase | len);
  else if (marker8 >= 0 && len <= 0xff) (w.u8(marker8), w.u8(len));
  else if (len <= 0xffff) (w.u8(marker16), w.u16(len));
  else if (len <= 0xffffffff) (w.u8(marker32), w.u32(len));
  else throw new CodecError(`a length of ${len} is beyond MessagePack`);
}

/** Writes an extension with the smallest header for its payload. */
function writeExt(w, type, payload) {
  const fixMarkers = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  const len = payload.length;
  if (fixMarkers[len]) w.u8(fixMarkers[len]);
  else if (len <= 0xff) (w.u8(0xc7), w.u8(len));
  else if (len <= 0xffff) (w.u8(0xc8), w.u16(len));
  else (w.u8(0xc9), w.u32(len));
  w.u8(type & 0xff);
  w.bytes(payload);
}

/** The timestamp extension in its smallest form: 32, 64 or 96 bits. */
function writeInst(w, instant) {
  const { secs, nanos } = instant;
  const payload = new Writer();
  if (nanos === 0 && secs >= 0 && secs <= 0xffffffff) payload.u32(secs);
  else if (secs >= 0 && secs < 2 ** 34) payload.u64((BigInt(nanos) << 34n) | BigInt(secs));
  else (payload.u32(nanos), payload.i64(BigInt(secs)));
  writeExt(w, EXT_INST, payload.result());
}

/** A read position over MessagePack bytes. */
class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    /** Where the innermost extension payload (or the input) ends. */
    this.end = bytes.length;
    /** Inside an extension payload: running out is then invalid, not incomplete. */
    this.bounded = false;
  }
  /** @param {number} n */
  take(n) {
    if (n > this.end - this.pos) {
      if (!this.bounded) throw new CodecError("incomplete MessagePack: the input ends in the middle of a value", true);
      throw new CodecError("extension payload ends in the middle of a value");
    }
    const start = this.pos;
    this.pos += n;
    return start;
  }
  u8() {
    return this.bytes[this.take(1)];
  }
  u16() {
    return this.view.getUint16(this.take(2));
  }
  u32() {
    return this.view.getUint32(this.take(4));
  }
  /** The items a container may still hold: each takes at least one byte. */
  remaining() {
    return this.end - this.pos;
  }
}

/**
 * Decodes exactly one value that fills `bytes`.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @param {{maxDepth?: number}} [options] containers nested deeper are refused (default 64)
 * @returns {unknown}
 * @throws {CodecError} incomplete or invalid input, with where
 */
export function decode(bytes, { maxDepth = MAX_DEPTH } = {}) {
  return decodeWith(bytes, maxDepth, false);
}

/**
 * Decodes a protocol message (a pull or push response, a WebSocket frame): every map
 * entry named `value` (the only place documents' values appear) is kept as a validated
 * {@link Raw} slice, so stored values are the server's exact bytes.
 * @param {Uint8Array | ArrayBuffer} bytes
 */
function decodeMessage(bytes) {
  return decodeWith(bytes, MAX_DEPTH, true);
}

function decodeWith(bytes, maxDepth, rawValues) {
  const input = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const reader = new Reader(input);
  const value = readValue(reader, maxDepth, rawValues, "value");
  if (reader.pos !== input.length) throw new CodecError(`${input.length - reader.pos} bytes after the value`);
  return value;
}

/**
 * @param {Reader} r
 * @param {number} depthLeft
 * @param {boolean} rawValues see {@link decodeMessage}
 * @param {string} path
 */
function readValue(r, depthLeft, rawValues, path) {
  const marker = r.u8();
  if (marker <= 0x7f) return marker;
  if (marker >= 0xe0) return marker - 0x100;
  if (marker <= 0x8f) return readMap(r, marker & 0x0f, depthLeft, rawValues, path);
  if (marker <= 0x9f) return readArray(r, marker & 0x0f, depthLeft, rawValues, path);
  if (marker <= 0xbf) return readStr(r, marker & 0x1f, path);
  const view = r.view;
  switch (marker) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return readBin(r, r.u8());
    case 0xc5:
      return readBin(r, r.u16());
    case 0xc6:
      return readBin(r, r.u32());
    case 0xc7:
      return readExt(r, r.u8(), depthLeft, path);
    case 0xc8:
      return readExt(r, r.u16(), depthLeft, path);
    case 0xc9:
      return readExt(r, r.u32(), depthLeft, path);
    case 0xca:
      return floatValue(view.getFloat32(r.take(4)));
    case 0xcb:
      return floatValue(view.getFloat64(r.take(8)));
    case 0xcc:
      return r.u8();
    case 0xcd:
      return r.u16();
    case 0xce:
      return r.u32();
    case 0xcf:
      return intValue(view.getBigUint64(r.take(8)));
    case 0xd0:
      return view.getInt8(r.take(1));
    case 0xd1:
      return view.getInt16(r.take(2));
    case 0xd2:
      return view.getInt32(r.take(4));
    case 0xd3:
      return intValue(view.getBigInt64(r.take(8)));
    case 0xd4:
      return readExt(r, 1, depthLeft, path);
    case 0xd5:
      return readExt(r, 2, depthLeft, path);
    case 0xd6:
      return readExt(r, 4, depthLeft, path);
    case 0xd7:
      return readExt(r, 8, depthLeft, path);
    case 0xd8:
      return readExt(r, 16, depthLeft, path);
    case 0xd9:
      return readStr(r, r.u8(), path);
    case 0xda:
      return readStr(r, r.u16(), path);
    case 0xdb:
      return readStr(r, r.u32(), path);
    case 0xdc:
      return readArray(r, r.u16(), depthLeft, rawValues, path);
    case 0xdd:
      return readArray(r, r.u32(), depthLeft, rawValues, path);
    case 0xde:
      return readMap(r, r.u16(), depthLeft, rawValues, path);
    case 0xdf:
      return readMap(r, r.u32(), depthLeft, rawValues, path);
    default:
      throw new CodecError(`${path}: reserved byte 0x${marker.toString(16)}`);
  }
}

/** @param {Reader} r @param {number} len */
function readBin(r, len) {
  const start = r.take(len);
  return r.bytes.slice(start, start + len);
}

/** A float from the wire: integral safe values keep their float-ness in a wrapper. */
function floatValue(x) {
  return isIntNumber(x) ? new Float(INTERNAL, x) : x;
}

/** A 64-bit int from the wire: a number when safe, else a BigInt (never rounded). */
function intValue(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function readStr(r, len, path) {
  const start = r.take(len);
  try {
    return utf8Decoder.decode(r.bytes.subarray(start, start + len));
  } catch {
    throw new CodecError(`${path}: string is not valid UTF-8`);
  }
}

function enter(depthLeft, path) {
  if (depthLeft <= 0) throw new CodecError(`${path}: nested deeper than the limit`);
  return depthLeft - 1;
}

function readArray(r, len, depthLeft, rawValues, path) {
  const inner = enter(depthLeft, path);
  if (len > r.remaining()) throw new CodecError(`${path}: an array of ${len} items cannot fit in the ${r.remaining()} bytes left`, !r.bounded);
  const items = new Array(len);
  for (let i = 0; i < len; i++) items[i] = readValue(r, inner, rawValues, `${path}[${i}]`);
  return items;
}

function readMap(r, len, depthLeft, rawValues, path) {
  const inner = enter(depthLeft, path);
  if (len * 2 > r.remaining()) throw new CodecError(`${path}: a map of ${len} entries cannot fit in the ${r.remaining()} bytes left`, !r.bounded);
  const entries = new Array(len);
  let allStrings = true;
  for (let i = 0; i < len; i++) {
    const key = readValue(r, inner, rawValues, `${path}{key ${i}}`);
    const where = typeof key === "string" ? `${path}.${key}` : `${path}{entry ${i}}`;
    let item;
    if (rawValues && key === "value") {
      const start = r.pos;
      readValue(r, MAX_DEPTH, false, where);
      item = new Raw(r.bytes.slice(start, r.pos));
    } else {
      item = readValue(r, inner, rawValues, where);
    }
    allStrings &&= typeof key === "string";
    entries[i] = [key, item];
  }
  if (!allStrings) return new Map(entries);
  const object = {};
  // defineProperty, not assignment: a key named "__proto__" must stay a plain entry.
  for (const [key, item] of entries) Object.defineProperty(object, key, { value: item, enumerable: true, writable: true, configurable: true });
  return object;
}

function readExt(r, len, depthLeft, path) {
  const type = r.view.getInt8(r.take(1));
  const start = r.take(len);
  const payload = r.bytes.subarray(start, start + len);
  switch (type) {
    case EXT_INST:
      return readInst(payload, path);
    case EXT_UUID:
      if (len !== 16) throw new CodecError(`${path}: uuid payload of ${len} bytes (must be 16)`);
      return new Uuid(payload);
    case EXT_KW: {
      let name;
      try {
        name = utf8Decoder.decode(payload);
      } catch {
        throw new CodecError(`${path}: keyword is not valid UTF-8`);
      }
      try {
        return kw(name);
      } catch (e) {
        throw new CodecError(`${path}: ${e.message}`);
      }
    }
    case EXT_SET: {
      // The payload is read in place: its own end bounds the array inside it.
      const outer = { end: r.end, bounded: r.bounded };
      const after = r.pos;
      r.pos = start;
      r.end = start + len;
      r.bounded = true;
      const marker = r.u8();
      let count;
      if (marker >= 0x90 && marker <= 0x9f) count = marker & 0x0f;
      else if (marker === 0xdc) count = r.u16();
      else if (marker === 0xdd) count = r.u32();
      else throw new CodecError(`${path}: set payload is not an array`);
      const items = readArray(r, count, depthLeft, false, path);
      if (r.pos !== r.end) throw new CodecError(`${path}: set payload holds bytes after its array`);
      r.pos = after;
      r.end = outer.end;
      r.bounded = outer.bounded;
      return new Set(items);
    }
    default:
      throw new CodecError(`${path}: unknown extension type ${type}`);
  }
}

function readInst(payload, path) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let secs;
  let nanos;
  if (payload.length === 4) {
    secs = view.getUint32(0);
    nanos = 0;
  } else if (payload.length === 8) {
    const packed = view.getBigUint64(0);
    nanos = Number(packed >> 34n);
    secs = Number(packed & ((1n << 34n) - 1n));
  } else if (payload.length === 12) {
    nanos = view.getUint32(0);
    const wide = view.getBigInt64(4);
    secs = wide < BigInt(MIN_SECS) || wide > BigInt(MAX_SECS) ? NaN : Number(wide);
  } else {
    throw new CodecError(`${path}: timestamp payload of ${payload.length} bytes (must be 4, 8 or 12)`);
  }
  try {
    return new Inst(secs, nanos);
  } catch (e) {
    throw new CodecError(`${path}: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------
// 3. Storage
// ---------------------------------------------------------------------------------------

/**
 * @typedef {object} DocRecord The last server state of one document (tombstones included:
 *   their version is the base of a later re-create).
 * @property {string} group
 * @property {string} key
 * @property {number | bigint} version
 * @property {number | bigint} seq
 * @property {Uint8Array | null} bytes the value's MessagePack bytes; null for a tombstone
 */

/**
 * @typedef {object} PendingRecord A local change not yet acknowledged by the server,
 *   folded per key: a second write to a key replaces the first and keeps its base.
 * @property {string} group
 * @property {string} key
 * @property {Uint8Array | null} bytes the new value's bytes; null for a delete
 * @property {number | bigint | null} base the server version the change builds on; null
 *   after an epoch change: "whatever the new database has when this is pushed"
 * @property {string} rev unique per local write: a push's answer compares it to know
 *   whether the change it carried is still the latest one for the key
 */

/** @typedef {{epoch: string | null, cursor: number | bigint}} GroupMeta */

/**
 * @typedef {object} StorageTx The operations of one atomic transaction. Reads return
 *   promises; writes are queued and take effect when the transaction commits. Code inside
 *   a transaction awaits nothing but these reads (IndexedDB commits a transaction as soon
 *   as it has no request left).
 * @property {(group: string) => Promise<GroupMeta | undefined>} getMeta
 * @property {(group: string, meta: GroupMeta) => void} putMeta
 * @property {(group: string, key: string) => Promise<DocRecord | undefined>} getDoc
 * @property {(group: string) => Promise<DocRecord[]>} allDocs
 * @property {(doc: DocRecord) => void} putDoc
 * @property {(group: string, key: string) => void} deleteDoc
 * @property {(group: string) => void} clearDocs
 * @property {(group: string, key: string) => Promise<PendingRecord | undefined>} getPending
 * @property {(group: string) => Promise<PendingRecord[]>} allPending
 * @property {(change: PendingRecord) => void} putPending
 * @property {(group: string, key: string) => void} deletePending
 */

/**
 * @typedef {object} Storage Where groups' state lives, shared by every tab of a database.
 * @property {<T>(mode: "readonly" | "readwrite", body: (tx: StorageTx) => Promise<T>, options?: {durability?: "strict" | "relaxed" | "default"}) => Promise<T>} transaction
 *   runs `body` atomically: all its writes commit together once it resolves, none if it throws
 * @property {() => void} close
 */

const STORES = ["meta", "docs", "pending"];

/** @param {IDBRequest} request */
function requestDone(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Every `[group, key]` of one group: arrays sort after strings in IndexedDB. */
function groupRange(group) {
  return IDBKeyRange.bound([group], [group, []]);
}

/** Storage in IndexedDB: one database per `open(name)`, shared by the origin's tabs. */
export class IdbStorage {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /**
   * @param {string} name the database name
   * @param {IDBFactory} [factory]
   * @returns {Promise<IdbStorage>}
   */
  static open(name, factory = globalThis.indexedDB) {
    if (!factory) return Promise.reject(new Error("IndexedDB is not available here: pass {storage: new MemoryStorage()} to open()"));
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("meta");
      db.createObjectStore("docs", { keyPath: ["group", "key"] });
      db.createObjectStore("pending", { keyPath: ["group", "key"] });
    };
    return requestDone(request).then((db) => {
      // Another tab upgrading the schema must not be blocked by us forever.
      db.onversionchange = () => db.close();
      return new IdbStorage(db);
    });
  }

  transaction(mode, body, { durability = "default" } = {}) {
    return new Promise((resolve, reject) => {
      const t = this.db.transaction(STORES, mode, { durability });
      const [meta, docs, pending] = STORES.map((name) => t.objectStore(name));
      /** @type {StorageTx} */
      const tx = {
        getMeta: (group) => requestDone(meta.get(group)),
        putMeta: (group, value) => meta.put(value, group),
        getDoc: (group, key) => requestDone(docs.get([group, key])),
        allDocs: (group) => requestDone(docs.getAll(groupRange(group))),
        putDoc: (doc) => docs.put(doc),
        deleteDoc: (group, key) => docs.delete([group, key]),
        clearDocs: (group) => docs.delete(groupRange(group)),
        getPending: (group, key) => requestDone(pending.get([group, key])),
        allPending: (group) => requestDone(pending.getAll(groupRange(group))),
        putPending: (change) => pending.put(change),
        deletePending: (group, key) => pending.delete([group, key]),
      };
      let result;
      t.oncomplete = () => resolve(result);
      t.onabort = () => reject(t.error ?? new Error("IndexedDB transaction aborted"));
      body(tx).then(
        (value) => {
          result = value;
        },
        (error) => {
          reject(error);
          try {
            t.abort();
          } catch {
            // Already finished: the rejection above is what the caller sees.
          }
        },
      );
    });
  }

  close() {
    this.db.close();
  }
}

/**
 * Storage in memory, with the same transaction semantics as {@link IdbStorage}
 * (serialized, all-or-nothing, records copied in and out). For tests, and for pages that
 * want the sync without persistence; several atoms sharing one instance behave like tabs.
 */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, GroupMeta>} */
    this.meta = new Map();
    /** @type {Map<string, DocRecord>} by `[group, key]` as JSON */
    this.docs = new Map();
    /** @type {Map<string, PendingRecord>} */
    this.pending = new Map();
    this.queue = Promise.resolve();
  }

  transaction(mode, body) {
    const run = async () => {
      // Copy-on-commit: the body works on copies that replace the tables only on success.
      const meta = new Map(this.meta);
      const docs = new Map(this.docs);
      const pending = new Map(this.pending);
      const id = (group, key) => JSON.stringify([group, key]);
      const readonly = () => {
        if (mode !== "readwrite") throw new Error("write in a readonly transaction");
      };
      const ofGroup = (table, group) => [...table.values()].filter((rec) => rec.group === group).map((rec) => structuredClone(rec));
      /** @type {StorageTx} */
      const tx = {
        getMeta: async (group) => structuredClone(meta.get(group)),
        putMeta: (group, value) => (readonly(), meta.set(group, structuredClone(value))),
        getDoc: async (group, key) => structuredClone(docs.get(id(group, key))),
        allDocs: async (group) => ofGroup(docs, group),
        putDoc: (doc) => (readonly(), docs.set(id(doc.group, doc.key), structuredClone(doc))),
        deleteDoc: (group, key) => (readonly(), docs.delete(id(group, key))),
        clearDocs: (group) => {
          readonly();
          for (const [k, rec] of docs) if (rec.group === group) docs.delete(k);
        },
        getPending: async (group, key) => structuredClone(pending.get(id(group, key))),
        allPending: async (group) => ofGroup(pending, group),
        putPending: (change) => (readonly(), pending.set(id(change.group, change.key), structuredClone(change))),
        deletePending: (group, key) => (readonly(), pending.delete(id(group, key))),
      };
      const result = await body(tx);
      if (mode === "readwrite") {
        this.meta = meta;
        this.docs = docs;
        this.pending = pending;
      }
      return result;
    };
    const done = this.queue.then(run);
    this.queue = done.catch(() => {});
    return done;
  }

  close() {}
}

/** The records of `keys` as they are at the end of a transaction (undefined: none). */
async function readBack(tx, group, keys) {
  const docs = new Map();
  const pending = new Map();
  for (const key of keys) {
    docs.set(key, await tx.getDoc(group, key));
    pending.set(key, await tx.getPending(group, key));
  }
  return { docs, pending };
}

/** Stores each doc that is newer than what is stored; returns the keys seen. */
async function putNewer(tx, group, docs) {
  const keys = new Set();
  for (const doc of docs) {
    keys.add(doc.key);
    const stored = await tx.getDoc(group, doc.key);
    if (!stored || doc.version > stored.version) tx.putDoc(doc);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------
// 4. Sync
// ---------------------------------------------------------------------------------------

/**
 * Timing of the network session; every field can be overridden in `open(name, {timing})`.
 * Reconnects wait a random time between half and all of `min(backoffMaxMs, backoffBaseMs
 * * 2^attempt)`: the randomness keeps many clients from reconnecting in lockstep after a
 * server restart, the half floor keeps one client from retrying in a tight loop.
 */
export const DEFAULT_TIMING = Object.freeze({
  backoffBaseMs: 500,
  backoffMaxMs: 15000,
  /** How often to pull while syncing over HTTP because the WebSocket cannot be opened. */
  httpPollMs: 2000,
  connectTimeoutMs: 10000,
  requestTimeoutMs: 20000,
  pushTimeoutMs: 30000,
});

const PULL_LIMIT = 1000;
/** Pushes stay well under the server's 10000 changes and 8 MiB per request or frame. */
const PUSH_MAX_CHANGES = 1000;
const PUSH_MAX_BYTES = 4 << 20;
const MAX_KEY_BYTES = 1024;
const GROUP_NAME = /^[A-Za-z0-9_\-.:]{1,128}$/;

/**
 * What a resolver returns to delete the key, and what it receives for a side on which
 * the key is deleted or absent.
 */
export const DELETED = Symbol("atomsync.deleted");

/** An error answer of the server: `{error, message}`. */
export class ServerError extends Error {
  /** @param {string} code @param {string} message @param {number} [status] HTTP status */
  constructor(code, message, status) {
    super(`${code}: ${message}`);
    this.name = "ServerError";
    this.code = code;
    this.status = status;
  }
}

/** The server said something this client cannot make sense of. */
class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The network is not there (refused, timed out, closed): not an error worth showing. */
class OfflineError extends Error {
  constructor(message) {
    super(message);
    this.name = "OfflineError";
  }
}

/**
 * Opens (or creates) the local database `name`.
 * @param {string} name IndexedDB database name; tabs that open the same name share state
 * @param {object} [options] mostly for tests and special environments
 * @param {Storage} [options.storage] instead of IndexedDB (e.g. `new MemoryStorage()`)
 * @param {IDBFactory} [options.indexedDB]
 * @param {LockManager | null} [options.locks] tab election; null: this tab always syncs
 * @param {typeof BroadcastChannel | null} [options.BroadcastChannel]
 * @param {typeof WebSocket | null} [options.WebSocket] null: sync over HTTP only
 * @param {typeof fetch} [options.fetch]
 * @param {Partial<typeof DEFAULT_TIMING>} [options.timing]
 * @returns {Promise<Connection>}
 */
export async function open(name, options = {}) {
  if (typeof name !== "string" || name === "") throw new TypeError("open(name): name must be a non-empty string");
  const storage = options.storage ?? (await IdbStorage.open(name, options.indexedDB));
  const pick = (key, fallback) => (key in options ? options[key] : fallback);
  return new Connection(name, storage, {
    locks: pick("locks", globalThis.navigator?.locks ?? null),
    BroadcastChannel: pick("BroadcastChannel", globalThis.BroadcastChannel ?? null),
    WebSocket: pick("WebSocket", globalThis.WebSocket ?? null),
    fetch: pick("fetch", globalThis.fetch ? globalThis.fetch.bind(globalThis) : null),
    timing: { ...DEFAULT_TIMING, ...options.timing },
  });
}

/** A local database and the synced atoms opened on it. */
export class Connection {
  /** @type {Map<string, SyncedAtom>} */
  #atoms = new Map();

  constructor(name, storage, env) {
    /** @type {string} */
    this.name = name;
    /** @type {Storage} */
    this.storage = storage;
    this.env = env;
  }

  /**
   * The synced atom of `group` (the same object when asked twice).
   * @param {string} group 1 to 128 characters from `A-Z a-z 0-9 _ - . :`
   * @param {object} [options]
   * @param {string} [options.server] the WebSocket URL (`ws://host:8090/sync/ws`) or the
   *   server's HTTP origin; default: the page's own origin
   * @param {string} [options.token] sent as the `token` query parameter on the WebSocket
   *   (browsers cannot set its headers) and as `Authorization: Bearer` over HTTP
   * @param {(key: string, local: unknown, server: unknown) => unknown} [options.resolver]
   *   called on a conflict with the local and the server value ({@link DELETED} for a
   *   deleted or absent side); its answer is pushed again on top of the server's version.
   *   Return `undefined` to let the server win, {@link DELETED} to delete. Without a
   *   resolver, the server wins.
   * @returns {SyncedAtom}
   */
  syncedAtom(group, options = {}) {
    if (typeof group !== "string" || !GROUP_NAME.test(group)) {
      throw new TypeError(`invalid group ${JSON.stringify(group)}: 1 to 128 characters from A-Z a-z 0-9 _ - . :`);
    }
    let atom = this.#atoms.get(group);
    if (!atom) {
      atom = new SyncedAtom(this, group, options);
      this.#atoms.set(group, atom);
    }
    return atom;
  }

  /** Stops every atom's sync and closes the database. */
  close() {
    for (const atom of this.#atoms.values()) atom.close();
    this.#atoms.clear();
    this.storage.close();
  }
}

/**
 * The HTTP and WebSocket URLs of a server given as either.
 * @param {string | undefined} server
 */
function endpoints(server) {
  const base = globalThis.location?.href;
  if (server === undefined && !base) throw new TypeError("syncedAtom: options.server is required outside a web page");
  const url = new URL(server ?? "/sync/ws", base);
  const secure = url.protocol === "wss:" || url.protocol === "https:";
  if (!["ws:", "wss:", "http:", "https:"].includes(url.protocol)) throw new TypeError(`server URL ${server}: must be ws:, wss:, http: or https:`);
  const root = url.pathname.replace(/\/sync\/ws\/?$|\/sync\/?$|\/$/, "");
  const http = new URL(`${secure ? "https" : "http"}://${url.host}${root}/sync`);
  const ws = new URL(`${secure ? "wss" : "ws"}://${url.host}${root}/sync/ws`);
  return { http, ws };
}

/** @param {Uint8Array | null | undefined} a @param {Uint8Array | null | undefined} b */
function bytesEqual(a, b) {
  if (!a || !b) return !a && !b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Encodes one document value, checked against the protocol's limits. */
function encodeDocValue(key, value) {
  const bytes = encode(value, { maxDepth: MAX_DEPTH });
  if (bytes.length > MAX_VALUE_BYTES) throw new CodecError(`${key}: the value takes ${bytes.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit`);
  return bytes;
}

/** @param {unknown} key */
function checkKey(key) {
  if (typeof key !== "string") throw new TypeError(`keys are strings, not ${describe(key)}`);
  const len = utf8Encoder.encode(key).length;
  if (len < 1 || len > MAX_KEY_BYTES) throw new TypeError(`key ${JSON.stringify(key.slice(0, 40))}: must be 1..1024 bytes of UTF-8`);
}

/** Reports an error that has no caller to reject (a watcher threw, a background failure). */
function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

/**
 * @typedef {object} Status
 * @property {boolean} online connected to the server (`transport` says how)
 * @property {"ws" | "http" | null} transport
 * @property {number} pending keys with local changes the server has not acknowledged
 * @property {number | bigint} cursor the highest group seq applied locally
 * @property {{code: string, message: string} | null} error the last problem worth showing
 *   (`unauthorized`, `forbidden`, a dropped change...), cleared when syncing resumes
 * @property {boolean} leader this tab is the one that talks to the server for the group
 */

/**
 * A group of documents as one `Map` from key to value, kept in IndexedDB, synced with the
 * server in the background, shared with the other tabs of the origin.
 *
 * Tabs: every tab keeps its own view and writes to the shared database; exactly one tab
 * per database and group (the holder of a Web Lock named after them) runs the network
 * session and pushes the pending changes, so no change is pushed twice concurrently. The
 * lock moves to another tab when its holder closes or crashes, and the newcomer starts
 * from what the database holds. One lock per group rather than locks on pending rows: one
 * socket per group per browser instead of one per tab, and no lock traffic per change.
 * Tabs tell each other which keys changed over a BroadcastChannel and re-read those keys,
 * so a write shows in every tab without a server round trip. Without Web Locks (an
 * insecure context), every tab syncs; that stays correct, because pushing the same change
 * twice comes back as a conflict whose server value equals ours, which settles it.
 */
export class SyncedAtom {
  #conn;
  #group;
  #storage;
  #env;
  #endpoints;
  #token;
  #resolver;
  /** @type {Map<string, DocRecord>} */
  #docs = new Map();
  /** @type {Map<string, PendingRecord>} */
  #pending = new Map();
  /** @type {Map<string, unknown>} */
  #view = new Map();
  /** The bytes of each value in the view: what a swap is compared against. */
  /** @type {Map<string, Uint8Array>} */
  #viewBytes = new Map();
  /** Keys with local writes not yet committed: their optimistic view wins over reads. */
  /** @type {Map<string, number>} */
  #staging = new Map();
  #watchers = new Set();
  #statusWatchers = new Set();
  /** @type {Status} */
  #status = Object.freeze({ online: false, transport: null, pending: 0, cursor: 0, error: null, leader: false });
  #loaded = false;
  #closed = false;
  #channel = null;
  /** @type {Syncer | null} */
  #syncer = null;
  #lockAbort = null;
  #tabId = Math.random().toString(36).slice(2, 10);
  #revs = 0;

  constructor(conn, group, options) {
    this.#conn = conn;
    this.#group = group;
    this.#storage = conn.storage;
    this.#env = conn.env;
    this.#endpoints = endpoints(options.server);
    this.#token = options.token ?? null;
    if (options.resolver !== undefined && typeof options.resolver !== "function") throw new TypeError("resolver must be a function");
    this.#resolver = options.resolver ?? null;
    /** Resolves once the local state is loaded: the atom works offline from then on. */
    this.ready = this.#start();
  }

  /** The group's name. */
  get group() {
    return this.#group;
  }

  /** The current value: a `Map` from key to value (a new Map after every change). */
  deref() {
    return this.#view;
  }

  /** The keys whose local changes the server has not acknowledged yet. @returns {Set<string>} */
  pendingKeys() {
    return new Set([...this.#pending.keys(), ...this.#staging.keys()]);
  }

  /** @returns {Status} */
  get status() {
    return this.#status;
  }

  /**
   * Calls `fn(oldMap, newMap)` after every change of the view, local or remote.
   * @param {(oldMap: Map<string, unknown>, newMap: Map<string, unknown>) => void} fn
   * @returns {() => void} stops watching
   */
  watch(fn) {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }

  /**
   * Calls `fn(oldStatus, newStatus)` after every change of {@link SyncedAtom#status}.
   * @param {(oldStatus: Status, newStatus: Status) => void} fn
   * @returns {() => void}
   */
  watchStatus(fn) {
    this.#statusWatchers.add(fn);
    return () => this.#statusWatchers.delete(fn);
  }

  /**
   * Replaces the value with `fn(copy)`: `fn` gets a copy of the current Map and returns
   * the new one (`m => m.set(k, v)` works: `Map#set` returns the map). The view changes at
   * once; the returned promise resolves with the new Map once the changed keys are stored
   * with their pending changes in one transaction (the write is then done: it survives a
   * reload and reaches the server when it can). Invalid keys or values reject it and
   * change nothing.
   * @param {(current: Map<string, unknown>) => Map<string, unknown>} fn
   * @returns {Promise<Map<string, unknown>>}
   */
  swap(fn) {
    if (this.#closed) return Promise.reject(new Error("the atom is closed"));
    if (!this.#loaded) return this.ready.then(() => this.swap(fn));
    const before = this.#view;
    const writes = [];
    let after;
    try {
      after = fn(new Map(before));
      if (!(after instanceof Map)) throw new TypeError(`swap: the function must return a Map, not ${describe(after)}`);
      for (const [key, value] of after) {
        checkKey(key);
        if (value === undefined) throw new TypeError(`swap: ${key}: undefined is not a value (delete the key instead)`);
        const bytes = encodeDocValue(key, value);
        if (!bytesEqual(this.#viewBytes.get(key), bytes)) writes.push({ key, bytes });
      }
      for (const key of before.keys()) if (!after.has(key)) writes.push({ key, bytes: null });
    } catch (error) {
      return Promise.reject(error);
    }
    if (writes.length === 0) return Promise.resolve(before);
    const next = new Map(after);
    for (const { key, bytes } of writes) {
      if (bytes) this.#viewBytes.set(key, bytes);
      else this.#viewBytes.delete(key);
    }
    this.#setView(next);
    return this.#stage(writes).then(() => next);
  }

  /** Stops syncing in this tab (another tab takes over) and drops the watchers. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#lockAbort?.abort();
    this.#syncer?.stop();
    this.#channel?.close();
    this.#watchers.clear();
    this.#statusWatchers.clear();
  }

  async #start() {
    const Channel = this.#env.BroadcastChannel;
    if (Channel) {
      this.#channel = new Channel(`atomsync:${this.#conn.name}`);
      this.#channel.onmessage = (event) => this.#onMessage(event.data);
    }
    const group = this.#group;
    const { meta, docs, pending } = await this.#storage.transaction("readonly", async (tx) => ({
      meta: await tx.getMeta(group),
      docs: await tx.allDocs(group),
      pending: await tx.allPending(group),
    }));
    this.#replaceAll(docs, pending);
    this.#setStatus({ cursor: meta?.cursor ?? 0 });
    this.#loaded = true;
    this.#post({ type: "hello" });
    this.#elect();
  }

  /** Runs the network session in this tab while it holds the group's lock. */
  #elect() {
    if (this.#closed) return;
    const lead = () => {
      if (this.#closed) return undefined;
      this.#syncer = new Syncer(this.#host());
      this.#setStatus({ leader: true });
      return this.#syncer.run();
    };
    const locks = this.#env.locks;
    if (!locks) {
      lead()?.catch(report);
      return;
    }
    this.#lockAbort = new AbortController();
    locks.request(`atomsync:${this.#conn.name}:${this.#group}`, { signal: this.#lockAbort.signal }, lead).catch((error) => {
      if (error?.name !== "AbortError") report(error);
    });
  }

  /** What the network session may do to this atom. */
  #host() {
    return {
      group: this.#group,
      storage: this.#storage,
      env: this.#env,
      endpoints: this.#endpoints,
      token: this.#token,
      resolver: this.#resolver,
      newRev: () => this.#newRev(),
      changed: (records) => {
        this.#applyRecords(records);
        this.#post({ type: "keys", keys: [...records.docs.keys()] });
      },
      reloadAll: () => this.#reloadAll(true),
      setNet: (patch) => {
        this.#setStatus(patch);
        const { online, transport, cursor, error } = this.#status;
        this.#post({ type: "status", net: { online, transport, cursor, error } });
      },
    };
  }

  #newRev() {
    return `${this.#tabId}.${++this.#revs}`;
  }

  #post(message) {
    if (this.#closed || !this.#channel) return;
    try {
      this.#channel.postMessage({ ...message, group: this.#group });
    } catch (error) {
      report(error);
    }
  }

  #onMessage(message) {
    if (this.#closed || message?.group !== this.#group) return;
    const work = this.ready.then(async () => {
      switch (message.type) {
        case "keys":
          await this.#refresh(message.keys);
          this.#syncer?.kick();
          return;
        case "reload":
          await this.#reloadAll(false);
          this.#syncer?.kick();
          return;
        case "status":
          if (!this.#syncer) this.#setStatus(message.net);
          return;
        case "hello":
          if (this.#syncer) {
            const { online, transport, cursor, error } = this.#status;
            this.#post({ type: "status", net: { online, transport, cursor, error } });
          }
          return;
      }
    });
    work.catch(report);
  }

  /** Stores local writes with their pending changes, in one durable transaction. */
  async #stage(writes) {
    const group = this.#group;
    const keys = writes.map((w) => w.key);
    for (const key of keys) this.#staging.set(key, (this.#staging.get(key) ?? 0) + 1);
    this.#countPending();
    let records;
    try {
      records = await this.#storage.transaction(
        "readwrite",
        async (tx) => {
          for (const { key, bytes } of writes) {
            const folded = await tx.getPending(group, key);
            let base;
            if (folded) base = folded.base;
            else base = (await tx.getDoc(group, key))?.version ?? 0;
            tx.putPending({ group, key, bytes, base, rev: this.#newRev() });
          }
          return readBack(tx, group, keys);
        },
        { durability: "strict" },
      );
    } catch (error) {
      // Nothing was stored: the view goes back to what storage holds.
      this.#unstage(keys);
      await this.#refresh(keys).catch(report);
      throw error;
    }
    this.#unstage(keys);
    this.#applyRecords(records);
    this.#post({ type: "keys", keys });
    this.#syncer?.kick();
  }

  #unstage(keys) {
    for (const key of keys) {
      const left = (this.#staging.get(key) ?? 1) - 1;
      if (left > 0) this.#staging.set(key, left);
      else this.#staging.delete(key);
    }
  }

  async #refresh(keys) {
    if (!Array.isArray(keys) || keys.some((key) => typeof key !== "string")) return;
    const group = this.#group;
    this.#applyRecords(await this.#storage.transaction("readonly", (tx) => readBack(tx, group, keys)));
  }

  async #reloadAll(announce) {
    const group = this.#group;
    const { docs, pending } = await this.#storage.transaction("readonly", async (tx) => ({
      docs: await tx.allDocs(group),
      pending: await tx.allPending(group),
    }));
    this.#replaceAll(docs, pending);
    if (announce) this.#post({ type: "reload" });
  }

  /** Takes the records of some keys as stored, and updates the view where they differ. */
  #applyRecords({ docs, pending }) {
    if (this.#closed) return;
    const changed = [];
    for (const [key, doc] of docs) {
      if (this.#staging.has(key)) continue;
      if (doc) this.#docs.set(key, doc);
      else this.#docs.delete(key);
      const change = pending.get(key);
      if (change) this.#pending.set(key, change);
      else this.#pending.delete(key);
      changed.push(key);
    }
    this.#updateView(changed, false);
  }

  #replaceAll(docs, pending) {
    const keys = new Set([...this.#docs.keys(), ...this.#pending.keys()]);
    this.#docs = new Map(docs.map((doc) => [doc.key, doc]));
    this.#pending = new Map(pending.map((change) => [change.key, change]));
    for (const key of this.#docs.keys()) keys.add(key);
    for (const key of this.#pending.keys()) keys.add(key);
    this.#updateView([...keys].filter((key) => !this.#staging.has(key)), true);
  }

  /** Recomputes the view of `keys`: the pending change when there is one, else the server's. */
  #updateView(keys, sorted) {
    let next = null;
    for (const key of keys) {
      const change = this.#pending.get(key);
      const bytes = change ? change.bytes : (this.#docs.get(key)?.bytes ?? null);
      if (bytesEqual(this.#viewBytes.get(key), bytes)) continue;
      next ??= new Map(this.#view);
      let value;
      try {
        value = bytes ? decode(bytes) : undefined;
      } catch (error) {
        this.#setStatus({ error: { code: "bad_value", message: `${key}: ${error.message}` } });
        value = undefined;
      }
      if (value === undefined) {
        next.delete(key);
        this.#viewBytes.delete(key);
      } else {
        next.set(key, value);
        this.#viewBytes.set(key, bytes);
      }
    }
    if (next) this.#setView(sorted ? new Map([...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : next);
    this.#countPending();
  }

  /** Keys being stored count as pending already: the user made those writes. */
  #countPending() {
    let count = this.#pending.size;
    for (const key of this.#staging.keys()) if (!this.#pending.has(key)) count++;
    if (this.#status.pending !== count) this.#setStatus({ pending: count });
  }

  #setView(next) {
    const before = this.#view;
    this.#view = next;
    for (const fn of [...this.#watchers]) {
      try {
        fn(before, next);
      } catch (error) {
        report(error);
      }
    }
  }

  #setStatus(patch) {
    const before = this.#status;
    const next = { ...before, ...patch };
    if (Object.keys(next).every((k) => Object.is(next[k], before[k]) || (k === "error" && JSON.stringify(next[k]) === JSON.stringify(before[k])))) return;
    this.#status = Object.freeze(next);
    for (const fn of [...this.#statusWatchers]) {
      try {
        fn(before, this.#status);
      } catch (error) {
        report(error);
      }
    }
  }
}

const EPOCH_CHANGED = Symbol("epoch changed");

/** @param {unknown} x */
function isRecord(x) {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Map);
}

/** @param {unknown} n */
function isCount(n) {
  return (typeof n === "number" && Number.isSafeInteger(n) && n >= 0) || (typeof n === "bigint" && n >= 0n);
}

/** A server DOC (`{key, version, seq, value}` or `{..., deleted: true}`) as a record. */
function toDocRecord(group, doc, where) {
  if (!isRecord(doc) || typeof doc.key !== "string" || !isCount(doc.version) || !isCount(doc.seq)) {
    throw new ProtocolError(`${where}: not a document`);
  }
  if (doc.deleted === true) return { group, key: doc.key, version: doc.version, seq: doc.seq, bytes: null };
  if (!(doc.value instanceof Raw)) throw new ProtocolError(`${where}: a document without value or deleted`);
  return { group, key: doc.key, version: doc.version, seq: doc.seq, bytes: doc.value.bytes };
}

/** The DOCs of a `changes` list. */
function toDocRecords(group, changes, where) {
  if (!Array.isArray(changes)) throw new ProtocolError(`${where}: changes is not a list`);
  return changes.map((doc, i) => toDocRecord(group, doc, `${where}.changes[${i}]`));
}

/** `{code, message}` for the status, or null for plain unreachability. */
function errorInfo(error) {
  if (error instanceof OfflineError) return null;
  if (error instanceof ServerError) return { code: error.code, message: error.message };
  return { code: "client", message: String(error?.message ?? error) };
}

/**
 * The network session of one group, run by the one tab that holds the group's lock:
 * subscribe over the WebSocket (catch-up, then live changes), push pending changes,
 * settle their results; pull and push over HTTP when the WebSocket cannot be opened;
 * reconnect with backoff. Everything it learns goes to storage first and then to the
 * view, and the cursor moves in the same transaction as the changes it covers.
 */
class Syncer {
  constructor(host) {
    this.host = host;
    this.group = host.group;
    this.timing = host.env.timing;
    this.stopped = false;
    /** "ws" while subscribed, "http" while polling, null while offline. */
    this.mode = null;
    this.session = null;
    this.wake = null;
    this.pushing = null;
    this.pushAgain = false;
    this.batchLimit = PUSH_MAX_CHANGES;
    this.epoch = null;
    this.attempt = 0;
    this.onOnline = () => {
      this.attempt = 0;
      this.wakeUp();
    };
  }

  /** Runs until {@link Syncer#stop}. */
  async run() {
    globalThis.addEventListener?.("online", this.onOnline);
    try {
      this.epoch = (await this.readMeta())?.epoch ?? null;
      let wsFailures = 0;
      while (!this.stopped) {
        const wasLive = await this.wsSession();
        if (this.stopped) break;
        if (wasLive) {
          this.attempt = 0;
          wsFailures = 0;
          await this.sleep(this.backoff(0));
          continue;
        }
        // The WebSocket could not be opened: sync over HTTP until it is worth another try.
        const wsRetryAt = this.host.env.WebSocket ? Date.now() + this.backoff(wsFailures++) : Infinity;
        let ok = await this.httpRound();
        while (ok && !this.stopped && Date.now() < wsRetryAt) {
          await this.sleep(Math.min(this.timing.httpPollMs, wsRetryAt - Date.now()));
          if (!this.stopped) ok = await this.httpRound();
        }
        if (ok) {
          this.attempt = 0;
          continue;
        }
        await this.sleep(this.backoff(this.attempt++));
      }
    } finally {
      globalThis.removeEventListener?.("online", this.onOnline);
      this.mode = null;
    }
  }

  stop() {
    this.stopped = true;
    this.session?.socket.close();
    this.wakeUp();
  }

  /** Local pending changes exist: push them now if connected. */
  kick() {
    if (this.mode === "ws" && this.session?.live) this.pushInSession(this.session);
    else if (this.mode === "http") this.wakeUp();
  }

  backoff(attempt) {
    const cap = Math.min(this.timing.backoffMaxMs, this.timing.backoffBaseMs * 2 ** Math.min(attempt, 30));
    return cap / 2 + Math.random() * (cap / 2);
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  wakeUp() {
    this.wake?.();
  }

  readMeta() {
    const group = this.group;
    return this.host.storage.transaction("readonly", (tx) => tx.getMeta(group));
  }

  // --- WebSocket -------------------------------------------------------------------

  /** One WebSocket connection; resolves when it closes, with whether it got live. */
  wsSession() {
    const WebSocketImpl = this.host.env.WebSocket;
    if (!WebSocketImpl) return Promise.resolve(false);
    return new Promise((resolve) => {
      const url = new URL(this.host.endpoints.ws);
      if (this.host.token !== null) url.searchParams.set("token", this.host.token);
      let socket;
      try {
        socket = new WebSocketImpl(url.href);
      } catch {
        resolve(false);
        return;
      }
      socket.binaryType = "arraybuffer";
      const session = { socket, live: false, everLive: false, closed: false, catchUp: [], pushes: new Map(), nextId: 1, queue: Promise.resolve() };
      this.session = session;
      const connectTimer = setTimeout(() => socket.close(), this.timing.connectTimeoutMs);
      const enqueue = (task) => {
        session.queue = session.queue.then(task).catch((error) => {
          if (session.closed) return;
          this.host.setNet({ error: errorInfo(error) });
          socket.close();
        });
      };
      socket.onopen = () => {
        clearTimeout(connectTimer);
        enqueue(() => this.subscribe(session));
      };
      socket.onmessage = (event) => enqueue(() => this.onFrame(session, event.data));
      socket.onerror = () => {};
      socket.onclose = () => {
        clearTimeout(connectTimer);
        session.closed = true;
        session.live = false;
        for (const waiter of session.pushes.values()) waiter.reject(new OfflineError("the connection closed"));
        session.pushes.clear();
        if (this.session === session) this.session = null;
        if (this.mode === "ws") {
          this.mode = null;
          this.host.setNet({ online: false, transport: null });
        }
        resolve(session.everLive);
      };
    });
  }

  /** (Re)subscribes from the stored cursor; catch-up frames collect until `subscribed`. */
  async subscribe(session) {
    const since = (await this.readMeta())?.cursor ?? 0;
    session.catchUp = [];
    session.live = false;
    this.send(session, { type: "subscribe", group: this.group, since });
  }

  send(session, message) {
    if (session.closed) throw new OfflineError("the connection closed");
    session.socket.send(encode(message));
  }

  async onFrame(session, data) {
    let message;
    if (typeof data === "string") {
      // We only send binary frames, so the server answers in binary; a text frame can
      // only be an error it could not tie to one of ours. Values never come this way.
      message = JSON.parse(data);
      if (message?.type !== "error") throw new ProtocolError(`unexpected text frame of type ${message?.type}`);
    } else {
      message = decodeMessage(new Uint8Array(data));
    }
    if (!isRecord(message)) throw new ProtocolError("a frame that is not a map");
    const group = this.group;
    switch (message.type) {
      case "changes": {
        if (message.group !== group) return;
        const docs = toDocRecords(group, message.changes, "changes");
        if (!isCount(message.seq)) throw new ProtocolError("changes.seq is not a count");
        if (session.live) await this.applyLive(docs, message.seq);
        else session.catchUp.push(...docs);
        return;
      }
      case "subscribed": {
        if (message.group !== group) return;
        if (typeof message.epoch !== "string" || !isCount(message.seq)) throw new ProtocolError("subscribed: epoch or seq missing");
        const outcome = await this.applyCatchUp(message.epoch, session.catchUp, message.seq, message.reset === true);
        session.catchUp = [];
        if (outcome === EPOCH_CHANGED) {
          this.send(session, { type: "subscribe", group, since: 0 });
          return;
        }
        session.live = true;
        session.everLive = true;
        this.mode = "ws";
        this.attempt = 0;
        this.host.setNet({ online: true, transport: "ws", error: null });
        this.pushInSession(session);
        return;
      }
      case "pushed":
      case "error": {
        const waiter = message.id !== undefined ? session.pushes.get(message.id) : undefined;
        if (waiter) {
          session.pushes.delete(message.id);
          if (message.type === "pushed") waiter.resolve(message);
          else waiter.reject(new ServerError(String(message.error), String(message.message)));
          return;
        }
        if (message.type === "error") {
          // Not about a push: the subscription failed (forbidden, bad group). Show it and
          // let the reconnect backoff decide when to try again.
          this.host.setNet({ error: { code: String(message.error), message: String(message.message) } });
          session.socket.close();
        }
        return;
      }
      default:
        // `unsubscribed` and frame types of later protocol versions: nothing to do.
        return;
    }
  }

  pushInSession(session) {
    this.pushAll((changes) => this.pushWs(session, changes)).catch((error) => {
      if (error instanceof OfflineError || session.closed) return;
      this.host.setNet({ error: errorInfo(error) });
      session.socket.close();
    });
  }

  pushWs(session, changes) {
    return new Promise((resolve, reject) => {
      const id = session.nextId++;
      const timer = setTimeout(() => {
        session.pushes.delete(id);
        reject(new OfflineError("no answer to a push"));
        session.socket.close();
      }, this.timing.pushTimeoutMs);
      session.pushes.set(id, {
        resolve: (message) => (clearTimeout(timer), resolve(message)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      try {
        this.send(session, { type: "push", id, group: this.group, changes });
      } catch (error) {
        session.pushes.delete(id);
        clearTimeout(timer);
        reject(error);
      }
    });
  }

  // --- HTTP ------------------------------------------------------------------------

  /** One pull-then-push over HTTP; false when the server could not be reached or refused. */
  async httpRound() {
    try {
      await this.pullAll();
      this.mode = "http";
      this.host.setNet({ online: true, transport: "http", error: null });
      await this.pushAll((changes) => this.request("POST", this.host.endpoints.http, { group: this.group, changes }));
      return true;
    } catch (error) {
      this.mode = null;
      this.host.setNet({ online: false, transport: null, error: errorInfo(error) });
      return false;
    }
  }

  /** Pulls until `more` is false, then stores everything in one transaction. */
  async pullAll() {
    for (let attempt = 0; attempt < 3; attempt++) {
      let since = (await this.readMeta())?.cursor ?? 0;
      const docs = [];
      let epoch = null;
      let reset = false;
      for (;;) {
        const url = new URL(this.host.endpoints.http);
        url.search = new URLSearchParams({ group: this.group, since: String(since), limit: String(PULL_LIMIT) }).toString();
        const page = await this.request("GET", url);
        if (!isRecord(page) || typeof page.epoch !== "string" || !isCount(page.seq)) throw new ProtocolError("pull: not a pull response");
        if (epoch === null) {
          epoch = page.epoch;
          reset = page.reset === true;
        } else if (page.epoch !== epoch) {
          throw new ProtocolError("pull: the epoch changed between pages");
        } else if (page.reset === true) {
          // A page after the first answered from 0 again: following `more` would loop.
          throw new ProtocolError("pull: a reset on a page after the first");
        }
        docs.push(...toDocRecords(this.group, page.changes, "pull"));
        since = page.seq;
        if (page.more !== true) break;
      }
      if ((await this.applyCatchUp(epoch, docs, since, reset)) !== EPOCH_CHANGED) return;
    }
    throw new ProtocolError("pull: the server's epoch kept changing");
  }

  /**
   * @param {"GET" | "POST"} method
   * @param {URL} url
   * @param {unknown} [body] encoded as MessagePack
   */
  async request(method, url, body) {
    const headers = { Accept: "application/msgpack" };
    if (this.host.token !== null) headers.Authorization = `Bearer ${this.host.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/msgpack";
    const fetchImpl = this.host.env.fetch;
    if (!fetchImpl) throw new OfflineError("no fetch in this environment");
    let response;
    let bytes;
    try {
      response = await fetchImpl(url.href, {
        method,
        headers,
        body: body === undefined ? undefined : encode(body),
        cache: "no-store",
        signal: AbortSignal.timeout(this.timing.requestTimeoutMs),
      });
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw new OfflineError(`${method} ${url.pathname}: ${error?.message ?? error}`);
    }
    const type = response.headers.get("content-type") ?? "";
    let message;
    try {
      message = type.includes("json") ? JSON.parse(new TextDecoder().decode(bytes)) : decodeMessage(bytes);
    } catch (error) {
      if (!response.ok) throw new ServerError(`http_${response.status}`, response.statusText || "error", response.status);
      throw new ProtocolError(`${method} ${url.pathname}: undecodable answer: ${error.message}`);
    }
    if (!response.ok) {
      throw new ServerError(String(message?.error ?? `http_${response.status}`), String(message?.message ?? response.statusText), response.status);
    }
    if (type.includes("json")) throw new ProtocolError(`${method} ${url.pathname}: answered JSON to a MessagePack request`);
    return message;
  }

  // --- Applying what the server says -----------------------------------------------

  /**
   * A catch-up (subscribe or pull) in one transaction: checks the epoch, stores the
   * documents, drops the keys a reset did not send back, moves the cursor.
   * @returns {Promise<typeof EPOCH_CHANGED | undefined>}
   */
  async applyCatchUp(epoch, docs, seq, reset) {
    const group = this.group;
    const outcome = await this.host.storage.transaction("readwrite", async (tx) => {
      const meta = await tx.getMeta(group);
      if (meta && meta.epoch !== null && meta.epoch !== epoch) {
        // Another database: every version we know is meaningless. Keep the pending
        // changes, to be pushed on top of whatever the new database holds.
        tx.clearDocs(group);
        tx.putMeta(group, { epoch, cursor: 0 });
        for (const change of await tx.allPending(group)) tx.putPending({ ...change, base: null });
        return EPOCH_CHANGED;
      }
      const keys = await putNewer(tx, group, docs);
      if (reset) {
        for (const doc of await tx.allDocs(group)) if (!keys.has(doc.key)) tx.deleteDoc(group, doc.key);
      }
      tx.putMeta(group, { epoch, cursor: seq });
      return reset ? "reload" : readBack(tx, group, keys);
    });
    this.epoch = epoch;
    if (outcome === EPOCH_CHANGED) {
      await this.host.reloadAll();
      this.host.setNet({ cursor: 0 });
      return EPOCH_CHANGED;
    }
    if (outcome === "reload") await this.host.reloadAll();
    else if (outcome.docs.size) this.host.changed(outcome);
    this.host.setNet({ cursor: seq });
    return undefined;
  }

  /** A live `changes` frame: documents and cursor in one transaction. */
  async applyLive(docs, seq) {
    const group = this.group;
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      const meta = await tx.getMeta(group);
      if (meta && seq <= meta.cursor) return null;
      const keys = await putNewer(tx, group, docs);
      tx.putMeta(group, { epoch: meta?.epoch ?? this.epoch, cursor: seq });
      return readBack(tx, group, keys);
    });
    if (!records) return;
    this.host.changed(records);
    this.host.setNet({ cursor: seq });
  }

  /** Pushes pending changes in batches until none is left; one push loop at a time. */
  pushAll(send) {
    if (this.pushing) {
      this.pushAgain = true;
      return this.pushing;
    }
    const loop = async () => {
      do {
        this.pushAgain = false;
        for (;;) {
          const batch = await this.collectBatch();
          if (batch.length === 0) break;
          const changes = batch.map(({ key, base, bytes }) => (bytes ? { key, base, value: new Raw(bytes) } : { key, base, deleted: true }));
          let response;
          try {
            response = await send(changes);
          } catch (error) {
            if (error instanceof ServerError && (error.code === "bad_request" || error.code === "payload_too_large")) {
              // The whole request was refused: find the change at fault by pushing one at
              // a time, and drop only that one rather than blocking every later change.
              if (batch.length > 1) this.batchLimit = 1;
              else await this.dropChange(batch[0], error);
              continue;
            }
            throw error;
          }
          if (!isRecord(response) || !Array.isArray(response.results) || response.results.length !== batch.length) {
            throw new ProtocolError("push: the answer does not hold one result per change");
          }
          if (this.epoch !== null && response.epoch !== this.epoch) {
            // The database was replaced under us: settle nothing; the next catch-up
            // notices the new epoch and the changes are pushed again on top of it.
            throw new ProtocolError("push: the server's epoch changed");
          }
          await this.settle(batch, response.results);
        }
        this.batchLimit = PUSH_MAX_CHANGES;
      } while (this.pushAgain && !this.stopped);
    };
    this.pushing = loop().finally(() => {
      this.pushing = null;
    });
    return this.pushing;
  }

  /** The next pending changes to push, with their bases. */
  collectBatch() {
    const group = this.group;
    const limit = this.batchLimit;
    return this.host.storage.transaction("readonly", async (tx) => {
      const batch = [];
      let size = 0;
      for (const change of await tx.allPending(group)) {
        const bytes = change.bytes?.length ?? 0;
        if (batch.length >= limit || (batch.length > 0 && size + bytes > PUSH_MAX_BYTES)) break;
        size += bytes + change.key.length;
        const base = change.base ?? (await tx.getDoc(group, change.key))?.version ?? 0;
        batch.push({ key: change.key, rev: change.rev, bytes: change.bytes, base });
      }
      return batch;
    });
  }

  /**
   * Records a push's results in one transaction. Accepted: the new version is stored and
   * the pending change dropped, unless a newer local write replaced it meanwhile, which
   * then builds on the new version. Conflict: the server's document is stored; the
   * server wins unless the resolver answers something else, pushed on `current.version`.
   */
  async settle(batch, results) {
    const group = this.group;
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      for (let i = 0; i < batch.length; i++) {
        const entry = batch[i];
        const result = results[i];
        if (!isRecord(result) || result.key !== entry.key) throw new ProtocolError(`push: results[${i}] is not about ${entry.key}`);
        const stored = await tx.getDoc(group, entry.key);
        const change = await tx.getPending(group, entry.key);
        if (result.ok === true) {
          if (!isCount(result.version) || !isCount(result.seq)) throw new ProtocolError(`push: results[${i}] lacks version or seq`);
          if (!stored || result.version > stored.version) tx.putDoc({ group, key: entry.key, version: result.version, seq: result.seq, bytes: entry.bytes });
          if (change?.rev === entry.rev) tx.deletePending(group, entry.key);
          else if (change) tx.putPending({ ...change, base: result.version });
          continue;
        }
        const current = result.current == null ? null : toDocRecord(group, result.current, `push.results[${i}].current`);
        if (current && (!stored || current.version >= stored.version)) tx.putDoc(current);
        if (!change) continue;
        const resolved = this.resolve(entry.key, change.bytes, current?.bytes ?? null);
        if (resolved === undefined || bytesEqual(resolved, current?.bytes ?? null)) tx.deletePending(group, entry.key);
        else tx.putPending({ group, key: entry.key, bytes: resolved, base: current?.version ?? 0, rev: this.host.newRev() });
      }
      return readBack(tx, group, batch.map((entry) => entry.key));
    });
    this.host.changed(records);
  }

  /**
   * The resolver's answer as bytes (null: delete), or undefined when the server wins.
   * Runs inside the settle transaction, so it sees exactly the stored local change.
   */
  resolve(key, localBytes, serverBytes) {
    const resolver = this.host.resolver;
    if (!resolver || bytesEqual(localBytes, serverBytes)) return undefined;
    try {
      const local = localBytes ? decode(localBytes) : DELETED;
      const server = serverBytes ? decode(serverBytes) : DELETED;
      const answer = resolver(key, local, server);
      if (answer === undefined) return undefined;
      return answer === DELETED ? null : encodeDocValue(key, answer);
    } catch (error) {
      this.host.setNet({ error: { code: "resolver", message: `${key}: the resolver failed (${error?.message ?? error}); the server's value was kept` } });
      return undefined;
    }
  }

  /** A change the server refused on its own: drop it, say so, show the server's value. */
  async dropChange(entry, error) {
    const group = this.group;
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      const change = await tx.getPending(group, entry.key);
      if (change?.rev === entry.rev) tx.deletePending(group, entry.key);
      return readBack(tx, group, [entry.key]);
    });
    this.host.changed(records);
    this.host.setNet({ error: { code: error.code, message: `${entry.key}: ${error.message} (the local change was dropped)` } });
  }
}
