// An in-memory Atomsync server for unit tests: PROTOCOL.md sections 4 to 8 (pull, push,
// subscribe and unsubscribe, auth, epoch, compaction reset) behind a fake WebSocket class and a fake
// fetch, so the sync logic runs in Node with no network. Knobs let a test stop the
// server, block only the WebSocket, hold push answers, replace the database or compact.
import { decode, encode } from "../atomsync.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

export class FakeServer {
  constructor({ users = null, frameSize = 2 } = {}) {
    /** token -> groups ("*" = all); null: auth off */
    this.users = users;
    /** Catch-up changes per frame: small, so that catch-ups span several frames. */
    this.frameSize = frameSize;
    this.epoch = "epoch-1";
    this.groups = new Map();
    this.sockets = new Set();
    this.down = false;
    this.wsBlocked = false;
    this.holdPushes = false;
    this.held = [];
    /** Every change pushed, in order: [group, key, base, op] */
    this.pushLog = [];
    this.epochs = 1;
    const server = this;

    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.binaryType = "blob";
        const token = new URL(url).searchParams.get("token");
        server.sockets.add(this);
        setTimeout(() => {
          if (server.down || server.wsBlocked || server.auth(token) === "unauthorized") {
            this.readyState = 3;
            server.sockets.delete(this);
            this.onerror?.({});
            this.onclose?.({ code: 1006 });
            return;
          }
          this.token = token;
          this.subscriptions = new Set();
          this.readyState = 1;
          this.onopen?.({});
        }, 0);
      }
      send(data) {
        if (this.readyState !== 1) throw new Error("send on a socket that is not open");
        const bytes = new Uint8Array(data);
        setTimeout(() => server.onFrame(this, bytes), 0);
      }
      close() {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        server.sockets.delete(this);
        setTimeout(() => this.onclose?.({ code: 1000 }), 0);
      }
      deliver(message) {
        if (this.readyState !== 1) return;
        const bytes = encode(message);
        setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: bytes.buffer }), 0);
      }
    };

    this.fetch = async (url, init = {}) => {
      await tick();
      if (server.down) throw new TypeError("fetch failed");
      const parsed = new URL(url);
      const token = (init.headers?.Authorization ?? "").replace(/^Bearer /, "") || null;
      const answer = (status, body) => new Response(encode(body), { status, headers: { "content-type": "application/msgpack" } });
      const refusal = server.auth(token);
      if (refusal === "unauthorized") return answer(401, { error: "unauthorized", message: "token missing or unknown" });
      if (parsed.pathname !== "/sync") return answer(404, { error: "not_found", message: "unknown path" });
      if ((init.method ?? "GET") === "GET") {
        const group = parsed.searchParams.get("group");
        if (!server.allowed(token, group)) return answer(403, { error: "forbidden", message: `group ${group}` });
        return answer(200, server.pull(group, Number(parsed.searchParams.get("since") ?? 0), Number(parsed.searchParams.get("limit") ?? 1000)));
      }
      const body = decode(init.body);
      if (!server.allowed(token, body.group)) return answer(403, { error: "forbidden", message: `group ${body.group}` });
      const invalid = server.invalid(body.changes);
      if (invalid) return answer(400, { error: "bad_request", message: invalid });
      const response = server.push(body.group, body.changes);
      return answer(200, response);
    };
  }

  auth(token) {
    if (!this.users) return null;
    return token !== null && this.users[token] ? null : "unauthorized";
  }

  allowed(token, group) {
    if (!this.users) return true;
    const groups = this.users[token] ?? [];
    return groups.includes("*") || groups.includes(group);
  }

  group(name) {
    let group = this.groups.get(name);
    if (!group) {
      group = { docs: new Map(), seq: 0, floor: 0 };
      this.groups.set(name, group);
    }
    return group;
  }

  /** A document as the wire carries it. */
  wireDoc(doc) {
    return doc.bytes === null
      ? { key: doc.key, version: doc.version, seq: doc.seq, deleted: true }
      : { key: doc.key, version: doc.version, seq: doc.seq, value: decode(doc.bytes) };
  }

  /** Documents with seq > since, or all of them and reset when since is below the floor. */
  catchUp(name, since) {
    const group = this.group(name);
    const reset = since > 0 && since < group.floor;
    const from = reset ? 0 : since;
    const docs = [...group.docs.values()].filter((d) => d.seq > from).sort((a, b) => a.seq - b.seq);
    return { docs, reset };
  }

  pull(name, since, limit) {
    const { docs, reset } = this.catchUp(name, since);
    const page = docs.slice(0, limit);
    const response = {
      group: name,
      epoch: this.epoch,
      changes: page.map((d) => this.wireDoc(d)),
      seq: page.length ? page[page.length - 1].seq : since,
      more: docs.length > limit,
    };
    if (reset) response.reset = true;
    return response;
  }

  /** A whole-request problem, as the real server finds before applying anything. */
  invalid(changes) {
    const keys = new Set();
    for (const [i, change] of changes.entries()) {
      if (keys.has(change.key)) return `changes[${i}].key: repeats`;
      keys.add(change.key);
      if (this.rejectKey && change.key === this.rejectKey) return `changes[${i}].value: refused by the test`;
    }
    return null;
  }

  push(name, changes) {
    const group = this.group(name);
    const accepted = [];
    const results = changes.map((change) => {
      this.pushLog.push([name, change.key, change.base, change.deleted ? "delete" : "set"]);
      const current = group.docs.get(change.key);
      if (change.base !== (current?.version ?? 0)) {
        return { key: change.key, ok: false, current: current ? this.wireDoc(current) : null };
      }
      const doc = { key: change.key, version: (current?.version ?? 0) + 1, seq: ++group.seq, bytes: change.deleted ? null : encode(change.value) };
      group.docs.set(change.key, doc);
      accepted.push(doc);
      return { key: change.key, ok: true, version: doc.version, seq: doc.seq };
    });
    this.broadcast(name, accepted);
    return { group: name, epoch: this.epoch, results, seq: group.seq };
  }

  broadcast(name, docs) {
    if (docs.length === 0) return;
    const seq = docs[docs.length - 1].seq;
    for (const socket of this.sockets) {
      if (socket.subscriptions?.has(name)) socket.deliver({ type: "changes", group: name, changes: docs.map((d) => this.wireDoc(d)), seq });
    }
  }

  onFrame(socket, bytes) {
    const frame = decode(bytes);
    if (frame.type === "subscribe") {
      if (!this.allowed(socket.token, frame.group)) {
        socket.deliver({ type: "error", group: frame.group, error: "forbidden", message: `group ${frame.group}` });
        return;
      }
      const { docs, reset } = this.catchUp(frame.group, frame.since);
      for (let i = 0; i < docs.length; i += this.frameSize) {
        const part = docs.slice(i, i + this.frameSize);
        socket.deliver({ type: "changes", group: frame.group, changes: part.map((d) => this.wireDoc(d)), seq: part[part.length - 1].seq });
      }
      const subscribed = { type: "subscribed", group: frame.group, epoch: this.epoch, seq: docs.length ? docs[docs.length - 1].seq : frame.since };
      if (reset) subscribed.reset = true;
      socket.deliver(subscribed);
      socket.subscriptions.add(frame.group);
    } else if (frame.type === "unsubscribe") {
      socket.subscriptions.delete(frame.group);
      socket.deliver({ type: "unsubscribed", group: frame.group });
    } else if (frame.type === "push") {
      if (!this.allowed(socket.token, frame.group)) {
        socket.deliver({ type: "error", id: frame.id, group: frame.group, error: "forbidden", message: `group ${frame.group}` });
        return;
      }
      const invalid = this.invalid(frame.changes);
      if (invalid) {
        socket.deliver({ type: "error", id: frame.id, group: frame.group, error: "bad_request", message: invalid });
        return;
      }
      const run = () => {
        const response = this.push(frame.group, frame.changes);
        socket.deliver({ type: "pushed", id: frame.id, ...response });
      };
      if (this.holdPushes) this.held.push(run);
      else run();
    }
  }

  /** Answers the pushes held by `holdPushes`. */
  release() {
    this.holdPushes = false;
    for (const run of this.held.splice(0)) run();
  }

  /** Another client's write, accepted whatever its base. */
  write(name, key, value) {
    const current = this.group(name).docs.get(key);
    return this.push(name, [value === undefined ? { key, base: current?.version ?? 0, deleted: true } : { key, base: current?.version ?? 0, value }]);
  }

  /** The server's value of a key (undefined when absent or deleted). */
  value(name, key) {
    const doc = this.group(name).docs.get(key);
    return doc?.bytes ? decode(doc.bytes) : undefined;
  }

  /** Stops: every socket closes, every request fails. */
  stop() {
    this.down = true;
    for (const socket of [...this.sockets]) socket.close();
  }

  start() {
    this.down = false;
  }

  /** A new database (restored from a backup, say): a new epoch, these groups' contents. */
  replaceDatabase(contents = {}) {
    this.epoch = `epoch-${++this.epochs}`;
    this.groups = new Map();
    for (const [name, entries] of Object.entries(contents)) for (const [key, value] of Object.entries(entries)) this.write(name, key, value);
    for (const socket of [...this.sockets]) socket.close();
  }

  /** Removes the group's tombstones, raising its floor. */
  compact(name) {
    const group = this.group(name);
    for (const [key, doc] of group.docs) {
      if (doc.bytes === null) {
        group.docs.delete(key);
        group.floor = Math.max(group.floor, doc.seq);
      }
    }
  }
}

/** navigator.locks, as far as the client uses it: exclusive, queued, abortable. */
export class FakeLocks {
  constructor() {
    this.held = new Map();
    this.queues = new Map();
  }

  request(name, options, callback) {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      const entry = { callback, resolve, reject };
      options.signal?.addEventListener("abort", () => {
        const index = queue.indexOf(entry);
        if (index >= 0) {
          queue.splice(index, 1);
          reject(new DOMException("aborted", "AbortError"));
        }
      });
      queue.push(entry);
      this.pump(name);
    });
  }

  pump(name) {
    if (this.held.has(name)) return;
    const next = this.queues.get(name)?.shift();
    if (!next) return;
    this.held.set(name, next);
    Promise.resolve()
      .then(() => next.callback({ name }))
      .then(next.resolve, next.reject)
      .finally(() => {
        this.held.delete(name);
        this.pump(name);
      });
  }
}

/** Waits until `check()` is truthy, or fails with `what`. */
export async function until(check, what, timeoutMs = 4000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const FAST = { backoffBaseMs: 20, backoffMaxMs: 80, httpPollMs: 30, connectTimeoutMs: 500, requestTimeoutMs: 1000, pushTimeoutMs: 1000 };
