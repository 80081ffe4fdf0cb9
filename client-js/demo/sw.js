// The demo's service worker: keeps the page and the client's modules loadable while the
// server is down, so "stop the server, write, reload" works. Network first (a running
// server always serves the newest page and module, and its refusals, such as a 401 for a
// missing token, reach the page unchanged); the cache only when the network fails or
// does not answer within NETWORK_TIMEOUT_MS. Sync traffic (/sync, /sync/ws) is never
// touched: the client handles being offline itself, and its data lives in IndexedDB.
//
// Registered by the demo as `/sw.js?token=...` (the server wants the token for every
// asset when auth is on, PROTOCOL.md section 5). Installing stores the whole shell with
// that token, so the very first visit is enough: the page that registered us could not
// be cached by us, it loaded before we existed.
//
// Cache keys are the path alone, without the query: a page opened as `/?group=b` after
// `/?group=a` must find the shell offline. The page is the same bytes whatever its query;
// the modules' relative imports carry on the token they were fetched with (the server
// adds it, src/http/assets.rs), so the cached modules hold the token of the page that
// cached them, in this origin's Cache Storage, which no other origin reads. Offline,
// their imports are answered from the cache by path whatever token they carry. Serving a
// cached shell to a request with another token is no leak: it happens only while the
// server cannot answer, the shell holds no data, and the todos are in this origin's
// IndexedDB either way.

const CACHE = "atomsync-demo-v3";
/** The page and every module of the client (src/http/assets.rs serves them; a test there checks this list). */
const SHELL = [
  "/",
  "/demo",
  "/demo/",
  "/atomsync.js",
  "/atomsync/atom.js",
  "/atomsync/codec.js",
  "/atomsync/connection.js",
  "/atomsync/decode.js",
  "/atomsync/encode.js",
  "/atomsync/errors.js",
  "/atomsync/http.js",
  "/atomsync/inst.js",
  "/atomsync/link.js",
  "/atomsync/memory.js",
  "/atomsync/pusher.js",
  "/atomsync/records.js",
  "/atomsync/storage.js",
  "/atomsync/swap.js",
  "/atomsync/syncer.js",
  "/atomsync/tabs.js",
  "/atomsync/timing.js",
  "/atomsync/values.js",
];
const NETWORK_TIMEOUT_MS = 4000;

/** The query every shell request carries: our own token, passed on by the page. */
function authQuery() {
  const token = new URL(self.location.href).searchParams.get("token");
  return token === null ? "" : "?token=" + encodeURIComponent(token);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      // All or nothing: a worker that is installed has the whole shell, so a page it
      // controls can be reloaded offline. A failure here leaves the page uncontrolled
      // (the browser retries on the next registration) rather than half ready.
      const query = authQuery();
      const responses = await Promise.all(
        SHELL.map(async (path) => {
          const response = await fetch(path + query, { cache: "no-cache" });
          if (!response.ok) throw new Error(`precaching ${path}: HTTP ${response.status}`);
          return [path, response];
        }),
      );
      await Promise.all(responses.map(([path, response]) => store(path, response)));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      // Caches of older versions of this worker (another name) are dead weight.
      for (const name of await caches.keys()) {
        if (name.startsWith("atomsync-demo-") && name !== CACHE) await caches.delete(name);
      }
      // Take over the page that registered us, so it reloads fine offline straight away.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  const key = url.pathname;
  const network = fetch(event.request).then(async (response) => {
    // A full or failing cache must not cost an online page its answer.
    if (response.ok) await store(key, response.clone()).catch(() => undefined);
    return response;
  });
  // A slow answer still refreshes the cache after the page got the stored copy.
  event.waitUntil(network.catch(() => undefined));
  event.respondWith(networkFirst(network, key));
});

/** @param {string} key @param {Response} response */
async function store(key, response) {
  const cache = await caches.open(CACHE);
  await cache.put(key, response);
}

/**
 * The network's answer; the stored copy when the network fails or is slow, and without
 * a stored copy whatever the network gives in the end (its error included).
 * @param {Promise<Response>} network
 * @param {string} key
 */
async function networkFirst(network, key) {
  let timer;
  const slow = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("the network is slow")), NETWORK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([network, slow]);
  } catch {
    const cached = await caches.match(key, { cacheName: CACHE });
    return cached ?? network;
  } finally {
    clearTimeout(timer);
  }
}
