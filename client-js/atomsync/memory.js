/**
 * {@link MemoryStorage}: storage in memory with the transaction semantics of IndexedDB
 * (serialized, all-or-nothing, records copied in and out), for Node (where there is no
 * IndexedDB), tests, and pages that want the sync without persistence.
 *
 * A transaction writes into an overlay that replaces entries of the tables only when its
 * body resolves: its cost grows with what it touches, not with the size of the tables, so
 * a write to one key of a 100,000-document group costs what it costs in a small one.
 *
 * @module atomsync/memory
 */

/** @typedef {import("./storage.js").DocRecord} DocRecord */
/** @typedef {import("./storage.js").PendingRecord} PendingRecord */
/** @typedef {import("./storage.js").GroupMeta} GroupMeta */
/** @typedef {import("./storage.js").StorageTx} StorageTx */

/**
 * One table: group → key → record.
 * @template R
 * @typedef {Map<string, Map<string, R>>} Table
 */

/**
 * A transaction's writes to one table, applied at commit: per group, whether it was
 * cleared first, and the records put (or `null` for deleted) since.
 * @template R
 * @typedef {Map<string, {cleared: boolean, writes: Map<string, R | null>}>} Overlay
 */

/**
 * Storage in memory, with the same transaction semantics as IndexedDB storage. Several
 * atoms sharing one instance behave like tabs sharing one database.
 */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, GroupMeta>} */
    this.meta = new Map();
    /** @type {Table<DocRecord>} */
    this.docs = new Map();
    /** @type {Table<PendingRecord>} */
    this.pending = new Map();
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }

  /**
   * Runs `body` after every earlier transaction; its writes apply when it resolves.
   * @template T
   * @param {"readonly" | "readwrite"} mode
   * @param {(tx: StorageTx) => Promise<T>} body
   * @returns {Promise<T>}
   */
  transaction(mode, body) {
    const run = async () => {
      /** @type {Map<string, GroupMeta>} */
      const meta = new Map();
      /** @type {Overlay<DocRecord>} */
      const docs = new Map();
      /** @type {Overlay<PendingRecord>} */
      const pending = new Map();
      const writable = () => {
        if (mode !== "readwrite") throw new Error("write in a readonly transaction");
      };
      /** @type {StorageTx} */
      const tx = {
        getMeta: async (group) => structuredClone(meta.has(group) ? meta.get(group) : this.meta.get(group)),
        putMeta: (group, value) => (writable(), meta.set(group, structuredClone(value))),
        getDoc: async (group, key) => structuredClone(read(this.docs, docs, group, key)),
        allDocs: async (group) => all(this.docs, docs, group),
        countDocs: async (group) => all(this.docs, docs, group, false).length,
        putDoc: (doc) => (writable(), write(docs, doc.group, doc.key, structuredClone(doc))),
        deleteDoc: (group, key) => (writable(), write(docs, group, key, null)),
        clearDocs: (group) => (writable(), docs.set(group, { cleared: true, writes: new Map() })),
        getPending: async (group, key) => structuredClone(read(this.pending, pending, group, key)),
        allPending: async (group) => all(this.pending, pending, group),
        putPending: (change) => (writable(), write(pending, change.group, change.key, structuredClone(change))),
        deletePending: (group, key) => (writable(), write(pending, group, key, null)),
      };
      const result = await body(tx);
      if (mode === "readwrite") {
        for (const [group, value] of meta) this.meta.set(group, value);
        commit(this.docs, docs);
        commit(this.pending, pending);
      }
      return result;
    };
    const done = this.queue.then(run);
    this.queue = done.catch(() => {});
    return done;
  }

  close() {}
}

/**
 * A record as the transaction sees it: its own write first, else the table's.
 * @template R
 * @param {Table<R>} table @param {Overlay<R>} overlay @param {string} group @param {string} key
 * @returns {R | undefined}
 */
function read(table, overlay, group, key) {
  const own = overlay.get(group);
  const written = own?.writes.get(key);
  if (written !== undefined) return written ?? undefined;
  return own?.cleared ? undefined : table.get(group)?.get(key);
}

/**
 * Every record of a group as the transaction sees it, in key order as IndexedDB gives
 * them, copied; only counted when `copy` is false.
 * @template {{key: string}} R
 * @param {Table<R>} table @param {Overlay<R>} overlay @param {string} group
 * @returns {R[]}
 */
function all(table, overlay, group, copy = true) {
  const own = overlay.get(group);
  /** @type {R[]} */
  const records = [];
  if (!own?.cleared) {
    for (const [key, record] of table.get(group) ?? []) if (!own?.writes.has(key)) records.push(record);
  }
  for (const record of own?.writes.values() ?? []) if (record !== null) records.push(record);
  if (!copy) return records;
  records.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return records.map((record) => structuredClone(record));
}

/**
 * @template R
 * @param {Overlay<R>} overlay @param {string} group @param {string} key @param {R | null} record
 */
function write(overlay, group, key, record) {
  let own = overlay.get(group);
  if (!own) {
    own = { cleared: false, writes: new Map() };
    overlay.set(group, own);
  }
  own.writes.set(key, record);
}

/**
 * Applies a committed transaction's overlay to its table.
 * @template R
 * @param {Table<R>} table @param {Overlay<R>} overlay
 */
function commit(table, overlay) {
  for (const [group, { cleared, writes }] of overlay) {
    let rows = table.get(group);
    if (!rows || cleared) {
      rows = new Map();
      table.set(group, rows);
    }
    for (const [key, record] of writes) {
      if (record === null) rows.delete(key);
      else rows.set(key, record);
    }
    if (rows.size === 0) table.delete(group);
  }
}
