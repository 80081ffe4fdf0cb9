/**
 * The protocol's value types in JavaScript terms (PROTOCOL.md section 2): keywords,
 * UUIDs, integral floats, and {@link equals}, the protocol's equality. Instants live in
 * `inst.js`; the table of how each protocol type maps to JavaScript is in the header of
 * `atomsync.js`.
 *
 * @module atomsync/values
 */

import { Inst, inst } from "./inst.js";

/** Only this module creates Keyword and Float instances, through their factories. */
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

/**
 * A float from the wire (or a decoder): integral safe values keep their float-ness in a
 * {@link Float}, every other one is a plain number.
 * @param {number} x
 * @returns {number | Float}
 */
export function wireFloat(x) {
  return isIntNumber(x) ? new Float(INTERNAL, x) : x;
}

/**
 * The number a value is, for display and arithmetic: unwraps {@link Float}.
 * @template T
 * @param {T | Float} x
 * @returns {T | number}
 */
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

/**
 * A text that two values share exactly when {@link equals} holds.
 * @param {unknown} value @param {number} depth
 * @returns {string}
 */
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
  /** @type {(v: unknown) => string} */
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

/** A JS number that the protocol treats as an int. @param {number} x */
export function isIntNumber(x) {
  return Number.isSafeInteger(x) && !Object.is(x, -0);
}

/**
 * The entries of a Map or plain object, else null.
 * @param {unknown} value
 * @returns {[unknown, unknown][] | null}
 */
export function mapEntries(value) {
  if (value instanceof Map) return [...value];
  if (typeof value === "object" && value !== null) {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return Object.entries(value);
  }
  return null;
}

/** @param {unknown} value */
export function describe(value) {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  return value?.constructor?.name ? `a ${value.constructor.name}` : typeof value;
}

/** @param {Uint8Array} bytes */
export function toHex(bytes) {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** @param {string} hex an even number of hex digits */
export function fromHex(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** An error's message, or what was thrown as text. @param {unknown} error */
export function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}
