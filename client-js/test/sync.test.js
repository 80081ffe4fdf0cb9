// The synced atom against the in-memory fake server: offline-first writes, convergence,
// folding and bases, conflicts (server wins, resolver), epoch change, compaction reset,
// the HTTP fallback, auth errors, several tabs on one database, and storage failures
// that must not move the cursor past what was stored.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DELETED, MemoryStorage, equals, inst, kw, open } from "../atomsync.js";
import { FAST, FakeLocks, FakeServer, until } from "./fake-server.js";

const SERVER = "ws://fake.test/sync/ws";

/** A "browser": its own storage (or a shared one, for tabs) and the fake's network. */
async function client(server, { storage = new MemoryStorage(), name = "db", locks = null, channel = null, ...atomOptions } = {}) {
  const conn = await open(name, {
    storage,
    locks,
    BroadcastChannel: channel,
    WebSocket: atomOptions.noWebSocket ? null : server.WebSocket,
    fetch: server.fetch,
    timing: FAST,
  });
  const atom = conn.syncedAtom(atomOptions.group ?? "todo", { server: SERVER, token: atomOptions.token, resolver: atomOptions.resolver });
  await atom.ready;
  return { conn, atom, storage };
}

const online = (atom, transport = "ws") => until(() => atom.status.online && atom.status.transport === transport, `online over ${transport}`);
const synced = (atom) => until(() => atom.status.online && atom.status.pending === 0, "nothing pending");

test("writes work offline, are stored with their pending change, and survive a reload", async () => {
  const server = new FakeServer();
  server.stop();
  const storage = new MemoryStorage();
  const first = await client(server, { storage });
  const done = await first.atom.swap((m) => m.set("todo:1", { text: "Buy milk", tags: new Set([kw("groceries")]) }));
  assert.equal(done.get("todo:1").text, "Buy milk");
  assert.equal(first.atom.status.pending, 1);
  assert.equal(first.atom.status.online, false);
  assert.deepEqual([...first.atom.pendingKeys()], ["todo:1"]);
  first.conn.close();

  const reloaded = await client(server, { storage });
  assert.ok(equals(reloaded.atom.deref().get("todo:1"), { text: "Buy milk", tags: new Set([kw("groceries")]) }));
  assert.equal(reloaded.atom.status.pending, 1);
  server.start();
  await synced(reloaded.atom);
  assert.equal(server.value("todo", "todo:1").text, "Buy milk");
  reloaded.conn.close();
});

test("two clients converge live over the WebSocket, deletes included", async () => {
  const server = new FakeServer();
  const a = await client(server);
  const b = await client(server);
  await online(a.atom);
  await online(b.atom);
  const seen = [];
  b.atom.watch((before, after) => seen.push([before.size, after.size]));
  await a.atom.swap((m) => m.set("todo:1", { text: "one", at: inst("2026-11-24T10:00:00.123456789Z") }).set("todo:2", { text: "two" }));
  await until(() => b.atom.deref().size === 2, "b sees both");
  assert.equal(b.atom.deref().get("todo:1").at.nanos, 123456789);
  await b.atom.swap((m) => (m.delete("todo:2"), m));
  await until(() => a.atom.deref().size === 1 && !a.atom.deref().has("todo:2"), "a sees the delete");
  await synced(a.atom);
  await synced(b.atom);
  assert.equal(a.atom.status.cursor, b.atom.status.cursor);
  assert.equal(a.atom.status.cursor, 3);
  assert.ok(seen.length >= 2, "b's watcher saw the changes");
  a.conn.close();
  b.conn.close();
});

test("pending changes fold per key and push once with the base they were made on", async () => {
  const server = new FakeServer();
  server.write("todo", "k", 1); // version 1
  const a = await client(server);
  await until(() => a.atom.deref().get("k") === 1, "initial value");
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  for (let i = 2; i <= 5; i++) await a.atom.swap((m) => m.set("k", i));
  assert.equal(a.atom.status.pending, 1);
  server.start();
  await synced(a.atom);
  const pushes = server.pushLog.filter(([, key]) => key === "k");
  assert.deepEqual(pushes.slice(1), [["todo", "k", 1, "set"]], "one push of the folded change, base 1");
  assert.equal(server.value("todo", "k"), 5);
  a.conn.close();
});

