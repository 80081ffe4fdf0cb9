/**
 * Instants: {@link Inst}, a UTC instant with nanosecond precision in the protocol's range
 * (years 0001 to 9999), and {@link inst}, which makes one from a `Date`, RFC 3339 text or
 * seconds and nanoseconds. The calendar arithmetic is our own (proleptic Gregorian, UTC),
 * because `Date` stops at milliseconds and its parser accepts more than RFC 3339.
 *
 * @module atomsync/inst
 */

const SECS_PER_DAY = 86400;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the protocol's instant range. */
export const MIN_SECS = -62135596800;
export const MAX_SECS = 253402300799;

/** A UTC instant with nanosecond precision, years 0001 to 9999. Create with {@link inst}. */
export class Inst {
  /**
   * @param {number} secs whole seconds since 1970-01-01T00:00:00Z (negative before)
   * @param {number} nanos 0 to 999999999
   */
  constructor(secs, nanos) {
    if (!Number.isInteger(secs) || secs < MIN_SECS || secs > MAX_SECS) throw new RangeError(`instant seconds ${secs} outside years 0001 to 9999`);
    if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999999999) throw new RangeError(`instant nanoseconds ${nanos} outside 0..999999999`);
    /** @type {number} */
    this.secs = secs;
    /** @type {number} */
    this.nanos = nanos;
    Object.freeze(this);
  }
  /** A `Date` (millisecond precision: the nanoseconds below a millisecond are dropped). */
  toDate() {
    return new Date(this.secs * 1000 + Math.floor(this.nanos / 1e6));
  }
  /** Nanoseconds since the Unix epoch, exactly. @returns {bigint} */
  get epochNanos() {
    return BigInt(this.secs) * 1000000000n + BigInt(this.nanos);
  }
  /** RFC 3339 as the server writes it: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, no trailing zeros. */
  toString() {
    const days = Math.floor(this.secs / SECS_PER_DAY);
    const secOfDay = this.secs - days * SECS_PER_DAY;
    const [year, month, day] = civilFromDays(days);
    /** @type {(n: number, width: number) => string} */
    const pad = (n, width) => String(n).padStart(width, "0");
    let text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(Math.floor(secOfDay / 3600), 2)}:${pad(Math.floor(secOfDay / 60) % 60, 2)}:${pad(secOfDay % 60, 2)}`;
    if (this.nanos) text += "." + pad(this.nanos, 9).replace(/0+$/, "");
    return text + "Z";
  }
  toJSON() {
    return { $inst: this.toString() };
  }
}

/**
 * An instant: now (no argument), from a `Date`, from RFC 3339 text (any offset, up to 9
 * fraction digits), or from whole seconds and nanoseconds since the Unix epoch.
 * @param {Date | string | number} [from]
 * @param {number} [nanos]
 * @returns {Inst}
 */
export function inst(from, nanos = 0) {
  if (from === undefined) from = new Date();
  if (from instanceof Date) {
    const ms = from.getTime();
    if (Number.isNaN(ms)) throw new RangeError("invalid Date");
    const secs = Math.floor(ms / 1000);
    return new Inst(secs, (ms - secs * 1000) * 1e6);
  }
  if (typeof from === "number") return new Inst(from, nanos);
  if (typeof from === "string") return parseRfc3339(from);
  throw new TypeError("inst() takes a Date, an RFC 3339 string, or seconds and nanoseconds");
}

/** @param {string} text @returns {Inst} */
function parseRfc3339(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(text);
  if (!match) throw new RangeError(`instant ${JSON.stringify(text)}: not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), at most 9 fraction digits)`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number);
  const daysInMonth = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (!daysInMonth || day < 1 || day > daysInMonth) throw new RangeError(`instant ${JSON.stringify(text)}: no such date`);
  if (hour > 23 || minute > 59 || second > 59) throw new RangeError(`instant ${JSON.stringify(text)}: no such time of day`);
  const offHour = Number(match[10] ?? 0);
  const offMinute = Number(match[11] ?? 0);
  if (offHour > 23 || offMinute > 59) throw new RangeError(`instant ${JSON.stringify(text)}: offset out of range`);
  const offset = (match[9] === "-" ? -1 : 1) * (offHour * 3600 + offMinute * 60);
  const secs = daysFromCivil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset;
  const nanos = match[7] ? Number(match[7].padEnd(9, "0")) : 0;
  if (secs < MIN_SECS || secs > MAX_SECS) throw new RangeError(`instant ${JSON.stringify(text)}: outside years 0001 to 9999`);
  return new Inst(secs, nanos);
}

/** @param {number} year */
function isLeap(year) {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

/**
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
 * @param {number} year @param {number} month @param {number} day
 */
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/**
 * The inverse of {@link daysFromCivil}: `[year, month, day]`.
 * @param {number} days
 * @returns {[number, number, number]}
 */
function civilFromDays(days) {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}
