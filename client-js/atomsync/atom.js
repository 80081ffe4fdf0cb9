/**
 * {@link SyncedAtom}: a group of documents as one `Map` from key to value, kept in local
 * storage, synced with the server in the background, shared with the other tabs of the
 * origin. It owns the view (the Map `deref` returns), local writes (`swap`) and their
 * pending changes, the status, and `ready`; the network session is a {@link Syncer} and
 * the coordination with other tabs a {@link Tabs}.
 *
 * `swap` costs what it changes, not the size of the map: values are compared by identity
 * first, and only a value that is not the very object the view held is encoded (and
 * compared with its stored bytes). So a value must be replaced, never mutated in place: a
 * mutated object is the same object, and the change would not be seen.
 *
 * @module atomsync/atom
 */

import { CodecError } from "./codec.js";
import { decode } from "./decode.js";
import { report } from "./errors.js";
import { endpoints } from "./http.js";
import { bytesEqual, readBack } from "./records.js";
import { changes, draft } from "./swap.js";
import { Syncer } from "./syncer.js";
import { Tabs } from "./tabs.js";
import { describe } from "./values.js";

/** @typedef {import("./storage.js").Storage} Storage */
/** @typedef {import("./storage.js").DocRecord} DocRecord */
/** @typedef {import("./storage.js").PendingRecord} PendingRecord */
/** @typedef {import("./records.js").KeyRecords} KeyRecords */
/** @typedef {import("./connection.js").Connection} Connection */
/** @typedef {import("./connection.js").Env} Env */

/**
 * @typedef {object} AtomOptions
 * @property {string} [server] the WebSocket URL (`ws://host:8090/sync/ws`) or the
 *   server's HTTP origin; default: the page's own origin
 * @property {string} [token] sent as the `token` query parameter on the WebSocket
 *   (browsers cannot set its headers) and as `Authorization: Bearer` over HTTP
 * @property {(key: string, local: unknown, server: unknown) => unknown} [resolver]
 *   called on a conflict with the local and the server value ({@link DELETED} for a
 *   deleted or absent side); its answer is pushed again on top of the server's version.
 *   Return `undefined` to let the server win, {@link DELETED} to delete. Without a
 *   resolver, the server wins.
 */

/**
 * @typedef {object} Status
 * @property {boolean} online connected to the server (`transport` says how)
 * @property {"ws" | "http" | null} transport
 * @property {number} pending keys with local changes the server has not acknowledged
 * @property {number | bigint} cursor the highest group seq applied locally
 * @property {{code: string, message: string} | null} error the last problem worth showing
 *   (`unauthorized`, `forbidden`, a dropped change...), cleared when syncing resumes
 * @property {boolean} leader this tab is the one that talks to the server for the group
 * @property {boolean} ready the first sync attempt has finished: caught up with the
 *   server, or found offline or refused (stays true)
 */

const GROUP_NAME = /^[A-Za-z0-9_\-.:]{1,128}$/;

/**
 * A group of documents as one `Map` from key to value. See the module doc, and the
 * header of `atomsync.js` for tabs and values.
 */
export class SyncedAtom {
  #group;
  #storage;
  /** @type {Map<string, DocRecord>} */
  #docs = new Map();
  /** @type {Map<string, PendingRecord>} */
  #pending = new Map();
  /** @type {Map<string, unknown>} */
  #view = new Map();
  /** The bytes of each value in the view: what a changed value is compared against. @type {Map<string, Uint8Array>} */
  #viewBytes = new Map();
  /** Keys with local writes not yet committed: their optimistic view wins over reads. @type {Map<string, number>} */
  #staging = new Map();
  /** @type {Set<(oldMap: Map<string, unknown>, newMap: Map<string, unknown>) => void>} */
  #watchers = new Set();
  /** @type {Set<(oldStatus: Status, newStatus: Status) => void>} */
  #statusWatchers = new Set();
  /** @type {Status} */
  #status = Object.freeze({ online: false, transport: null, pending: 0, cursor: 0, error: null, leader: false, ready: false });
  #loadDone = false;
  #closed = false;
  /** @type {() => void} */
  #markReady = () => {};
  /** @type {Syncer | null} */
  #syncer = null;
  /** @type {Tabs} */
  #tabs;
  /** @type {() => void} */
  #onClose;

