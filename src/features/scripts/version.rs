//! Script versions as the original app writes them: strings such as `"1.0.0"`, `"2"` or
//! `"2025.07"` (1..20 characters of `[0-9A-Za-z.+-]`). The newest of a name is the highest
//! by semantic-version precedence when every version parses as dotted numbers, else the
//! latest created; a version left out on create is the newest bumped by one in its last
//! numeric part (`"1.0.0"` → `"1.0.1"`, `"2025.07"` → `"2025.08"`).

use std::{cmp::Ordering, fmt};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Hash, ToSchema)]
#[schema(value_type = String, example = "1.0.0")]
pub struct Version(String);

impl Version {
    pub fn parse(input: &str) -> Result<Version, String> {
        let ok = (1..=20).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
        if ok {
            Ok(Version(input.to_owned()))
        } else {
            Err("must be 1 to 20 characters of 0-9, A-Z, a-z, '.', '+' or '-'".to_owned())
        }
    }

    /// The first version of a new name.
    pub fn first() -> Version {
        Version("1".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Dotted numbers (`1.0.10` → `[1, 0, 10]`), or `None`.
    fn numbers(&self) -> Option<Vec<u64>> {
        self.0
            .split('.')
            .map(|part| part.parse::<u64>().ok())
            .collect()
    }

    /// The next version: the last run of digits plus one, its width kept (`"07"` →
    /// `"08"`); `Err` when there are no digits to bump.
    pub fn bump(&self) -> Result<Version, String> {
        let bytes = self.0.as_bytes();
        let end = bytes
            .iter()
            .rposition(u8::is_ascii_digit)
            .ok_or_else(|| format!("{} has no number to bump; give a version", self.0))?
            + 1;
        let start = bytes[..end]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let digits = &self.0[start..end];
        let next = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| format!("{} cannot be bumped; give a version", self.0))?;
        let next = format!("{next:0width$}", width = digits.len());
        Version::parse(&format!("{}{next}{}", &self.0[..start], &self.0[end..]))
    }
}

/// The newest of `versions` (each with its creation order): by dotted-number precedence when
/// all parse that way, else the last created.
pub fn newest<'a, K: Ord>(
    versions: impl IntoIterator<Item = (&'a Version, K)>,
) -> Option<&'a Version> {
    let versions: Vec<(&Version, K)> = versions.into_iter().collect();
    let numbers: Option<Vec<Vec<u64>>> = versions.iter().map(|(v, _)| v.numbers()).collect();
    match numbers {
        Some(numbers) => versions
            .iter()
            .zip(numbers)
            .max_by(|(_, a), (_, b)| compare(a, b))
            .map(|((v, _), _)| *v),
        None => versions
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1))
            .map(|(v, _)| v),
    }
}

/// Semantic-version precedence of dotted numbers: part by part, missing parts are zero.
fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    /// A string; a whole number (the integer versions of older exports and clients) is read
    /// as its decimal string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(n) => n.to_string(),
        };
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl rusqlite::types::ToSql for Version {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for Version {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(Version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn bumps_keep_the_shape() {
        assert_eq!(v("1.0.0").bump().unwrap(), v("1.0.1"));
        assert_eq!(v("2025.07").bump().unwrap(), v("2025.08"));
        assert_eq!(v("2").bump().unwrap(), v("3"));
        assert_eq!(v("1.9").bump().unwrap(), v("1.10"));
        assert_eq!(v("2.0-beta3").bump().unwrap(), v("2.0-beta4"));
        assert!(v("beta").bump().is_err());
    }

    #[test]
    fn the_newest_is_by_precedence_or_else_by_creation() {
        let (a, b, c) = (v("1.10.0"), v("1.9.3"), v("1.2"));
        assert_eq!(newest([(&a, 1), (&b, 2), (&c, 3)]), Some(&a));
        let (x, y) = (v("2"), v("1.0.1"));
        assert_eq!(newest([(&x, 1), (&y, 2)]), Some(&x));
        let (p, q) = (v("1.0"), v("beta"));
        assert_eq!(newest([(&q, 1), (&p, 2)]), Some(&p), "latest created");
        assert_eq!(newest::<i32>([]), None);
    }

    #[test]
    fn strings_and_legacy_numbers_are_read() {
        assert_eq!(
            serde_json::from_str::<Version>("\"1.0.0\"").unwrap(),
            v("1.0.0")
        );
        assert_eq!(serde_json::from_str::<Version>("2").unwrap(), v("2"));
        assert!(serde_json::from_str::<Version>("\"a b\"").is_err());
        assert!(serde_json::from_str::<Version>(&format!("\"{}\"", "1".repeat(21))).is_err());
        assert_eq!(serde_json::to_string(&v("2025.07")).unwrap(), "\"2025.07\"");
    }
}
