//! What the admin API answers: the console's data, never a secret, a password hash or the
//! text of a message.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::UserRow,
    domain::Timestamp,
    error::{ApiError, AppResult},
    features::{
        accounts::User,
        ai::{AiHealth, UsageSum},
        crisis::FailedDelivery,
    },
};

/// The server at a glance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// `ok` when the database answers, else `unavailable`.
    pub database: &'static str,
    pub ai: AiHealth,
    pub users: UserCounts,
    /// Requests this server answered in the last 60 seconds.
    pub requests_last_minute: u64,
    /// AI calls and tokens since midnight UTC.
    pub ai_today: UsageTotals,
    /// Crisis events since midnight UTC (counts only).
    pub crisis_events_today: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    pub total: i64,
    pub admins: i64,
    pub disabled: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    pub requests: i64,
    pub total_tokens: i64,
}

/// An account as the admin sees it: the user's own view of it, and whether it is disabled
/// (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(flatten)]
    pub user: User,
    pub disabled: bool,
}

impl From<UserRow> for Account {
    fn from(row: UserRow) -> Self {
        Account {
            user: User::from(&row),
            disabled: row.disabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountList {
    pub items: Vec<Account>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Part of an email or display name (any case); all accounts when absent.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A single-use password reset token for an account, for servers without mail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetToken {
    pub token: String,
    pub expires_at: Timestamp,
    /// The reset link, when mail is set up (`smtp.host` and `smtp.public_url`).
    pub link: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// How many days back, today included (1–366, default 30).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

impl DaysQuery {
    /// The first second counted: midnight UTC `days - 1` days ago; 422 out of range.
    pub fn since(&self) -> AppResult<Timestamp> {
        let days = match self.days {
            None => 30,
            Some(n @ 1..=366) => n,
            Some(_) => return Err(ApiError::invalid_field("days", "must be from 1 to 366")),
        };
        Ok(Timestamp::now()
            .start_of_day()
            .plus_secs(-(i64::from(days) - 1) * 86_400))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub since: Timestamp,
    /// `key` is the day (`YYYY-MM-DD`, UTC).
    pub by_day: Vec<UsageSum>,
    /// `key` is the user's email.
    pub by_user: Vec<UsageSum>,
}

/// Every version of one script.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptVersions {
    pub name: String,
    /// The active version, if any.
    pub active: Option<String>,
    pub versions: Vec<ScriptVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptVersion {
    pub version: String,
    pub description: String,
    pub active: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptCatalog {
    pub items: Vec<ScriptVersions>,
}

/// Crisis events of one day, level and source: a count, never text.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrisisDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub level: String,
    pub source: String,
    pub events: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrisisReport {
    pub since: Timestamp,
    pub by_day: Vec<CrisisDay>,
    /// The latest 50.
    pub failed_deliveries: Vec<FailedDelivery>,
}
