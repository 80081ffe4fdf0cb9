// Data safety for the browser client against the real server (issue 11): a group of
// seventy 1 MB documents syncs over HTTP (a Node client, WebSocket off) and over the
// WebSocket (Chromium); and a client offline across a tombstone compaction that removed a
// delete keeps no deleted key, keeps its own unsent change, and a fresh client pages the
// compacted group to its end (PROTOCOL.md section 8: `reset`, `floor`, `full=true`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { MemoryStorage, open } from "../atomsync.js";
import { BINARY, launchBrowser, openDemo, startServer } from "./harness.js";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const BIG = 1_000_000;

async function pushJson(group, changes) {
  const response = await server.pushJson(JSON.stringify({ group, changes }));
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text);
}

/** Seventy documents of 1 MB, five per push (a push stays under the 8 MiB body limit). */
async function seventy(group) {
  for (let chunk = 0; chunk < 14; chunk++) {
    const changes = [];
    for (let i = 0; i < 5; i++) {
      const n = chunk * 5 + i;
      changes.push({ key: `doc-${n}`, base: 0, value: { $bytes: Buffer.alloc(BIG, n).toString("base64") } });
    }
    await pushJson(group, changes);
  }
}

/** A Node client syncing over HTTP only, on `storage` (kept across "restarts"). */
async function httpClient(storage) {
  return open("node", { storage, locks: null, BroadcastChannel: null, WebSocket: null, timing: { httpPollMs: 100 } });
}

async function until(what, check, timeout = 30000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

/** Stops the server, removes tombstones older than 0 s with `atomsync-server compact`, starts it. */
async function compactNow() {
  await server.stop();
  const db = join(server.dir, "atomsync.db");
  const out = spawnSync(BINARY, ["compact", "--db", db, "--older-than", "0s"], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /removed \d+ tombstones/);
  await server.start();
}

test("seventy 1 MB documents sync over HTTP and over the WebSocket", async () => {
  await seventy("big");
  const conn = await httpClient(new MemoryStorage());
  const atom = conn.syncedAtom("big", { server: `${server.origin}/sync` });
  await until("70 documents over HTTP", () => atom.deref().size === 70);
  assert.equal(atom.deref().get("doc-69").length, BIG);
  conn.close();

  const page = await openDemo(await browser.newContext(), server, "?group=ui");
  const size = await page.evaluate(async () => {
    const m = await import("/atomsync.js");
    const conn = await m.open("big-ws");
    const atom = conn.syncedAtom("big");
    for (let i = 0; i < 600 && atom.deref().size < 70; i++) await new Promise((done) => setTimeout(done, 50));
    const status = atom.status.transport;
    conn.close();
    return { size: atom.deref().size, status };
  });
  assert.deepEqual(size, { size: 70, status: "ws" });
});

/** Keys `keep`, `gone`, `mine` and 2500 more: a catch-up of three 1000-document pages. */
async function offlineGroup(group) {
  const changes = ["keep", "gone", "mine"].map((key) => ({ key, base: 0, value: key }));
  for (let i = 0; i < 2500; i++) changes.push({ key: `f${String(i).padStart(4, "0")}`, base: 0, value: i });
  await pushJson(group, changes);
}

/** What another client does while ours is offline: deletes, then the compaction. */
async function deleteAndCompact(group) {
  await pushJson(group, [
    { key: "gone", base: 1, deleted: true },
    { key: "f0000", base: 1, deleted: true },
  ]);
  await compactNow();
}

async function serverKeys(group) {
  const response = await fetch(`${server.origin}/sync?group=${group}&since=0&limit=10000`, { headers: { Accept: "application/json" } });
  const body = await response.json();
  return new Map(body.changes.filter((d) => !d.deleted).map((d) => [d.key, d.value]));
}

test("a client offline across a compaction drops the deleted keys, keeps its unsent change, and a fresh client pages the compacted group (HTTP)", async () => {
  await offlineGroup("off-http");
  const storage = new MemoryStorage();
  let conn = await httpClient(storage);
  let atom = conn.syncedAtom("off-http", { server: `${server.origin}/sync` });
  await until("first sync", () => atom.deref().size === 2503);
  conn.close();

  await deleteAndCompact("off-http");
  conn = await httpClient(storage);
  atom = conn.syncedAtom("off-http", { server: `${server.origin}/sync` });
  await atom.swap((m) => m.set("mine", "offline edit"));
  await until("the deleted keys dropped and the edit pushed", () => !atom.deref().has("gone") && atom.deref().size === 2501 && atom.status.pending === 0);
  assert.equal(atom.deref().get("mine"), "offline edit");
  conn.close();
  const keys = await serverKeys("off-http");
  assert.equal(keys.has("gone"), false, "never pushed back");
  assert.equal(keys.get("mine"), "offline edit");

  const fresh = await httpClient(new MemoryStorage());
  const again = fresh.syncedAtom("off-http", { server: `${server.origin}/sync` });
  await until("a fresh client pages to the end", () => again.deref().size === 2501);
  fresh.close();
});

test("a browser offline across a compaction drops the deleted keys and keeps its unsent change (WebSocket)", async () => {
  await offlineGroup("off-ws");
  const page = await openDemo(await browser.newContext(), server, "?group=ui2");
  const first = await page.evaluate(async () => {
    const m = await import("/atomsync.js");
    const conn = await m.open("offline-db");
    const atom = conn.syncedAtom("off-ws");
    for (let i = 0; i < 600 && atom.deref().size < 2503; i++) await new Promise((done) => setTimeout(done, 50));
    conn.close();
    return atom.deref().size;
  });
  assert.equal(first, 2503);

  await deleteAndCompact("off-ws");
  const after = await page.evaluate(async () => {
    const m = await import("/atomsync.js");
    const conn = await m.open("offline-db");
    const atom = conn.syncedAtom("off-ws");
    await atom.swap((v) => v.set("mine", "offline edit"));
    const done = () => !atom.deref().has("gone") && atom.deref().size === 2501 && atom.status.pending === 0;
    for (let i = 0; i < 600 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const result = { gone: atom.deref().has("gone"), size: atom.deref().size, mine: atom.deref().get("mine"), pending: atom.status.pending };
    conn.close();
    return result;
  });
  assert.deepEqual(after, { gone: false, size: 2501, mine: "offline edit", pending: 0 });
  const keys = await serverKeys("off-ws");
  assert.equal(keys.has("gone"), false);
  assert.equal(keys.get("mine"), "offline edit");
});
