// The server with [server.tls] (a self-signed certificate this test makes with openssl)
// in headless Chromium told to accept it: the demo page over https:// syncs two browsers
// over wss://, and the inspector tails a group over wss:// too.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { addTodo, expectTodos, launchBrowser, makeCertificate, openDemo, startServer, waitStatus } from "./harness.js";

const ADMIN = "root-secret";
let server;
let browser;
let certificate;

before(async () => {
  certificate = makeCertificate();
  server = await startServer({ tls: certificate, admin: ADMIN });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (certificate) rmSync(certificate.dir, { recursive: true, force: true });
});

test("pages on https sync over wss, and the inspector tails over wss", async () => {
  assert.ok(server.origin.startsWith("https://"), server.origin);
  const context = () => browser.newContext({ ignoreHTTPSErrors: true });
  const alice = await openDemo(await context(), server);
  const bob = await openDemo(await context(), server);
  for (const page of [alice, bob]) await waitStatus(page, "window.atomsync.todos.status.online");
  for (const page of [alice, bob]) assert.equal(await page.evaluate(() => window.atomsync.todos.status.transport), "ws");
  assert.equal(await alice.evaluate(() => location.protocol), "https:");

  await addTodo(alice, "Renew the certificate");
  await expectTodos(bob, ["Renew the certificate"]);

  const inspect = await (await context()).newPage();
  await inspect.goto(`${server.origin}/inspect?token=${ADMIN}`);
  await inspect.waitForSelector("body[data-live=true]", { timeout: 15000 });
  await addTodo(bob, "Rotate the key");
  await inspect.waitForSelector('#tail li.live:has-text("Rotate the key")', { timeout: 15000 });
  await expectTodos(alice, ["Renew the certificate", "Rotate the key"]);
  assert.deepEqual([...(alice.errors ?? []), ...(bob.errors ?? [])], []);
});
