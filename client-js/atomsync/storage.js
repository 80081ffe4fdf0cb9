/**
 * Where a group's state lives: the record types, the {@link Storage} interface the sync
 * code talks to, and {@link IdbStorage}, its IndexedDB implementation (one database per
 * `open(name)`, shared by the origin's tabs). `memory.js` holds the in-memory one.
 *
 * Reads inside a transaction are issued without waiting for each other (`Promise.all`
 * over many `getDoc`s puts all the requests in flight at once): IndexedDB answers them in
 * order within one round of events, where awaiting each would cost a round per record.
 *
 * @module atomsync/storage
 */

/**
 * @typedef {object} DocRecord The last server state of one document (tombstones included:
 *   their version is the base of a later re-create).
 * @property {string} group
 * @property {string} key
 * @property {number | bigint} version
 * @property {number | bigint} seq
 * @property {Uint8Array | null} bytes the value's MessagePack bytes; null for a tombstone
 */

/**
 * @typedef {object} PendingRecord A local change not yet acknowledged by the server,
 *   folded per key: a second write to a key replaces the first and keeps its base.
 * @property {string} group
 * @property {string} key
 * @property {Uint8Array | null} bytes the new value's bytes; null for a delete
 * @property {number | bigint | null} base the server version the change builds on; null
 *   after an epoch change: "whatever the new database has when this is pushed"
 * @property {string} rev unique per local write: a push's answer compares it to know
 *   whether the change it carried is still the latest one for the key
 */

/** @typedef {{epoch: string | null, cursor: number | bigint}} GroupMeta */

/**
 * @typedef {object} StorageTx The operations of one atomic transaction. Reads return
 *   promises; writes are queued and take effect when the transaction commits. Code inside
 *   a transaction awaits nothing but these reads (IndexedDB commits a transaction as soon
 *   as it has no request left).
 * @property {(group: string) => Promise<GroupMeta | undefined>} getMeta
 * @property {(group: string, meta: GroupMeta) => void} putMeta
 * @property {(group: string, key: string) => Promise<DocRecord | undefined>} getDoc
 * @property {(group: string) => Promise<DocRecord[]>} allDocs
 * @property {(group: string) => Promise<number>} [countDocs] how many documents (tombstones
 *   included) the group has; optional for storages of earlier versions, which then pay
 *   one read per incoming document on a catch-up
 * @property {(doc: DocRecord) => void} putDoc
 * @property {(group: string, key: string) => void} deleteDoc
 * @property {(group: string) => void} clearDocs
 * @property {(group: string, key: string) => Promise<PendingRecord | undefined>} getPending
 * @property {(group: string) => Promise<PendingRecord[]>} allPending
 * @property {(change: PendingRecord) => void} putPending
 * @property {(group: string, key: string) => void} deletePending
 */

/**
 * @typedef {object} Storage Where groups' state lives, shared by every tab of a database.
 * @property {<T>(mode: "readonly" | "readwrite", body: (tx: StorageTx) => Promise<T>, options?: {durability?: IDBTransactionDurability}) => Promise<T>} transaction
 *   runs `body` atomically: all its writes commit together once it resolves, none if it throws
 * @property {() => void} close
 */

const STORES = ["meta", "docs", "pending"];

/** @param {IDBRequest} request */
function requestDone(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Every `[group, key]` of one group: arrays sort after strings in IndexedDB. @param {string} group */
function groupRange(group) {
  return IDBKeyRange.bound([group], [group, []]);
}

/** Storage in IndexedDB: one database per `open(name)`, shared by the origin's tabs. */
export class IdbStorage {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /**
   * @param {string} name the database name
   * @param {IDBFactory} [factory]
   * @returns {Promise<IdbStorage>}
   */
  static open(name, factory = globalThis.indexedDB) {
    if (!factory) return Promise.reject(new Error("IndexedDB is not available here: pass {storage: new MemoryStorage()} to open()"));
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("meta");
      db.createObjectStore("docs", { keyPath: ["group", "key"] });
      db.createObjectStore("pending", { keyPath: ["group", "key"] });
    };
    return requestDone(request).then((db) => {
      // Another tab upgrading the schema must not be blocked by us forever.
      db.onversionchange = () => db.close();
      return new IdbStorage(db);
    });
  }

  /**
   * @template T
   * @param {"readonly" | "readwrite"} mode
   * @param {(tx: StorageTx) => Promise<T>} body
   * @param {{durability?: IDBTransactionDurability}} [options]
   * @returns {Promise<T>}
   */
  transaction(mode, body, { durability = "default" } = {}) {
    return new Promise((resolve, reject) => {
      const t = this.db.transaction(STORES, mode, { durability });
      const [meta, docs, pending] = STORES.map((name) => t.objectStore(name));
      /** @type {StorageTx} */
      const tx = {
        getMeta: (group) => requestDone(meta.get(group)),
        putMeta: (group, value) => meta.put(value, group),
        getDoc: (group, key) => requestDone(docs.get([group, key])),
        allDocs: (group) => requestDone(docs.getAll(groupRange(group))),
        countDocs: (group) => requestDone(docs.count(groupRange(group))),
        putDoc: (doc) => docs.put(doc),
        deleteDoc: (group, key) => docs.delete([group, key]),
        clearDocs: (group) => docs.delete(groupRange(group)),
        getPending: (group, key) => requestDone(pending.get([group, key])),
        allPending: (group) => requestDone(pending.getAll(groupRange(group))),
        putPending: (change) => pending.put(change),
        deletePending: (group, key) => pending.delete([group, key]),
      };
      /** @type {T} */
      let result;
      t.oncomplete = () => resolve(result);
      t.onabort = () => reject(t.error ?? new Error("IndexedDB transaction aborted"));
      body(tx).then(
        (value) => {
          result = value;
        },
        (error) => {
          reject(error);
          try {
            t.abort();
          } catch {
            // Already finished: the rejection above is what the caller sees.
          }
        },
      );
    });
  }

  close() {
    this.db.close();
  }
}
