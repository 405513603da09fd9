//! Single-use tokens (password reset, email verification): issuing, mailing and using
//! them. Each is valid for 30 minutes and works once.

use super::{
    service::set_password,
    store::{self, Purpose},
    types::Password,
};
use crate::{
    app::App,
    auth::{self, UserRow, users},
    domain::{Email, Timestamp},
    error::{ApiError, AppResult, Code},
    notify::templates,
};

/// Single-use tokens (reset, verification) live this long.
pub const USER_TOKEN_TTL_SECS: i64 = 30 * 60;

/// Sets a new password with a reset token; every session ends.
pub async fn reset_password(app: &App, token: &str, password: Password) -> AppResult<()> {
    let user_id = consume_user_token(app, token, Purpose::ResetPassword)
        .await?
        .ok_or_else(invalid_token)?;
    set_password(app, &user_id, password, None).await
}

/// Marks the email verified with a mailed token.
pub async fn verify_email(app: &App, token: &str) -> AppResult<UserRow> {
    let user_id = consume_user_token(app, token, Purpose::VerifyEmail)
        .await?
        .ok_or_else(invalid_token)?;
    let row = app
        .db
        .write(move |tx| {
            users::set_email_verified(tx, &user_id, Timestamp::now())?;
            users::user_by_id(tx, &user_id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    app.auth.forget_user(&row.id);
    Ok(row)
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized {
        code: Code::InvalidToken,
        message: "The token is unknown, already used or expired.".into(),
    }
}

/// Issues a single-use token for `user_id`; returns the token to mail or print.
pub async fn issue_user_token(app: &App, user_id: &str, purpose: Purpose) -> AppResult<String> {
    let (token, hash) = auth::new_opaque_token()?;
    let id = user_id.to_owned();
    app.db
        .write(move |tx| {
            let now = Timestamp::now();
            store::create_user_token(
                tx,
                &id,
                purpose,
                &hash,
                now,
                now.plus_secs(USER_TOKEN_TTL_SECS),
            )
        })
        .await?;
    Ok(token)
}

/// Uses up a single-use token; `None` when it is unknown, used or expired.
async fn consume_user_token(app: &App, token: &str, purpose: Purpose) -> AppResult<Option<String>> {
    let hash = auth::hash_opaque_token(token);
    app.db
        .write(move |tx| store::consume_user_token(tx, purpose, &hash, Timestamp::now()))
        .await
}

/// Mails a reset token if `email` has an active account and mail is configured; otherwise
/// does nothing (the caller answers 202 either way, and the admin can issue a token with
/// `persona admin user reset-password`).
pub async fn send_password_reset(app: &App, email: &Email) -> AppResult<()> {
    if !app.notify.can_mail() {
        tracing::info!(
            "password reset requested, but SMTP is not configured; an admin can run `persona admin user reset-password`"
        );
        return Ok(());
    }
    let lookup = email.as_str().to_owned();
    let user = app
        .db
        .read(move |conn| users::user_by_email(conn, &lookup))
        .await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(());
    };
    let token = issue_user_token(app, &user.id, Purpose::ResetPassword).await?;
    let link = app.notify.link("/reset-password", &token);
    let mail = templates::password_reset(&user.email, &token, link.as_deref());
    app.notify.mail(mail).await.map_err(ApiError::internal)?;
    Ok(())
}

/// Mails a verification token when mail is configured.
pub async fn send_verification(app: &App, user: &UserRow) -> AppResult<()> {
    if !app.notify.can_mail() {
        return Ok(());
    }
    let token = issue_user_token(app, &user.id, Purpose::VerifyEmail).await?;
    let link = app.notify.link("/verify-email", &token);
    let mail = templates::email_verification(&user.email, &token, link.as_deref());
    app.notify.mail(mail).await.map_err(ApiError::internal)?;
    Ok(())
}
