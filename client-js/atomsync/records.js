/**
 * From the wire to storage: the server's documents as records (checked on the way in),
 * a document's value as bytes (checked against the limits on the way out), and the steps
 * that store records inside one transaction. Each step reads what it needs in
 * as few round trips as the storage allows: a first sync into an empty group reads
 * nothing, a large catch-up reads the group once, a small one reads its keys all at once
 * (never one awaited read per document).
 *
 * @module atomsync/records
 */

import { CodecError, MAX_DEPTH, MAX_VALUE_BYTES, Raw } from "./codec.js";
import { encode } from "./encode.js";
import { ProtocolError } from "./errors.js";

/** @typedef {import("./storage.js").DocRecord} DocRecord */
/** @typedef {import("./storage.js").PendingRecord} PendingRecord */
/** @typedef {import("./storage.js").StorageTx} StorageTx */

/**
 * The records of some keys as they are at the end of a transaction (undefined: none).
 * @typedef {{docs: Map<string, DocRecord | undefined>, pending: Map<string, PendingRecord | undefined>}} KeyRecords
 */

/** From this many keys on, a step reads a whole group rather than key by key. */
const BULK = 64;

/**
 * A JSON or MessagePack map decoded as a plain object.
 * @param {unknown} x
 * @returns {x is Record<string, any>}
 */
export function isRecord(x) {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Map);
}

/**
 * An integer >= 0 as the decoder gives it (a number, or a BigInt beyond 2^53).
 * @param {unknown} n
 * @returns {n is number | bigint}
 */
export function isCount(n) {
  return (typeof n === "number" && Number.isSafeInteger(n) && n >= 0) || (typeof n === "bigint" && n >= 0n);
}

/** @param {Uint8Array | null | undefined} a @param {Uint8Array | null | undefined} b */
export function bytesEqual(a, b) {
  if (!a || !b) return !a && !b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A server DOC (`{key, version, seq, value}` or `{..., deleted: true}`) as a record.
 * @param {string} group @param {unknown} doc @param {string} where for the error message
 * @returns {DocRecord}
 */
export function toDocRecord(group, doc, where) {
  if (!isRecord(doc) || typeof doc.key !== "string" || !isCount(doc.version) || !isCount(doc.seq)) {
    throw new ProtocolError(`${where}: not a document`);
  }
  if (doc.deleted === true) return { group, key: doc.key, version: doc.version, seq: doc.seq, bytes: null };
  if (!(doc.value instanceof Raw)) throw new ProtocolError(`${where}: a document without value or deleted`);
  return { group, key: doc.key, version: doc.version, seq: doc.seq, bytes: doc.value.bytes };
}

/**
 * The DOCs of a `changes` list, appended to `into`.
 * @param {string} group @param {unknown} changes @param {string} where
 * @param {DocRecord[]} [into]
 */
export function toDocRecords(group, changes, where, into = []) {
  if (!Array.isArray(changes)) throw new ProtocolError(`${where}: changes is not a list`);
  changes.forEach((doc, i) => into.push(toDocRecord(group, doc, `${where}.changes[${i}]`)));
  return into;
}

/**
 * Stores each document newer than the stored one (a later one wins when `docs` repeats a
 * key); returns every key's record as it now stands.
 * @param {StorageTx} tx @param {string} group @param {DocRecord[]} docs
 * @returns {Promise<Map<string, DocRecord>>}
 */
export async function putNewer(tx, group, docs) {
  /** @type {Map<string, DocRecord>} */
  const incoming = new Map();
  for (const doc of docs) {
    const seen = incoming.get(doc.key);
    if (!seen || doc.version > seen.version) incoming.set(doc.key, doc);
  }
  const stored = await storedDocs(tx, group, [...incoming.keys()]);
  for (const [key, doc] of incoming) {
    const old = stored.get(key);
    if (!old || doc.version > old.version) tx.putDoc(doc);
    else incoming.set(key, old);
  }
  return incoming;
}

/**
 * The stored documents of `keys` (absent keys left out).
 * @param {StorageTx} tx @param {string} group @param {string[]} keys
 * @returns {Promise<Map<string, DocRecord>>}
 */
export async function storedDocs(tx, group, keys) {
  /** @type {Map<string, DocRecord>} */
  const stored = new Map();
  if (keys.length === 0) return stored;
  if (keys.length >= BULK && tx.countDocs) {
    const count = await tx.countDocs(group);
    if (count === 0) return stored;
    // Reading the whole group costs about what reading a quarter of it key by key does.
    if (keys.length * 4 >= count) {
      for (const doc of await tx.allDocs(group)) stored.set(doc.key, doc);
      return stored;
    }
  }
  const found = await Promise.all(keys.map((key) => tx.getDoc(group, key)));
  found.forEach((doc) => doc && stored.set(doc.key, doc));
  return stored;
}

/**
 * The records of `keys` (distinct) at this point of the transaction. `docs`: the
 * documents already known (from {@link putNewer}), not read again.
 * @param {StorageTx} tx @param {string} group @param {string[]} keys
 * @param {Map<string, DocRecord>} [docs]
 * @returns {Promise<KeyRecords>}
 */
export async function readBack(tx, group, keys, docs) {
  const [stored, pending] = await Promise.all([docs ?? storedDocs(tx, group, keys), pendingOf(tx, group, keys)]);
  return { docs: new Map(keys.map((key) => [key, stored.get(key)])), pending };
}

/**
 * The pending changes of `keys` (undefined: none).
 * @param {StorageTx} tx @param {string} group @param {string[]} keys
 * @returns {Promise<Map<string, PendingRecord | undefined>>}
 */
export async function pendingOf(tx, group, keys) {
  if (keys.length >= BULK) {
    // Pending changes are few next to documents: one read of them all.
    const all = new Map((await tx.allPending(group)).map((change) => [change.key, change]));
    return new Map(keys.map((key) => [key, all.get(key)]));
  }
  const found = await Promise.all(keys.map((key) => tx.getPending(group, key)));
  return new Map(keys.map((key, i) => [key, found[i]]));
}

/**
 * Encodes one document's value, checked against the protocol's limits.
 * @param {string} key for the error message
 * @param {unknown} value
 * @returns {Uint8Array}
 * @throws {CodecError} not a value, or over the size limit
 */
export function encodeDocValue(key, value) {
  let bytes;
  try {
    bytes = encode(value, { maxDepth: MAX_DEPTH });
  } catch (error) {
    if (error instanceof CodecError) throw new CodecError(`${key}: ${error.message}`);
    throw error;
  }
  if (bytes.length > MAX_VALUE_BYTES) throw new CodecError(`${key}: the value takes ${bytes.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit`);
  return bytes;
}
