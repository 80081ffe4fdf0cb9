/**
 * What the MessagePack encoder (`encode.js`) and decoder (`decode.js`) share: the
 * protocol's extension types and limits (PROTOCOL.md section 2), {@link CodecError}, and
 * {@link Raw}, a value kept as the exact bytes the server sent.
 *
 * @module atomsync/codec
 */

export const EXT_INST = -1;
export const EXT_UUID = 1;
export const EXT_KW = 2;
export const EXT_SET = 3;

/** The protocol's default limit on one value's size, in bytes of MessagePack. */
export const MAX_VALUE_BYTES = 1 << 20;
/** The protocol's default limit on one value's nesting (containers on the deepest path). */
export const MAX_DEPTH = 64;

/** A value that cannot be encoded or bytes that cannot be decoded. */
export class CodecError extends Error {
  /**
   * @param {string} message what was wrong and where
   * @param {boolean} [incomplete] the input ended too early (more bytes could fix it)
   */
  constructor(message, incomplete = false) {
    super(message);
    this.name = "CodecError";
    /** @type {boolean} */
    this.incomplete = incomplete;
  }
}

/**
 * Bytes that are already a valid, canonical encoding of one value, written as they are:
 * documents the server sent are stored and pushed back byte for byte.
 */
export class Raw {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    /** @type {Uint8Array} */
    this.bytes = bytes;
  }
}
