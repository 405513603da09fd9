//! Accounts and sessions, SPEC section 3: `/api/v1/auth/*`.
//!
//! A login opens a session; its refresh token is rotated on every use and a reused one ends
//! the session. Logout, revocation, a password change or reset end sessions at once. Unknown
//! emails and wrong passwords look the same from outside, in answer and in time. Users and
//! sessions are `auth`'s tables; this feature owns the flows and the single-use tokens.

mod handlers;
mod service;
mod store;
mod tokens;
mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use service::{
    AdminChange, IssuedReset, change_account, create_user, find_by_email, issue_reset,
    start_session,
};
pub use store::Purpose;
pub use tokens::issue_user_token;
pub use types::{Password, User};

use crate::{
    app::{AppState, Feature, Init},
    config::Config,
    http::{ApiRouter, rate_limit},
};

pub struct Accounts;

impl Feature for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn routes(&self, config: &Config) -> ApiRouter {
        // Guessing surfaces get the stricter per-IP login limit on top of the general one.
        let guarded = OpenApiRouter::new()
            .routes(routes!(handlers::login))
            .routes(routes!(handlers::register))
            .routes(routes!(handlers::forgot_password))
            .routes(routes!(handlers::reset_password))
            .routes(routes!(handlers::verify_email))
            .layer(rate_limit::login_layer(config));
        OpenApiRouter::new()
            .merge(guarded)
            .routes(routes!(handlers::refresh))
            .routes(routes!(handlers::logout))
            .routes(routes!(handlers::logout_all))
            .routes(routes!(handlers::me))
            .routes(routes!(handlers::profile, handlers::update_profile))
            .routes(routes!(handlers::verify))
            .routes(routes!(handlers::change_password))
            .routes(routes!(handlers::resend_verification))
            .routes(routes!(handlers::sessions))
            .routes(routes!(handlers::revoke_session))
    }

    /// Emails stored before NFC normalisation get their normal form (once per database).
    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        service::normalize_stored_emails(init.db)
    }

    /// Spent and expired single-use tokens are deleted hourly.
    fn start(&self, app: &AppState) {
        app.prune_every("single-use tokens", store::prune);
    }
}
