// Foreign pages (PROTOCOL.md section 5). With auth off any page the user visits could open
// a WebSocket to a server on the user's machine and read and write every group; so the
// server refuses an upgrade whose Origin is neither its own nor listed in
// `[server] allowed_origins`. Here a real page, served by a plain HTTP server on another
// port, tries; the demo page the server serves itself keeps working.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { launchBrowser, openDemo, startServer, waitStatus } from "./harness.js";

let browser;
let elsewhere;
let elsewhereOrigin;

/** A page that opens a WebSocket to `target` and says how it went. */
const PAGE = `<!doctype html><title>elsewhere</title><script>
  window.tryWebSocket = (target) => new Promise((done) => {
    const ws = new WebSocket(target);
    ws.onopen = () => { ws.close(); done("open"); };
    ws.onerror = () => done("refused");
  });
</script>`;

before(async () => {
  browser = await launchBrowser();
  elsewhere = createServer((request, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end(PAGE);
  });
  await new Promise((listening) => elsewhere.listen(0, "127.0.0.1", listening));
  elsewhereOrigin = `http://127.0.0.1:${elsewhere.address().port}`;
});

after(async () => {
  await browser?.close();
  await new Promise((closed) => elsewhere?.close(closed));
});

/** What the page at `origin` gets when it opens the server's WebSocket. */
async function fromPageAt(context, origin, server) {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  return page.evaluate((target) => window.tryWebSocket(target), `${server.origin.replace("http", "ws")}/sync/ws`);
}

test("a page of another origin cannot open the server's WebSocket; the server's own page can", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    assert.equal(await fromPageAt(context, elsewhereOrigin, server), "refused");
    // Nothing it could have written arrived; the server's own demo syncs as before.
    const demo = await openDemo(context, server, "?group=origin-demo");
    await waitStatus(demo, "window.atomsync.todos.status.online");
    await context.close();
  } finally {
    await server.close();
  }
});

test("a page of a listed origin can open the server's WebSocket", async () => {
  const server = await startServer({ allowedOrigins: [elsewhereOrigin] });
  try {
    const context = await browser.newContext();
    assert.equal(await fromPageAt(context, elsewhereOrigin, server), "open");
    await context.close();
  } finally {
    await server.close();
  }
});