test("a write made while its key's push is in flight builds on the version that push gets", async () => {
  const server = new FakeServer();
  const a = await client(server);
  await online(a.atom);
  server.holdPushes = true;
  await a.atom.swap((m) => m.set("k", "first"));
  await until(() => server.held.length === 1, "the push is in flight");
  await a.atom.swap((m) => m.set("k", "second"));
  server.release();
  await synced(a.atom);
  assert.equal(server.value("todo", "k"), "second");
  assert.deepEqual(server.pushLog.map(([, , base]) => base), [0, 1]);
  assert.equal(server.group("todo").docs.get("k").version, 2);
  a.conn.close();
});

test("on a conflict the server wins when there is no resolver", async () => {
  const server = new FakeServer();
  const a = await client(server);
  await online(a.atom);
  await a.atom.swap((m) => m.set("k", "original"));
  await synced(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("k", "mine"));
  // Someone else writes before a reconnects (reconnecting takes timers; this is synchronous).
  server.start();
  server.write("todo", "k", "theirs");
  await synced(a.atom);
  await until(() => a.atom.deref().get("k") === "theirs", "server value taken");
  assert.equal(server.value("todo", "k"), "theirs");
  a.conn.close();
});

test("a resolver's answer is pushed on top of the server's version", async () => {
  const server = new FakeServer();
  const merge = (key, local, remote) => {
    if (local === DELETED || remote === DELETED) return undefined;
    return { tags: new Set([...local.tags, ...remote.tags]) };
  };
  const a = await client(server, { resolver: merge });
  await online(a.atom);
  await a.atom.swap((m) => m.set("k", { tags: new Set([kw("a")]) }));
  await synced(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("k", { tags: new Set([kw("a"), kw("mine")]) }));
  server.start();
  server.write("todo", "k", { tags: new Set([kw("a"), kw("theirs")]) });
  await synced(a.atom);
  const want = { tags: new Set([kw("a"), kw("mine"), kw("theirs")]) };
  await until(() => equals(server.value("todo", "k"), want), "merged on the server");
  assert.ok(equals(a.atom.deref().get("k"), want));
  assert.equal(server.group("todo").docs.get("k").version, 3);
  a.conn.close();
});

test("a resolver may delete, and a resolver that throws lets the server win and says so", async () => {
  const server = new FakeServer();
  let mode = "delete";
  const resolver = () => {
    if (mode === "delete") return DELETED;
    throw new Error("boom");
  };
  const a = await client(server, { resolver });
  await online(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("x", 1).set("y", 1));
  server.start();
  server.write("todo", "x", 2);
  await synced(a.atom);
  await until(() => server.value("todo", "x") === undefined, "x deleted by the resolver");
  assert.equal(a.atom.deref().has("x"), false);
  mode = "throw";
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("y", "mine"));
  server.start();
  server.write("todo", "y", "theirs");
  await until(() => a.atom.status.error?.code === "resolver", "resolver error shown");
  await until(() => a.atom.deref().get("y") === "theirs", "server value kept");
  a.conn.close();
});

test("a new epoch re-pulls from 0, keeps pending changes and pushes them on the new database", async () => {
  const server = new FakeServer();
  const a = await client(server);
  await online(a.atom);
  await a.atom.swap((m) => m.set("gone", 1).set("kept", 1));
  await synced(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("mine", "pending"));
  server.replaceDatabase({ todo: { kept: "restored", other: true } });
  server.start();
  await until(() => server.value("todo", "mine") === "pending", "pending change pushed to the new database");
  await synced(a.atom);
  const view = a.atom.deref();
  assert.equal(view.has("gone"), false, "what the old database had is forgotten");
  assert.equal(view.get("kept"), "restored");
  assert.equal(view.get("other"), true);
  assert.equal(view.get("mine"), "pending");
  assert.equal(a.atom.status.cursor, 3);
  a.conn.close();
});

test("a reset after compaction drops keys that did not come back, keeps pending ones", async () => {
  const server = new FakeServer({ frameSize: 1 });
  const a = await client(server);
  await online(a.atom);
  await a.atom.swap((m) => m.set("a", 1).set("b", 1).set("c", 1));
  await synced(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("p", "pending"));
  // Meanwhile: b deleted, a rewritten, the tombstone compacted away.
  server.write("todo", "b", undefined);
  server.write("todo", "d", 1);
  server.compact("todo");
  // A stale local doc the client must drop: it never hears of b's delete.
  server.start();
  await until(() => server.value("todo", "p") === "pending", "pending pushed");
  await synced(a.atom);
  assert.deepEqual([...a.atom.deref().keys()].sort(), ["a", "c", "d", "p"]);
  a.conn.close();
});

