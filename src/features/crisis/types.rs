//! Shapes of `/crisis`, and the rules for their fields.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::resources::Resource;
use crate::domain::{CrisisLevel, Email, Timestamp};

/// The most text `/crisis/check` reads (bytes).
pub const MAX_CHECK_TEXT: usize = 16 * 1024;
/// At most this many emergency contacts per user.
pub const MAX_CONTACTS: usize = 10;
/// The most an SOS message may hold (characters).
pub const MAX_ALERT_MESSAGE: usize = 2000;

/// Where a crisis event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Chat,
    Analyze,
    Check,
    Alert,
    /// An automatic notification after a detected `high` (`crisis.auto_notify`).
    Auto,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Chat => "chat",
            Source::Analyze => "analyze",
            Source::Check => "check",
            Source::Alert => "alert",
            Source::Auto => "auto",
        }
    }

    pub fn parse(text: &str) -> Source {
        match text {
            "chat" => Source::Chat,
            "analyze" => Source::Analyze,
            "alert" => Source::Alert,
            "auto" => Source::Auto,
            _ => Source::Check,
        }
    }
}

/// What answers carry at or above `crisis.resource_level`: the level and where to get help.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CrisisFlag {
    pub level: CrisisLevel,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// 1 to 16 KiB of text; never stored.
    pub text: String,
    /// A BCP 47 tag for the resources (else `Accept-Language`).
    pub locale: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub level: CrisisLevel,
    /// What the detector found, most severe first (`plan`, `means`, `passive_ideation`,
    /// `distress`, …).
    pub categories: Vec<String>,
    /// Present at or above `crisis.resource_level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Resource>>,
}

pub fn parse_check_text(text: &str) -> Result<&str, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > MAX_CHECK_TEXT {
        return Err(format!("must be at most {MAX_CHECK_TEXT} bytes"));
    }
    Ok(text)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactRequest {
    pub name: String,
    pub relationship: Option<String>,
    /// E.164, e.g. `+6281234567890`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Whether this contact is told about SOS alerts and automatic notifications.
    #[serde(default)]
    pub notify_on_crisis: bool,
}

/// A contact as validated.
pub struct NewContact {
    pub name: String,
    pub relationship: Option<String>,
    pub phone: Option<String>,
    pub email: Option<Email>,
    pub notify_on_crisis: bool,
}

/// `+` and 8 to 15 digits, the first not 0 (E.164); spaces, dashes and dots are dropped.
pub fn parse_phone(input: &str) -> Result<String, String> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(compact)
    } else {
        Err("must be an international number in E.164 form, e.g. +6281234567890".to_owned())
    }
}

/// 1 to `max` characters after trimming, no control characters.
pub fn parse_text(input: &str, max: usize) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(text.to_owned())
}

impl ContactRequest {
    /// The contact, or every field error.
    pub fn parse(self) -> crate::error::AppResult<NewContact> {
        let mut invalid = crate::error::Invalid::default();
        let name = invalid.take("name", parse_text(&self.name, 100));
        let relationship = invalid.take(
            "relationship",
            self.relationship
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .map(|r| parse_text(r, 50))
                .transpose(),
        );
        let phone = invalid.take(
            "phone",
            self.phone
                .as_deref()
                .filter(|p| !p.trim().is_empty())
                .map(parse_phone)
                .transpose(),
        );
        let email = invalid.take(
            "email",
            self.email
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map(Email::parse)
                .transpose(),
        );
        if matches!((&phone, &email), (Some(None), Some(None))) {
            invalid.add("phone", "a phone or an email is required");
        }
        invalid.finish()?;
        match (name, relationship, phone, email) {
            (Some(name), Some(relationship), Some(phone), Some(email)) => Ok(NewContact {
                name,
                relationship,
                phone,
                email,
                notify_on_crisis: self.notify_on_crisis,
            }),
            _ => Err(crate::error::ApiError::invalid_field("body", "is invalid")),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub relationship: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notify_on_crisis: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactList {
    pub items: Vec<Contact>,
    /// Always `null`: a user has at most 10 contacts.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    /// A few words for the contacts (sent only where the server allows it; never logged).
    pub message: Option<String>,
}

/// What happened to one notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notified {
    /// `email` or `webhook`.
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// `pending`, `sent`, `failed`, `cooldown` or `skipped`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertResponse {
    pub event_id: String,
    pub notified: Vec<Notified>,
    pub resources: Vec<Resource>,
}

/// One notification with its delivery record.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub level: CrisisLevel,
    pub source: Source,
    pub created_at: Timestamp,
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocaleQuery {
    /// A BCP 47 tag such as `id-ID`; else `Accept-Language`; else international.
    pub locale: Option<String>,
}

/// A notification that failed for good, or failed and waits for another attempt (the admin
/// console's report): what happened to it, never its message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedDelivery {
    pub id: i64,
    pub event_id: String,
    pub level: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// `failed` (given up) or `pending` (another attempt is due).
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert_eq!(parse_phone("+62 812-3456-7890").unwrap(), "+6281234567890");
        assert_eq!(parse_phone("+44 116 123 4567").unwrap(), "+441161234567");
        for bad in [
            "081234567",
            "+0812345678",
            "+12",
            "+62abc45678",
            "",
            "+1234567890123456",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_contact_needs_a_phone_or_an_email() {
        let request = |phone: Option<&str>, email: Option<&str>| ContactRequest {
            name: "Mum".into(),
            relationship: None,
            phone: phone.map(Into::into),
            email: email.map(Into::into),
            notify_on_crisis: true,
        };
        assert!(request(None, None).parse().is_err());
        assert!(request(Some("+6281234567890"), None).parse().is_ok());
        assert!(request(None, Some("mum@example.com")).parse().is_ok());
        assert!(request(Some("12"), Some("x")).parse().is_err());
    }

    #[test]
    fn check_text_is_one_byte_to_16_kib() {
        assert!(parse_check_text("  ").is_err());
        assert!(parse_check_text("hi").is_ok());
        assert!(parse_check_text(&"a".repeat(MAX_CHECK_TEXT + 1)).is_err());
    }
}
