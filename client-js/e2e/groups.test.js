// Several groups in one real page against the real server: they share one WebSocket,
// `ready` means caught up (the server's documents are in the atom once it resolves), and
// a swap on an atom of a thousand documents pushes only the key it changed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startServer } from "./harness.js";

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

test("the groups of a page share one WebSocket; ready means caught up; a swap pushes only what changed", async () => {
  const docs = Array.from({ length: 1000 }, (_, i) => ({ key: `doc:${i}`, base: 0, value: { n: i } }));
  const pushed = await server.pushJson(JSON.stringify({ group: "big", changes: docs }));
  assert.equal(pushed.status, 200);

  const page = await (await browser.newContext()).newPage();
  const sockets = [];
  const frames = [];
  page.on("websocket", (ws) => {
    sockets.push(ws.url());
    ws.on("framesent", ({ payload }) => frames.push(payload));
  });
  page.on("pageerror", (error) => (page.errors ??= []).push(error));
  await page.goto(`${server.origin}/?group=g0`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  const sizes = await page.evaluate(async () => {
    const conn = window.atomsync.conn;
    const atoms = ["g1", "g2", "big"].map((group) => conn.syncedAtom(group));
    await Promise.all(atoms.map((atom) => atom.ready));
    window.big = atoms[2];
    return atoms.map((atom) => atom.deref().size);
  });
  assert.deepEqual(sizes, [0, 0, 1000], "ready: the server's documents are there");
  assert.equal(sockets.length, 1, `one socket for the demo's group and three more: ${sockets}`);

  // A swap on the 1,000-document atom: one push frame, carrying one change.
  await page.evaluate(() => window.big.swap((m) => m.set("doc:7", { n: -7 })));
  const { decode } = await import("../atomsync.js");
  const deadline = Date.now() + 10000;
  let changes = [];
  while (Date.now() < deadline) {
    changes = frames.map((payload) => decode(new Uint8Array(payload))).filter((frame) => frame.type === "push").flatMap((frame) => frame.changes);
    if (changes.length) break;
    await new Promise((done) => setTimeout(done, 50));
  }
  assert.deepEqual(
    changes.map((change) => change.key),
    ["doc:7"],
  );
  await page.waitForFunction(() => window.big.status.pending === 0, null, { timeout: 10000 });
  assert.deepEqual(page.errors ?? [], []);
});
