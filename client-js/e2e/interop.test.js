// Types survive the round trip between the browser and the Rust side, through the real
// server. Browser → Rust: a value holding every type, written by the page, is read by the
// Rust client (client-rs/examples/interop.rs) and by the server's own codec with exactly
// the types it had (compared as tagged JSON, which names every type), and its
// MessagePack bytes come back unchanged. Rust → browser: what the Rust client (or a
// tagged-JSON push, as curl would send) writes arrives in the page as Keyword, Set, Uuid,
// Inst (ns kept), Uint8Array, Map, BigInt and Float, and a browser read-modify-write
// keeps every one of those types for the Rust client.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, openDemo, rustInterop, startServer } from "./harness.js";

let server;
let browser;
let page;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  page = await openDemo(await browser.newContext(), server, "?group=interop-ui");
  await page.evaluate(async () => {
    window.interop = window.atomsync.conn.syncedAtom("interop");
    await window.interop.ready;
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The server's tagged JSON of one key's value (its Rust codec's reading of it). */
async function serverJson(key) {
  for (let i = 0; i < 200; i++) {
    const text = await (await server.pull("interop", { accept: "application/json" })).text();
    const match = text.match(new RegExp(`\\{"key":"${key}","version":(\\d+),"seq":\\d+,"value":(.*?)\\}(?:,\\{"key"|\\],"seq")`));
    if (match) return { version: Number(match[1]), json: match[2], text };
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`${key} never reached the server`);
}

// Keys in the order the browser writes them, so the JSON text is exact.
const EVERY_TYPE_JSON =
  '{"nil":null,"yes":true,"int":42,"neg":-7,"maxSafe":9007199254740991,"u64max":18446744073709551615,' +
  '"i64min":-9223372036854775808,"float":2.5,"floatOne":1.0,"nan":{"$float":"NaN"},"str":"héllo",' +
  '"bytes":{"$bytes":"AAH/"},"list":[1,"a",null],"inst":{"$inst":"2026-11-24T10:00:00.123456789Z"},' +
  '"uuid":{"$uuid":"550e8400-e29b-41d4-a716-446655440000"},"kw":{"$kw":"todo/done"},' +
  '"set":{"$set":[{"$kw":"groceries"},1]},"anyKeys":{"$map":[[1,"one"],[{"$kw":"k"},[true]]]},' +
  '"dollar":{"$map":[["$a",1]]},"nested":{"a":[{"b":{"$set":[]}}]}}';

/** Writes the every-type value from the page under `key`; returns its MessagePack hex. */
function writeFromBrowser(key) {
  return page.evaluate(async (key) => {
    const m = await import("/atomsync.js");
    const value = {
      nil: null,
      yes: true,
      int: 42,
      neg: -7,
      maxSafe: Number.MAX_SAFE_INTEGER,
      u64max: 18446744073709551615n,
      i64min: -9223372036854775808n,
      float: 2.5,
      floatOne: m.float(1),
      nan: NaN,
      str: "héllo",
      bytes: new Uint8Array([0, 1, 255]),
      list: [1, "a", null],
      inst: m.inst("2026-11-24T10:00:00.123456789Z"),
      uuid: m.uuid("550e8400-e29b-41d4-a716-446655440000"),
      kw: m.kw("todo/done"),
      set: new Set([m.kw("groceries"), 1]),
      anyKeys: new Map([[1, "one"], [m.kw("k"), [true]]]),
      dollar: { $a: 1 },
      nested: { a: [{ b: new Set() }] },
    };
    await window.interop.swap((map) => map.set(key, value));
    return Array.from(m.encode(value), (b) => b.toString(16).padStart(2, "0")).join("");
  }, key);
}

/** Waits for `key` in the page and says, per field, whether it has its type there. */
function typesInBrowser(key) {
  return page.evaluate(async (key) => {
    const m = await import("/atomsync.js");
    const atom = window.interop;
    for (let i = 0; i < 300 && !atom.deref().has(key); i++) await new Promise((done) => setTimeout(done, 100));
    const v = atom.deref().get(key);
    return {
      nil: v.nil === null,
      yes: v.yes === true,
      int: v.int === 42,
      neg: v.neg === -7,
      maxSafe: v.maxSafe === Number.MAX_SAFE_INTEGER,
      u64max: typeof v.u64max === "bigint" && v.u64max === 18446744073709551615n,
      i64min: typeof v.i64min === "bigint" && v.i64min === -9223372036854775808n,
      float: v.float === 2.5,
      floatOne: v.floatOne instanceof m.Float && v.floatOne.value === 1,
      nan: Number.isNaN(v.nan),
      str: v.str === "héllo",
      bytes: v.bytes instanceof Uint8Array && v.bytes.join() === "0,1,255",
      list: Array.isArray(v.list) && m.equals(v.list, [1, "a", null]),
      inst: v.inst instanceof m.Inst && v.inst.nanos === 123456789 && v.inst.toString() === "2026-11-24T10:00:00.123456789Z",
      instDate: v.inst.toDate().toISOString() === "2026-11-24T10:00:00.123Z",
      uuid: v.uuid instanceof m.Uuid && v.uuid.toString() === "550e8400-e29b-41d4-a716-446655440000",
      kw: v.kw === m.kw("todo/done"),
      set: v.set instanceof Set && v.set.has(m.kw("groceries")) && v.set.has(1) && v.set.size === 2,
      anyKeys: v.anyKeys instanceof Map && v.anyKeys.get(1) === "one" && m.equals(v.anyKeys.get(m.kw("k")), [true]),
      dollar: v.dollar.$a === 1 && Object.keys(v.dollar).length === 1,
      nested: v.nested.a[0].b instanceof Set && v.nested.a[0].b.size === 0,
    };
  }, key);
}

function assertTypes(types) {
  for (const [name, ok] of Object.entries(types)) assert.equal(ok, true, `${name} has its type in the browser`);
}

/** A read-modify-write in the page: one field changes, the rest is written back as read. */
function touchInBrowser(key) {
  return page.evaluate((key) => window.interop.swap((map) => map.set(key, { ...map.get(key), str: "changed" })), key);
}

test("a value written by the browser reads back with identical types on the server's Rust codec", async () => {
  const hex = await writeFromBrowser("from-browser");
  const { json } = await serverJson("from-browser");
  assert.equal(json, EVERY_TYPE_JSON);
  // The MessagePack pull carries the browser's exact bytes.
  const packed = Buffer.from(await (await server.pull("interop")).arrayBuffer()).toString("hex");
  assert.ok(packed.includes(hex), "the server returns the value's bytes unchanged");
});

test("a value pushed as tagged JSON (curl) reads in the browser with identical types, and survives a browser read-modify-write", async () => {
  const body = `{"group":"interop","changes":[{"key":"from-rust","base":0,"value":${EVERY_TYPE_JSON}}]}`;
  const pushed = await server.pushJson(body);
  assert.equal(pushed.status, 200, await pushed.text());

  assertTypes(await typesInBrowser("from-rust"));

  await touchInBrowser("from-rust");
  let after;
  for (let i = 0; i < 200; i++) {
    after = await serverJson("from-rust");
    if (after.version === 2) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  assert.equal(after.version, 2);
  assert.equal(after.json, EVERY_TYPE_JSON.replace('"str":"héllo"', '"str":"changed"'));
});

test("the Rust client reads the browser's value with identical types", async () => {
  await writeFromBrowser("browser-to-rust");
  assert.equal(await rustInterop(server, "read", "interop", "browser-to-rust"), EVERY_TYPE_JSON);
});

test("the browser reads the Rust client's value with identical types, and a browser read-modify-write keeps them for Rust", async () => {
  assert.equal(await rustInterop(server, "write", "interop", "rust-to-browser"), "ok");
  assertTypes(await typesInBrowser("rust-to-browser"));
  await touchInBrowser("rust-to-browser");
  for (let i = 0; i < 200 && (await serverJson("rust-to-browser")).version !== 2; i++) await new Promise((done) => setTimeout(done, 100));
  assert.equal(await rustInterop(server, "read", "interop", "rust-to-browser"), EVERY_TYPE_JSON.replace('"str":"héllo"', '"str":"changed"'));
});
