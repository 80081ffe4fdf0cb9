// The demo's service worker: keeps the page and the client module loadable while the
// server is down, so "stop the server, write, reload" works. Network first (a running
// server always serves the newest page and module), the cache only when the network fails.
// Sync traffic (/sync, /sync/ws) is never touched: the client handles being offline itself.

const CACHE = "atomsync-demo-v1";
const SHELL = new Set(["/", "/demo", "/demo/", "/atomsync.js"]);

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.has(url.pathname)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(event.request);
        if (response.ok) await cache.put(event.request, response.clone());
        return response;
      } catch (error) {
        const cached = await cache.match(event.request);
        if (cached) return cached;
        throw error;
      }
    })(),
  );
});