test("the HTTP fallback syncs both ways when the WebSocket cannot be opened", async () => {
  const server = new FakeServer();
  server.wsBlocked = true;
  const a = await client(server);
  await online(a.atom, "http");
  await a.atom.swap((m) => m.set("k", "over http"));
  await until(() => server.value("todo", "k") === "over http", "pushed over HTTP");
  server.write("todo", "other", 42);
  await until(() => a.atom.deref().get("other") === 42, "pulled over HTTP");
  await synced(a.atom);
  server.wsBlocked = false;
  await online(a.atom, "ws");
  a.conn.close();
});

test("an HTTP-only client (no WebSocket) pulls in pages", async () => {
  const server = new FakeServer();
  for (let i = 0; i < 2500; i++) server.write("todo", `k${i}`, i);
  const a = await client(server, { noWebSocket: true });
  await until(() => a.atom.deref().size === 2500, "every page pulled", 8000);
  assert.equal(a.atom.status.transport, "http");
  assert.equal(a.atom.status.cursor, 2500);
  a.conn.close();
});

test("a wrong token is refused and said so; a right one opens its groups only", async () => {
  const server = new FakeServer({ users: { good: ["todo"] } });
  const bad = await client(server, { token: "bad" });
  await until(() => bad.atom.status.error?.code === "unauthorized", "unauthorized");
  assert.equal(bad.atom.status.online, false);
  const good = await client(server, { token: "good" });
  await online(good.atom);
  const other = await client(server, { token: "good", group: "secret" });
  await until(() => other.atom.status.error?.code === "forbidden", "forbidden");
  bad.conn.close();
  good.conn.close();
  other.conn.close();
});

test("tabs on one database share state, and only one of them pushes", async () => {
  const server = new FakeServer();
  const storage = new MemoryStorage();
  const locks = new FakeLocks();
  const name = `tabs-${Math.random()}`;
  const tab1 = await client(server, { storage, locks, channel: BroadcastChannel, name });
  const tab2 = await client(server, { storage, locks, channel: BroadcastChannel, name });
  await online(tab1.atom);
  await until(() => tab2.atom.status.online, "tab 2 hears the leader's status");
  assert.equal(tab1.atom.status.leader, true);
  assert.equal(tab2.atom.status.leader, false);
  assert.equal(server.sockets.size, 1, "one socket for both tabs");

  await tab2.atom.swap((m) => m.set("from-tab-2", 2));
  await until(() => tab1.atom.deref().get("from-tab-2") === 2, "tab 1 sees tab 2's write");
  await until(() => server.value("todo", "from-tab-2") === 2, "pushed by the leader");
  await synced(tab1.atom);
  await until(() => tab2.atom.status.pending === 0, "tab 2 sees it acknowledged");
  assert.equal(server.pushLog.filter(([, key]) => key === "from-tab-2").length, 1, "pushed exactly once");

  server.write("todo", "remote", true);
  await until(() => tab2.atom.deref().get("remote") === true, "remote change reaches the follower");

  tab1.conn.close();
  await until(() => tab2.atom.status.leader && tab2.atom.status.online, "tab 2 takes over");
  await tab2.atom.swap((m) => m.set("after", 1));
  await until(() => server.value("todo", "after") === 1, "the new leader pushes");
  tab2.conn.close();
});

test("a change the server refuses on its own is dropped, the others go through", async () => {
  const server = new FakeServer();
  server.rejectKey = "bad";
  const a = await client(server);
  await online(a.atom);
  server.stop();
  await until(() => !a.atom.status.online, "offline");
  await a.atom.swap((m) => m.set("good1", 1).set("bad", 1).set("good2", 2));
  server.start();
  await until(() => server.value("todo", "good1") === 1 && server.value("todo", "good2") === 2, "good changes pushed");
  await until(() => a.atom.status.pending === 0, "nothing left pending");
  assert.equal(a.atom.deref().has("bad"), false);
  assert.match(a.atom.status.error?.message ?? "", /bad: .*dropped/);
  a.conn.close();
});

