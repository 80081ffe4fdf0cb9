/**
 * {@link Syncer}: the network session of one group, run by the one tab that holds the
 * group's lock. Over the connection's shared WebSocket ({@link Link}) it subscribes
 * (catch-up, then live changes) and pushes; while the socket cannot be used it pulls and
 * pushes over HTTP instead. Everything it learns goes to storage first and then to the
 * view, and the cursor moves in the same transaction as the changes it covers.
 *
 * A subscription that goes wrong (a frame it cannot store, a refusal) is restarted on
 * its own, without closing the socket the other groups use: `unsubscribe`, and once
 * `unsubscribed` came back (no frame of the old subscription can follow it), `subscribe`
 * from the stored cursor.
 *
 * @module atomsync/syncer
 */

import { OfflineError, ProtocolError, errorInfo, report } from "./errors.js";
import { request } from "./http.js";
import { Pusher } from "./pusher.js";
import { isCount, isRecord, putNewer, readBack, toDocRecords } from "./records.js";
import { Nap, backoff } from "./timing.js";

/** @typedef {import("./storage.js").Storage} Storage */
/** @typedef {import("./storage.js").DocRecord} DocRecord */
/** @typedef {import("./records.js").KeyRecords} KeyRecords */
/** @typedef {import("./link.js").Link} Link */
/** @typedef {import("./connection.js").Env} Env */

/**
 * What the network session may do to its atom.
 * @typedef {object} SyncHost
 * @property {string} group
 * @property {Storage} storage
 * @property {Env} env
 * @property {{http: URL, ws: URL}} endpoints
 * @property {string | null} token
 * @property {((key: string, local: unknown, server: unknown) => unknown) | null} resolver
 * @property {() => string} newRev
 * @property {(records: KeyRecords) => void} changed these keys changed in storage
 * @property {() => Promise<void>} reloadAll the whole group changed in storage
 * @property {(patch: Partial<import("./atom.js").Status>) => void} setNet
 * @property {() => void} attempted the first sync attempt finished (caught up, or failed)
 */

const EPOCH_CHANGED = Symbol("epoch changed");
const PULL_LIMIT = 1000;

export class Syncer {
  /**
   * @param {SyncHost} host
   * @param {Link | null} link the connection's socket to the server; null: HTTP only
   */
  constructor(host, link) {
    this.host = host;
    this.group = host.group;
    this.link = link;
    this.timing = host.env.timing;
    this.stopped = false;
    /** "ws" while subscribed, "http" while polling, null while offline. @type {"ws" | "http" | null} */
    this.mode = null;
    /**
     * The subscription on the link: subscribe sent and catching up, live, or waiting for
     * `unsubscribed` before subscribing again. @type {{phase: "subscribing" | "live" | "unsubscribing", catchUp: DocRecord[]} | null}
     */
    this.sub = null;
    /** Frame handling and HTTP rounds, one at a time. @type {Promise<unknown>} */
    this.queue = Promise.resolve();
    this.polling = false;
    /** @type {string | null} */
    this.epoch = null;
    this.attempt = 0;
    /** Failed subscriptions in a row: how long to wait before the next. */
    this.subFailures = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.watchdog = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retry = undefined;
    this.nap = new Nap();
    /** @type {() => void} */
    this.finish = () => {};
    this.pusher = new Pusher(host, () => this.epoch);
    this.onOnline = () => {
      this.attempt = 0;
      this.nap.wake();
    };
  }

  /** Runs until {@link Syncer#stop}. */
  async run() {
    globalThis.addEventListener?.("online", this.onOnline);
    const stopped = new Promise((resolve) => (this.finish = () => resolve(undefined)));
    try {
      this.epoch = (await this.readMeta())?.epoch ?? null;
      if (this.stopped) return;
      if (this.link) this.link.join(this);
      else this.startPolling();
      await stopped;
    } finally {
      globalThis.removeEventListener?.("online", this.onOnline);
      this.link?.leave(this);
      this.mode = null;
    }
  }

  stop() {
    this.stopped = true;
    this.pusher.stopped = true;
    this.polling = false;
    clearTimeout(this.watchdog);
    clearTimeout(this.retry);
    this.nap.wake();
    this.finish();
  }

