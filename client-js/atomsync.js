/**
 * # atomsync.js: the Atomsync browser client
 *
 * The entry point users import: `import { open, kw } from "/atomsync.js"`. Dependency
 * free, no build step: the modules under `atomsync/`, which this one re-exports, are
 * plain ES modules with relative imports, served by the Atomsync server as they are
 * (`GET /atomsync/*.js`, carrying on a `?token=` this module was loaded with) and loaded
 * as they are by Node (where there is no IndexedDB, `open` keeps the state in memory).
 *
 * | module | owns |
 * |---|---|
 * | `values.js`, `inst.js` | the typed values of PROTOCOL.md section 2 in JavaScript terms (`kw`, `uuid`, `inst`, `float`, `equals`) |
 * | `codec.js`, `encode.js`, `decode.js` | our own MessagePack encoder and decoder (`encode`, `decode`) |
 * | `storage.js`, `memory.js` | where a group's state lives: IndexedDB (`IdbStorage`), memory (`MemoryStorage`) |
 * | `connection.js`, `atom.js`, `swap.js`, `tabs.js` | `open(name)` → `conn.syncedAtom(group, options)`: the offline-first synced atom (`ready`, `deref`, `swap`, `watch`, `status`, `watchStatus`) and the coordination of several tabs |
 * | `link.js`, `syncer.js`, `pusher.js`, `http.js`, `records.js`, `timing.js`, `errors.js` | the network session: one WebSocket per server for all the groups of a connection, the HTTP fallback, pushes and conflicts, backoff |
 *
 * ## `ready`
 *
 * `atom.loaded` resolves once the local state is loaded: reads and writes work from then
 * on, online or not (`swap` waits for it, never for the network). `atom.ready` resolves
 * once the local state is loaded **and** the first sync attempt has finished: caught up
 * with the server, or found offline or refused (`status.error` then says why). This is
 * what the native client's `ready()` means too. A tab that does not sync itself is ready
 * when the tab that syncs says so, or after `timing.connectTimeoutMs` without hearing
 * from one.
 *
 * ## `swap` costs what it changes
 *
 * The function gets a copy of the view that notes which keys its `set`, `delete` and
 * `clear` touch; when it returns that copy, only those keys are looked at (any other Map
 * is compared entry by entry). Values are compared by identity first: only a value that
 * is not the very object the view held is encoded and stored, and only changed keys are
 * pushed. A swap that changes one key of a 50,000-document atom encodes one value and
 * copies the Map once. So replace a value (`m.set(k, {...m.get(k), done: true})`), never
 * mutate it in place, and change the copy through its own methods.
 *
 * ## Why binary MessagePack
 *
 * Every value must survive a round trip with the Rust client with its type intact.
 * JSON cannot carry that on its own in a browser: `JSON.parse` turns every number into a
 * double, so an integer beyond 2^53 is silently rounded and `1.0` becomes `1`; a lossless
 * JSON path would need our own JSON parser anyway. MessagePack says int or float in the
 * type byte, carries bytes natively, and names instants, UUIDs, keywords and sets with
 * extension types, so the decoder never guesses. It is also the server's storage format:
 * a document we did not change is kept and pushed back as the exact bytes the server sent.
 *
 * ## Values in JavaScript
 *
 * | protocol | JavaScript |
 * |---|---|
 * | nil | `null` (`undefined` is refused: it is not a value) |
 * | integer | a `number` when it is a safe integer (|n| < 2^53), else a `BigInt`, both ways; never rounded |
 * | float | a non-integral `number` (also NaN, ±Infinity, -0); a float whose value is an integer decodes as a {@link Float} wrapper (see below) |
 * | string, boolean | string, boolean |
 * | bytes | `Uint8Array` |
 * | list | `Array` |
 * | map | a plain object when every key is a string, else a `Map`; both encode as maps. A map never holds two equal keys: a `Map` whose keys encode alike (two `uuid(x)` objects, `5` and `5n`, two arrays `[1]`) is refused, naming its path |
 * | instant | {@link Inst} (ns precision; `inst(date)`, `inst("2026-11-24T10:00:00.123456789Z")`, `.toDate()`); a `Date` also encodes as an instant |
 * | uuid | {@link Uuid} (`uuid("550e8400-...")`, `uuid()` for a random v4) |
 * | keyword | {@link Keyword} (`kw("groceries")`); interned, so `kw("a") === kw("a")` and keywords work as `Map` keys and `Set` members |
 * | set | `Set`; refused when two elements encode alike (two `uuid(x)` objects, `float(1)` twice), as a map with two equal keys is |
 *
 * Integers and floats: JavaScript has one number type, and `1.0 === 1`. A JS number that
 * is a safe integer encodes as an int; to write a float with an integral value, wrap it:
 * `float(1)`. Symmetrically, a float64 from the wire whose value is a safe integer decodes
 * as `Float` (whose `valueOf` makes arithmetic work: `float(2) * 3 === 6`), so a Rust
 * `Float(1.0)` read and written back by a browser stays a float. Every other float
 * decodes as a plain number, which can only encode as a float again.
 *
 * Values are immutable snapshots: replace a value in `swap` rather than mutating the
 * object you got from `deref` (a mutated object is the same object: `swap` would not see
 * the change).
 *
 * @module atomsync
 */

// Every module is imported from here, even those nothing below re-exports, so that a
// browser fetches them all at once rather than one level of imports after another.
import "./atomsync/http.js";
import "./atomsync/link.js";
import "./atomsync/pusher.js";
import "./atomsync/records.js";
import "./atomsync/swap.js";
import "./atomsync/syncer.js";
import "./atomsync/tabs.js";
import "./atomsync/timing.js";

export { CodecError, MAX_DEPTH, MAX_VALUE_BYTES } from "./atomsync/codec.js";
export { decode } from "./atomsync/decode.js";
export { encode } from "./atomsync/encode.js";
export { ServerError } from "./atomsync/errors.js";
export { Inst, inst } from "./atomsync/inst.js";
export { Float, Keyword, Uuid, equals, float, kw, num, uuid } from "./atomsync/values.js";
export { MemoryStorage } from "./atomsync/memory.js";
export { IdbStorage } from "./atomsync/storage.js";
export { DELETED } from "./atomsync/pusher.js";
export { SyncedAtom } from "./atomsync/atom.js";
export { Connection, DEFAULT_TIMING, open } from "./atomsync/connection.js";
