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
        self.to_datetime()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
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
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
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
