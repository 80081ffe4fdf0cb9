// The MessagePack codec and the value types: the exact bytes of the golden fixtures the
// Rust proto crate checks too (proto/tests/codec/golden.json), both ways, so browser and
// server agree byte for byte; round trips of every JavaScript-side type; clear errors on
// bad input, including maps and sets whose members repeat.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CodecError, Float, Inst, Keyword, Uuid, decode, encode, equals, float, inst, kw, num, uuid } from "../atomsync.js";
import { readTaggedJson } from "./tagged-json.js";

const hex = (text) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");
const UUID = "550e8400-e29b-41d4-a716-446655440000";

/** [value, MessagePack hex]: the fixtures proto/tests/codec/golden.rs checks too. */
const golden = JSON.parse(readFileSync(new URL("../../proto/tests/codec/golden.json", import.meta.url), "utf8")).fixtures.map(({ json, msgpack }) => [readTaggedJson(json), msgpack, json]);

test("the shared golden file is read whole", () => {
  assert.ok(golden.length > 50, `${golden.length} fixtures`);
  for (const [value, , json] of golden.filter(([, hex]) => hex.startsWith("cb"))) assert.ok(typeof value === "number" || value instanceof Float, json);
  assert.ok(golden.some(([value]) => value === 18446744073709551615n), "u64::MAX is a BigInt");
  assert.ok(golden.some(([value]) => value instanceof Float && value.value === 1), "1.0 is a Float");
});

test("every golden fixture encodes to its exact bytes", () => {
  for (const [value, bytes, json] of golden) {
    assert.equal(toHex(encode(value)), toHex(hex(bytes)), `encode ${json}`);
  }
});

test("every golden fixture decodes back to an equal value of the same JS type", () => {
  for (const [value, bytes] of golden) {
    const decoded = decode(hex(bytes));
    assert.ok(equals(decoded, value), `decode ${bytes}`);
    assert.equal(toHex(encode(decoded)), toHex(hex(bytes)), `re-encode ${bytes}`);
  }
});

test("integers: safe ones are numbers, others BigInt, never rounded", () => {
  assert.equal(decode(encode(2 ** 53 - 1)), 2 ** 53 - 1);
  assert.equal(decode(encode(-(2 ** 53 - 1))), -(2 ** 53 - 1));
  assert.equal(decode(encode(2n ** 53n)), 2n ** 53n);
  assert.equal(decode(encode(-(2n ** 53n))), -(2n ** 53n));
  assert.equal(decode(encode(2n ** 63n + 1n)), 2n ** 63n + 1n);
  assert.equal(decode(encode(5n)), 5, "a small BigInt comes back as a number, same wire value");
  assert.equal(toHex(encode(5n)), "05");
  assert.throws(() => encode(2n ** 64n), CodecError);
  assert.throws(() => encode(-(2n ** 63n) - 1n), CodecError);
  // 2^53 as a JS number is not a safe integer: it is written as a float, not rounded to an int.
  assert.equal(toHex(encode(2 ** 53)), "cb4340000000000000");
});

test("floats keep being floats through a read-modify-write", () => {
  const fromRust = hex("cb 3ff0000000000000"); // Value::Float(1.0)
  const value = decode(fromRust);
  assert.ok(value instanceof Float);
  assert.equal(num(value), 1);
  assert.equal(value * 3, 3, "valueOf makes arithmetic work");
  assert.equal(toHex(encode(value)), toHex(fromRust));
  assert.equal(decode(encode(2.5)), 2.5, "a non-integral float is a plain number");
  assert.ok(Object.is(decode(encode(-0)), -0));
  assert.ok(Number.isNaN(decode(encode(NaN))));
  assert.equal(decode(hex("ca 3fc00000")), 1.5, "float 32 is accepted");
  assert.ok(decode(hex("ca 40000000")) instanceof Float, "float 32 of 2.0 is still a float");
  assert.ok(!equals(1, float(1)));
  assert.ok(equals(float(1), decode(fromRust)));
  assert.equal(toHex(encode(1)), "01");
});

