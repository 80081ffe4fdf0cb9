//! [`Inst`]: a UTC instant, its range (years 0001 to 9999) and its RFC 3339 text.
//!
//! The civil-date arithmetic is Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (<http://howardhinnant.github.io/date_algorithms.html>), written here so the contract
//! crate needs no date library.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::CodecError;

const SECS_PER_DAY: i64 = 86_400;
const NANOS_PER_SEC: u32 = 1_000_000_000;

/// A UTC instant with nanosecond precision, years 0001 to 9999.
///
/// The fields are public for cheap matching; build one with [`Inst::new`] (or a parse) so
/// that it is in range: an out-of-range instant built by hand still encodes, but no
/// decoder accepts it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Inst {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds within the second, 0..1_000_000_000.
    pub nanos: u32,
}

impl Inst {
    /// `0001-01-01T00:00:00Z` in seconds since the Unix epoch.
    pub const MIN_SECS: i64 = -62_135_596_800;
    /// `9999-12-31T23:59:59Z` in seconds since the Unix epoch.
    pub const MAX_SECS: i64 = 253_402_300_799;
    /// The earliest instant, `0001-01-01T00:00:00Z`.
    pub const MIN: Inst = Inst {
        secs: Inst::MIN_SECS,
        nanos: 0,
    };
    /// The latest instant, `9999-12-31T23:59:59.999999999Z`.
    pub const MAX: Inst = Inst {
        secs: Inst::MAX_SECS,
        nanos: NANOS_PER_SEC - 1,
    };
    /// The Unix epoch, `1970-01-01T00:00:00Z`.
    pub const EPOCH: Inst = Inst { secs: 0, nanos: 0 };

    /// The instant `secs` seconds and `nanos` nanoseconds after the Unix epoch; an error
    /// when `nanos` is 1e9 or more or the instant falls outside years 0001 to 9999.
    pub fn new(secs: i64, nanos: u32) -> Result<Inst, CodecError> {
        if nanos >= NANOS_PER_SEC {
            return Err(CodecError::invalid(format!(
                "instant nanoseconds {nanos} not below 1000000000"
            )));
        }
        if !(Inst::MIN_SECS..=Inst::MAX_SECS).contains(&secs) {
            return Err(CodecError::invalid(format!(
                "instant {secs} s outside years 0001 to 9999"
            )));
        }
        Ok(Inst { secs, nanos })
    }

    /// Whether the instant is one the protocol can carry (years 0001 to 9999, nanos < 1e9).
    pub fn is_valid(&self) -> bool {
        Inst::new(self.secs, self.nanos).is_ok()
    }

    /// The current time (clamped to the representable range).
    pub fn now() -> Inst {
        Inst::from(SystemTime::now())
    }

    /// The same instant as a [`SystemTime`], `None` when the platform's clock type cannot
    /// hold it.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }

    /// The server's form: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, upper-case `T` and `Z`, the
    /// fraction with trailing zeros removed and left out when zero.
    pub fn to_rfc3339(&self) -> String {
        self.to_string()
    }

    /// Reads RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`: `T`/`t`, `Z`/`z` or any
    /// offset (`-00:00` included), a fraction of 1 to 9 digits. A longer fraction is
    /// rejected rather than silently truncated (the protocol's precision is 1 ns), and so
    /// is a leap second (`:60`), which UTC instants here cannot name.
    pub fn parse_rfc3339(text: &str) -> Result<Inst, CodecError> {
        let bad = |what: &str| CodecError::invalid(format!("instant {text:?}: {what}"));
        let mut cur = Cursor {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let year = cur
            .digits(4)
            .ok_or_else(|| bad("expected a 4-digit year"))?;
        let month = cur
            .sep(b'-')
            .and_then(|()| cur.digits(2))
            .ok_or_else(|| bad("expected -MM"))?;
        let day = cur
            .sep(b'-')
            .and_then(|()| cur.digits(2))
            .ok_or_else(|| bad("expected -DD"))?;
        cur.sep(b'T')
            .or_else(|| cur.sep(b't'))
            .ok_or_else(|| bad("expected T"))?;
        let hour = cur.digits(2).ok_or_else(|| bad("expected HH"))?;
        let minute = cur
            .sep(b':')
            .and_then(|()| cur.digits(2))
            .ok_or_else(|| bad("expected :MM"))?;
        let second = cur
            .sep(b':')
            .and_then(|()| cur.digits(2))
            .ok_or_else(|| bad("expected :SS"))?;
        let mut nanos = 0u32;
        if cur.sep(b'.').is_some() {
            let start = cur.pos;
            while cur.peek().is_some_and(|b| b.is_ascii_digit()) {
                let digit = cur.peek().map_or(0, |b| u32::from(b - b'0'));
                if cur.pos - start == 9 {
                    return Err(bad("more than 9 fraction digits"));
                }
                nanos = nanos * 10 + digit;
                cur.pos += 1;
            }
            let len = cur.pos - start;
            if len == 0 {
                return Err(bad("expected fraction digits after '.'"));
            }
            nanos *= 10u32.pow((9 - len) as u32);
        }
        let offset_secs = match cur.peek() {
            Some(b'Z' | b'z') => {
                cur.pos += 1;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                cur.pos += 1;
                let off_hour = cur.digits(2).ok_or_else(|| bad("expected offset HH"))?;
                let off_min = cur
                    .sep(b':')
                    .and_then(|()| cur.digits(2))
                    .ok_or_else(|| bad("expected offset :MM"))?;
                if off_hour > 23 || off_min > 59 {
                    return Err(bad("offset out of range"));
                }
                let secs = off_hour * 3600 + off_min * 60;
                if sign == b'-' { -secs } else { secs }
            }
            _ => return Err(bad("expected Z or an offset")),
        };
        if cur.pos != cur.bytes.len() {
            return Err(bad("unexpected text after the offset"));
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad("no such time of day"));
        }
        let secs =
            days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
                - offset_secs;
        Inst::new(secs, nanos).map_err(|_| bad("outside years 0001 to 9999"))
    }
}

