//! Identifiers that come from clients.

use std::fmt;

/// A device's own id (SPEC section 4): 1..128 characters of `[A-Za-z0-9._:-]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(input: &str) -> Result<DeviceId, String> {
        let ok = (1..=128).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(DeviceId(input.to_owned()))
        } else {
            Err("must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server-made id (backups, contacts, events, conversations): a UUID in its canonical
/// lower-case hyphenated form, or `None` for anything else (which callers answer with 404:
/// no such resource can exist).
pub fn parse_uuid(input: &str) -> Option<String> {
    uuid::Uuid::parse_str(input)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert!(DeviceId::parse("phone-1.a:b_c").is_ok());
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse(&"x".repeat(129)).is_err());
        assert!(DeviceId::parse("a/b").is_err());
    }

    #[test]
    fn uuids_are_canonical() {
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(
            parse_uuid(id).as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
        );
        assert_eq!(parse_uuid("nope"), None);
    }
}
