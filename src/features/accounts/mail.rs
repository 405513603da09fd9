//! The two mails of the accounts feature: password reset and email verification. Each holds
//! a single-use token valid for 30 minutes.

use super::{
    service,
    store::{self, Purpose, UserRow},
};
use crate::{app::App, error::AppResult};

/// Mails a reset token if `email` has an account and SMTP is configured; otherwise does
/// nothing (the caller answers 202 either way, and the admin can issue a token with
/// `persona admin user reset-password`).
pub async fn send_password_reset(app: &App, email: &str) -> AppResult<()> {
    let Some(mailer) = &app.mailer else {
        tracing::info!(
            "password reset requested, but SMTP is not configured; an admin can run `persona admin user reset-password`"
        );
        return Ok(());
    };
    let lookup = email.to_owned();
    let Some(user) = app
        .db
        .read(move |conn| store::user_by_email(conn, &lookup))
        .await?
    else {
        return Ok(());
    };
    if user.disabled {
        return Ok(());
    }
    let token = service::issue_user_token(app, &user.id, Purpose::ResetPassword).await?;
    let link = mailer
        .link("/reset-password", &token)
        .map(|l| format!("\nOr open: {l}\n"))
        .unwrap_or_default();
    let body = format!(
        "Someone asked to reset the password of your Persona account.\n\n\
         Your reset code (valid for 30 minutes, usable once):\n\n{token}\n{link}\n\
         If this was not you, ignore this mail; your password stays as it is.\n"
    );
    mailer
        .send(&user.email, "Reset your Persona password", body)
        .await
        .map_err(crate::error::ApiError::internal)
}

/// Mails a verification token when SMTP is configured.
pub async fn send_verification(app: &App, user: &UserRow) -> AppResult<()> {
    let Some(mailer) = &app.mailer else {
        return Ok(());
    };
    let token = service::issue_user_token(app, &user.id, Purpose::VerifyEmail).await?;
    let link = mailer
        .link("/verify-email", &token)
        .map(|l| format!("\nOr open: {l}\n"))
        .unwrap_or_default();
    let body = format!(
        "Welcome to Persona.\n\nYour email verification code (valid for 30 minutes):\n\n{token}\n{link}"
    );
    mailer
        .send(&user.email, "Confirm your email for Persona", body)
        .await
        .map_err(crate::error::ApiError::internal)
}
