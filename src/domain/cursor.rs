//! Keyset cursors (SPEC section 2's opaque `cursor` / `nextCursor`). A cursor carries the
//! sort key of the last item of a page — one key (`created_at`) or several (`(updated_at,
//! id)`, `(rank, rowid)`) — so the next page starts after it, stable while rows are added.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

/// Encodes and decodes cursors: URL-safe base64 of the key as compact JSON. Opaque to
/// clients; a cursor not made by us decodes to `None`.
pub struct Cursor;

impl Cursor {
    pub fn encode<K: Serialize>(key: &K) -> String {
        // Keys are tuples of numbers and strings, which always serialize.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
    }

    pub fn decode<K: DeserializeOwned>(cursor: &str) -> Option<K> {
        if cursor.len() > 1024 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_several_parts_round_trip() {
        let cursor = Cursor::encode(&(1_700_000_000_i64, "0b7c".to_owned()));
        assert_eq!(
            Cursor::decode::<(i64, String)>(&cursor),
            Some((1_700_000_000, "0b7c".to_owned()))
        );
        let ranked = Cursor::encode(&(-3.25_f64, 17_i64));
        assert_eq!(Cursor::decode::<(f64, i64)>(&ranked), Some((-3.25, 17)));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        assert_eq!(Cursor::decode::<(i64,)>("not a cursor"), None);
        assert_eq!(
            Cursor::decode::<(i64, String)>(&Cursor::encode(&(1,))),
            None
        );
        assert_eq!(Cursor::decode::<(i64,)>(&"A".repeat(5000)), None);
    }
}