  /** Local pending changes exist: push them now if connected. */
  kick() {
    if (this.sub?.phase === "live") this.pushLive();
    else if (this.mode === "http") this.nap.wake();
  }

  /** @returns {Promise<import("./storage.js").GroupMeta | undefined>} */
  readMeta() {
    const group = this.group;
    return this.host.storage.transaction("readonly", (tx) => tx.getMeta(group));
  }

  /**
   * Runs `task` after every earlier one. A failure is shown, counts as a finished
   * attempt, and restarts the subscription after a backoff (an offline one waits for
   * the link instead).
   * @param {() => Promise<unknown>} task
   */
  enqueue(task) {
    this.queue = this.queue.then(task).catch((error) => {
      if (this.stopped || error instanceof OfflineError) return;
      this.host.setNet({ online: false, transport: null, error: errorInfo(error) });
      this.host.attempted();
      this.restartLater();
    });
  }

  // --- The link: subscription and live changes --------------------------------------

  linkOpen() {
    this.stopPolling();
    this.enqueue(() => this.subscribe());
  }

  /** @param {Record<string, any>} message */
  linkFrame(message) {
    this.enqueue(() => this.onFrame(message));
  }

  /** @param {boolean} failed */
  linkDown(failed) {
    this.sub = null;
    clearTimeout(this.watchdog);
    clearTimeout(this.retry);
    if (this.mode === "ws") {
      this.mode = null;
      this.host.setNet({ online: false, transport: null });
    }
    if (failed) this.startPolling();
  }

  /** @param {{code: string, message: string} | null} error */
  linkError(error) {
    this.host.setNet({ error });
  }

  /** (Re)subscribes from the stored cursor; catch-up frames collect until `subscribed`. */
  async subscribe() {
    const since = (await this.readMeta())?.cursor ?? 0;
    this.sub = { phase: "subscribing", catchUp: [] };
    this.link?.send({ type: "subscribe", group: this.group, since });
    this.watch();
  }

  /**
   * While catching up, a server that stops sending is a dead connection: the socket is
   * dropped (every group reconnects), as for a push that gets no answer.
   */
  watch() {
    clearTimeout(this.watchdog);
    if (this.sub?.phase !== "subscribing") return;
    this.watchdog = setTimeout(() => this.link?.drop(), this.timing.requestTimeoutMs);
  }

  /** Restarts the subscription after a backoff, without closing the shared socket. */
  restartLater() {
    clearTimeout(this.retry);
    const wasSubscribed = this.sub !== null;
    this.sub = null;
    if (!this.link || this.link.state !== "open") return;
    this.retry = setTimeout(() => {
      if (this.stopped || this.link?.state !== "open") return;
      if (!wasSubscribed) return this.enqueue(() => this.subscribe());
      this.sub = { phase: "unsubscribing", catchUp: [] };
      this.enqueue(async () => this.link?.send({ type: "unsubscribe", group: this.group }));
    }, backoff(this.timing, this.subFailures++));
  }

  /** @param {Record<string, any>} message */
  async onFrame(message) {
    const sub = this.sub;
    switch (message.type) {
      case "changes": {
        if (!sub || sub.phase === "unsubscribing") return;
        if (!isCount(message.seq)) throw new ProtocolError("changes.seq is not a count");
        if (sub.phase === "live") return this.applyLive(toDocRecords(this.group, message.changes, "changes"), message.seq);
        toDocRecords(this.group, message.changes, "changes", sub.catchUp);
        this.watch();
        return;
      }
      case "subscribed": {
        if (sub?.phase !== "subscribing") return;
        clearTimeout(this.watchdog);
        if (typeof message.epoch !== "string" || !isCount(message.seq)) throw new ProtocolError("subscribed: epoch or seq missing");
        const outcome = await this.applyCatchUp(message.epoch, sub.catchUp, message.seq, message.reset === true);
        if (this.sub !== sub) return;
        if (outcome === EPOCH_CHANGED) {
          this.sub = { phase: "subscribing", catchUp: [] };
          this.link?.send({ type: "subscribe", group: this.group, since: 0 });
          this.watch();
          return;
        }
        sub.phase = "live";
        sub.catchUp = [];
        this.mode = "ws";
        this.attempt = 0;
        this.link?.markLive();
        this.host.setNet({ online: true, transport: "ws", error: null });
        this.host.attempted();
        this.pushLive();
        return;
      }
      case "unsubscribed":
        if (sub?.phase === "unsubscribing") await this.subscribe();
        return;
      case "error":
        // Not about a push (those find their caller by id): the subscription was refused
        // (forbidden, a bad group). Show it; try again after a backoff.
        this.host.setNet({ online: false, transport: null, error: { code: String(message.error), message: String(message.message) } });
        this.host.attempted();
        this.sub = null;
        this.restartLater();
        return;
      default:
        // Frame types of later protocol versions: nothing to do.
        return;
    }
  }

