//! The account flows behind the handlers (and the CLI): registration, login, refresh,
//! logout, profile and password changes, single-use tokens. Each does its argon2 work on
//! the bounded pool and its SQL in one write transaction; handlers only parse and answer.

use uuid::Uuid;

use super::{
    store::{self, Purpose},
    types::{AuthResponse, Password, User},
};
use crate::{
    app::App,
    auth::{
        self, Role, UserRow,
        password::Verified,
        sessions::{self, NewSession, Refresh, SessionRow},
        users::{self, NewUser},
    },
    db::Db,
    domain::{Email, Secret, Timestamp},
    error::{ApiError, AppResult, Code},
};

/// Once per database, at start: emails stored before they were NFC-normalised get their
/// normal form, so their owners still sign in (login looks up the normal form). Two accounts
/// whose emails normalise to one (a look-alike pair from before) are left as they are and
/// logged by id for the admin.
pub fn normalize_stored_emails(db: &Db) -> anyhow::Result<()> {
    let (changed, clashes) = db.blocking_write(|tx| {
        if store::emails_normalized(tx)? {
            return Ok((0, Vec::new()));
        }
        let (mut changed, mut clashes) = (0, Vec::new());
        for (id, stored) in users::non_ascii_emails(tx)? {
            let Ok(normal) = Email::parse(&stored) else {
                continue;
            };
            if normal.as_str() == stored {
                continue;
            }
            match users::normalize_email(tx, &id, normal.as_str()) {
                Ok(()) => changed += 1,
                Err(ApiError::Conflict { .. }) => clashes.push(id),
                Err(err) => return Err(err),
            }
        }
        store::mark_emails_normalized(tx)?;
        Ok((changed, clashes))
    })?;
    if changed > 0 {
        tracing::info!(accounts = changed, "stored emails brought to Unicode NFC");
    }
    if !clashes.is_empty() {
        tracing::warn!(
            users = ?clashes,
            "these accounts' emails look like another account's once normalised; they keep their stored spelling, which no longer signs in: merge or rename them"
        );
    }
    Ok(())
}

/// Creates a user with the given role.
pub async fn create_user(
    app: &App,
    email: Email,
    password: Password,
    display_name: Option<String>,
    role: Role,
) -> AppResult<UserRow> {
    let hash = app.auth.passwords.hash(password.into_inner()).await?;
    let id = Uuid::new_v4().to_string();
    app.db
        .write(move |tx| {
            users::insert_user(
                tx,
                &NewUser {
                    id: &id,
                    email: email.as_str(),
                    password_hash: &hash,
                    display_name: display_name.as_deref(),
                    role,
                    now: Timestamp::now(),
                },
            )?;
            users::user_by_id(tx, &id)?.ok_or(ApiError::NotFound)
        })
        .await
}

/// What an administrator may change about an account (the CLI and the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminChange {
    /// Disabled accounts cannot sign in, and their sessions end at once.
    Disable,
    Enable,
    /// Makes the account an administrator.
    Promote,
}

