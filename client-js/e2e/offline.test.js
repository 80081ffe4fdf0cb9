// Offline-first in a real browser, the way a user meets it: open the demo once (on a
// server with auth on, so with `?token=`), stop the server, keep writing, reload. The
// demo's service worker serves the page and the module from its cache (nothing here
// serves files on the browser's behalf), the todos come back from IndexedDB with their
// pending changes, and when the server returns they reach it and another browser.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, artifactPath, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitOfflineReady, waitStatus } from "./harness.js";

const TOKEN = "abc123";
const DEMO = `?token=${TOKEN}&group=todo`;

/** `server` has auth on (every asset wants the token), `openServer` has not. */
let server;
let openServer;
let browser;

before(async () => {
  server = await startServer({ users: { demo: { token: TOKEN, groups: ["todo"] } } });
  openServer = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await openServer?.close();
});

/** Records the responses for the page and the module, to tell who served them. */
function shellResponses(page) {
  const seen = [];
  /** The modules /atomsync.js imports, apart: how many depends on the client's layout. */
  seen.modules = [];
  page.on("response", (response) => {
    const { pathname } = new URL(response.url());
    if (["/", "/demo/", "/atomsync.js"].includes(pathname)) seen.push({ pathname, status: response.status(), fromServiceWorker: response.fromServiceWorker() });
    else if (pathname.startsWith("/atomsync/")) seen.modules.push({ pathname, status: response.status(), fromServiceWorker: response.fromServiceWorker() });
  });
  return seen;
}

test("a write made while the server is down survives a reload served by the service worker and reaches the server when it returns", async () => {
  const context = await browser.newContext({ viewport: { width: 760, height: 640 } });
  const page = await openDemo(context, server, DEMO);
  // The first visit is all it takes: installing the worker stored the whole shell.
  await waitOfflineReady(page);
  assert.match(await page.textContent("#meta"), /reloads offline/);
  await waitStatus(page, "window.atomsync.todos.status.online");
  await addTodo(page, "Written online");
  await expectServerTodos(server, "todo", ["Written online"], { token: TOKEN });
  await waitStatus(page, "window.atomsync.todos.status.pending === 0");

  await server.stop();
  await waitStatus(page, "!window.atomsync.todos.status.online");
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  await addTodo(page, "Written offline 1");
  await addTodo(page, "Written offline 2");
  await expectTodos(page, ["Written online", "Written offline 1", "Written offline 2"]);
  await waitStatus(page, "window.atomsync.todos.status.pending === 2");
  assert.equal(await page.textContent("[data-testid=pending]"), "2 pending");

  // The server is down: the page and the module can only come from the worker's cache.
  const seen = shellResponses(page);
  const reloaded = await page.reload();
  assert.equal(reloaded.status(), 200);
  assert.equal(reloaded.fromServiceWorker(), true, "the reloaded page came from the service worker");
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  assert.deepEqual(
    seen.map(({ pathname, status, fromServiceWorker }) => [pathname, status, fromServiceWorker]),
    [
      ["/", 200, true],
      ["/atomsync.js", 200, true],
    ],
  );
  assert.ok(seen.modules.length >= 10, "the modules were loaded");
  assert.deepEqual(seen.modules.filter(({ status, fromServiceWorker }) => status !== 200 || !fromServiceWorker), [], "every module came from the worker");
  await expectTodos(page, ["Written online", "Written offline 1", "Written offline 2"]);
  assert.equal(await page.textContent("[data-testid=pending]"), "2 pending");
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  // The pending ones are marked as not yet on the server; the synced one is not.
  assert.equal(await page.locator("li", { hasText: "Written offline 1" }).locator(".unsynced").count(), 1);
  assert.equal(await page.locator("li", { hasText: "Written online" }).locator(".unsynced").count(), 0);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: artifactPath("demo-offline.png") });

  // A new tab at the other address of the demo also opens offline (the install stored it).
  const demoTab = await context.newPage();
  const demoResponse = await demoTab.goto(`${server.origin}/demo/${DEMO}`);
  assert.equal(demoResponse.fromServiceWorker(), true);
  await demoTab.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  await expectTodos(demoTab, ["Written online", "Written offline 1", "Written offline 2"]);
  await demoTab.close();

  await server.start();
  await waitStatus(page, "window.atomsync.todos.status.online && window.atomsync.todos.status.pending === 0", 30000);
  await expectServerTodos(server, "todo", ["Written online", "Written offline 1", "Written offline 2"], { token: TOKEN });
  assert.equal(await page.locator(".unsynced").count(), 0);

  const other = await openDemo(await browser.newContext(), server, DEMO);
  await expectTodos(other, ["Written online", "Written offline 1", "Written offline 2"]);
  assert.deepEqual([...(page.errors ?? []), ...(other.errors ?? [])], []);
});

/** The demo's cached copy of `path`, read in the page (undefined when there is none). */
function cachedText(page, path) {
  return page.evaluate(async (path) => (await caches.match(path))?.text(), path);
}

test("the worker asks the network first and keeps its copy fresh; a server that hangs gets the copy", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, openServer, "?group=fresh");
  await waitOfflineReady(page);
  assert.match(await cachedText(page, "/"), /<title>Atomsync todos<\/title>/);

  // Spoil the stored page: a reload with the server up must not show it...
  await page.evaluate(async () => {
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      await cache.put("/", new Response("<p>stale copy</p>", { headers: { "Content-Type": "text/html" } }));
    }
  });
  const seen = shellResponses(page);
  const reloaded = await page.reload();
  assert.equal(reloaded.fromServiceWorker(), true);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  assert.deepEqual(
    seen.map(({ pathname, status, fromServiceWorker }) => [pathname, status, fromServiceWorker]),
    [
      ["/", 200, true],
      ["/atomsync.js", 200, true],
    ],
  );
  // ...and the network's answer replaced it.
  assert.match(await cachedText(page, "/"), /<title>Atomsync todos<\/title>/);

  // A server that accepts connections but never answers: after the worker's timeout the
  // page loads from the copy instead of hanging.
  await addTodo(page, "Before the hang");
  await waitStatus(page, "window.atomsync.todos.status.pending === 0");
  openServer.pause();
  try {
    const started = Date.now();
    await page.reload({ timeout: 30000 });
    await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
    await expectTodos(page, ["Before the hang"]);
    assert.ok(Date.now() - started < 25000, "the copy came after the worker's timeout, not the browser's");
  } finally {
    openServer.resume();
  }
  await waitStatus(page, "window.atomsync.todos.status.online", 30000);
  assert.deepEqual(page.errors ?? [], []);
});
