/**
 * # render.js: typed values as readable, escaped HTML for the inspector page
 *
 * Every type of PROTOCOL.md section 2 keeps its identity on screen, in the notation
 * Clojure users read at a glance (EDN): `nil`, `true`, `42`, `1.0`, `"text"`,
 * `:keyword`, `#{:a :b}` (a set), `[1 2]` (a list), `{title "x", 42 :y}` (a map; a
 * string key that reads as a name is shown bare), `#inst "2026-11-24T10:00:00.123456789Z"`,
 * `#uuid "550e8400-…"`, `#bytes[3] 0a0b0c`. Integers beyond 2^53 come as `BigInt` and
 * show exactly. Each token is a `<span>` with a class (`v-str`, `v-kw`, ...) for the
 * page's colours; text is escaped, long strings and byte strings are cut with an ellipsis
 * (the whole string in the `title`), and deep or wide values stop at a bound, so a
 * 1 MiB value cannot freeze the page.
 *
 * Pure functions, no DOM: the Node tests call them directly.
 * @module inspect/render
 */

import { Inst } from "../atomsync/inst.js";
import { Float, Keyword, Uuid } from "../atomsync/values.js";

/** Characters of a string shown before the ellipsis. */
const MAX_STRING = 160;
/** Bytes of a byte string shown, in hex. */
const MAX_BYTES = 24;
/** Elements of one list, set or map shown; the rest is counted. */
const MAX_ITEMS = 50;
/** Containers nested deeper than this show as `…`. */
const MAX_DEPTH = 8;

/** @param {string} text */
export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * @param {string} cls
 * @param {string} text already escaped
 * @param {string} [title] unescaped
 */
function span(cls, text, title) {
  const t = title === undefined ? "" : ` title="${escapeHtml(title)}"`;
  return `<span class="${cls}"${t}>${text}</span>`;
}

/** @param {string} text */
function string(text) {
  if (text.length <= MAX_STRING) return span("v-str", escapeHtml(JSON.stringify(text)));
  const shown = JSON.stringify(text.slice(0, MAX_STRING)).slice(0, -1) + "…\"";
  return span("v-str", escapeHtml(shown), `${text.length} characters: ${text}`);
}

/** @param {Uint8Array} bytes */
function bytes(bytes) {
  const hex = Array.from(bytes.subarray(0, MAX_BYTES), (b) => b.toString(16).padStart(2, "0")).join("");
  const more = bytes.length > MAX_BYTES ? "…" : "";
  return span("v-tag", `#bytes[${bytes.length}]`) + " " + span("v-bytes", hex + more);
}

/** A map key shown bare when it reads as a name. @param {unknown} key @param {number} depth */
function key(key, depth) {
  if (typeof key === "string" && /^[A-Za-z_][\w.\-/:]*$/.test(key) && key.length <= MAX_STRING) {
    return span("v-key", escapeHtml(key));
  }
  return renderValue(key, depth);
}

/**
 * @param {string} open
 * @param {string} close
 * @param {string[]} items rendered
 * @param {number} total
 */
function container(open, close, items, total) {
  const more = total > items.length ? ` ${span("v-more", `…${total - items.length} more`)}` : "";
  return `${span("v-punct", open)}${items.join(" ")}${more}${span("v-punct", close)}`;
}

/**
 * The HTML of one value.
 * @param {unknown} value a decoded value (see atomsync.js's table of values in JavaScript)
 * @param {number} [depth]
 * @returns {string}
 */
export function renderValue(value, depth = 0) {
  if (value === null || value === undefined) return span("v-nil", "nil");
  if (typeof value === "boolean") return span("v-bool", String(value));
  if (typeof value === "bigint") return span("v-num", value.toString());
  if (typeof value === "number") {
    if (Number.isNaN(value)) return span("v-num", "##NaN");
    if (!Number.isFinite(value)) return span("v-num", value > 0 ? "##Inf" : "##-Inf");
    return span("v-num", Object.is(value, -0) ? "-0.0" : String(value));
  }
  if (typeof value === "string") return string(value);
  if (value instanceof Float) return span("v-num", value.toString());
  if (value instanceof Keyword) return span("v-kw", escapeHtml(value.toString()));
  if (value instanceof Inst) return span("v-tag", "#inst") + " " + span("v-inst", `"${value.toString()}"`);
  if (value instanceof Uuid) return span("v-tag", "#uuid") + " " + span("v-uuid", `"${value.toString()}"`);
  if (value instanceof Uint8Array) return bytes(value);
  if (depth >= MAX_DEPTH) return span("v-more", "…");
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => renderValue(v, depth + 1));
    return container("[", "]", items, value.length);
  }
  if (value instanceof Set) {
    const items = [...value].slice(0, MAX_ITEMS).map((v) => renderValue(v, depth + 1));
    return container("#{", "}", items, value.size);
  }
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(/** @type {object} */ (value));
  const items = entries.slice(0, MAX_ITEMS).map(([k, v], i) => {
    const comma = i + 1 < Math.min(entries.length, MAX_ITEMS) ? span("v-punct", ",") : "";
    return `${key(k, depth + 1)} ${renderValue(v, depth + 1)}${comma}`;
  });
  return container("{", "}", items, entries.length);
}

/**
 * A short plain-text description of a value's type: `map of 3`, `set of 2`, `keyword`.
 * @param {unknown} value
 * @returns {string}
 */
export function typeOf(value) {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value))) return "integer";
  if (typeof value === "number" || value instanceof Float) return "float";
  if (typeof value === "string") return "string";
  if (typeof value === "boolean") return "boolean";
  if (value instanceof Keyword) return "keyword";
  if (value instanceof Inst) return "instant";
  if (value instanceof Uuid) return "uuid";
  if (value instanceof Uint8Array) return `bytes`;
  if (Array.isArray(value)) return `list of ${value.length}`;
  if (value instanceof Set) return `set of ${value.size}`;
  const size = value instanceof Map ? value.size : Object.keys(/** @type {object} */ (value)).length;
  return `map of ${size}`;
}