test("instants keep nanoseconds and convert to and from Date and RFC 3339", () => {
  const text = "2026-11-24T10:00:00.123456789Z";
  const value = inst(text);
  assert.equal(value.nanos, 123456789);
  assert.equal(value.toString(), text);
  const back = decode(encode(value));
  assert.ok(back instanceof Inst);
  assert.equal(back.toString(), text);
  assert.equal(back.epochNanos, 1795514400123456789n);
  assert.equal(value.toDate().toISOString(), "2026-11-24T10:00:00.123Z");
  const date = new Date("1969-07-20T20:17:40.5Z");
  assert.equal(inst(date).toString(), "1969-07-20T20:17:40.5Z");
  assert.equal(inst(date).toDate().getTime(), date.getTime());
  assert.equal(inst("2026-11-24T15:30:00.123+05:30").toString(), "2026-11-24T10:00:00.123Z");
  assert.equal(inst("2026-11-24t10:00:00z").toString(), "2026-11-24T10:00:00Z");
  assert.equal(inst("2024-02-29T00:00:00Z").toString(), "2024-02-29T00:00:00Z");
  assert.ok(equals(decode(encode(new Date(0))), inst(0, 0)), "a Date encodes as an instant");
  for (const bad of ["2023-02-29T00:00:00Z", "2026-11-24T10:00:60Z", "2026-11-24T10:00:00.1234567891Z", "2026-11-24 10:00:00Z", "10000-01-01T00:00:00Z", "0000-12-31T23:59:59Z"]) {
    assert.throws(() => inst(bad), RangeError, bad);
  }
  assert.throws(() => inst(new Date(NaN)), RangeError);
});

