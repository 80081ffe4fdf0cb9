// The browser half of atomsync-bench's "Browser" workload (bench/src/workloads/browser.rs
// starts it): headless Chromium, driven by playwright-core from client-js/node_modules, on
// a page of the server under test, measures in the same run
// - the client's first sync of a group into IndexedDB (`syncedAtom(group)` until `ready`),
//   and its baseline: pulling the same pages over HTTP, decoding them (documents as bytes
//   and as JavaScript values) and putting every record in one IndexedDB transaction;
// - `swap` of one key on the synced atom (until the view changed, and until stored), and
//   its baseline: one record put in one transaction of the same durability ("strict").
// The profile lives on disk (a persistent context in a temporary folder): an incognito
// context would keep IndexedDB in memory. Each repetition uses fresh databases and
// alternates which of the two goes first, so that drift hits both alike.
//
//   node bench/browser/driver.mjs --server http://127.0.0.1:PORT --group G --docs N \
//     --reps R --swaps S --deadline-ms MS
//
// Prints one JSON line per repetition on stdout; progress and errors on stderr.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    server: { type: "string" },
    group: { type: "string" },
    docs: { type: "string" },
    reps: { type: "string", default: "1" },
    swaps: { type: "string", default: "20" },
    "deadline-ms": { type: "string", default: "600000" },
  },
});
for (const name of ["server", "group", "docs"]) if (!args[name]) throw new Error(`--${name} is required`);

// playwright-core is the client's devDependency: no second copy for the bench.
const require = createRequire(new URL("../../client-js/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const deadline = setTimeout(() => {
  console.error(`browser driver: past its deadline of ${args["deadline-ms"]} ms`);
  process.exit(2);
}, Number(args["deadline-ms"]));

const profile = mkdtempSync(join(tmpdir(), "atomsync-bench-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => console.error(`page error: ${error}`));
  // Any page of the server will do: the client is imported from it, same origin.
  await page.goto(`${args.server}/healthz`);
  for (let rep = 0; rep < Number(args.reps); rep++) {
    const result = await page.evaluate(measure, { group: args.group, docs: Number(args.docs), swaps: Number(args.swaps), rep });
    console.log(JSON.stringify(result));
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(deadline);
}

/** Runs in the page: one repetition of both measurements and both baselines. */
async function measure({ group, docs, swaps, rep }) {
  const m = await import("/atomsync.js");
  // Not the public API: the decoder that keeps documents as bytes, as the client stores them.
  const { decodeMessage } = await import("/atomsync/decode.js");
  const now = () => performance.now();
  const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  const result = { rep, docs };

  async function ours() {
    const conn = await m.open(`bench-ours-${rep}`);
    const start = now();
    const atom = conn.syncedAtom(group);
    await atom.ready;
    result.sync_ms = now() - start;
    if (atom.deref().size !== docs || !atom.status.online) throw new Error(`synced ${atom.deref().size} of ${docs} documents, online: ${atom.status.online}`);
    const view = [];
    const stored = [];
    const keys = [...atom.deref().keys()];
    const settled = async () => {
      while (atom.status.pending > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    for (let i = 0; i < swaps; i++) {
      // Each swap alone: the previous one's push and its answer are done.
      await settled();
      const key = keys[Math.floor((docs * (i + 0.5)) / swaps)];
      const t0 = now();
      const done = atom.swap((map) => map.set(key, { ...map.get(key), n: -i }));
      const t1 = now();
      await done;
      stored.push(now() - t0);
      view.push(t1 - t0);
    }
    result.swap_view_ms = median(view);
    result.swap_ms = median(stored);
    // Let the pushes go out before the baseline runs.
    await settled();
    conn.close();
    await deleteDb(`bench-ours-${rep}`);
  }

  async function baseline() {
    const name = `bench-base-${rep}`;
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open(name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("docs", { keyPath: ["group", "key"] });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const start = now();
    const records = [];
    let since = 0;
    for (;;) {
      const response = await fetch(`/sync?group=${group}&since=${since}&limit=10000`, { headers: { Accept: "application/msgpack" } });
      const pageBody = decodeMessage(new Uint8Array(await response.arrayBuffer()));
      for (const doc of pageBody.changes) {
        records.push({ group, key: doc.key, version: doc.version, seq: doc.seq, bytes: doc.value.bytes });
        m.decode(doc.value.bytes);
      }
      since = pageBody.seq;
      if (!pageBody.more) break;
    }
    await put(db, records, "default");
    result.base_sync_ms = now() - start;
    if (records.length !== docs) throw new Error(`baseline pulled ${records.length} of ${docs} documents`);
    const puts = [];
    for (let i = 0; i < swaps; i++) {
      const t0 = now();
      await put(db, [{ ...records[i], version: -i }], "strict");
      puts.push(now() - t0);
    }
    result.base_put_ms = median(puts);
    db.close();
    await deleteDb(name);
  }

  function put(db, records, durability) {
    return new Promise((resolve, reject) => {
      const tx = db.transaction("docs", "readwrite", { durability });
      const store = tx.objectStore("docs");
      for (const record of records) store.put(record);
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error);
    });
  }

  function deleteDb(name) {
    return new Promise((resolve, reject) => {
      const request = indexedDB.deleteDatabase(name);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(request.error);
    });
  }

  if (rep % 2 === 0) {
    await ours();
    await baseline();
  } else {
    await baseline();
    await ours();
  }
  return result;
}
