//! A string that must never be printed: API keys and SMTP passwords in the configuration,
//! passwords and tokens in requests.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret. `Debug`, `Display`-less and `Serialize` all redact it; the value is reachable
/// only through [`Secret::expose`], so a log line, a `{:?}` of a request or a `persona admin
/// config show` cannot leak it by accident.
#[derive(Clone, PartialEq, Eq, utoipa::ToSchema)]
#[schema(value_type = String)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts numbers and booleans as well as strings: an environment variable such as
    /// `PERSONA_SMTP__PASSWORD=12345678` arrives typed as a number, yet it is a password.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_never_show_the_value() {
        let secret = Secret::new("sk-or-v1-abcdef");
        assert!(!format!("{secret:?}").contains("abcdef"));
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            "\"[redacted]\"".to_string()
        );
        assert_eq!(secret.expose(), "sk-or-v1-abcdef");
    }

    #[test]
    fn numbers_are_read_as_strings() {
        let secret: Secret = serde_json::from_str("12345678").unwrap();
        assert_eq!(secret.expose(), "12345678");
    }
}
