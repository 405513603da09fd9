//! Request and response shapes of `/auth`, and the validated newtypes input is parsed into.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Role, UserRow, sessions::SessionRow},
    domain::{Secret, Timestamp},
};

/// 8 to 1024 characters.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(input: Secret) -> Result<Password, String> {
        let input = input.into_inner();
        let chars = input.chars().count();
        if chars < 8 {
            return Err("must be at least 8 characters".to_owned());
        }
        if chars > 1024 {
            return Err("must be at most 1024 characters".to_owned());
        }
        Ok(Password(input))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// 1 to 100 characters after trimming; empty means "no display name".
pub fn parse_display_name(input: Option<&str>) -> Result<Option<String>, String> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) if name.chars().count() > 100 => {
            Err("must be at most 100 characters".to_owned())
        }
        Some(name) if name.chars().any(char::is_control) => {
            Err("must not contain control characters".to_owned())
        }
        Some(name) => Ok(Some(name.to_owned())),
    }
}

/// 1 to 100 characters; longer names are cut rather than refused (they come from the device).
pub fn parse_device_name(input: Option<&str>) -> Option<String> {
    input
        .map(|n| {
            n.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Secret,
    pub display_name: Option<String>,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    pub email: String,
    pub password: Secret,
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileRequest {
    /// Empty string clears it.
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// Required when changing the email.
    pub current_password: Option<Secret>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: Secret,
    pub new_password: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordRequest {
    pub token: Secret,
    pub new_password: Secret,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyEmailRequest {
    pub token: Secret,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub created_at: Timestamp,
    pub last_sync_at: Option<Timestamp>,
    pub device_count: i64,
}

impl From<&UserRow> for User {
    fn from(row: &UserRow) -> Self {
        User {
            id: row.id.clone(),
            email: row.email.clone(),
            display_name: row.display_name.clone(),
            role: row.role,
            email_verified: row.email_verified,
            created_at: row.created_at,
            last_sync_at: row.last_sync_at,
            device_count: row.device_count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub valid: bool,
    pub user: User,
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub device_name: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    /// The session of the token making this request.
    pub current: bool,
}

impl Session {
    pub fn from_row(row: SessionRow, current_sid: &str) -> Self {
        Session {
            current: row.id == current_sid,
            id: row.id,
            device_name: row.device_name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<Session>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_8_to_1024_characters() {
        let parse = |s: String| Password::parse(Secret::new(s));
        assert!(parse("short".into()).is_err());
        assert!(parse("long enough".into()).is_ok());
        assert!(parse("ü".repeat(1024)).is_ok());
        assert!(parse("x".repeat(1025)).is_err());
        assert!(!format!("{:?}", parse("secret-password".into()).unwrap()).contains("secret"));
    }

    #[test]
    fn requests_never_print_their_secrets() {
        let login: LoginRequest =
            serde_json::from_str(r#"{"email":"a@b.co","password":"hunter2-hunter2"}"#).unwrap();
        assert!(!format!("{login:?}").contains("hunter2"));
        let reset: ResetPasswordRequest =
            serde_json::from_str(r#"{"token":"t0ken-value","newPassword":"n3w-password"}"#)
                .unwrap();
        let shown = format!("{reset:?}");
        assert!(!shown.contains("t0ken") && !shown.contains("n3w"));
    }

    #[test]
    fn display_names() {
        assert_eq!(
            parse_display_name(Some("  Ana ")).unwrap().as_deref(),
            Some("Ana")
        );
        assert_eq!(parse_display_name(Some("")).unwrap(), None);
        assert!(parse_display_name(Some(&"x".repeat(101))).is_err());
    }
}