impl fmt::Display for Inst {
    /// The [`Inst::to_rfc3339`] form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(SECS_PER_DAY);
        let in_day = self.secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        if self.nanos != 0 {
            let mut fraction = self.nanos;
            let mut width = 9;
            while fraction.is_multiple_of(10) {
                fraction /= 10;
                width -= 1;
            }
            write!(f, ".{fraction:0width$}")?;
        }
        f.write_str("Z")
    }
}

impl From<SystemTime> for Inst {
    /// Clamps a time outside years 0001 to 9999 to the nearest end of the range.
    fn from(time: SystemTime) -> Inst {
        let inst = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Inst {
                secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
                match before.subsec_nanos() {
                    0 => Inst { secs, nanos: 0 },
                    sub => Inst {
                        secs: secs.saturating_sub(1),
                        nanos: NANOS_PER_SEC - sub,
                    },
                }
            }
        };
        inst.clamp(Inst::MIN, Inst::MAX)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A read position in RFC 3339 text; every read is checked, none can panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn sep(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.pos += 1)
    }

    fn digits(&mut self, count: usize) -> Option<i64> {
        let digits = self.bytes.get(self.pos..self.pos + count)?;
        let mut number = 0i64;
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return None;
            }
            number = number * 10 + i64::from(byte - b'0');
        }
        self.pos += count;
        Some(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_the_whole_range() {
        let first = days_from_civil(1, 1, 1);
        let last = days_from_civil(9999, 12, 31);
        assert_eq!(first * SECS_PER_DAY, Inst::MIN_SECS);
        assert_eq!(last * SECS_PER_DAY + SECS_PER_DAY - 1, Inst::MAX_SECS);
        for days in (first..=last).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn formats_without_trailing_zeros() {
        let at = |secs, nanos| Inst::new(secs, nanos).map(|i| i.to_rfc3339());
        assert_eq!(at(0, 0).as_deref(), Ok("1970-01-01T00:00:00Z"));
        assert_eq!(
            at(1_795_514_400, 123_000_000).as_deref(),
            Ok("2026-11-24T10:00:00.123Z")
        );
        assert_eq!(at(-1, 1).as_deref(), Ok("1969-12-31T23:59:59.000000001Z"));
        assert_eq!(Inst::MIN.to_rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(Inst::MAX.to_rfc3339(), "9999-12-31T23:59:59.999999999Z");
        assert_eq!(
            at(951_782_400, 500_000_000).as_deref(),
            Ok("2000-02-29T00:00:00.5Z")
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let p = |text: &str| Inst::parse_rfc3339(text);
        let want = Inst::new(1_795_514_400, 123_000_000);
        assert_eq!(p("2026-11-24T10:00:00.123Z"), want);
        assert_eq!(p("2026-11-24t10:00:00.123000000z"), want);
        assert_eq!(p("2026-11-24T15:30:00.123+05:30"), want);
        assert_eq!(p("2026-11-24T09:00:00.123-01:00"), want);
        assert_eq!(p("2026-11-24T10:00:00.123-00:00"), want);
        assert_eq!(p("0000-12-31T23:00:00-01:00"), Ok(Inst::MIN));
        assert_eq!(p("9999-12-31T23:59:59.999999999Z"), Ok(Inst::MAX));
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24 10:00:00Z",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T10:00:00.1234567891Z",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T23:59:60Z",
            "2026-11-24T10:00:00+24:00",
            "2026-11-24T10:00:00Zjunk",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "+002-11-24T10:00:00Z",
            "２026-11-24T10:00:00Z",
        ] {
            assert!(p(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn system_time_both_sides_of_the_epoch() {
        for inst in [
            Inst::EPOCH,
            Inst { secs: -5, nanos: 7 },
            Inst {
                secs: 1_795_514_400,
                nanos: 9,
            },
        ] {
            let back = inst.to_system_time().map(Inst::from);
            assert_eq!(back, Some(inst));
        }
        assert!(Inst::now().is_valid());
        assert!(Inst::new(0, 1_000_000_000).is_err());
        assert!(Inst::new(Inst::MAX_SECS + 1, 0).is_err());
        assert!(Inst::new(Inst::MIN_SECS - 1, 999).is_err());
    }
}