  pushLive() {
    const sub = this.sub;
    this.pusher
      .pushAll((changes) => this.link?.push(this.group, changes) ?? Promise.reject(new OfflineError("no link")))
      .then(() => {
        this.subFailures = 0;
      })
      .catch((error) => {
        if (error instanceof OfflineError || this.stopped || this.sub !== sub) return;
        // Refused as a whole (forbidden, the epoch changed): start the subscription over,
        // which notices a new epoch and pushes again.
        this.host.setNet({ error: errorInfo(error) });
        this.restartLater();
      });
  }

  // --- HTTP --------------------------------------------------------------------------

  startPolling() {
    if (this.polling || this.stopped) return;
    this.polling = true;
    this.poll().catch(report);
  }

  stopPolling() {
    this.polling = false;
    this.nap.wake();
  }

  /** Pull-then-push rounds over HTTP while the WebSocket cannot be used. */
  async poll() {
    while (this.polling && !this.stopped) {
      /** @type {Promise<boolean | null>} */
      const round = new Promise((resolve) => this.enqueue(() => this.httpRound().then(resolve)));
      const ok = await round;
      if (ok === null || !this.polling || this.stopped) break;
      this.host.attempted();
      if (ok) this.attempt = 0;
      await this.nap.sleep(ok ? this.timing.httpPollMs : backoff(this.timing, this.attempt++));
    }
  }

  /**
   * One pull-then-push over HTTP.
   * @returns {Promise<boolean | null>} false when the server could not be reached or
   *   refused; null when polling stopped before the round began (the link opened)
   */
  async httpRound() {
    if (!this.polling || this.stopped) return null;
    const { http } = this.host.endpoints;
    try {
      await this.pullAll();
      this.mode = "http";
      this.host.setNet({ online: true, transport: "http", error: null });
      await this.pusher.pushAll((changes) => this.fetch("POST", http, { group: this.group, changes }));
      return true;
    } catch (error) {
      if (this.sub?.phase !== "live") {
        this.mode = null;
        this.host.setNet({ online: false, transport: null, error: errorInfo(error) });
      }
      return false;
    }
  }

  /**
   * @param {"GET" | "POST"} method @param {URL} url @param {unknown} [body]
   * @returns {Promise<any>}
   */
  fetch(method, url, body) {
    return request(this.host.env.fetch, method, url, { token: this.host.token, timeoutMs: this.timing.requestTimeoutMs, body });
  }

