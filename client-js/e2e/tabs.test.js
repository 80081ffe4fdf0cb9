// Two tabs of one browser context share one IndexedDB database: a write in one shows in
// the other at once, even with the server stopped (BroadcastChannel, no round trip);
// exactly one tab syncs (Web Locks), and when it closes the other takes over.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitStatus } from "./harness.js";

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

test("two tabs of one context share state and push each change once", async () => {
  const context = await browser.newContext();
  const tab1 = await openDemo(context, server, "?group=tabs");
  const tab2 = await openDemo(context, server, "?group=tabs");
  for (const tab of [tab1, tab2]) await waitStatus(tab, "window.atomsync.todos.status.online");
  const leaders = await Promise.all([tab1, tab2].map((tab) => tab.evaluate(() => window.atomsync.todos.status.leader)));
  assert.deepEqual(leaders.sort(), [false, true], "exactly one tab syncs");

  await server.stop();
  await waitStatus(tab2, "!window.atomsync.todos.status.online");
  await addTodo(tab2, "From tab 2, offline");
  await expectTodos(tab1, ["From tab 2, offline"], 5000);
  await addTodo(tab1, "From tab 1, offline");
  await expectTodos(tab2, ["From tab 2, offline", "From tab 1, offline"], 5000);
  await waitStatus(tab1, "window.atomsync.todos.status.pending === 2");

  await server.start();
  for (const tab of [tab1, tab2]) await waitStatus(tab, "window.atomsync.todos.status.online && window.atomsync.todos.status.pending === 0", 30000);
  const docs = await expectServerTodos(server, "tabs", ["From tab 1, offline", "From tab 2, offline"]);
  // Each key written once (version 1): no tab pushed a change the other had pushed.
  assert.deepEqual(docs.map((doc) => doc.version), [1, 1]);

  // Close the syncing tab: the other one takes over.
  const tab1Leads = await tab1.evaluate(() => window.atomsync.todos.status.leader);
  const [syncing, other] = tab1Leads ? [tab1, tab2] : [tab2, tab1];
  await syncing.close();
  await waitStatus(other, "window.atomsync.todos.status.leader && window.atomsync.todos.status.online");
  await addTodo(other, "After the handover");
  await expectServerTodos(server, "tabs", ["From tab 1, offline", "From tab 2, offline", "After the handover"]);
  await waitStatus(other, "window.atomsync.todos.status.pending === 0");
});
