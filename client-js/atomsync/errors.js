/**
 * The errors of the sync layer, by who is at fault: the server said no
 * ({@link ServerError}, public), the server said something we cannot make sense of
 * ({@link ProtocolError}), or the network is not there ({@link OfflineError}, which is
 * not worth showing); and {@link errorInfo}, what of an error the status shows.
 *
 * @module atomsync/errors
 */

import { messageOf } from "./values.js";

export { messageOf };

/** An error answer of the server: `{error, message}`. */
export class ServerError extends Error {
  /** @param {string} code @param {string} message @param {number} [status] HTTP status */
  constructor(code, message, status) {
    super(`${code}: ${message}`);
    this.name = "ServerError";
    /** The protocol's error code (`forbidden`, `bad_request`, ...). @type {string} */
    this.code = code;
    /** @type {number | undefined} */
    this.status = status;
  }
}

/** The server said something this client cannot make sense of. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The network is not there (refused, timed out, closed): not an error worth showing. */
export class OfflineError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "OfflineError";
  }
}

/**
 * `{code, message}` for the status, or null for plain unreachability.
 * @param {unknown} error
 * @returns {{code: string, message: string} | null}
 */
export function errorInfo(error) {
  if (error instanceof OfflineError) return null;
  if (error instanceof ServerError) return { code: error.code, message: error.message };
  return { code: "client", message: messageOf(error) };
}

/**
 * Reports an error that has no caller to reject (a watcher threw, a background failure).
 * @param {unknown} error
 */
export function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}
