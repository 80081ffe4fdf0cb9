/**
 * What a `swap` changed, found at the cost of the change rather than of the map.
 *
 * The function given to `swap` gets a {@link draft}: a real copy of the view (a `Map`)
 * whose own `set`, `delete` and `clear` note the keys they touch. When the function
 * returns that draft, only the touched keys are looked at; when it returns another Map,
 * every entry is, without allocating per entry. Either way a value that is the very
 * object the view held is unchanged without being encoded; any other value is encoded
 * (which checks it is a value, within the limits, with no repeated map key or set
 * element) and compared with the bytes the view holds for its key.
 *
 * @module atomsync/swap
 */

import { bytesEqual, encodeDocValue } from "./records.js";
import { describe } from "./values.js";

const MAX_KEY_BYTES = 1024;
const utf8Encoder = new TextEncoder();

/** @typedef {{key: string, bytes: Uint8Array | null}} Write a key's new bytes; null: deleted */

/**
 * A copy of `view` that notes the keys its own methods touch.
 * @param {Map<string, unknown>} view
 * @returns {{map: Map<string, unknown>, finish: () => Set<unknown> | null}} `finish`
 *   makes `map` a plain Map again and gives the keys touched (null after a `clear`, when
 *   any key may have changed)
 */
export function draft(view) {
  const map = new Map(view);
  /** @type {Set<unknown> | null} */
  let touched = new Set();
  const methods = {
    /** @param {string} key @param {unknown} value */
    set: (key, value) => (touched?.add(key), Map.prototype.set.call(map, key, value)),
    /** @param {string} key */
    delete: (key) => (touched?.add(key), Map.prototype.delete.call(map, key)),
    clear: () => {
      touched = null;
      Map.prototype.clear.call(map);
    },
  };
  for (const [name, value] of Object.entries(methods)) Object.defineProperty(map, name, { value, configurable: true, writable: true, enumerable: false });
  return {
    map,
    finish: () => {
      for (const name of Object.keys(methods)) delete (/** @type {any} */ (map))[name];
      return touched;
    },
  };
}

/**
 * The writes that turn `before` into `after`.
 * @param {Map<string, unknown>} before the view the swap started from
 * @param {Map<unknown, unknown>} after what the function returned
 * @param {Set<unknown> | null} touched the only keys that may differ; null: any may
 * @param {Map<string, Uint8Array>} viewBytes the bytes of every value in `before`
 * @returns {Write[]}
 * @throws {TypeError | import("./codec.js").CodecError} a key or value that cannot be
 *   stored, with which
 */
export function changes(before, after, touched, viewBytes) {
  /** @type {Write[]} */
  const writes = [];
  let added = 0;
  /** @param {unknown} value @param {unknown} key */
  const look = (value, key) => {
    const old = before.get(/** @type {string} */ (key));
    if (old === value && value !== undefined) return;
    if (old === undefined) {
      checkKey(key);
      added++;
    }
    if (value === undefined) throw new TypeError(`swap: ${key}: undefined is not a value (delete the key instead)`);
    const bytes = encodeDocValue(/** @type {string} */ (key), value);
    if (!bytesEqual(viewBytes.get(/** @type {string} */ (key)), bytes)) writes.push({ key: /** @type {string} */ (key), bytes });
  };
  if (touched) {
    for (const key of touched) {
      if (after.has(key)) look(after.get(key), key);
      else if (before.has(/** @type {string} */ (key))) writes.push({ key: /** @type {string} */ (key), bytes: null });
    }
    return writes;
  }
  after.forEach(look);
  // Keys that were there and are not any more, looked for only when there are some.
  if (before.size > after.size - added) {
    before.forEach((_, key) => {
      if (!after.has(key)) writes.push({ key, bytes: null });
    });
  }
  return writes;
}

/** @param {unknown} key */
function checkKey(key) {
  if (typeof key !== "string") throw new TypeError(`keys are strings, not ${describe(key)}`);
  const len = utf8Encoder.encode(key).length;
  if (len < 1 || len > MAX_KEY_BYTES) throw new TypeError(`key ${JSON.stringify(key.slice(0, 40))}: must be 1..1024 bytes of UTF-8`);
}
