/**
 * {@link Link}: one WebSocket to one server (URL and token), shared by every group a
 * connection syncs there, as the native client does: a page with ten groups holds one
 * socket, not ten. The link owns the socket's life (connect with a timeout, reconnect
 * with backoff, wake up when the browser comes back online), routes each frame to the
 * group it names, and numbers pushes so that each answer finds its caller. What a group
 * does with its frames (subscribe, catch up, push, fall back to HTTP) is its syncer's
 * business: it joins the link as a {@link LinkMember}.
 *
 * A socket "got live" once some group's subscription completed on it. One that closes
 * before that (refused, blocked by a proxy that accepts and drops WebSockets) counts as a
 * failure: members then sync over HTTP until a later attempt gets live.
 *
 * @module atomsync/link
 */

import { decodeMessage } from "./decode.js";
import { encode } from "./encode.js";
import { OfflineError, ProtocolError, ServerError, errorInfo, messageOf, report } from "./errors.js";
import { isRecord } from "./records.js";
import { Nap, backoff } from "./timing.js";

/** How long a socket that fired `error` gets to fire `close` itself (see `connect`). */
const ERROR_CLOSE_GRACE_MS = 100;

/** @typedef {import("./timing.js").Timing} Timing */

/**
 * What a link needs from a group that uses it.
 * @typedef {object} LinkMember
 * @property {string} group
 * @property {() => void} linkOpen the socket is open: subscribe
 * @property {(message: Record<string, any>) => void} linkFrame a frame naming this group
 * @property {(failed: boolean) => void} linkDown the socket closed; `failed`: it never got
 *   live (sync over HTTP meanwhile), else a reconnect follows at once
 * @property {(error: {code: string, message: string} | null) => void} linkError a problem
 *   of the connection as a whole, to show
 */

/** @typedef {{resolve: (message: Record<string, any>) => void, reject: (error: Error) => void}} Waiter */

export class Link {
  /**
   * @param {URL} url the server's WebSocket URL, with the token already in its query
   * @param {typeof WebSocket} WebSocketImpl
   * @param {Timing} timing
   * @param {() => void} onIdle called when the last member leaves (the link then stops)
   */
  constructor(url, WebSocketImpl, timing, onIdle) {
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.timing = timing;
    this.onIdle = onIdle;
    /** @type {Map<string, LinkMember>} */
    this.members = new Map();
    /** @type {WebSocket | null} */
    this.socket = null;
    /** @type {"connecting" | "open" | "down"} */
    this.state = "down";
    /** Whether the last attempt failed to get live (members are then on HTTP). */
    this.failed = false;
    this.live = false;
    this.stopped = false;
    this.running = false;
    /** @type {Map<number, Waiter>} */
    this.pushes = new Map();
    this.nextId = 1;
    this.nap = new Nap();
    this.onOnline = () => this.nap.wake();
  }

  /** Adds a group; it hears at once where the socket stands. @param {LinkMember} member */
  join(member) {
    if (this.members.has(member.group)) throw new Error(`link: group ${member.group} joined twice`);
    this.members.set(member.group, member);
    if (!this.running) {
      this.running = true;
      this.run().catch(report);
    } else if (this.state === "open") {
      member.linkOpen();
    } else if (this.state === "down" && this.failed) {
      member.linkDown(true);
    }
  }

  /** Removes a group, unsubscribing it; the last one out closes the socket. @param {LinkMember} member */
  leave(member) {
    if (this.members.get(member.group) !== member) return;
    this.members.delete(member.group);
    if (this.members.size > 0) {
      if (this.state === "open") this.trySend({ type: "unsubscribe", group: member.group });
      return;
    }
    // Stopped for good: a group that comes later gets a new link.
    this.stopped = true;
    this.socket?.close();
    this.nap.wake();
    this.onIdle();
  }

  /** Records that a subscription completed on the current socket. */
  markLive() {
    this.live = true;
  }

  /** Closes the socket (a dead connection): every member reconnects. */
  drop() {
    this.socket?.close();
  }

  /**
   * Sends one frame (MessagePack).
   * @param {Record<string, unknown>} message
   * @throws {OfflineError} when the socket is not open
   */
  send(message) {
    if (this.state !== "open" || !this.socket) throw new OfflineError("the connection is closed");
    this.socket.send(encode(message));
  }

  /** @param {Record<string, unknown>} message */
  trySend(message) {
    try {
      this.send(message);
    } catch {
      // Closed meanwhile: nothing to tell the server any more.
    }
  }

