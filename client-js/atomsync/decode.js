/**
 * The MessagePack decoder: {@link decode} reads exactly one value and says whether bad
 * input is incomplete (more bytes could fix it) or invalid, and where; nothing in the
 * input can make it crash, loop or allocate past what the input's length allows.
 * {@link decodeMessage} reads a protocol message whose documents' values are kept as the
 * server's exact bytes ({@link Raw}).
 *
 * @module atomsync/decode
 */

import { CodecError, EXT_INST, EXT_KW, EXT_SET, EXT_UUID, MAX_DEPTH, Raw } from "./codec.js";
import { Inst, MAX_SECS, MIN_SECS } from "./inst.js";
import { Uuid, kw, messageOf, wireFloat } from "./values.js";

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

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
export function decodeMessage(bytes) {
  return decodeWith(bytes, MAX_DEPTH, true);
}

/** @param {Uint8Array | ArrayBuffer} bytes @param {number} maxDepth @param {boolean} rawValues */
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
 * @returns {unknown}
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
      return wireFloat(view.getFloat32(r.take(4)));
    case 0xcb:
      return wireFloat(view.getFloat64(r.take(8)));
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

/** A 64-bit int from the wire: a number when safe, else a BigInt (never rounded). @param {bigint} n */
function intValue(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/** @param {Reader} r @param {number} len @param {string} path */
function readStr(r, len, path) {
  const start = r.take(len);
  try {
    return utf8Decoder.decode(r.bytes.subarray(start, start + len));
  } catch {
    throw new CodecError(`${path}: string is not valid UTF-8`);
  }
}

/** One container deeper: what may still be entered inside it. @param {number} depthLeft @param {string} path */
function enter(depthLeft, path) {
  if (depthLeft <= 0) throw new CodecError(`${path}: nested deeper than the limit`);
  return depthLeft - 1;
}

/** @param {Reader} r @param {number} len @param {number} depthLeft @param {boolean} rawValues @param {string} path */
function readArray(r, len, depthLeft, rawValues, path) {
  const inner = enter(depthLeft, path);
  if (len > r.remaining()) throw new CodecError(`${path}: an array of ${len} items cannot fit in the ${r.remaining()} bytes left`, !r.bounded);
  const items = new Array(len);
  for (let i = 0; i < len; i++) items[i] = readValue(r, inner, rawValues, `${path}[${i}]`);
  return items;
}

/**
 * A map: a plain object when every key is a string and an object keeps the entries in
 * their order, else a `Map`. An object lists integer-like keys ("2") first, ascending,
 * whatever order they were set in; a map whose order differs (`{"b": 1, "2": 2}` from
 * another client) is a `Map`, so that it is written back exactly as it was read.
 * @param {Reader} r @param {number} len @param {number} depthLeft @param {boolean} rawValues @param {string} path
 */
function readMap(r, len, depthLeft, rawValues, path) {
  const inner = enter(depthLeft, path);
  if (len * 2 > r.remaining()) throw new CodecError(`${path}: a map of ${len} entries cannot fit in the ${r.remaining()} bytes left`, !r.bounded);
  /** @type {[unknown, unknown][]} */
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
  if (!allStrings || !objectKeepsOrder(entries)) return new Map(entries);
  /** @type {Record<string, unknown>} */
  const object = {};
  // defineProperty, not assignment: a key named "__proto__" must stay a plain entry.
  for (const [key, item] of entries) Object.defineProperty(object, /** @type {string} */ (key), { value: item, enumerable: true, writable: true, configurable: true });
  return object;
}

/** Array indices: the keys an object enumerates first, in ascending numeric order. */
const ARRAY_INDEX = /^(?:0|[1-9][0-9]{0,9})$/;

/**
 * True when a plain object with these string keys, set in this order, enumerates them in
 * the same order: every array index comes before the other keys, ascending.
 * @param {[unknown, unknown][]} entries
 */
function objectKeepsOrder(entries) {
  let lastIndex = -1;
  let named = false;
  for (const [key] of entries) {
    const text = /** @type {string} */ (key);
    const index = ARRAY_INDEX.test(text) ? Number(text) : -1;
    if (index < 0 || index >= 2 ** 32 - 1) {
      named = true;
    } else if (named || index <= lastIndex) {
      return false;
    } else {
      lastIndex = index;
    }
  }
  return true;
}

/** @param {Reader} r @param {number} len @param {number} depthLeft @param {string} path */
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
        throw new CodecError(`${path}: ${messageOf(e)}`);
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

/** @param {Uint8Array} payload @param {string} path */
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
    throw new CodecError(`${path}: ${messageOf(e)}`);
  }
}
