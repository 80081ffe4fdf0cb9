/**
 * {@link Pusher}: a group's pending changes on their way to the server, whatever carries
 * them (the shared WebSocket or HTTP): batches within the protocol's limits, one push
 * loop at a time, and the answers settled in one transaction each (accepted: the new
 * version is stored; conflict: the server's document is stored and the resolver, if any,
 * decides what is pushed again; refused on its own: the change is dropped and said so).
 *
 * @module atomsync/pusher
 */

import { Raw } from "./codec.js";
import { decode } from "./decode.js";
import { ProtocolError, ServerError, messageOf } from "./errors.js";
import { bytesEqual, encodeDocValue, isCount, isRecord, readBack, toDocRecord } from "./records.js";

/** @typedef {import("./syncer.js").SyncHost} SyncHost */

/**
 * What a resolver returns to delete the key, and what it receives for a side on which
 * the key is deleted or absent.
 */
export const DELETED = Symbol("atomsync.deleted");

/** Pushes stay well under the server's 10000 changes and 8 MiB per request or frame. */
const PUSH_MAX_CHANGES = 1000;
const PUSH_MAX_BYTES = 4 << 20;

/**
 * One pending change as pushed.
 * @typedef {{key: string, rev: string, bytes: Uint8Array | null, base: number | bigint}} Entry
 */

/** A transport's push: the changes out, the server's answer back (`{epoch, results}`). */
/** @typedef {(changes: unknown[]) => Promise<unknown>} Send */

export class Pusher {
  /**
   * @param {SyncHost} host
   * @param {() => string | null} epoch the server epoch the group's records come from
   */
  constructor(host, epoch) {
    this.host = host;
    this.epoch = epoch;
    /** @type {Promise<void> | null} */
    this.pushing = null;
    this.again = false;
    this.stopped = false;
    this.batchLimit = PUSH_MAX_CHANGES;
  }

  /**
   * Pushes pending changes in batches until none is left. Called while a loop runs, it
   * makes that loop look again once done, and returns it.
   * @param {Send} send
   * @returns {Promise<void>}
   */
  pushAll(send) {
    if (this.pushing) {
      this.again = true;
      return this.pushing;
    }
    const loop = async () => {
      do {
        this.again = false;
        for (;;) {
          const batch = await this.collectBatch();
          if (batch.length === 0) break;
          const changes = batch.map(({ key, base, bytes }) => (bytes ? { key, base, value: new Raw(bytes) } : { key, base, deleted: true }));
          let response;
          try {
            response = await send(changes);
          } catch (error) {
            if (error instanceof ServerError && (error.code === "bad_request" || error.code === "payload_too_large")) {
              // The whole request was refused: find the change at fault by pushing one at
              // a time, and drop only that one rather than blocking every later change.
              if (batch.length > 1) this.batchLimit = 1;
              else await this.dropChange(batch[0], error);
              continue;
            }
            throw error;
          }
          if (!isRecord(response) || !Array.isArray(response.results) || response.results.length !== batch.length) {
            throw new ProtocolError("push: the answer does not hold one result per change");
          }
          const epoch = this.epoch();
          if (epoch !== null && response.epoch !== epoch) {
            // The database was replaced under us: settle nothing; the next catch-up
            // notices the new epoch and the changes are pushed again on top of it.
            throw new ProtocolError("push: the server's epoch changed");
          }
          await this.settle(batch, response.results);
        }
        this.batchLimit = PUSH_MAX_CHANGES;
      } while (this.again && !this.stopped);
    };
    this.pushing = loop().finally(() => {
      this.pushing = null;
    });
    return this.pushing;
  }

