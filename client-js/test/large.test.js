// Large atoms: `swap` costs what it changes (values compared by identity first, only
// changed ones encoded, only changed keys pushed), and watchers, offline writes, conflicts
// and the resolver behave on 5,000 documents exactly as on a few. Against the fake server;
// how fast is the benchmark's business (bench/src/workloads/browser.rs), not a test's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DELETED, MemoryStorage, equals, kw, open } from "../atomsync.js";
import { FAST, FakeServer, until } from "./fake-server.js";

const SERVER = "ws://fake.test/sync/ws";
const N = 5000;
const key = (i) => `doc:${String(i).padStart(5, "0")}`;

/** A fake server holding N documents, and a client caught up with it. */
async function largeAtom(options = {}) {
  const server = new FakeServer({ frameSize: 1000 });
  for (let i = 0; i < N; i++) server.write("big", key(i), { title: `document ${i}`, n: i, tags: new Set([kw("bench")]) });
  const conn = await open("db", { storage: new MemoryStorage(), locks: null, BroadcastChannel: null, WebSocket: server.WebSocket, fetch: server.fetch, timing: FAST });
  const atom = conn.syncedAtom("big", { server: SERVER, ...options });
  await atom.ready;
  assert.equal(atom.deref().size, N);
  return { server, conn, atom };
}

const synced = (atom) => until(() => atom.status.online && atom.status.pending === 0, "nothing pending");

/** The keys whose values are not the same objects in `a` and `b`. */
function changedKeys(a, b) {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort();
}

test("swap on a large atom encodes only values that are new objects and pushes only changed keys", async () => {
  const { server, conn, atom } = await largeAtom();
  // A value that counts how often it is read for encoding (each encode lists its keys).
  let encodes = 0;
  const watched = new Proxy({ text: "watched" }, { ownKeys: (target) => (encodes++, Reflect.ownKeys(target)) });
  await atom.swap((m) => m.set("watched", watched));
  await synced(atom);
  assert.equal(encodes, 1);

  const pushed = server.pushLog.length;
  await atom.swap((m) => m.set(key(1), { ...m.get(key(1)), title: "changed" }));
  await synced(atom);
  assert.equal(encodes, 1, "a value the swap did not replace is not encoded again");
  assert.deepEqual(server.pushLog.slice(pushed), [["big", key(1), 1, "set"]], "one change pushed");

  // An equal copy is encoded and found unchanged: nothing written, the snapshot kept.
  const before = atom.deref();
  const same = await atom.swap((m) => m.set(key(2), { ...m.get(key(2)) }));
  assert.equal(same, before);
  assert.equal(atom.status.pending, 0);

  // Deletes and additions in one swap.
  await atom.swap((m) => (m.delete(key(3)), m.set("new", 1)));
  await synced(atom);
  assert.deepEqual(
    server.pushLog.slice(pushed + 1).map(([, k, , op]) => [k, op]),
    [
      [key(3), "delete"],
      ["new", "set"],
    ],
  );
  assert.equal(atom.deref().size, N + 1);
  assert.equal(server.value("big", key(3)), undefined);
  conn.close();
});

test("a value that repeats a map key or a set element is refused by swap, which writes nothing", async () => {
  const { server, conn, atom } = await largeAtom();
  const pushed = server.pushLog.length;
  const id = "550e8400-e29b-41d4-a716-446655440000";
  const { uuid } = await import("../atomsync.js");
  await assert.rejects(
    atom.swap((m) => m.set("fine", 1).set("bad", { owners: new Set([uuid(id), uuid(id)]) })),
    /bad: value\.owners#1: a set holds two equal elements \(#0 and #1 encode the same\)/,
  );
  await assert.rejects(atom.swap((m) => m.set("bad", new Map([[[1], "a"], [[1], "b"]]))), /bad: value\{key 1\}: a map holds two equal keys/);
  assert.equal(atom.deref().has("fine"), false, "nothing of the refused swap was applied");
  assert.equal(atom.deref().size, N);
  assert.equal(atom.status.pending, 0);
  const stored = await conn.storage.transaction("readonly", (tx) => tx.allPending("big"));
  assert.deepEqual(stored, []);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(server.pushLog.length, pushed, "nothing was pushed");
  conn.close();
});

test("on a large atom watchers see each change once, with every other value the same object", async () => {
  const { server, conn, atom } = await largeAtom();
  const seen = [];
  atom.watch((oldMap, newMap) => seen.push(changedKeys(oldMap, newMap)));
  await atom.swap((m) => m.set(key(10), { title: "local" }));
  assert.deepEqual(seen, [[key(10)]], "a local write: one call, one key");
  server.write("big", key(20), { title: "remote" });
  await until(() => atom.deref().get(key(20))?.title === "remote", "the remote change");
  assert.deepEqual(seen.at(-1), [key(20)]);
  await synced(atom);
  assert.ok(
    seen.every((keys) => keys.length === 1),
    `each call changed one key: ${JSON.stringify(seen)}`,
  );
  conn.close();
});

test("on a large atom offline writes wait, then push once each; conflicts go to the resolver", async () => {
  const resolver = (k, local, remote) => (local === DELETED || remote === DELETED ? undefined : { title: `${local.title}+${remote.title}` });
  const { server, conn, atom } = await largeAtom({ resolver });
  server.stop();
  await until(() => !atom.status.online, "offline");
  await atom.swap((m) => m.set(key(1), { title: "mine" }).set(key(2), { title: "also mine" }).set("offline", { title: "new" }));
  assert.equal(atom.status.pending, 3);
  const pushed = server.pushLog.length;
  server.start();
  server.write("big", key(1), { title: "theirs" });
  await synced(atom);
  await until(() => equals(server.value("big", key(1)), { title: "mine+theirs" }), "the resolver's merge on the server");
  assert.deepEqual(atom.deref().get(key(1)), { title: "mine+theirs" });
  assert.equal(server.value("big", key(2)).title, "also mine");
  assert.equal(server.value("big", "offline").title, "new");
  const keys = server.pushLog.slice(pushed + 1).map(([, k]) => k);
  assert.deepEqual([...new Set(keys)].sort(), [key(1), key(2), "offline"].sort(), "only the changed keys were pushed");
  assert.equal(atom.deref().size, N + 1);
  conn.close();
});

test("a swap that returns another Map, or clears and refills its copy, is compared in full", async () => {
  const { server, conn, atom } = await largeAtom();
  const pushed = server.pushLog.length;
  // Another Map: every entry looked at; the values kept are the same objects.
  await atom.swap((m) => new Map([...m].filter(([k]) => k !== key(5))).set("fresh", 1));
  // Cleared and refilled: any key may have changed.
  await atom.swap((m) => {
    const entries = [...m];
    m.clear();
    for (const [k, v] of entries) if (k !== key(6)) m.set(k, v);
    return m;
  });
  await synced(atom);
  assert.deepEqual(
    server.pushLog.slice(pushed).map(([, k, , op]) => [k, op]),
    [
      [key(5), "delete"],
      ["fresh", "set"],
      [key(6), "delete"],
    ],
  );
  assert.equal(atom.deref().size, N - 1);
  assert.equal(atom.deref().set, Map.prototype.set, "the view is a plain Map");
  conn.close();
});