  /**
   * Use {@link Connection#syncedAtom}.
   * @param {Connection} conn @param {string} group @param {AtomOptions} options
   * @param {() => void} [onClose] called once, by {@link SyncedAtom#close}
   */
  constructor(conn, group, options, onClose = () => {}) {
    if (typeof group !== "string" || !GROUP_NAME.test(group)) {
      throw new TypeError(`invalid group ${JSON.stringify(group)}: 1 to 128 characters from A-Z a-z 0-9 _ - . :`);
    }
    if (options.resolver !== undefined && typeof options.resolver !== "function") throw new TypeError("resolver must be a function");
    this.#group = group;
    this.#onClose = onClose;
    this.#storage = conn.storage;
    const env = conn.env;
    const urls = endpoints(options.server);
    const token = options.token ?? null;
    const resolver = options.resolver ?? null;
    this.#tabs = new Tabs(conn.name, group, env, {
      lead: () => {
        /** @type {import("./syncer.js").SyncHost} */
        const host = {
          group,
          storage: this.#storage,
          env,
          endpoints: urls,
          token,
          resolver,
          newRev: () => this.#tabs.newRev(),
          changed: (records) => {
            this.#applyRecords(records);
            this.#tabs.keysChanged([...records.docs.keys()]);
          },
          reloadAll: () => this.#reloadAll(true),
          setNet: (patch) => this.#setNet(patch),
          attempted: () => this.#setNet({ ready: true }),
        };
        this.#syncer = new Syncer(host, conn.link(urls.ws, token));
        this.#setStatus({ leader: true });
        return this.#syncer.run();
      },
      refresh: (keys) => this.#refresh(keys).then(() => this.#syncer?.kick()),
      reload: () => this.#reloadAll(false).then(() => this.#syncer?.kick()),
      leaderStatus: (net) => {
        if (!this.#syncer) this.#setStatus(net);
      },
      currentNet: () => (this.#syncer ? this.#netStatus() : null),
      loaded: () => this.loaded,
    });
    /**
     * Resolves once the local state is loaded: the atom works, offline too, from then on.
     * @type {Promise<void>}
     */
    this.loaded = this.#load();
    /** @type {Promise<void>} */
    const synced = new Promise((resolve) => (this.#markReady = () => resolve(undefined)));
    /**
     * Resolves once the local state is loaded and the first sync attempt has finished:
     * caught up with the server (by this tab or the tab that syncs), or found offline or
     * refused. The same meaning as the native client's `ready`. Rejects when the local
     * state cannot be loaded.
     * @type {Promise<void>}
     */
    this.ready = this.loaded.then(() => synced);
  }

  /** The group's name. */
  get group() {
    return this.#group;
  }

  /** The current value: a `Map` from key to value (a new Map after every change). */
  deref() {
    return this.#view;
  }

  /** The keys whose local changes the server has not acknowledged yet. @returns {Set<string>} */
  pendingKeys() {
    return new Set([...this.#pending.keys(), ...this.#staging.keys()]);
  }

  /** @returns {Status} */
  get status() {
    return this.#status;
  }

  /**
   * Calls `fn(oldMap, newMap)` after every change of the view, local or remote.
   * @param {(oldMap: Map<string, unknown>, newMap: Map<string, unknown>) => void} fn
   * @returns {() => void} stops watching
   */
  watch(fn) {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }

  /**
   * Calls `fn(oldStatus, newStatus)` after every change of {@link SyncedAtom#status}.
   * @param {(oldStatus: Status, newStatus: Status) => void} fn
   * @returns {() => void}
   */
  watchStatus(fn) {
    this.#statusWatchers.add(fn);
    return () => this.#statusWatchers.delete(fn);
  }

  /**
   * Replaces the value with `fn(copy)`: `fn` gets a copy of the current Map and returns
   * the new one (`m => m.set(k, v)` works: `Map#set` returns the map), which becomes the
   * view (do not keep it past `fn`). The view changes at once; the returned promise
   * resolves with the new Map once the changed keys are stored with their pending
   * changes in one transaction (the write is then done: it survives a reload and reaches
   * the server when it can). Only values that are not the very objects the view held are
   * encoded and compared: replace a value, never mutate it. Invalid keys or values (not
   * a value, over a limit, a map with two equal keys, a set with two equal elements)
   * reject it and change nothing. Waits for {@link SyncedAtom#loaded}, not for the network.
   * @param {(current: Map<string, unknown>) => Map<string, unknown>} fn
   * @returns {Promise<Map<string, unknown>>}
   */
  swap(fn) {
    if (this.#closed) return Promise.reject(new Error("the atom is closed"));
    if (!this.#loadDone) return this.loaded.then(() => this.swap(fn));
    const before = this.#view;
    /** @type {import("./swap.js").Write[]} */
    let writes;
    /** @type {Map<string, unknown>} */
    let after;
    try {
      const copy = draft(before);
      /** @type {Set<unknown> | null} */
      let touched = null;
      let returned;
      try {
        returned = fn(copy.map);
      } finally {
        touched = copy.finish();
      }
      if (!(returned instanceof Map)) throw new TypeError(`swap: the function must return a Map, not ${describe(returned)}`);
      if (returned === before) {
        // The view itself, changed in place, cannot be compared with itself: every value
        // is compared by its bytes instead, as slow as that is, rather than a change lost.
        after = new Map(returned);
        writes = changes(new Map(), after, null, this.#viewBytes);
        for (const key of this.#viewBytes.keys()) if (!after.has(key)) writes.push({ key, bytes: null });
      } else {
        after = returned;
        writes = changes(before, after, returned === copy.map ? touched : null, this.#viewBytes);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (writes.length === 0) return Promise.resolve(before);
    for (const { key, bytes } of writes) {
      if (bytes) this.#viewBytes.set(key, bytes);
      else this.#viewBytes.delete(key);
    }
    this.#setView(after);
    return this.#stage(writes).then(() => after);
  }

  /** Stops syncing in this tab (another tab takes over) and drops the watchers. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#tabs.close();
    this.#syncer?.stop();
    this.#watchers.clear();
    this.#statusWatchers.clear();
    this.#markReady();
    this.#onClose();
  }

  async #load() {
    const group = this.#group;
    const { meta, docs, pending } = await this.#storage.transaction("readonly", async (tx) => {
      const [meta, docs, pending] = await Promise.all([tx.getMeta(group), tx.allDocs(group), tx.allPending(group)]);
      return { meta, docs, pending };
    });
    this.#replaceAll(docs, pending);
    this.#setStatus({ cursor: meta?.cursor ?? 0 });
    this.#loadDone = true;
    if (!this.#closed) this.#tabs.start();
  }

  /** What a tab that syncs tells the others about the network. */
  #netStatus() {
    const { online, transport, cursor, error, ready } = this.#status;
    return { online, transport, cursor, error, ready };
  }

  /** @param {Partial<Status>} patch */
  #setNet(patch) {
    this.#setStatus(patch);
    this.#tabs.announce(this.#netStatus());
  }

  /**
   * Stores local writes with their pending changes, in one durable transaction.
   * @param {{key: string, bytes: Uint8Array | null}[]} writes
   */
  async #stage(writes) {
    const group = this.#group;
    const keys = writes.map((w) => w.key);
    for (const key of keys) this.#staging.set(key, (this.#staging.get(key) ?? 0) + 1);
    this.#countPending();
    let records;
    try {
      records = await this.#storage.transaction(
        "readwrite",
        async (tx) => {
          const { docs, pending } = await readBack(tx, group, keys);
          for (const { key, bytes } of writes) {
            // A second write to a key folds into the first and keeps its base.
            const folded = pending.get(key);
            const base = folded ? folded.base : (docs.get(key)?.version ?? 0);
            const change = { group, key, bytes, base, rev: this.#tabs.newRev() };
            tx.putPending(change);
            pending.set(key, change);
          }
          return { docs, pending };
        },
        { durability: "strict" },
      );
    } catch (error) {
      // Nothing was stored: the view goes back to what storage holds.
      this.#unstage(keys);
      await this.#refresh(keys).catch(report);
      throw error;
    }
    this.#unstage(keys);
    this.#applyRecords(records);
    this.#tabs.keysChanged(keys);
    this.#syncer?.kick();
  }

  /** @param {string[]} keys */
  #unstage(keys) {
    for (const key of keys) {
      const left = (this.#staging.get(key) ?? 1) - 1;
      if (left > 0) this.#staging.set(key, left);
      else this.#staging.delete(key);
    }
  }

  /** @param {string[]} keys */
  async #refresh(keys) {
    const group = this.#group;
    this.#applyRecords(await this.#storage.transaction("readonly", (tx) => readBack(tx, group, keys)));
  }

  /** @param {boolean} announce tell the other tabs to reload too */
  async #reloadAll(announce) {
    const group = this.#group;
    const { docs, pending } = await this.#storage.transaction("readonly", async (tx) => {
      const [docs, pending] = await Promise.all([tx.allDocs(group), tx.allPending(group)]);
      return { docs, pending };
    });
    this.#replaceAll(docs, pending);
    if (announce) this.#tabs.reloaded();
  }

  /**
   * Takes the records of some keys as stored, and updates the view where they differ.
   * @param {KeyRecords} records
   */
  #applyRecords({ docs, pending }) {
    if (this.#closed) return;
    const changed = [];
    for (const [key, doc] of docs) {
      if (this.#staging.has(key)) continue;
      if (doc) this.#docs.set(key, doc);
      else this.#docs.delete(key);
      const change = pending.get(key);
      if (change) this.#pending.set(key, change);
      else this.#pending.delete(key);
      changed.push(key);
    }
    this.#updateView(changed, false);
  }

  /** @param {DocRecord[]} docs @param {PendingRecord[]} pending */
  #replaceAll(docs, pending) {
    const keys = new Set([...this.#docs.keys(), ...this.#pending.keys()]);
    this.#docs = new Map(docs.map((doc) => [doc.key, doc]));
    this.#pending = new Map(pending.map((change) => [change.key, change]));
    for (const key of this.#docs.keys()) keys.add(key);
    for (const key of this.#pending.keys()) keys.add(key);
    this.#updateView([...keys].filter((key) => !this.#staging.has(key)), true);
  }

  /**
   * Recomputes the view of `keys`: the pending change when there is one, else the server's.
   * @param {string[]} keys @param {boolean} sorted put the view in key order
   */
  #updateView(keys, sorted) {
    /** @type {Map<string, unknown> | null} */
    let next = null;
    for (const key of keys) {
      const change = this.#pending.get(key);
      const bytes = change ? change.bytes : (this.#docs.get(key)?.bytes ?? null);
      if (bytesEqual(this.#viewBytes.get(key), bytes)) continue;
      next ??= new Map(this.#view);
      let value;
      try {
        value = bytes ? decode(bytes) : undefined;
      } catch (error) {
        this.#setStatus({ error: { code: "bad_value", message: `${key}: ${error instanceof CodecError ? error.message : error}` } });
        value = undefined;
      }
      if (value === undefined || !bytes) {
        next.delete(key);
        this.#viewBytes.delete(key);
      } else {
        next.set(key, value);
        this.#viewBytes.set(key, bytes);
      }
    }
    if (next) this.#setView(sorted ? new Map([...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : next);
    this.#countPending();
  }

  /** Keys being stored count as pending already: the user made those writes. */
  #countPending() {
    let count = this.#pending.size;
    for (const key of this.#staging.keys()) if (!this.#pending.has(key)) count++;
    if (this.#status.pending !== count) this.#setStatus({ pending: count });
  }

  /** @param {Map<string, unknown>} next */
  #setView(next) {
    const before = this.#view;
    this.#view = next;
    for (const fn of [...this.#watchers]) {
      try {
        fn(before, next);
      } catch (error) {
        report(error);
      }
    }
  }

  /** @param {Partial<Status>} patch */
  #setStatus(patch) {
    const before = this.#status;
    // `ready` never goes back: a new leader tab's first attempt does not undo it.
    const next = { ...before, ...patch, ready: before.ready || patch.ready === true };
    if (next.ready) this.#markReady();
    /** @type {(keyof Status)[]} */
    const fields = /** @type {any} */ (Object.keys(next));
    if (fields.every((k) => Object.is(next[k], before[k]) || (k === "error" && JSON.stringify(next[k]) === JSON.stringify(before[k])))) return;
    this.#status = Object.freeze(next);
    for (const fn of [...this.#statusWatchers]) {
      try {
        fn(before, this.#status);
      } catch (error) {
        report(error);
      }
    }
  }
}
