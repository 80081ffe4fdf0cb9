/**
 * {@link Tabs}: how the tabs of one origin that open the same database and group work
 * together.
 *
 * Every tab keeps its own view and writes to the shared database; exactly one tab per
 * database and group (the holder of a Web Lock named after them) runs the network
 * session and pushes the pending changes, so no change is pushed twice concurrently. The
 * lock moves to another tab when its holder closes or crashes, and the newcomer starts
 * from what the database holds. One lock per group rather than locks on pending rows: no
 * lock traffic per change, and one socket per server in the one tab that syncs. Tabs
 * tell each other which keys changed over a BroadcastChannel and re-read those keys, so
 * a write shows in every tab without a server round trip; the tab that syncs also tells
 * the others how the network is (online, cursor, error, ready).
 *
 * Without Web Locks (an insecure context), or without a BroadcastChannel (a follower
 * would never hear of what the syncing tab stores), every tab syncs; that stays correct,
 * because pushing the same change twice comes back as a conflict whose server value
 * equals ours, which settles it.
 *
 * @module atomsync/tabs
 */

import { report } from "./errors.js";

/** @typedef {import("./connection.js").Env} Env */
/** @typedef {Partial<import("./atom.js").Status>} Net */

/** Past this many changed keys, other tabs reload the group rather than re-read each key. */
const MAX_KEYS_MESSAGE = 1000;

/**
 * What the tabs do to their atom.
 * @typedef {object} TabsAtom
 * @property {() => Promise<void> | undefined} lead this tab syncs from now on; the promise
 *   settles when it stops (the lock is held until then)
 * @property {(keys: string[]) => Promise<void>} refresh re-read these keys from storage
 * @property {() => Promise<void>} reload re-read the whole group
 * @property {(net: Net) => void} leaderStatus the syncing tab says how the network is
 * @property {() => Net | null} currentNet how the network is, when this tab syncs
 * @property {() => Promise<void>} loaded
 */

export class Tabs {
  /** @type {BroadcastChannel | null} */
  #channel = null;
  /** @type {AbortController | null} */
  #lockAbort = null;
  #tabId = Math.random().toString(36).slice(2, 10);
  #revs = 0;
  /** Messages from other tabs, handled one at a time, in order. @type {Promise<unknown>} */
  #inbox = Promise.resolve();
  /** Whether a tab that syncs has said how the network is. */
  #heard = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #helloTimer;
  #closed = false;

  /**
   * @param {string} name the database's name @param {string} group @param {Env} env
   * @param {TabsAtom} atom
   */
  constructor(name, group, env, atom) {
    this.name = name;
    this.group = group;
    this.env = env;
    this.atom = atom;
    const Channel = env.BroadcastChannel;
    if (Channel) {
      // Open before loading, so that nothing another tab says meanwhile is missed.
      this.#channel = new Channel(`atomsync:${name}`);
      this.#channel.onmessage = (event) => this.#onMessage(event.data);
    }
  }

  /** The local state is loaded: say hello, and sync here if this tab wins the lock. */
  start() {
    this.#post({ type: "hello" });
    const locks = this.#channel ? this.env.locks : null;
    const lead = () => (this.#closed ? undefined : this.atom.lead());
    if (!locks) {
      lead()?.catch(report);
      return;
    }
    // A tab that syncs answers the hello; without an answer (frozen in the background,
    // say) this one counts as offline rather than waiting for ever.
    this.#helloTimer = setTimeout(() => {
      if (!this.#heard && !this.#closed) this.atom.leaderStatus({ ready: true });
    }, this.env.timing.connectTimeoutMs);
    this.#lockAbort = new AbortController();
    locks.request(`atomsync:${this.name}:${this.group}`, { signal: this.#lockAbort.signal }, lead).catch((error) => {
      if (error?.name !== "AbortError") report(error);
    });
  }

  /** A new revision, unique across tabs: tells a change from a later one of the same key. */
  newRev() {
    return `${this.#tabId}.${++this.#revs}`;
  }

  /** These keys changed in storage. @param {string[]} keys */
  keysChanged(keys) {
    if (keys.length > MAX_KEYS_MESSAGE) this.#post({ type: "reload" });
    else this.#post({ type: "keys", keys });
  }

  /** The whole group changed in storage. */
  reloaded() {
    this.#post({ type: "reload" });
  }

  /** How the network is, from the tab that syncs. @param {Net} net */
  announce(net) {
    this.#post({ type: "status", net });
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#helloTimer);
    this.#lockAbort?.abort();
    this.#channel?.close();
  }

  /** @param {Record<string, unknown>} message */
  #post(message) {
    if (this.#closed || !this.#channel) return;
    try {
      this.#channel.postMessage({ ...message, group: this.group });
    } catch (error) {
      report(error);
    }
  }

  /** @param {any} message */
  #onMessage(message) {
    if (this.#closed || message?.group !== this.group) return;
    this.#inbox = this.#inbox
      .then(() => this.atom.loaded())
      .then(async () => {
        if (this.#closed) return;
        switch (message.type) {
          case "keys":
            if (Array.isArray(message.keys) && message.keys.every((/** @type {unknown} */ key) => typeof key === "string")) await this.atom.refresh(message.keys);
            return;
          case "reload":
            await this.atom.reload();
            return;
          case "status":
            this.#heard = true;
            this.atom.leaderStatus(message.net);
            return;
          case "hello": {
            const net = this.atom.currentNet();
            if (net) this.announce(net);
            return;
          }
        }
      })
      .catch(report);
  }
}