  /**
   * The next pending changes to push, with their bases.
   * @returns {Promise<Entry[]>}
   */
  collectBatch() {
    const group = this.host.group;
    const limit = this.batchLimit;
    return this.host.storage.transaction("readonly", async (tx) => {
      /** @type {Entry[]} */
      const batch = [];
      /** @type {number[]} */
      const unknownBase = [];
      let size = 0;
      for (const change of await tx.allPending(group)) {
        const bytes = change.bytes?.length ?? 0;
        if (batch.length >= limit || (batch.length > 0 && size + bytes > PUSH_MAX_BYTES)) break;
        size += bytes + change.key.length;
        if (change.base === null) unknownBase.push(batch.length);
        batch.push({ key: change.key, rev: change.rev, bytes: change.bytes, base: change.base ?? 0 });
      }
      // After an epoch change: the base is whatever the new database has now.
      const docs = await Promise.all(unknownBase.map((i) => tx.getDoc(group, batch[i].key)));
      unknownBase.forEach((i, n) => (batch[i].base = docs[n]?.version ?? 0));
      return batch;
    });
  }

  /**
   * Records a push's results in one transaction. Accepted: the new version is stored and
   * the pending change dropped, unless a newer local write replaced it meanwhile, which
   * then builds on the new version. Conflict: the server's document is stored; the
   * server wins unless the resolver answers something else, pushed on `current.version`.
   * @param {Entry[]} batch @param {unknown[]} results
   */
  async settle(batch, results) {
    const group = this.host.group;
    const keys = batch.map((entry) => entry.key);
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      const [stored, changes] = await Promise.all([Promise.all(keys.map((key) => tx.getDoc(group, key))), Promise.all(keys.map((key) => tx.getPending(group, key)))]);
      batch.forEach((entry, i) => {
        const result = results[i];
        if (!isRecord(result) || result.key !== entry.key) throw new ProtocolError(`push: results[${i}] is not about ${entry.key}`);
        const old = stored[i];
        const change = changes[i];
        if (result.ok === true) {
          if (!isCount(result.version) || !isCount(result.seq)) throw new ProtocolError(`push: results[${i}] lacks version or seq`);
          if (!old || result.version > old.version) tx.putDoc({ group, key: entry.key, version: result.version, seq: result.seq, bytes: entry.bytes });
          if (change?.rev === entry.rev) tx.deletePending(group, entry.key);
          else if (change) tx.putPending({ ...change, base: result.version });
          return;
        }
        const current = result.current == null ? null : toDocRecord(group, result.current, `push.results[${i}].current`);
        if (current && (!old || current.version >= old.version)) tx.putDoc(current);
        if (!change) return;
        const resolved = this.resolve(entry.key, change.bytes, current?.bytes ?? null);
        if (resolved === undefined || bytesEqual(resolved, current?.bytes ?? null)) tx.deletePending(group, entry.key);
        else tx.putPending({ group, key: entry.key, bytes: resolved, base: current?.version ?? 0, rev: this.host.newRev() });
      });
      return readBack(tx, group, keys);
    });
    this.host.changed(records);
  }

  /**
   * The resolver's answer as bytes (null: delete), or undefined when the server wins.
   * Runs inside the settle transaction, so it sees exactly the stored local change.
   * @param {string} key @param {Uint8Array | null} localBytes @param {Uint8Array | null} serverBytes
   * @returns {Uint8Array | null | undefined}
   */
  resolve(key, localBytes, serverBytes) {
    const resolver = this.host.resolver;
    if (!resolver || bytesEqual(localBytes, serverBytes)) return undefined;
    try {
      const local = localBytes ? decode(localBytes) : DELETED;
      const server = serverBytes ? decode(serverBytes) : DELETED;
      const answer = resolver(key, local, server);
      if (answer === undefined) return undefined;
      return answer === DELETED ? null : encodeDocValue(key, answer);
    } catch (error) {
      this.host.setNet({ error: { code: "resolver", message: `${key}: the resolver failed (${messageOf(error)}); the server's value was kept` } });
      return undefined;
    }
  }

  /**
   * A change the server refused on its own: drop it, say so, show the server's value.
   * @param {Entry} entry @param {ServerError} error
   */
  async dropChange(entry, error) {
    const group = this.host.group;
    const records = await this.host.storage.transaction("readwrite", async (tx) => {
      const change = await tx.getPending(group, entry.key);
      if (change?.rev === entry.rev) tx.deletePending(group, entry.key);
      return readBack(tx, group, [entry.key]);
    });
    this.host.changed(records);
    this.host.setNet({ error: { code: error.code, message: `${entry.key}: ${error.message} (the local change was dropped)` } });
  }
}
