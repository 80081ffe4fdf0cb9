// Offline-first in a real browser: with the server stopped, writes count as done (stored
// in IndexedDB with their pending changes), survive a page reload, and reach the server
// and another browser once it is back.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, addTodo, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitStatus } from "./harness.js";

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

/**
 * While the server is down the page's own two files cannot come from it; serve the very
 * files it embeds, as a cache would. Everything else (the sync traffic) still fails.
 */
async function servePageFromDisk(context) {
  const files = {
    "/": ["text/html; charset=utf-8", readFileSync(join(REPO, "client-js/demo/index.html"))],
    "/atomsync.js": ["text/javascript; charset=utf-8", readFileSync(join(REPO, "client-js/atomsync.js"))],
  };
  await context.route(/\/(atomsync\.js)?(\?.*)?$/, (route) => {
    const [type, body] = files[new URL(route.request().url()).pathname] ?? [];
    if (body) route.fulfill({ status: 200, contentType: type, body });
    else route.fallback();
  });
}

test("a write made while the server is down survives a reload and reaches the server when it returns", async () => {
  const context = await browser.newContext({ serviceWorkers: "block" });
  let page = await openDemo(context, server);
  await waitStatus(page, "window.atomsync.todos.status.online");
  await addTodo(page, "Written online");
  await expectServerTodos(server, "todo", ["Written online"]);
  await waitStatus(page, "window.atomsync.todos.status.pending === 0");

  await server.stop();
  await waitStatus(page, "!window.atomsync.todos.status.online");
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  await addTodo(page, "Written offline 1");
  await addTodo(page, "Written offline 2");
  await expectTodos(page, ["Written online", "Written offline 1", "Written offline 2"]);
  await waitStatus(page, "window.atomsync.todos.status.pending === 2");
  assert.equal(await page.textContent("[data-testid=pending]"), "2 pending");

  await servePageFromDisk(context);
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await expectTodos(page, ["Written online", "Written offline 1", "Written offline 2"]);
  assert.equal(await page.textContent("[data-testid=pending]"), "2 pending");
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  await context.unrouteAll();

  await server.start();
  await waitStatus(page, "window.atomsync.todos.status.online && window.atomsync.todos.status.pending === 0", 30000);

  await expectServerTodos(server, "todo", ["Written online", "Written offline 1", "Written offline 2"]);

  const other = await openDemo(await browser.newContext(), server);
  await expectTodos(other, ["Written online", "Written offline 1", "Written offline 2"]);
  assert.deepEqual(page.errors ?? [], []);
});
