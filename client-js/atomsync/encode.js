/**
 * The MessagePack encoder: {@link encode} writes the canonical encoding of a value (the
 * one the Rust side writes too), and refuses what is not a value of PROTOCOL.md section
 * 2, with where it is: `undefined`, functions, class instances, a container nested
 * deeper than the limit, an integer outside 64 bits, and a map holding two equal keys or
 * a set holding two equal elements ("equal" = the same canonical encoding).
 *
 * @module atomsync/encode
 */

import { CodecError, EXT_INST, EXT_KW, EXT_SET, EXT_UUID, MAX_DEPTH, Raw } from "./codec.js";
import { Inst, inst } from "./inst.js";
import { Float, Keyword, Uuid, describe, isIntNumber, mapEntries } from "./values.js";

const MAX_U64 = (1n << 64n) - 1n;
const MIN_I64 = -(1n << 63n);

const utf8Encoder = new TextEncoder();

/** A growable output buffer. */
class Writer {
  constructor() {
    /** @type {Uint8Array<ArrayBuffer>} */
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
  /** @param {number} b */
  u8(b) {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }
  /** @param {number} n */
  u16(n) {
    this.reserve(2);
    this.view.setUint16(this.pos, n);
    this.pos += 2;
  }
  /** @param {number} n */
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
  /** @param {number} x */
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
 * @returns {Uint8Array<ArrayBuffer>}
 * @throws {CodecError} not a value, with its path (`value.tags#1: ...`)
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
 * @returns {void}
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
  const entries = value instanceof Set || Array.isArray(value) ? null : mapEntries(value);
  if (!entries && !(value instanceof Set) && !Array.isArray(value)) throw new CodecError(`${path}: ${describe(value)} is not a value`);
  if (depthLeft <= 0) throw new CodecError(`${path}: nested deeper than the limit`);
  if (Array.isArray(value)) {
    writeLength(w, value.length, 0x90, 16, -1, 0xdc, 0xdd);
    value.forEach((item, i) => writeValue(w, item, depthLeft - 1, `${path}[${i}]`));
  } else if (value instanceof Set) {
    writeSet(w, value, depthLeft - 1, path);
  } else if (entries) {
    writeMap(w, entries, value instanceof Map, depthLeft - 1, path);
  }
}

/**
 * A set: extension 3 around an array of the elements. The payload's length is only known
 * once written, so it is encoded apart.
 * @param {Writer} w @param {Set<unknown>} set @param {number} depthLeft @param {string} path
 */
function writeSet(w, set, depthLeft, path) {
  const payload = new Writer();
  writeLength(payload, set.size, 0x90, 16, -1, 0xdc, 0xdd);
  const seen = distinctByIdentity(set) ? null : new Map();
  let i = 0;
  for (const item of set) {
    const start = payload.pos;
    writeValue(payload, item, depthLeft, `${path}#${i}`);
    const earlier = seen && firstSeen(seen, payload.buf.subarray(start, payload.pos), i);
    if (earlier !== null) throw new CodecError(`${path}#${i}: a set holds two equal elements (#${earlier} and #${i} encode the same)`);
    i++;
  }
  writeExt(w, EXT_SET, payload.result());
}

/**
 * A map. A plain object's keys are distinct strings by construction; a `Map`'s keys are
 * distinct JS values, which can still encode alike (`5` and `5n`, two `uuid(x)` objects,
 * two arrays `[1]`): those are compared by their encoding.
 * @param {Writer} w @param {[unknown, unknown][]} entries @param {boolean} isMap
 * @param {number} depthLeft @param {string} path
 */
function writeMap(w, entries, isMap, depthLeft, path) {
  writeLength(w, entries.length, 0x80, 16, -1, 0xde, 0xdf);
  const seen = !isMap || distinctByIdentity(entries.map(([key]) => key)) ? null : new Map();
  entries.forEach(([key, item], i) => {
    const start = w.pos;
    writeValue(w, key, depthLeft, `${path}{key ${i}}`);
    const earlier = seen && firstSeen(seen, w.buf.subarray(start, w.pos), i);
    if (earlier !== null) throw new CodecError(`${path}{key ${i}}: a map holds two equal keys ({key ${earlier}} and {key ${i}} encode the same)`);
    writeValue(w, item, depthLeft, typeof key === "string" ? `${path}.${key}` : `${path}{entry ${i}}`);
  });
}

/**
 * Whether members that are distinct JS values (as a Set's elements and a Map's keys are)
 * are sure to have distinct encodings: strings, booleans, null, numbers (each number has
 * its own encoding, and a Set already folds -0 into 0) and interned keywords. Anything
 * else (a BigInt beside a number, a Float, objects) is compared by its encoding.
 * @param {Iterable<unknown>} members
 */
function distinctByIdentity(members) {
  for (const x of members) {
    const type = typeof x;
    if (!(x === null || type === "string" || type === "number" || type === "boolean" || x instanceof Keyword)) return false;
  }
  return true;
}

/**
 * The index of an earlier member with the same encoding as member `index`, else null
 * (and `index` is recorded under its encoding).
 * @param {Map<string, number>} seen @param {Uint8Array} bytes @param {number} index
 * @returns {number | null}
 */
function firstSeen(seen, bytes, index) {
  const key = encodingKey(bytes);
  const earlier = seen.get(key);
  if (earlier !== undefined) return earlier;
  seen.set(key, index);
  return null;
}

/** A string that two byte strings share exactly when they are equal. @param {Uint8Array} bytes */
function encodingKey(bytes) {
  let key = "";
  // In slices: spreading a large array into one call would overflow the stack.
  for (let i = 0; i < bytes.length; i += 4096) key += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return key;
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
 * @param {Writer} w @param {number} len @param {number} fixBase @param {number} fixLimit
 * @param {number} marker8 @param {number} marker16 @param {number} marker32
 */
function writeLength(w, len, fixBase, fixLimit, marker8, marker16, marker32) {
  if (fixBase >= 0 && len < fixLimit) w.u8(fixBase | len);
  else if (marker8 >= 0 && len <= 0xff) (w.u8(marker8), w.u8(len));
  else if (len <= 0xffff) (w.u8(marker16), w.u16(len));
  else if (len <= 0xffffffff) (w.u8(marker32), w.u32(len));
  else throw new CodecError(`a length of ${len} is beyond MessagePack`);
}

/** The fixext markers, by payload length. @type {Record<number, number>} */
const FIXEXT = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };

/**
 * Writes an extension with the smallest header for its payload.
 * @param {Writer} w @param {number} type @param {Uint8Array} payload
 */
function writeExt(w, type, payload) {
  const len = payload.length;
  if (FIXEXT[len]) w.u8(FIXEXT[len]);
  else if (len <= 0xff) (w.u8(0xc7), w.u8(len));
  else if (len <= 0xffff) (w.u8(0xc8), w.u16(len));
  else (w.u8(0xc9), w.u32(len));
  w.u8(type & 0xff);
  w.bytes(payload);
}

/**
 * The timestamp extension in its smallest form: 32, 64 or 96 bits.
 * @param {Writer} w @param {Inst} instant
 */
function writeInst(w, instant) {
  const { secs, nanos } = instant;
  const payload = new Writer();
  if (nanos === 0 && secs >= 0 && secs <= 0xffffffff) payload.u32(secs);
  else if (secs >= 0 && secs < 2 ** 34) payload.u64((BigInt(nanos) << 34n) | BigInt(secs));
  else (payload.u32(nanos), payload.i64(BigInt(secs)));
  writeExt(w, EXT_INST, payload.result());
}
