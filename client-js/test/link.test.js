// One WebSocket per server and token for all the groups of a connection, and what `ready`
// means: loaded and first sync done (or offline, or refused), in a tab that syncs and in
// one that does not. Against the in-memory fake server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage, open } from "../atomsync.js";
import { FAST, FakeLocks, FakeServer, until } from "./fake-server.js";

const SERVER = "ws://fake.test/sync/ws";

/** A connection on its own storage (or a shared one, for tabs), on the fake's network. */
function connect(server, { storage = new MemoryStorage(), name = "db", locks = null, channel = null } = {}) {
  return open(name, { storage, locks, BroadcastChannel: channel, WebSocket: server.WebSocket, fetch: server.fetch, timing: FAST });
}

const online = (atom) => until(() => atom.status.online && atom.status.transport === "ws", `${atom.group} online`);

test("the groups of a connection share one WebSocket per server and token", async () => {
  const server = new FakeServer({ users: { t1: ["*"], t2: ["*"] } });
  const conn = await connect(server);
  const [a, b, c] = ["a", "b", "c"].map((group) => conn.syncedAtom(group, { server: SERVER, token: "t1" }));
  for (const atom of [a, b, c]) await online(atom);
  assert.equal(server.sockets.size, 1, "one socket for three groups");
  const [socket] = server.sockets;
  assert.deepEqual([...socket.subscriptions].sort(), ["a", "b", "c"]);

  // Every group syncs both ways over it.
  server.write("b", "k", 1);
  await until(() => b.deref().get("k") === 1, "b's change arrives");
  await c.swap((m) => m.set("x", 2));
  await until(() => server.value("c", "x") === 2, "c's write is pushed");
  assert.equal(a.deref().size, 0, "a hears nothing of b and c");

  // Another token needs its own socket (the token is the socket's, not the group's).
  const d = conn.syncedAtom("d", { server: SERVER, token: "t2" });
  await online(d);
  assert.equal(server.sockets.size, 2);

  // Closing an atom unsubscribes its group; the socket stays for the others.
  a.close();
  await until(() => !socket.subscriptions.has("a"), "a unsubscribed");
  assert.equal(server.sockets.size, 2);
  server.write("c", "y", 3);
  await until(() => c.deref().get("y") === 3, "c still live");

  // The server restarts: the groups come back on one new socket.
  server.stop();
  server.start();
  await until(() => b.status.online && c.status.online && server.sockets.size === 2, "reconnected");
  const [again] = [...server.sockets].filter((s) => s.token === "t1");
  assert.deepEqual([...again.subscriptions].sort(), ["b", "c"]);

  conn.close();
  await until(() => server.sockets.size === 0, "the last group out closes the socket");
});

test("a group refused on the shared socket does not disturb the others", async () => {
  const server = new FakeServer({ users: { t: ["open"] } });
  const conn = await connect(server);
  const open1 = conn.syncedAtom("open", { server: SERVER, token: "t" });
  const closed = conn.syncedAtom("secret", { server: SERVER, token: "t" });
  await closed.ready;
  assert.equal(closed.status.error?.code, "forbidden");
  await online(open1);
  server.write("open", "k", "v");
  await until(() => open1.deref().get("k") === "v", "the allowed group is live");
  assert.equal(server.sockets.size, 1);
  conn.close();
});

test("ready waits for the first sync; loaded does not", async () => {
  const server = new FakeServer({ frameSize: 100 });
  for (let i = 0; i < 500; i++) server.write("todo", `k${i}`, i);
  const conn = await connect(server);
  const atom = conn.syncedAtom("todo", { server: SERVER });
  await atom.loaded;
  assert.equal(atom.status.ready, false, "loaded comes before the first sync");
  await atom.swap((m) => m.set("local", true));
  await atom.ready;
  assert.equal(atom.status.ready, true);
  assert.equal(atom.deref().size, 501, "the server's documents are there once ready");
  assert.equal(atom.status.online, true);
  conn.close();
});

test("ready also resolves offline and when refused, with the local state loaded", async () => {
  const down = new FakeServer();
  down.stop();
  const storage = new MemoryStorage();
  const first = await connect(down, { storage });
  await first.syncedAtom("todo", { server: SERVER }).swap((m) => m.set("kept", 1));
  first.close();
  const conn = await connect(down, { storage });
  const offline = conn.syncedAtom("todo", { server: SERVER });
  await offline.ready;
  assert.equal(offline.status.online, false);
  assert.equal(offline.deref().get("kept"), 1);
  conn.close();

  const locked = new FakeServer({ users: { good: ["todo"] } });
  const refused = (await connect(locked)).syncedAtom("todo", { server: SERVER, token: "bad" });
  await refused.ready;
  assert.equal(refused.status.error?.code, "unauthorized");
  refused.close();
});

test("a tab that does not sync is ready once the tab that syncs has caught up", async () => {
  const server = new FakeServer({ frameSize: 50 });
  for (let i = 0; i < 300; i++) server.write("todo", `k${i}`, i);
  const storage = new MemoryStorage();
  const locks = new FakeLocks();
  const name = `tabs-${Math.random()}`;
  const tab1 = (await connect(server, { storage, locks, channel: BroadcastChannel, name })).syncedAtom("todo", { server: SERVER });
  const tab2 = (await connect(server, { storage, locks, channel: BroadcastChannel, name })).syncedAtom("todo", { server: SERVER });
  await Promise.all([tab1.ready, tab2.ready]);
  const leaders = [tab1, tab2].filter((tab) => tab.status.leader);
  assert.equal(leaders.length, 1, "one tab syncs");
  for (const tab of [tab1, tab2]) assert.equal(tab.deref().size, 300, `${tab.status.leader ? "leader" : "follower"} has every document once ready`);
  assert.equal(server.sockets.size, 1);
  tab1.close();
  tab2.close();
});

test("a tab that hears from no syncing tab counts itself offline after the connect timeout", async () => {
  const server = new FakeServer();
  const locks = new FakeLocks();
  const name = `stuck-${Math.random()}`;
  // A holder that never answers (a frozen tab): the lock is taken, nobody reports.
  locks.request(`atomsync:${name}:todo`, {}, () => new Promise(() => {}));
  const atom = (await connect(server, { locks, channel: BroadcastChannel, name })).syncedAtom("todo", { server: SERVER });
  const started = Date.now();
  await atom.ready;
  assert.ok(Date.now() - started >= FAST.connectTimeoutMs - 50, "waited for the connect timeout");
  assert.equal(atom.status.leader, false);
  assert.equal(atom.status.online, false);
  atom.close();
});

test("under Node, with no IndexedDB, open() keeps the state in memory and syncs over HTTP without a WebSocket", async () => {
  assert.equal(globalThis.indexedDB, undefined, "this runs where there is no IndexedDB");
  const server = new FakeServer();
  server.write("todo", "k", "from the server");
  const conn = await open("node-only", { WebSocket: null, fetch: server.fetch, timing: FAST });
  assert.ok(conn.storage instanceof MemoryStorage);
  const atom = conn.syncedAtom("todo", { server: "http://fake.test" });
  await atom.ready;
  assert.equal(atom.deref().get("k"), "from the server");
  assert.equal(atom.status.transport, "http");
  await atom.swap((m) => m.set("mine", 1));
  await until(() => server.value("todo", "mine") === 1, "pushed over HTTP");
  conn.close();
});
