// Two browsers (separate contexts: separate IndexedDB) on the demo converge through the
// real server: add, toggle, edit and delete in one show up in the other. Also takes the
// demo's screenshot, kept as test-artifacts/demo.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, artifactPath, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitStatus } from "./harness.js";

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

test("two browsers converge live, and the demo looks right", async () => {
  const alice = await openDemo(await browser.newContext({ viewport: { width: 760, height: 640 } }), server);
  const bob = await openDemo(await browser.newContext(), server);
  for (const page of [alice, bob]) await waitStatus(page, "window.atomsync.todos.status.online");
  for (const page of [alice, bob]) assert.equal(await page.evaluate(() => window.atomsync.todos.status.transport), "ws");

  await addTodo(alice, "Buy milk");
  await expectTodos(bob, ["Buy milk"]);
  await addTodo(bob, "Water the plants");
  await addTodo(bob, "Call the bank");
  await expectTodos(alice, ["Buy milk", "Water the plants", "Call the bank"]);

  // Toggle in alice, see it done in bob.
  await alice.locator("li", { hasText: "Call the bank" }).locator("input[type=checkbox]").check();
  await bob.waitForFunction(() => [...document.querySelectorAll("li.done .text")].some((n) => n.textContent === "Call the bank"), null, { timeout: 15000 });

  // Edit in bob, see the new text in alice.
  await bob.locator("li", { hasText: "Water the plants" }).locator(".text").dblclick();
  await bob.fill("[data-testid=edit]", "Water the plants (twice)");
  await bob.press("[data-testid=edit]", "Enter");
  await expectTodos(alice, ["Buy milk", "Water the plants (twice)", "Call the bank"]);

  // Delete in alice, gone in bob.
  await alice.locator("li", { hasText: "Buy milk" }).locator("button.delete").click();
  await expectTodos(bob, ["Water the plants (twice)", "Call the bank"]);
  await addTodo(alice, "Book the train to Lyon");
  await expectTodos(bob, ["Water the plants (twice)", "Call the bank", "Book the train to Lyon"]);

  await expectServerTodos(server, "todo", ["Water the plants (twice)", "Call the bank", "Book the train to Lyon"]);
  for (const page of [alice, bob]) await waitStatus(page, "window.atomsync.todos.status.pending === 0");
  assert.equal(await alice.textContent("[data-testid=pending]"), "0 pending");
  assert.match(await alice.textContent("[data-testid=net]"), /Online/);
  assert.equal(await alice.textContent("[data-testid=left]"), "2 items left");
  await alice.mouse.move(0, 0);
  await alice.screenshot({ path: artifactPath("demo.png") });
  assert.deepEqual([...(alice.errors ?? []), ...(bob.errors ?? [])], []);
});

test("when the WebSocket cannot be used, pages sync over HTTP", async () => {
  const blocked = await browser.newContext();
  // The socket "opens" but closes at once, before any subscription: the client falls back.
  await blocked.routeWebSocket(/\/sync\/ws/, (ws) => ws.close());
  const carol = await openDemo(blocked, server, "?group=fallback");
  const dave = await openDemo(await browser.newContext(), server, "?group=fallback");
  await waitStatus(carol, "window.atomsync.todos.status.online && window.atomsync.todos.status.transport === 'http'");
  await waitStatus(dave, "window.atomsync.todos.status.transport === 'ws'");
  assert.match(await carol.textContent("[data-testid=net]"), /Online \(HTTP\)/);
  await addTodo(carol, "Sent over HTTP");
  await expectTodos(dave, ["Sent over HTTP"]);
  await addTodo(dave, "Pulled over HTTP");
  await expectTodos(carol, ["Sent over HTTP", "Pulled over HTTP"]);
  await expectServerTodos(server, "fallback", ["Sent over HTTP", "Pulled over HTTP"]);
});