  /**
   * Pushes `changes` to `group`; resolves with the `pushed` frame, rejects with the
   * `error` frame as a {@link ServerError}, or with an {@link OfflineError} when the
   * socket closes or no answer comes within the push timeout (the socket is then dropped).
   * @param {string} group @param {unknown[]} changes
   * @returns {Promise<Record<string, any>>}
   */
  push(group, changes) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pushes.delete(id);
        reject(new OfflineError("no answer to a push"));
        this.drop();
      }, this.timing.pushTimeoutMs);
      this.pushes.set(id, {
        resolve: (message) => (clearTimeout(timer), resolve(message)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      try {
        this.send({ type: "push", id, group, changes });
      } catch (error) {
        this.pushes.get(id)?.reject(/** @type {Error} */ (error));
        this.pushes.delete(id);
      }
    });
  }

  /** Connects, and reconnects with backoff, until the last member leaves. */
  async run() {
    globalThis.addEventListener?.("online", this.onOnline);
    let failures = 0;
    try {
      while (!this.stopped) {
        const wasLive = await this.session();
        if (this.stopped) break;
        failures = wasLive ? 0 : failures + 1;
        await this.nap.sleep(backoff(this.timing, wasLive ? 0 : failures - 1));
      }
    } finally {
      globalThis.removeEventListener?.("online", this.onOnline);
    }
  }

  /**
   * One socket, from connecting to closed.
   * @returns {Promise<boolean>} whether it got live
   */
  session() {
    return new Promise((resolve) => {
      let socket;
      try {
        socket = new this.WebSocketImpl(this.url.href);
      } catch {
        this.down(false);
        resolve(false);
        return;
      }
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      this.state = "connecting";
      this.live = false;
      const closed = () => {
        clearTimeout(connectTimer);
        if (this.socket !== socket) return;
        this.socket = null;
        const wasLive = this.live;
        this.down(wasLive);
        resolve(wasLive);
      };
      // A socket that never opens is given up on; `close` is not waited for, since some
      // WebSocket implementations never fire it for a socket still connecting.
      const connectTimer = setTimeout(() => {
        socket.close();
        closed();
      }, this.timing.connectTimeoutMs);
      socket.onopen = () => {
        clearTimeout(connectTimer);
        if (this.socket !== socket) return;
        this.state = "open";
        this.failed = false;
        for (const member of [...this.members.values()]) member.linkOpen();
      };
      socket.onmessage = (event) => {
        if (this.socket === socket) this.onMessage(event.data);
      };
      // Browsers follow `error` with `close`; Node 20's WebSocket (undici before
      // nodejs/undici#3506) fires only `error` after a failed connection and stays
      // CONNECTING, which would leave the link down for good. So `error` also closes,
      // after a grace in which a real `close` may come first (`closed` runs once).
      socket.onerror = () => {
        setTimeout(() => {
          if (this.socket !== socket) return;
          try {
            socket.close();
          } catch {
            // Already closing: `closed` below is all that is left to do.
          }
          closed();
        }, ERROR_CLOSE_GRACE_MS);
      };
      socket.onclose = closed;
    });
  }

  /** @param {boolean} wasLive */
  down(wasLive) {
    this.state = "down";
    this.failed = !wasLive;
    for (const waiter of this.pushes.values()) waiter.reject(new OfflineError("the connection closed"));
    this.pushes.clear();
    if (this.stopped) return;
    for (const member of [...this.members.values()]) member.linkDown(!wasLive);
  }

  /** @param {unknown} data a frame's payload */
  onMessage(data) {
    /** @type {unknown} */
    let message;
    try {
      if (typeof data === "string") {
        // We only send binary frames, so the server answers in binary; a text frame can
        // only be an error it could not tie to one of ours. Values never come this way.
        message = JSON.parse(data);
        if (!isRecord(message) || message.type !== "error") throw new ProtocolError(`unexpected text frame of type ${isRecord(message) ? message.type : typeof message}`);
      } else {
        message = decodeMessage(new Uint8Array(/** @type {ArrayBuffer} */ (data)));
      }
      if (!isRecord(message)) throw new ProtocolError("a frame that is not a map");
    } catch (error) {
      // The server said something we cannot read: start again on a new connection.
      const info = errorInfo(error instanceof ProtocolError ? error : new ProtocolError(`undecodable frame: ${messageOf(error)}`));
      for (const member of this.members.values()) member.linkError(info);
      this.drop();
      return;
    }
    if (message.id !== undefined && (message.type === "pushed" || message.type === "error")) {
      // An answer to a push; one whose caller gave up waiting is dropped.
      const waiter = this.pushes.get(message.id);
      this.pushes.delete(message.id);
      if (message.type === "pushed") waiter?.resolve(message);
      else waiter?.reject(new ServerError(String(message.error), String(message.message)));
      return;
    }
    const member = typeof message.group === "string" ? this.members.get(message.group) : undefined;
    if (member) {
      member.linkFrame(message);
    } else if (message.type === "error" && message.group === undefined) {
      // About no group of ours: a problem of the connection, shown everywhere.
      const info = { code: String(message.error), message: String(message.message) };
      for (const each of this.members.values()) each.linkError(info);
    }
    // Anything else names a group that left, or is a frame type of a later protocol version.
  }

}