test("a storage failure while applying changes does not move the cursor past them", async () => {
  const server = new FakeServer();
  const storage = new MemoryStorage();
  let failWrites = 0;
  const flaky = {
    transaction(mode, body, options) {
      if (mode === "readwrite" && failWrites > 0) {
        failWrites--;
        return Promise.reject(new Error("disk full"));
      }
      return storage.transaction(mode, body, options);
    },
    close() {},
  };
  const a = await client(server, { storage: flaky });
  await online(a.atom);
  failWrites = 1;
  server.write("todo", "k", "v");
  await until(() => a.atom.deref().get("k") === "v", "the change arrives after the reconnect");
  const meta = await storage.transaction("readonly", (tx) => tx.getMeta("todo"));
  assert.equal(meta.cursor, 1);
  a.conn.close();
});

test("bad input to swap is refused and changes nothing", async () => {
  const server = new FakeServer();
  server.stop();
  const a = await client(server);
  await assert.rejects(a.atom.swap(() => ({})), /must return a Map/);
  await assert.rejects(a.atom.swap((m) => m.set(1, "x")), /keys are strings/);
  await assert.rejects(a.atom.swap((m) => m.set("", "x")), /1\.\.1024 bytes/);
  await assert.rejects(a.atom.swap((m) => m.set("k", undefined)), /undefined is not a value/);
  await assert.rejects(a.atom.swap((m) => m.set("k", { f: () => 1 })), /not a value/);
  await assert.rejects(a.atom.swap((m) => m.set("k", new Uint8Array(1 << 20))), /over the 1048576-byte limit/);
  await assert.rejects(
    a.atom.swap(() => {
      throw new Error("from fn");
    }),
    /from fn/,
  );
  assert.equal(a.atom.deref().size, 0);
  assert.equal(a.atom.status.pending, 0);
  const same = await a.atom.swap((m) => m);
  assert.equal(same, a.atom.deref(), "a swap that changes nothing keeps the snapshot");
  assert.throws(() => a.conn.syncedAtom("bad group!"), /invalid group/);
  a.conn.close();
});

test("a write whose transaction fails rejects and leaves the view as stored", async () => {
  const server = new FakeServer();
  server.stop();
  const storage = new MemoryStorage();
  let fail = false;
  const flaky = {
    transaction: (mode, body, options) => (fail && mode === "readwrite" ? Promise.reject(new Error("quota exceeded")) : storage.transaction(mode, body, options)),
    close() {},
  };
  const a = await client(server, { storage: flaky });
  await a.atom.swap((m) => m.set("k", "stored"));
  fail = true;
  const write = a.atom.swap((m) => m.set("k", "lost").set("other", 1));
  assert.equal(a.atom.deref().get("k"), "lost", "the view changes at once");
  assert.equal(a.atom.status.pending, 2, "a write being stored counts as pending");
  await assert.rejects(write, /quota exceeded/);
  assert.equal(a.atom.deref().get("k"), "stored");
  assert.equal(a.atom.deref().has("other"), false);
  assert.equal(a.atom.status.pending, 1);
  a.conn.close();
});

test("a swap that changes the view itself in place still stores and pushes the change", async () => {
  const server = new FakeServer();
  server.write("todo", "k", 1);
  server.write("todo", "gone", 1);
  const a = await client(server);
  await until(() => a.atom.deref().size === 2, "loaded");
  await a.atom.swap(() => {
    const view = a.atom.deref();
    view.set("k", 2);
    view.delete("gone");
    return view;
  });
  await synced(a.atom);
  assert.equal(server.value("todo", "k"), 2);
  assert.equal(server.value("todo", "gone"), undefined);
  a.conn.close();
});

test("a closed atom is replaced by a new one when its group is asked for again", async () => {
  const server = new FakeServer();
  const a = await client(server);
  a.atom.close();
  const again = a.conn.syncedAtom("todo", { server: SERVER });
  assert.notEqual(again, a.atom);
  assert.equal(a.conn.syncedAtom("todo"), again, "the same object while open");
  await again.ready;
  await again.swap((m) => m.set("k", 1));
  await until(() => server.value("todo", "k") === 1, "the new atom syncs");
  a.conn.close();
});
