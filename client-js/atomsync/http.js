/**
 * The server's URLs ({@link endpoints}), and one HTTP request to it in MessagePack
 * (PROTOCOL.md section 4), for the groups that sync over HTTP while the WebSocket cannot
 * be used: the answer decoded with the documents' values kept as the server's bytes, or
 * the right error (the server refused: {@link ServerError}; unreachable:
 * {@link OfflineError}; nonsense: {@link ProtocolError}).
 *
 * @module atomsync/http
 */

import { decodeMessage } from "./decode.js";
import { encode } from "./encode.js";
import { OfflineError, ProtocolError, ServerError, messageOf } from "./errors.js";

/**
 * @param {typeof fetch | null} fetchImpl
 * @param {"GET" | "POST"} method
 * @param {URL} url
 * @param {{token: string | null, timeoutMs: number, body?: unknown}} options `body` is
 *   encoded as MessagePack
 * @returns {Promise<unknown>} the decoded answer
 */
export async function request(fetchImpl, method, url, { token, timeoutMs, body }) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/msgpack" };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/msgpack";
  if (!fetchImpl) throw new OfflineError("no fetch in this environment");
  let response;
  let bytes;
  try {
    response = await fetchImpl(url.href, {
      method,
      headers,
      body: body === undefined ? undefined : encode(body),
      cache: "no-store",
      signal: AbortSignal.timeout(timeoutMs),
    });
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw new OfflineError(`${method} ${url.pathname}: ${messageOf(error)}`);
  }
  const type = response.headers.get("content-type") ?? "";
  /** @type {any} */
  let message;
  try {
    message = type.includes("json") ? JSON.parse(new TextDecoder().decode(bytes)) : decodeMessage(bytes);
  } catch (error) {
    if (!response.ok) throw new ServerError(`http_${response.status}`, response.statusText || "error", response.status);
    throw new ProtocolError(`${method} ${url.pathname}: undecodable answer: ${messageOf(error)}`);
  }
  if (!response.ok) {
    throw new ServerError(String(message?.error ?? `http_${response.status}`), String(message?.message ?? response.statusText), response.status);
  }
  if (type.includes("json")) throw new ProtocolError(`${method} ${url.pathname}: answered JSON to a MessagePack request`);
  return message;
}

/**
 * The HTTP and WebSocket URLs of a server given as either.
 * @param {string | undefined} server
 * @returns {{http: URL, ws: URL}}
 */
export function endpoints(server) {
  const base = globalThis.location?.href;
  if (server === undefined && !base) throw new TypeError("syncedAtom: options.server is required outside a web page");
  const url = new URL(server ?? "/sync/ws", base);
  const secure = url.protocol === "wss:" || url.protocol === "https:";
  if (!["ws:", "wss:", "http:", "https:"].includes(url.protocol)) throw new TypeError(`server URL ${server}: must be ws:, wss:, http: or https:`);
  const root = url.pathname.replace(/\/sync\/ws\/?$|\/sync\/?$|\/$/, "");
  const http = new URL(`${secure ? "https" : "http"}://${url.host}${root}/sync`);
  const ws = new URL(`${secure ? "wss" : "ws"}://${url.host}${root}/sync/ws`);
  return { http, ws };
}
