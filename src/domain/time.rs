//! Time as the server keeps it: whole seconds, stored in SQLite as Unix seconds (an
//! `INTEGER` column that sorts and compares cheaply), shown in the API as RFC 3339 UTC.

use std::fmt;

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::ToSchema;

/// A point in time at second precision (`2026-12-01T04:44:23Z` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    pub const fn from_unix(secs: i64) -> Timestamp {
        Timestamp(secs)
    }

    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The moment `secs` seconds later (earlier when negative).
    pub const fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs))
    }

    /// Midnight UTC that starts this moment's day.
    pub const fn start_of_day(self) -> Timestamp {
        Timestamp(self.0 - self.0.rem_euclid(86_400))
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC.
    pub fn rfc3339(self) -> String {
        self.rfc3339_text().as_str().to_owned()
    }

    /// RFC 3339 in UTC (`YYYY-MM-DDTHH:MM:SSZ`), written into a fixed buffer: what the `time`
    /// crate's `Rfc3339` writes for a whole second in UTC, without its general formatter and
    /// the `String` it returns (every JSON answer with a date paid both, per date). Years
    /// outside RFC 3339's 0000–9999 give the epoch, as that formatter's error did.
    fn rfc3339_text(self) -> Rfc3339Text {
        const EPOCH: [u8; 20] = *b"1970-01-01T00:00:00Z";
        let t = self.to_datetime();
        let Ok(year) = u32::try_from(t.year()) else {
            return Rfc3339Text(EPOCH);
        };
        if year > 9999 {
            return Rfc3339Text(EPOCH);
        }
        let mut text = EPOCH;
        let mut put = |at: usize, value: u32, width: u32| {
            for i in 0..width {
                text[at + (width - 1 - i) as usize] = b'0' + (value / 10u32.pow(i) % 10) as u8;
            }
        };
        put(0, year, 4);
        put(5, u32::from(u8::from(t.month())), 2);
        put(8, u32::from(t.day()), 2);
        put(11, u32::from(t.hour()), 2);
        put(14, u32::from(t.minute()), 2);
        put(17, u32::from(t.second()), 2);
        Rfc3339Text(text)
    }

    /// Reads RFC 3339 (any offset), dropping sub-second digits.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|_| "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z".to_owned())
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t.unix_timestamp())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339_text().as_str())
    }
}

/// A timestamp's RFC 3339 text (ASCII digits and `-T:Z`).
struct Rfc3339Text([u8; 20]);

impl Rfc3339Text {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rfc3339_text().as_str())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

impl ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0))
    }
}

impl FromSql for Timestamp {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_utc_and_reads_it_back() {
        let t = Timestamp::from_unix(1_764_564_263);
        assert_eq!(t.rfc3339(), "2025-12-01T04:44:23Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2025-12-01T04:44:23Z\""
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2025-12-01T05:44:23+01:00").unwrap(),
            t
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn renders_what_the_time_crate_renders() {
        // Every day boundary and odd second across four centuries, leap days included, and
        // the ends of the range.
        let mut t = Timestamp::parse_rfc3339("1900-01-01T00:00:00Z")
            .unwrap()
            .unix();
        let end = Timestamp::parse_rfc3339("2300-01-01T00:00:00Z")
            .unwrap()
            .unix();
        let mut checked = 0;
        while t < end {
            for secs in [t, t + 86_399, t + 3_661 * (t.rem_euclid(23) + 1)] {
                let expected = OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap()
                    .format(&Rfc3339)
                    .unwrap();
                assert_eq!(Timestamp::from_unix(secs).rfc3339(), expected);
                checked += 1;
            }
            t += 86_400;
        }
        assert!(checked > 400_000);
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            // Outside RFC 3339's years: the epoch, as before.
            (253_402_300_800, "1970-01-01T00:00:00Z"),
            (-62_167_219_201, "1970-01-01T00:00:00Z"),
            (i64::MAX, "1970-01-01T00:00:00Z"),
        ] {
            assert_eq!(Timestamp::from_unix(secs).rfc3339(), text, "{secs}");
        }
    }

    #[test]
    fn days_start_at_midnight_utc() {
        let t = Timestamp::from_unix(86_400 * 3 + 5);
        assert_eq!(t.start_of_day().unix(), 86_400 * 3);
    }

    #[test]
    fn stores_as_unix_seconds() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let t = Timestamp::from_unix(42);
        let back: Timestamp = conn.query_row("SELECT ?1", [t], |r| r.get(0)).unwrap();
        let raw: i64 = conn.query_row("SELECT ?1", [t], |r| r.get(0)).unwrap();
        assert_eq!((back, raw), (t, 42));
    }
}
