//! The account flows behind the handlers: registration, login, refresh, password changes and
//! single-use tokens. Each takes the app, does its argon2 work on the bounded pool and its
//! SQL in one write transaction.

use uuid::Uuid;

use super::{
    store::{self, NewSession, NewUser, Purpose, Refresh, UserRow},
    types::{AuthResponse, Email, Password, User},
};
use crate::{
    app::App,
    auth::{self, Role, password::Verified},
    error::{ApiError, AppResult},
};

/// Single-use tokens (reset, verification) live this long.
pub const USER_TOKEN_TTL_SECS: i64 = 30 * 60;

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "The email or password is wrong.".into(),
    }
}

fn account_disabled() -> ApiError {
    ApiError::Forbidden {
        code: "account_disabled",
        message: "This account is disabled.".into(),
    }
}

/// Creates a user (with the given role) and, for API registrations, a first session.
pub async fn create_user(
    app: &App,
    email: Email,
    password: Password,
    display_name: Option<String>,
    role: Role,
) -> AppResult<UserRow> {
    let hash = app.auth.passwords.hash(password.into_inner()).await?;
    let id = Uuid::new_v4().to_string();
    let email = email.as_str().to_owned();
    app.db
        .write(move |tx| {
            store::insert_user(
                tx,
                &NewUser {
                    id: &id,
                    email: &email,
                    password_hash: &hash,
                    display_name: display_name.as_deref(),
                    role,
                    now: auth::now(),
                },
            )?;
            store::user_by_id(tx, &id)?.ok_or(ApiError::NotFound)
        })
        .await
}

/// Opens a session for `user` and returns the token pair.
pub async fn start_session(
    app: &App,
    user: UserRow,
    device_name: Option<String>,
) -> AppResult<AuthResponse> {
    let (refresh_token, refresh_hash) = auth::new_opaque_token()?;
    let session_id = Uuid::new_v4().to_string();
    let now = auth::now();
    let expires_at = now + app.config.auth.refresh_ttl.as_secs() as i64;
    let (sid, uid) = (session_id.clone(), user.id.clone());
    app.db
        .write(move |tx| {
            store::create_session(
                tx,
                &NewSession {
                    id: &sid,
                    user_id: &uid,
                    device_name: device_name.as_deref(),
                    refresh_hash: &refresh_hash,
                    now,
                    expires_at,
                },
            )
        })
        .await?;
    token_pair(app, &user, &session_id, refresh_token)
}

fn token_pair(
    app: &App,
    user: &UserRow,
    session_id: &str,
    refresh_token: String,
) -> AppResult<AuthResponse> {
    let access_token = app
        .auth
        .jwt()
        .sign(&user.id, session_id, user.role, auth::now() as u64)?;
    Ok(AuthResponse {
        user: User::from(user),
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: app.auth.jwt().ttl().as_secs(),
    })
}

/// Checks email and password. Unknown emails and wrong passwords cost the same argon2 work
/// and get the same answer; the per-account backoff applies to both.
pub async fn check_credentials(app: &App, email: &str, password: String) -> AppResult<UserRow> {
    app.auth.throttle.check(email)?;
    let lookup = email.to_owned();
    let user = app
        .db
        .read(move |conn| store::user_by_email(conn, &lookup))
        .await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = app.auth.passwords.verify(password.clone(), stored).await?;
    let Some(user) = user.filter(|_| verified != Verified::No) else {
        app.auth.throttle.record_failure(email);
        return Err(invalid_credentials());
    };
    app.auth.throttle.record_success(email);
    if user.disabled {
        return Err(account_disabled());
    }
    if verified == Verified::YesButRehash {
        // The configured parameters changed since this hash was made: upgrade it now that we
        // hold the password. A failure here must not fail the login.
        match app.auth.passwords.hash(password).await {
            Ok(hash) => {
                let id = user.id.clone();
                let result = app
                    .db
                    .write(move |tx| store::set_password(tx, &id, &hash, auth::now()))
                    .await;
                if let Err(err) = result {
                    tracing::warn!(error = %err, "could not upgrade a password hash");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not upgrade a password hash"),
        }
    }
    Ok(user)
}

/// Rotates a refresh token (see `store::rotate_refresh_token`).
pub async fn refresh(app: &App, refresh_token: &str) -> AppResult<AuthResponse> {
    let hash = auth::hash_opaque_token(refresh_token);
    let (new_token, new_hash) = auth::new_opaque_token()?;
    let ttl = app.config.auth.refresh_ttl.as_secs() as i64;
    let grace = app.config.auth.refresh_grace.as_secs() as i64;
    let outcome = app
        .db
        .write(move |tx| store::rotate_refresh_token(tx, &hash, &new_hash, auth::now(), ttl, grace))
        .await?;
    match outcome {
        Refresh::Rotated { user, session_id } => token_pair(app, &user, &session_id, new_token),
        Refresh::Reused => {
            app.auth.forget_all_sessions();
            Err(ApiError::Unauthorized {
                code: "token_reused",
                message: "This refresh token was already used; the session has been ended. Sign in again.".into(),
            })
        }
        Refresh::Expired => Err(ApiError::Unauthorized {
            code: "token_expired",
            message: "The refresh token has expired; sign in again.".into(),
        }),
        Refresh::Disabled => Err(account_disabled()),
        Refresh::Invalid => Err(ApiError::Unauthorized {
            code: "unauthorized",
            message: "The refresh token is invalid.".into(),
        }),
    }
}

/// Sets a new password and ends the user's sessions except `keep`.
pub async fn set_password(
    app: &App,
    user_id: &str,
    password: Password,
    keep: Option<String>,
) -> AppResult<()> {
    let hash = app.auth.passwords.hash(password.into_inner()).await?;
    let id = user_id.to_owned();
    app.db
        .write(move |tx| {
            let now = auth::now();
            store::set_password(tx, &id, &hash, now)?;
            store::revoke_user_sessions(tx, &id, keep.as_deref(), "password", now)?;
            Ok(())
        })
        .await?;
    app.auth.forget_all_sessions();
    Ok(())
}

/// Issues a single-use token for `user_id`; returns the token to mail or print.
pub async fn issue_user_token(app: &App, user_id: &str, purpose: Purpose) -> AppResult<String> {
    let (token, hash) = auth::new_opaque_token()?;
    let id = user_id.to_owned();
    app.db
        .write(move |tx| {
            let now = auth::now();
            store::create_user_token(tx, &id, purpose, &hash, now, now + USER_TOKEN_TTL_SECS)
        })
        .await?;
    Ok(token)
}

/// Uses up a single-use token; `None` when it is unknown, used or expired.
pub async fn consume_user_token(
    app: &App,
    token: &str,
    purpose: Purpose,
) -> AppResult<Option<String>> {
    let hash = auth::hash_opaque_token(token);
    app.db
        .write(move |tx| store::consume_user_token(tx, purpose, &hash, auth::now()))
        .await
}