/// Applies `change` to account `user_id` and forgets what this process cached of it, so a
/// disabled user's next request is refused at once; 404 when there is no such account.
/// Another process (the CLI beside a running server) is seen within `SESSION_CACHE_TTL`.
pub async fn change_account(app: &App, user_id: &str, change: AdminChange) -> AppResult<UserRow> {
    let id = user_id.to_owned();
    let user = app
        .db
        .write(move |tx| {
            let now = Timestamp::now();
            // On an unknown id these change nothing, and the read below is the 404.
            match change {
                AdminChange::Disable => users::set_disabled(tx, &id, true, now)?,
                AdminChange::Enable => users::set_disabled(tx, &id, false, now)?,
                AdminChange::Promote => users::set_role(tx, &id, Role::Admin, now)?,
            }
            users::user_by_id(tx, &id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    app.auth.forget_user_sessions(user_id);
    Ok(user)
}

/// A password reset token an administrator hands over (servers without mail).
#[derive(Debug, Clone)]
pub struct IssuedReset {
    pub token: String,
    pub expires_at: Timestamp,
    /// The reset page with the token, when mail is set up (`smtp.public_url`).
    pub link: Option<String>,
}

/// Issues a single-use password reset token for account `user_id` (404 when there is none).
pub async fn issue_reset(app: &App, user_id: &str) -> AppResult<IssuedReset> {
    let id = user_id.to_owned();
    app.db
        .read(move |conn| users::user_by_id(conn, &id))
        .await?
        .ok_or(ApiError::NotFound)?;
    let token = super::tokens::issue_user_token(app, user_id, Purpose::ResetPassword).await?;
    Ok(IssuedReset {
        link: app.notify.link("/reset-password", &token),
        expires_at: Timestamp::now().plus_secs(super::tokens::USER_TOKEN_TTL_SECS),
        token,
    })
}

/// The account with `email` (normalised as accounts are stored), if any.
pub async fn find_by_email(app: &App, email: &Email) -> AppResult<Option<UserRow>> {
    let email = email.to_string();
    app.db
        .read(move |conn| users::user_by_email(conn, &email))
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
    let now = Timestamp::now();
    let expires_at = now.plus_secs(app.config.auth.refresh_ttl.as_secs() as i64);
    let (sid, uid) = (session_id.clone(), user.id.clone());
    app.db
        .write(move |tx| {
            sessions::create_session(
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
    let jwt = app.auth.jwt();
    let access_token = jwt.sign(
        &user.id,
        session_id,
        user.role,
        Timestamp::now().unix() as u64,
    )?;
    Ok(AuthResponse {
        user: User::from(user),
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: jwt.ttl().as_secs(),
    })
}

/// Checks email (already normalised) and password. Unknown emails and wrong passwords cost
/// the same argon2 work and get the same answer; the per-account backoff applies to both,
/// and counts the attempt before the hash (a success releases it).
pub async fn check_credentials(app: &App, email: &str, password: Secret) -> AppResult<UserRow> {
    let attempt = app.auth.throttle.attempt(email)?;
    let lookup = email.to_owned();
    let user = app
        .db
        .read(move |conn| users::user_by_email(conn, &lookup))
        .await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password = password.into_inner();
    let verified = app.auth.passwords.verify(password.clone(), stored).await?;
    let Some(user) = user.filter(|_| verified != Verified::No) else {
        return Err(ApiError::invalid_credentials());
    };
    app.auth.throttle.succeeded(attempt);
    if user.disabled {
        return Err(ApiError::account_disabled());
    }
    if verified == Verified::YesButRehash {
        // The configured parameters changed since this hash was made: upgrade it now that we
        // hold the password. A failure here must not fail the login.
        match app.auth.passwords.hash(password).await {
            Ok(hash) => {
                let id = user.id.clone();
                let result = app
                    .db
                    .write(move |tx| users::set_password(tx, &id, &hash, Timestamp::now()))
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

/// Login: the credentials (a password of impossible length answers like a wrong one), then
/// a session. The email was validated by the caller, before anything else.
pub async fn login(
    app: &App,
    email: &Email,
    password: Secret,
    device_name: Option<String>,
) -> AppResult<AuthResponse> {
    let length = password.expose().chars().count();
    if length == 0 || length > 1024 {
        return Err(ApiError::invalid_credentials());
    }
    let user = check_credentials(app, email.as_str(), password).await?;
    start_session(app, user, device_name).await
}

/// Rotates a refresh token (see `auth::sessions::rotate_refresh_token`).
pub async fn refresh(app: &App, refresh_token: &str) -> AppResult<AuthResponse> {
    let hash = auth::hash_opaque_token(refresh_token);
    let (new_token, new_hash) = auth::new_opaque_token()?;
    let ttl = app.config.auth.refresh_ttl.as_secs() as i64;
    let grace = app.config.auth.refresh_grace.as_secs() as i64;
    let outcome = app
        .db
        .write(move |tx| {
            sessions::rotate_refresh_token(tx, &hash, &new_hash, Timestamp::now(), ttl, grace)
        })
        .await?;
    let unauthorized = |code, message: &'static str| ApiError::Unauthorized {
        code,
        message: message.into(),
    };
    match outcome {
        Refresh::Rotated { user, session_id } => token_pair(app, &user, &session_id, new_token),
        Refresh::Reused { user_id } => {
            app.auth.forget_user_sessions(&user_id);
            Err(unauthorized(
                Code::TokenReused,
                "This refresh token was already used; the session has been ended. Sign in again.",
            ))
        }
        Refresh::Expired => Err(unauthorized(
            Code::TokenExpired,
            "The refresh token has expired; sign in again.",
        )),
        Refresh::Disabled => Err(ApiError::account_disabled()),
        Refresh::Invalid => Err(ApiError::unauthorized("The refresh token is invalid.")),
    }
}

/// Ends one session (logout); its access tokens stop working at once.
pub async fn end_session(app: &App, session_id: &str) -> AppResult<()> {
    let sid = session_id.to_owned();
    app.db
        .write(move |tx| sessions::revoke_session(tx, &sid, "logout", Timestamp::now()))
        .await?;
    app.auth.forget_session(session_id);
    Ok(())
}

/// Ends every session of a user.
pub async fn end_all_sessions(app: &App, user_id: &str) -> AppResult<()> {
    let uid = user_id.to_owned();
    app.db
        .write(move |tx| sessions::revoke_user_sessions(tx, &uid, None, "logout", Timestamp::now()))
        .await?;
    app.auth.forget_user_sessions(user_id);
    Ok(())
}

/// The user's live sessions, newest first.
pub async fn live_sessions(app: &App, user_id: &str) -> AppResult<Vec<SessionRow>> {
    let uid = user_id.to_owned();
    app.db
        .read(move |conn| sessions::live_sessions(conn, &uid, Timestamp::now()))
        .await
}

/// Revokes one of the user's own sessions; another user's (or an ended) session is 404.
pub async fn revoke_own_session(app: &App, user_id: &str, session_id: &str) -> AppResult<()> {
    let (uid, sid) = (user_id.to_owned(), session_id.to_owned());
    let revoked = app
        .db
        .write(move |tx| {
            let now = Timestamp::now();
            let mine = sessions::live_sessions(tx, &uid, now)?
                .iter()
                .any(|s| s.id == sid);
            if !mine {
                return Ok(false);
            }
            sessions::revoke_session(tx, &sid, "revoked", now)
        })
        .await?;
    if !revoked {
        return Err(ApiError::NotFound);
    }
    app.auth.forget_session(session_id);
    Ok(())
}

/// The signed-in user's row (through `Auth`'s short cache).
pub async fn current_user(app: &App, user_id: &str) -> AppResult<std::sync::Arc<UserRow>> {
    app.auth
        .user(&app.db, user_id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// A profile change, already validated: `None` leaves a field as it is.
pub struct ProfileChange {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    pub email: Option<Email>,
    pub current_password: Option<Secret>,
}

/// Changes the display name and/or the email. A new email needs the current password and
/// makes the account unverified again.
pub async fn update_profile(app: &App, user_id: &str, change: ProfileChange) -> AppResult<UserRow> {
    let current = current_user(app, user_id).await?;
    let new_email = change.email.filter(|e| e.as_str() != current.email);
    if new_email.is_some() {
        let Some(password) = change.current_password else {
            return Err(ApiError::invalid_field(
                "currentPassword",
                "is required to change the email",
            ));
        };
        check_credentials(app, &current.email, password).await?;
    }
    let id = user_id.to_owned();
    let display_name = change.display_name;
    let row = app
        .db
        .write(move |tx| {
            let now = Timestamp::now();
            if let Some(name) = &display_name {
                users::set_display_name(tx, &id, name.as_deref(), now)?;
            }
            if let Some(email) = &new_email {
                users::set_email(tx, &id, email.as_str(), now)?;
                // Tokens mailed to the old address (a reset, a verification) stop working.
                store::drop_user_tokens(tx, &id, Purpose::ResetPassword)?;
                store::drop_user_tokens(tx, &id, Purpose::VerifyEmail)?;
            }
            users::user_by_id(tx, &id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    app.auth.forget_user(&row.id);
    Ok(row)
}

/// Changes the password after checking the current one; every other session ends.
pub async fn change_password(
    app: &App,
    user: &auth::AuthUser,
    current_password: Secret,
    new_password: Password,
) -> AppResult<()> {
    let current = current_user(app, &user.user_id).await?;
    check_credentials(app, &current.email, current_password).await?;
    set_password(
        app,
        &user.user_id,
        new_password,
        Some(user.session_id.to_string()),
    )
    .await
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
            let now = Timestamp::now();
            users::set_password(tx, &id, &hash, now)?;
            sessions::revoke_user_sessions(tx, &id, keep.as_deref(), "password", now)?;
            // A reset token issued for the old password must not outlive it.
            store::drop_user_tokens(tx, &id, Purpose::ResetPassword)?;
            Ok(())
        })
        .await?;
    app.auth.forget_user_sessions(user_id);
    Ok(())
}
