// The protocol's tagged JSON (PROTOCOL.md section 2) read into the client's JavaScript
// values, for the shared golden fixtures (proto/tests/codec/golden.json). JSON.parse
// cannot do it: it rounds integers beyond 2^53 and reads `1.0` as the int 1, and the
// fixtures are about exactly those differences. So numbers are read from their text:
// digits only make an int (a BigInt beyond the safe range), a fraction or exponent makes
// a float (a Float wrapper when its value is integral, as the decoder gives it).
import { float, inst, kw, uuid } from "../atomsync.js";

/** @param {string} text one JSON value */
export function readTaggedJson(text) {
  let pos = 0;
  const fail = (what) => {
    throw new SyntaxError(`tagged JSON at ${pos}: ${what} in ${text}`);
  };
  const space = () => {
    while (/\s/.test(text[pos] ?? "")) pos++;
  };
  const expect = (char) => {
    space();
    if (text[pos] !== char) fail(`expected ${char}`);
    pos++;
  };
  const value = () => {
    space();
    const char = text[pos];
    if (char === "{") return object();
    if (char === "[") return list();
    if (char === '"') return string();
    for (const [word, result] of [["null", null], ["true", true], ["false", false]]) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return result;
      }
    }
    const number = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(pos));
    if (!number) fail("not a value");
    pos += number[0].length;
    if (number[1] === undefined && number[2] === undefined) {
      const n = BigInt(number[0]);
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    const x = Number(number[0]);
    return Number.isSafeInteger(x) && !Object.is(x, -0) ? float(x) : x;
  };
  const string = () => {
    const start = pos;
    pos++;
    while (text[pos] !== '"') {
      if (pos >= text.length) fail("unterminated string");
      pos += text[pos] === "\\" ? 2 : 1;
    }
    pos++;
    return JSON.parse(text.slice(start, pos));
  };
  const list = () => {
    expect("[");
    const items = [];
    space();
    if (text[pos] === "]") return (pos++, items);
    for (;;) {
      items.push(value());
      space();
      if (text[pos++] === "]") return items;
      if (text[pos - 1] !== ",") fail("expected , or ]");
    }
  };
  const object = () => {
    expect("{");
    const entries = [];
    space();
    if (text[pos] === "}") {
      pos++;
    } else {
      for (;;) {
        space();
        const key = string();
        expect(":");
        entries.push([key, value()]);
        space();
        if (text[pos++] === "}") break;
        if (text[pos - 1] !== ",") fail("expected , or }");
      }
    }
    // Exactly one member whose name starts with `$`: a tag.
    if (entries.length === 1 && entries[0][0].startsWith("$")) return tag(entries[0][0], entries[0][1]);
    return Object.fromEntries(entries);
  };
  const tag = (name, payload) => {
    switch (name) {
      case "$kw":
        return kw(payload);
      case "$uuid":
        return uuid(payload);
      case "$inst":
        return inst(payload);
      case "$set":
        return new Set(payload);
      case "$map":
        return new Map(payload);
      case "$bytes":
        return Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
      case "$float":
        return typeof payload === "string" ? Number(payload) : float(payload);
      default:
        return fail(`unknown tag ${name}`);
    }
  };
  const result = value();
  space();
  if (pos !== text.length) fail("text after the value");
  return result;
}
