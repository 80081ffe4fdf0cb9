/**
 * The timing of the network sessions: {@link DEFAULT_TIMING} (every field can be
 * overridden in `open(name, {timing})`), {@link backoff} between failed attempts, and
 * {@link Nap}, a wait that an event (the browser coming back online, a local write) can
 * cut short.
 *
 * @module atomsync/timing
 */

/**
 * Timing of the network sessions. Reconnects wait a random time between half and all of
 * `min(backoffMaxMs, backoffBaseMs * 2^attempt)`.
 */
export const DEFAULT_TIMING = Object.freeze({
  backoffBaseMs: 500,
  backoffMaxMs: 15000,
  /** How often to pull while syncing over HTTP because the WebSocket cannot be opened. */
  httpPollMs: 2000,
  /** How long a WebSocket may take to open; also how long a follower tab waits to hear from the tab that syncs. */
  connectTimeoutMs: 10000,
  /** How long an HTTP request may take; also how long a catch-up may go without a frame. */
  requestTimeoutMs: 20000,
  pushTimeoutMs: 30000,
});

/** @typedef {{ -readonly [K in keyof typeof DEFAULT_TIMING]: number }} Timing */

/**
 * How long to wait before attempt `attempt` (0-based) after a failure: a random time
 * between half and all of `min(backoffMaxMs, backoffBaseMs * 2^attempt)`. The randomness
 * keeps many clients from reconnecting in lockstep after a server restart, the half
 * floor keeps one client from retrying in a tight loop.
 * @param {Timing} timing @param {number} attempt
 */
export function backoff(timing, attempt) {
  const cap = Math.min(timing.backoffMaxMs, timing.backoffBaseMs * 2 ** Math.min(attempt, 30));
  return cap / 2 + Math.random() * (cap / 2);
}

/** A wait that {@link Nap#wake} ends early; one at a time. */
export class Nap {
  /** @type {(() => void) | null} */
  #wake = null;

  /** @param {number} ms @returns {Promise<void>} */
  sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Ends the current wait, if any. */
  wake() {
    this.#wake?.();
  }
}
