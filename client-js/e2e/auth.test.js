// Auth from the browser: the token in the page's query string opens the groups its user
// may use; a wrong token is refused (unauthorized), a group outside the user's set too
// (forbidden), and the page says so instead of pretending to be online.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitStatus } from "./harness.js";

let server;
let browser;

before(async () => {
  server = await startServer({ users: { alice: { token: "alice-secret", groups: ["alice-todo"] } } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test("a token in the query string opens an authorized group", async () => {
  const page = await openDemo(await browser.newContext(), server, "?token=alice-secret&group=alice-todo");
  await waitStatus(page, "window.atomsync.todos.status.online");
  await addTodo(page, "Only for alice");
  await expectServerTodos(server, "alice-todo", ["Only for alice"], { token: "alice-secret" });
  await waitStatus(page, "window.atomsync.todos.status.pending === 0");
  assert.equal(await page.isHidden("[data-testid=error]"), true);
});

test("a wrong token is refused and the page says so", async () => {
  const page = await openDemo(await browser.newContext(), server, "?token=wrong&group=alice-todo");
  await waitStatus(page, "window.atomsync.todos.status.error?.code === 'unauthorized'");
  assert.equal(await page.evaluate(() => window.atomsync.todos.status.online), false);
  assert.match(await page.textContent("[data-testid=error]"), /unauthorized/);
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  // Local writes still work (and wait for a valid token); nothing reaches the server.
  await addTodo(page, "Never pushed");
  await expectTodos(page, ["Never pushed"]);
  await waitStatus(page, "window.atomsync.todos.status.pending === 1");
  await expectServerTodos(server, "alice-todo", ["Only for alice"], { token: "alice-secret" });
});

test("a group outside the user's set is forbidden", async () => {
  const page = await openDemo(await browser.newContext(), server, "?token=alice-secret&group=bob-todo");
  await waitStatus(page, "window.atomsync.todos.status.error?.code === 'forbidden'");
  assert.equal(await page.evaluate(() => window.atomsync.todos.status.online), false);
});
