//! Email addresses as accounts, contacts and the CLI take them.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A trimmed, NFC-normalised, lower-cased, plausible email address (at most 254 bytes).
/// Normalising first makes look-alikes one address: `josé` typed with a precomposed `é` or
/// with `e` + a combining accent is the same account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The longest address accepted, in bytes (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

impl Email {
    pub fn parse(input: &str) -> Result<Email, String> {
        let invalid = || Err("is not a valid email address".to_owned());
        // Checked before any work on it: a megabyte of "email" costs nothing. The slack over
        // 254 leaves room for surrounding spaces and decomposed accents that NFC shrinks.
        if input.len() > 4 * MAX_EMAIL_BYTES {
            return invalid();
        }
        // NFC before and after lower-casing: lower-casing may leave a composable pair
        // behind, and the stored form must be the one every spelling parses to.
        let email = input
            .trim()
            .nfc()
            .collect::<String>()
            .to_lowercase()
            .nfc()
            .collect::<String>();
        if email.len() > MAX_EMAIL_BYTES
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid();
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return invalid();
        };
        let domain_ok = domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return invalid();
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("  Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@-x.com",
            "ana@x..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(1_000_000))).is_err());
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(190));
        assert_eq!(long.len(), 255);
        assert!(Email::parse(&long).is_err());
        assert!(Email::parse(&long[1..]).is_ok());
    }

    #[test]
    fn look_alike_spellings_parse_to_one_nfc_address() {
        let composed = Email::parse("jos\u{e9}@example.com").unwrap();
        assert_eq!(composed.as_str(), "jos\u{e9}@example.com");
        for spelling in [
            "jose\u{301}@example.com",
            "JOSE\u{301}@Example.com",
            "JOS\u{c9}@EXAMPLE.COM",
        ] {
            assert_eq!(Email::parse(spelling).unwrap(), composed, "{spelling}");
        }
        // Parsing is idempotent: the stored form parses to itself.
        let odd = Email::parse("\u{130}stanbul@example.com").unwrap();
        assert_eq!(Email::parse(odd.as_str()).unwrap(), odd);
    }
}
