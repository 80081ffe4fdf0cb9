// Auth from the browser. With users configured the server wants a token on every path but
// /healthz (PROTOCOL.md section 5), the demo page and its module included: the token in
// the page's query string loads the page, the module and the service worker, and opens
// the groups its user may use. A missing or wrong token gets 401 for the page itself, a
// group outside the user's set is forbidden, and a token revoked while a page is open is
// refused with the page saying so.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, expectServerTodos, expectTodos, launchBrowser, openDemo, startServer, waitOfflineReady, waitStatus } from "./harness.js";

const ALICE = { alice: { token: "alice-secret", groups: ["alice-todo", "alice-revoked"] } };

let server;
let browser;

before(async () => {
  server = await startServer({ users: ALICE });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test("a token in the query string loads the demo, its module and its worker, and opens an authorized group", async () => {
  const context = await browser.newContext();
  const assets = [];
  context.on("response", (response) => {
    const url = new URL(response.url());
    if (["/", "/atomsync.js", "/sw.js"].includes(url.pathname) || url.pathname.startsWith("/atomsync/")) assets.push([url.pathname, url.searchParams.get("token"), response.status()]);
  });
  const page = await openDemo(context, server, "?token=alice-secret&group=alice-todo");
  await waitOfflineReady(page);
  await waitStatus(page, "window.atomsync.todos.status.online");
  await addTodo(page, "Only for alice");
  await expectServerTodos(server, "alice-todo", ["Only for alice"], { token: "alice-secret" });
  await waitStatus(page, "window.atomsync.todos.status.pending === 0");
  assert.equal(await page.isHidden("[data-testid=error]"), true);
  // The page, the modules and the worker script: each asked for (by the page, and again by
  // the worker storing the shell) with the token, and served. The modules that
  // /atomsync.js imports carry the token because the server added it to the imports.
  const modules = [...new Set(assets.map(([p]) => p).filter((p) => p.startsWith("/atomsync/")))];
  assert.ok(modules.length >= 10, `the client's modules were loaded: ${modules}`);
  for (const path of ["/", "/atomsync.js", "/sw.js", ...modules]) {
    const loads = assets.filter(([p]) => p === path);
    assert.ok(loads.length > 0, `${path} was loaded`);
    assert.deepEqual(loads, loads.map(() => [path, "alice-secret", 200]), `${path} was loaded with the token`);
  }
  const worker = await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL);
  assert.equal(new URL(worker).pathname + new URL(worker).search, "/sw.js?token=alice-secret");

  // The worker (which has the whole shell stored) does not open the door: with the server
  // up, a page without the token gets the server's 401 through it.
  const bare = await context.newPage();
  const refused = await bare.goto(`${server.origin}/?group=alice-todo`);
  assert.equal(refused.status(), 401);
  assert.equal(refused.fromServiceWorker(), true);
  assert.equal(await bare.locator("body[data-ready]").count(), 0);
  assert.deepEqual(page.errors ?? [], []);
});

test("without a token, or with a wrong one, the demo and its files are refused with 401", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  for (const path of ["/", "/demo/", "/?token=wrong&group=alice-todo", "/atomsync.js", "/atomsync.js?token=wrong", "/atomsync/atom.js", "/atomsync/values.js?token=wrong", "/sw.js"]) {
    const response = await page.goto(`${server.origin}${path}`);
    assert.equal(response.status(), 401, `${path} without a valid token`);
    assert.equal(response.headers()["content-type"]?.startsWith("text/html"), false, `${path} sends no page`);
  }
  // The health check stays open for load balancers.
  assert.equal((await page.goto(`${server.origin}/healthz`)).status(), 200);
  assert.equal(await page.evaluate(() => navigator.serviceWorker.controller), null);
});

test("a group outside the user's set is forbidden", async () => {
  const page = await openDemo(await browser.newContext(), server, "?token=alice-secret&group=bob-todo");
  await waitStatus(page, "window.atomsync.todos.status.error?.code === 'forbidden'");
  assert.equal(await page.evaluate(() => window.atomsync.todos.status.online), false);
  assert.match(await page.textContent("[data-testid=error]"), /forbidden/);
});

test("a token revoked while the page is open is refused, and the page says so", async () => {
  const page = await openDemo(await browser.newContext(), server, "?token=alice-secret&group=alice-revoked");
  await waitStatus(page, "window.atomsync.todos.status.online");

  server.setUsers({ alice: { token: "alice-new-secret", groups: ["alice-todo", "alice-revoked"] } });
  await server.stop();
  await server.start();
  try {
    await revokedPageSaysSo(page);
  } finally {
    // Back to the users the other tests expect.
    server.setUsers(ALICE);
    await server.stop();
    await server.start();
  }
});

/** A page whose token the server no longer knows: refused, says so, keeps local writes. */
async function revokedPageSaysSo(page) {
  await waitStatus(page, "window.atomsync.todos.status.error?.code === 'unauthorized'", 30000);
  assert.equal(await page.evaluate(() => window.atomsync.todos.status.online), false);
  assert.match(await page.textContent("[data-testid=error]"), /unauthorized/);
  assert.match(await page.textContent("[data-testid=net]"), /Offline/);
  // Local writes still work (and wait for a valid token); nothing reaches the server.
  await addTodo(page, "Never pushed");
  await expectTodos(page, ["Never pushed"]);
  await waitStatus(page, "window.atomsync.todos.status.pending === 1");
  const response = await server.pull("alice-revoked", { token: "alice-new-secret", accept: "application/json" });
  assert.equal(response.status, 200);
  assert.deepEqual((await response.json()).changes, []);
}

test("a page whose client module cannot load says so instead of staying blank", async () => {
  // No worker here, so the route sees the module request: it fails as a network error would.
  const context = await browser.newContext({ serviceWorkers: "block" });
  await context.route(/\/atomsync\.js(\?.*)?$/, (route) => route.abort("connectionrefused"));
  const page = await context.newPage();
  const failures = [];
  page.on("pageerror", (error) => failures.push(error));
  assert.equal((await page.goto(`${server.origin}/?token=alice-secret&group=alice-todo`)).status(), 200);
  await page.waitForSelector("[data-testid=error]:not([hidden])", { timeout: 15000 });
  assert.match(await page.textContent("[data-testid=error]"), /^Could not load the client from \/atomsync\.js: /);
  assert.equal(await page.locator("body[data-ready]").count(), 0);
  assert.equal(failures.length, 1, "the failed import is still reported as the page's error");
});