  /**
   * Pulls until `more` is false, then stores everything in one transaction.
   *
   * A pull from 0, or one the server answered with `reset` (our cursor was below the
   * group's compaction floor), is a full pull: its later pages are asked with
   * `full=true`, so the floor never sends it back to 0 (PROTOCOL.md section 8). A later
   * page with a higher floor than the first (a tombstone this pull has not reached may be
   * gone), or a reset on a later page of another pull (the floor passed our cursor
   * meanwhile), starts it again from 0 as a reset: the keys it does not return are dropped.
   */
  async pullAll() {
    for (let attempt = 0; attempt < 3; attempt++) {
      let since = (await this.readMeta())?.cursor ?? 0;
      /** @type {DocRecord[]} */
      let docs = [];
      /** @type {string | null} */
      let epoch = null;
      let reset = false;
      let full = since === 0;
      /** @type {number | bigint} */
      let floor = 0;
      for (let pages = 0; ; pages++) {
        if (pages > 100000) throw new ProtocolError("pull: the pages never end");
        const url = new URL(this.host.endpoints.http);
        /** @type {Record<string, string>} */
        const query = { group: this.group, since: String(since), limit: String(PULL_LIMIT) };
        if (full && pages > 0) query.full = "true";
        url.search = new URLSearchParams(query).toString();
        const page = await this.fetch("GET", url);
        if (!isRecord(page) || typeof page.epoch !== "string" || !isCount(page.seq)) throw new ProtocolError("pull: not a pull response");
        const pageFloor = page.floor === undefined ? 0 : page.floor;
        if (!isCount(pageFloor)) throw new ProtocolError("pull: floor is not a count");
        if (epoch === null) {
          epoch = page.epoch;
          reset = page.reset === true;
          full = full || reset;
          floor = pageFloor;
        } else if (page.epoch !== epoch) {
          throw new ProtocolError("pull: the epoch changed between pages");
        } else if (page.reset === true || (full && pageFloor > floor)) {
          // Compacted under this pull: what it collected may hold a key deleted since.
          docs = [];
          reset = true;
          floor = pageFloor;
          if (page.reset !== true) {
            since = 0;
            full = true;
            continue;
          }
          full = true;
        }
        toDocRecords(this.group, page.changes, "pull", docs);
        since = page.seq;
        if (page.more !== true) break;
      }
      if ((await this.applyCatchUp(/** @type {string} */ (epoch), docs, since, reset)) !== EPOCH_CHANGED) return;
    }
    throw new ProtocolError("pull: the server's epoch kept changing");
  }

  // --- Applying what the server says -------------------------------------------------

  /**
   * A catch-up (subscribe or pull) in one transaction: checks the epoch, stores the
   * documents, drops the keys a reset did not send back, moves the cursor.
   * @param {string} epoch @param {DocRecord[]} docs @param {number | bigint} seq @param {boolean} reset
   * @returns {Promise<typeof EPOCH_CHANGED | undefined>}
   */
  async applyCatchUp(epoch, docs, seq, reset) {
    const group = this.group;
    const outcome = await this.host.storage.transaction("readwrite", async (tx) => {
      const meta = await tx.getMeta(group);
      if (meta && meta.epoch !== null && meta.epoch !== epoch) {
        // Another database: every version we know is meaningless. Keep the pending
        // changes, to be pushed on top of whatever the new database holds.
        tx.clearDocs(group);
        tx.putMeta(group, { epoch, cursor: 0 });
        for (const change of await tx.allPending(group)) tx.putPending({ ...change, base: null });
        return EPOCH_CHANGED;
      }
      const stored = await putNewer(tx, group, docs);
      if (reset) {
        for (const doc of await tx.allDocs(group)) if (!stored.has(doc.key)) tx.deleteDoc(group, doc.key);
      }
      tx.putMeta(group, { epoch, cursor: seq });
      return reset ? "reload" : readBack(tx, group, [...stored.keys()], stored);
    });
    this.epoch = epoch;
    if (outcome === EPOCH_CHANGED) {
      await this.host.reloadAll();
      this.host.setNet({ cursor: 0 });
      return EPOCH_CHANGED;
    }
    if (outcome === "reload") await this.host.reloadAll();
    else if (outcome.docs.size) this.host.changed(outcome);
    this.host.setNet({ cursor: seq });
    return undefined;
  }

  /**
   * A live `changes` frame: documents and cursor in one transaction.
   * @param {DocRecord[]} docs @param {number | bigint} seq
   */
  async applyLive(docs, seq) {
    const group = this.group;
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      const meta = await tx.getMeta(group);
      if (meta && seq <= meta.cursor) return null;
      const stored = await putNewer(tx, group, docs);
      tx.putMeta(group, { epoch: meta?.epoch ?? this.epoch, cursor: seq });
      return readBack(tx, group, [...stored.keys()], stored);
    });
    if (!records) return;
    this.host.changed(records);
    this.host.setNet({ cursor: seq });
  }
}
