/**
 * {@link open}: a local database ({@link Connection}) and the synced atoms opened on it.
 * The connection also holds one {@link Link} (one WebSocket) per server and token, which
 * every group it syncs with that server shares.
 *
 * @module atomsync/connection
 */

import { SyncedAtom } from "./atom.js";
import { Link } from "./link.js";
import { MemoryStorage } from "./memory.js";
import { IdbStorage } from "./storage.js";
import { DEFAULT_TIMING } from "./timing.js";

export { DEFAULT_TIMING };

/** @typedef {import("./storage.js").Storage} Storage */
/** @typedef {import("./atom.js").AtomOptions} AtomOptions */
/** @typedef {import("./timing.js").Timing} Timing */

/**
 * What the sync code takes from its environment (injected by tests and special pages).
 * @typedef {object} Env
 * @property {LockManager | null} locks
 * @property {typeof BroadcastChannel | null} BroadcastChannel
 * @property {typeof WebSocket | null} WebSocket
 * @property {typeof fetch | null} fetch
 * @property {Timing} timing
 */

/**
 * Opens (or creates) the local database `name`.
 * @param {string} name IndexedDB database name; tabs that open the same name share state
 * @param {object} [options] mostly for tests and special environments
 * @param {Storage} [options.storage] instead of IndexedDB (e.g. `new MemoryStorage()`,
 *   the default where there is no IndexedDB at all, as in Node)
 * @param {IDBFactory} [options.indexedDB]
 * @param {LockManager | null} [options.locks] tab election; null: this tab always syncs
 * @param {typeof BroadcastChannel | null} [options.BroadcastChannel]
 * @param {typeof WebSocket | null} [options.WebSocket] null: sync over HTTP only
 * @param {typeof fetch | null} [options.fetch]
 * @param {Partial<Timing>} [options.timing]
 * @returns {Promise<Connection>}
 */
export async function open(name, options = {}) {
  if (typeof name !== "string" || name === "") throw new TypeError("open(name): name must be a non-empty string");
  const factory = options.indexedDB ?? globalThis.indexedDB;
  // Where there is no IndexedDB at all (Node, for a client built on this module), the
  // state lives in memory; a page that must not persist can ask for that too.
  const storage = options.storage ?? (factory ? await IdbStorage.open(name, factory) : new MemoryStorage());
  /**
   * @template {keyof typeof options} K
   * @param {K} key @param {(typeof options)[K]} fallback
   */
  const pick = (key, fallback) => (key in options ? options[key] : fallback);
  return new Connection(name, storage, {
    locks: pick("locks", globalThis.navigator?.locks ?? null) ?? null,
    BroadcastChannel: pick("BroadcastChannel", globalThis.BroadcastChannel ?? null) ?? null,
    WebSocket: pick("WebSocket", globalThis.WebSocket ?? null) ?? null,
    fetch: pick("fetch", globalThis.fetch ? globalThis.fetch.bind(globalThis) : null) ?? null,
    timing: { ...DEFAULT_TIMING, ...options.timing },
  });
}

/** A local database and the synced atoms opened on it. */
export class Connection {
  /** @type {Map<string, SyncedAtom>} */
  #atoms = new Map();
  /** @type {Map<string, Link>} by WebSocket URL (with the token) */
  #links = new Map();

  /** @param {string} name @param {Storage} storage @param {Env} env */
  constructor(name, storage, env) {
    /** @type {string} */
    this.name = name;
    /** @type {Storage} */
    this.storage = storage;
    /** @type {Env} */
    this.env = env;
  }

  /**
   * The synced atom of `group` (the same object when asked twice while it is open; a new
   * one after it was closed).
   * @param {string} group 1 to 128 characters from `A-Z a-z 0-9 _ - . :`
   * @param {AtomOptions} [options]
   * @returns {SyncedAtom}
   */
  syncedAtom(group, options = {}) {
    let atom = this.#atoms.get(group);
    if (!atom) {
      const created = new SyncedAtom(this, group, options, () => {
        if (this.#atoms.get(group) === created) this.#atoms.delete(group);
      });
      this.#atoms.set(group, created);
      atom = created;
    }
    return atom;
  }

  /**
   * The WebSocket shared by the groups this connection syncs with the server at `ws` with
   * `token` (null without a WebSocket in this environment).
   * @param {URL} ws @param {string | null} token
   * @returns {Link | null}
   */
  link(ws, token) {
    const WebSocketImpl = this.env.WebSocket;
    if (!WebSocketImpl) return null;
    const url = new URL(ws);
    if (token !== null) url.searchParams.set("token", token);
    let link = this.#links.get(url.href);
    if (!link) {
      const created = new Link(url, WebSocketImpl, this.env.timing, () => {
        if (this.#links.get(url.href) === created) this.#links.delete(url.href);
      });
      this.#links.set(url.href, created);
      link = created;
    }
    return link;
  }

  /** Stops every atom's sync and closes the database. */
  close() {
    for (const atom of [...this.#atoms.values()]) atom.close();
    this.storage.close();
  }
}