test("uuids, keywords, bytes, maps with any keys", () => {
  const id = uuid(UUID.toUpperCase());
  assert.equal(id.toString(), UUID);
  assert.ok(decode(encode(id)) instanceof Uuid);
  const random = uuid();
  assert.match(random.toString(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(kw("a"), kw("a"), "keywords are interned");
  assert.equal(decode(encode(kw("x/y"))), kw("x/y"));
  assert.equal(kw("x/y").namespace, "x");
  assert.ok(decode(encode(kw("z"))) instanceof Keyword);
  for (const bad of ["", "/a", "a/", "a b", "a\u00a0b"]) assert.throws(() => kw(bad), TypeError, bad);
  assert.throws(() => uuid("nope"), TypeError);

  const bytes = decode(encode(new Uint8Array([0, 255])));
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual([...bytes], [0, 255]);

  const map = new Map([[kw("k"), new Set([1])], [1, "one"], [[1, 2], null]]);
  const decoded = decode(encode(map));
  assert.ok(decoded instanceof Map);
  assert.equal(decoded.get(kw("k")).has(1), true, "keyword keys can be looked up");
  assert.ok(equals(decoded, map));

  const object = decode(encode({ text: "Buy milk", done: false, tags: new Set([kw("groceries")]) }));
  assert.equal(Object.getPrototypeOf(object), Object.prototype, "string-keyed maps decode as plain objects");
  assert.equal(object.text, "Buy milk");
  assert.ok(object.tags.has(kw("groceries")));
  const proto = decode(hex("81 a9 5f5f70726f746f5f5f 01")); // {"__proto__": 1}
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, "__proto__ stays a plain entry");
  assert.deepEqual(Object.keys(proto), ["__proto__"]);
  assert.ok(equals(new Map([["a", 1]]), { a: 1 }), "a string-keyed Map equals the plain object");
});

test("a string-keyed map that an object would reorder decodes as a Map and writes back the same bytes", () => {
  // {"b": 1, "2": 2}: an object would list "2" first.
  const wire = hex("82 a162 01 a132 02");
  const reordered = decode(wire);
  assert.ok(reordered instanceof Map);
  assert.deepEqual([...reordered.keys()], ["b", "2"]);
  assert.deepEqual([...encode(reordered)], [...wire]);
  // Indices first and ascending, as an object keeps them: a plain object.
  for (const value of [{ 1: "x", 2: "y", a: "z" }, { 4294967295: 1, a: 2 }, { a: 1, 4294967295: 2 }]) {
    const bytes = encode(value);
    const back = decode(bytes);
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepEqual([...encode(back)], [...bytes]);
  }
  for (const wireOrder of [["2", "1"], ["a", "0"], ["10", "9"]]) {
    const back = decode(encode(new Map(wireOrder.map((key) => [key, key]))));
    assert.ok(back instanceof Map, `${wireOrder}`);
    assert.deepEqual([...back.keys()], wireOrder);
  }
});

test("equals ignores map and set order but not types", () => {
  assert.ok(equals({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }));
  assert.ok(equals(new Set([1, 2, kw("x")]), new Set([kw("x"), 2, 1])));
  assert.ok(!equals([1, 2], [2, 1]));
  assert.ok(!equals("1", 1));
  assert.ok(!equals(kw("a"), "a"));
  assert.ok(equals(NaN, NaN));
  assert.ok(equals(5, 5n));
  assert.ok(!equals(new Uint8Array([1]), [1]));
});

test("what is not a value is refused with where it is", () => {
  assert.throws(() => encode({ a: [1, undefined] }), /value\.a\[1\]: undefined is not a value/);
  assert.throws(() => encode({ f() {} }), /value\.f: a function is not a value/);
  assert.throws(() => encode(new (class Point {})()), /a Point is not a value/);
  assert.throws(() => encode(new Int16Array(2)), /not a value/);
  let deep = 1;
  for (let i = 0; i < 65; i++) deep = [deep];
  assert.throws(() => encode(deep), /nested deeper than the limit/);
  let ok = 1;
  for (let i = 0; i < 64; i++) ok = [ok];
  assert.ok(encode(ok).length > 64);
});

test("a map with two equal keys or a set with two equal elements is refused, naming where", () => {
  const refused = (value, message) => {
    assert.throws(() => encode(value), (error) => error instanceof CodecError && message.test(error.message), String(message));
  };
  // Distinct JS values that encode alike: the protocol's equality is the encoding's.
  refused({ tags: new Set([uuid(UUID), uuid(UUID)]) }, /^value\.tags#1: a set holds two equal elements \(#0 and #1 encode the same\)$/);
  refused(new Map([[[1], "a"], [[1], "b"]]), /^value\{key 1\}: a map holds two equal keys \(\{key 0\} and \{key 1\} encode the same\)$/);
  refused(new Set([5, 5n]), /#1: a set holds two equal elements/);
  refused(new Set([1.5, float(1.5)]), /#1: a set holds two equal elements/);
  refused(new Set([float(1), float(1)]), /#1: a set holds two equal elements/);
  refused(new Set([inst(0, 0), new Date(0)]), /#1: a set holds two equal elements/);
  refused(new Set([new Uint8Array([1]), new Uint8Array([1])]), /#1: a set holds two equal elements/);
  refused(new Map([[{ a: 1 }, 1], [new Map([["a", 1]]), 2]]), /\{key 1\}: a map holds two equal keys/);
  refused(new Set(["x", 2, [kw("a")], [kw("a")]]), /value#3: a set holds two equal elements \(#2 and #3/);
  refused({ a: [new Map([[kw("k"), new Set([[1], [1]])]])] }, /^value\.a\[0\]\{entry 0\}#1: a set holds two equal elements/);
  // What differs in the protocol passes: the int 1 and the float 1.0, two random UUIDs.
  assert.equal(toHex(encode(new Set([1, float(1)]))), toHex(hex("c7 0b 03 92 01 cb 3ff0000000000000")));
  encode(new Set([uuid(), uuid()]));
  encode(new Map([[1, "int"], ["1", "string"], [kw("1"), "keyword"], [[1], "list"]]));
});

test("bad bytes are errors that say incomplete or invalid, never a crash", () => {
  for (const bytes of ["", "cd 01", "a5 6869", "92 01", "dc ff", "c7 0c ff 00", "cf 00"]) {
    try {
      decode(hex(bytes));
      assert.fail(`decoded ${bytes}`);
    } catch (error) {
      assert.ok(error instanceof CodecError, bytes);
      assert.equal(error.incomplete, true, `${bytes}: ${error.message}`);
    }
  }
  const invalid = {
    c1: /reserved byte 0xc1/,
    "c0 c0": /1 bytes after the value/,
    "d4 05 00": /unknown extension type 5/,
    "d7 01 0000000000000000": /uuid payload of 8 bytes/,
    "d5 ff 0000": /timestamp payload of 2 bytes/,
    "a2 c3 28": /not valid UTF-8/,
    "d4 02 20": /invalid keyword/,
    "d5 03 a0 00": /set payload is not an array/,
    "d6 03 91 01 01 01": /set payload holds bytes after its array/,
    "d5 03 92 01": /cannot fit in the 1 bytes left/,
    "d6 03 92 01 cd 00": /extension payload ends in the middle of a value/,
    "d7 ff ee6b28000000000000": /nanoseconds/,
    "c7 0c ff 00000000 7fffffffffffffff": /outside years 0001 to 9999/,
    "dd ffffffff": /cannot fit/,
  };
  for (const [bytes, message] of Object.entries(invalid)) {
    try {
      decode(hex(bytes));
      assert.fail(`decoded ${bytes}`);
    } catch (error) {
      assert.ok(error instanceof CodecError, `${bytes}: ${error}`);
      assert.match(error.message, message, bytes);
    }
  }
  const deep = new Uint8Array(100).fill(0x91);
  assert.throws(() => decode(Uint8Array.of(...deep, 0x01)), /nested deeper than the limit/);
});

test("random values round-trip byte for byte", () => {
  let seed = 42;
  const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  // A set's elements and a map's keys are distinct by encoding (the protocol refuses repeats).
  const distinct = (items, by = (x) => x) => [...new Map(items.map((item) => [toHex(encode(by(item))), item])).values()];
  const gen = (depth) => {
    switch (rand(depth > 3 ? 9 : 13)) {
      case 0: return null;
      case 1: return rand(2) === 0;
      case 2: return rand(2 ** 31) - 2 ** 30;
      case 3: return BigInt(rand(2 ** 30)) * 2n ** 33n + 2n ** 60n;
      case 4: return rand(1000) / 7;
      case 5: return "s" + rand(100000) + "é".repeat(rand(3));
      case 6: return Uint8Array.from({ length: rand(5) }, () => rand(256));
      case 7: return inst(rand(2 ** 31) * (rand(2) ? 1 : -1), rand(1e9));
      case 8: return kw("k" + rand(50));
      case 9: return Array.from({ length: rand(4) }, () => gen(depth + 1));
      case 10: return Object.fromEntries(Array.from({ length: rand(4) }, () => ["f" + rand(100), gen(depth + 1)]));
      case 11: return new Set(distinct(Array.from({ length: rand(4) }, () => gen(depth + 1))));
      default: return new Map(distinct(Array.from({ length: rand(3) }, () => [gen(depth + 1), gen(depth + 1)]), ([key]) => key));
    }
  };
  for (let i = 0; i < 500; i++) {
    const value = gen(0);
    const bytes = encode(value);
    const back = decode(bytes);
    assert.ok(equals(back, value), `round trip ${i}`);
    assert.equal(toHex(encode(back)), toHex(bytes), `stable bytes ${i}`);
  }
});
