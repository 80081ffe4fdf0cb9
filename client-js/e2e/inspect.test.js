// The inspector page (/inspect) in headless Chromium against a server with auth on: it
// asks for the admin token, lists the groups with their counts, shows a group's documents
// with every type readable, and tails its changes live while the demo page (another
// browser, a user) and a plain HTTP push change the group. Its screenshot is kept as
// test-artifacts/inspect.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { addTodo, artifactPath, launchBrowser, openDemo, startServer } from "./harness.js";

const ADMIN = "root-secret";
const ALICE = "alice-secret";
let server;
let browser;

before(async () => {
  server = await startServer({ users: { alice: { token: ALICE, groups: ["*"] } }, admin: ADMIN });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Pushes `changes` to `group` as alice, tagged JSON. */
async function push(group, changes) {
  const response = await server.pushJson(JSON.stringify({ group, changes }), { token: ALICE });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

test("the inspector lists groups, shows typed documents and tails changes live", async () => {
  await push("todo", [
    {
      key: "todo:1",
      base: 0,
      value: {
        text: "Buy milk",
        tags: { $set: [{ $kw: "groceries" }, { $kw: "today" }] },
        due: { $inst: "2026-11-24T10:00:00.123456789Z" },
        id: { $uuid: "550e8400-e29b-41d4-a716-446655440000" },
        done: false,
      },
    },
    { key: "todo:2", base: 0, value: { text: "Call the bank", done: true, attempts: 20 } },
    { key: "blob", base: 0, value: { $bytes: "AAEC/w==" } },
    { key: "gone", base: 0, value: 1 },
  ]);
  await push("todo", [{ key: "gone", base: 1, deleted: true }]);
  await push("settings", [{ key: "theme", base: 0, value: { $kw: "dark" } }]);

  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error));

  // No token: the form; a user's token is refused with the server's reason.
  await page.goto(`${server.origin}/inspect`);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("[data-testid=token]", ALICE);
  await page.press("[data-testid=token]", "Enter");
  await page.waitForSelector("#login:not([hidden])");
  assert.match(await page.textContent("#login-why"), /user's token/);
  await page.fill("[data-testid=token]", ADMIN);
  await page.press("[data-testid=token]", "Enter");
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });

  // Groups with their counts.
  const row = (name) => page.locator(`[data-testid=group-row][data-group="${name}"] td`);
  assert.deepEqual((await row("todo").allTextContents()).slice(0, 5), ["todo", "5", "3", "1", "0"]);
  assert.deepEqual((await row("settings").allTextContents()).slice(0, 3), ["settings", "1", "1"]);

  // The first group is open: its documents, typed values readable.
  await page.locator("[data-testid=group-row][data-group=todo]").click();
  await page.waitForSelector("body[data-live=true]", { timeout: 15000 });
  const docs = await page.locator("[data-testid=doc-row]").allTextContents();
  assert.equal(docs.length, 3, docs.join("\n"));
  const first = await page.locator('[data-testid=doc-row][data-key="todo:1"] .val').textContent();
  assert.match(first, /tags #\{:groceries :today\}/);
  assert.match(first, /due #inst "2026-11-24T10:00:00.123456789Z"/);
  assert.match(first, /id #uuid "550e8400-e29b-41d4-a716-446655440000"/);
  assert.match(await page.locator('[data-testid=doc-row][data-key="blob"] .val').textContent(), /#bytes\[4\] 000102ff/);
  assert.equal(await page.textContent("[data-testid=stat-seq] b"), "5");
  // The page's own tail is a subscriber, counted at the next refresh.
  await page.waitForFunction(() => document.querySelector('[data-group="todo"] td:last-child')?.textContent === "1", null, { timeout: 15000 });

  // Tombstones on demand; a prefix narrows the keys.
  await page.check("#tombstones");
  await page.waitForSelector('[data-testid=doc-row][data-key="gone"]');
  await page.fill("#prefix", "todo:");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=doc-row]").length === 2);
  await page.fill("#prefix", "");
  await page.uncheck("#tombstones");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=doc-row]").length === 3);

  // Live: a push over HTTP, then a todo added on the demo page by alice.
  await push("todo", [{ key: "todo:3", base: 0, value: { text: "Water the plants", tags: { $set: [{ $kw: "home" }] } } }]);
  await page.waitForSelector('#tail li.live:has-text("todo:3")', { timeout: 15000 });
  const demo = await openDemo(await browser.newContext(), server, `?token=${ALICE}&group=todo`);
  await addTodo(demo, "Book the train to Lyon");
  await page.waitForSelector('#tail li.live:has-text("Book the train to Lyon")', { timeout: 15000 });
  // New keys join the documents shown, in key order.
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=doc-row]").length === 5);
  assert.equal(await page.isVisible("#docs-more"), false);
  await push("todo", [{ key: "todo:2", base: 1, value: { text: "Call the bank", done: true, when: { $inst: "2026-12-01T09:30:00Z" } } }]);
  await page.waitForFunction(() => document.querySelector('[data-testid=doc-row][data-key="todo:2"] .val')?.textContent?.includes("#inst"));

  // The admin API refuses the page's own origin without the token.
  assert.equal(await page.evaluate(async () => (await fetch("/admin/groups")).status), 401);

  await page.mouse.move(0, 0);
  await page.waitForTimeout(1800); // let the highlight of the last change fade
  await page.screenshot({ path: artifactPath("inspect.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
