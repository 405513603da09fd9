//! `/auth` handlers: extract, validate, call `service`, respond.

use axum::{extract::State, http::StatusCode, response::IntoResponse};

use super::{
    service,
    store::{self, Purpose},
    types::*,
};
use crate::{
    app::AppState,
    auth::{self, AuthUser, Role},
    error::{ApiError, AppResult, ErrorBody, Invalid},
    http::extract::{AppJson, AppPath},
};

async fn current_user(
    state: &AppState,
    user_id: &str,
) -> AppResult<std::sync::Arc<store::UserRow>> {
    state
        .auth
        .user(&state.db, user_id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Create an account and sign in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = AuthResponse),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`validation_failed`", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<impl IntoResponse> {
    let mut invalid = Invalid::default();
    let email = invalid.check("email", Email::parse(&req.email));
    let password = invalid.check("password", Password::parse(req.password));
    let display_name = invalid.check(
        "displayName",
        parse_display_name(req.display_name.as_deref()),
    );
    invalid.finish()?;
    let (Some(email), Some(password), Some(display_name)) = (email, password, display_name) else {
        unreachable!("finish() returned Ok, so every field parsed")
    };
    let user = service::create_user(&state, email, password, display_name, Role::User).await?;
    if state.mailer.is_some() {
        let (app, row) = (state.clone(), user.clone());
        tokio::spawn(async move {
            if let Err(err) = super::mail::send_verification(&app, &row).await {
                tracing::warn!(error = %err, "verification mail failed");
            }
        });
    }
    let response =
        service::start_session(&state, user, parse_device_name(req.device_name.as_deref())).await?;
    Ok((StatusCode::CREATED, AppJson(response)))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = AuthResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<AppJson<AuthResponse>> {
    // A malformed email cannot belong to an account: same answer as a wrong password.
    let email = req.email.trim().to_lowercase();
    if req.password.is_empty() || req.password.chars().count() > 1024 {
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            message: "The email or password is wrong.".into(),
        });
    }
    let user = service::check_credentials(&state, &email, req.password).await?;
    let response =
        service::start_session(&state, user, parse_device_name(req.device_name.as_deref())).await?;
    Ok(AppJson(response))
}

/// Exchange a refresh token for a new pair. The old token stops working; presenting it again
/// ends the session (`token_reused`).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = AuthResponse),
        (status = 401, description = "`unauthorized`, `token_expired` or `token_reused`", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> AppResult<AppJson<AuthResponse>> {
    Ok(AppJson(
        service::refresh(&state, req.refresh_token.trim()).await?,
    ))
}

/// End the current session; its access tokens stop working at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    let sid = user.session_id.clone();
    state
        .db
        .write(move |tx| store::revoke_session(tx, &sid, "logout", auth::now()))
        .await?;
    state.auth.forget_session(&user.session_id);
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the user.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout_all(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    let uid = user.user_id.clone();
    state
        .db
        .write(move |tx| store::revoke_user_sessions(tx, &uid, None, "logout", auth::now()))
        .await?;
    state.auth.forget_all_sessions();
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> AppResult<AppJson<UserResponse>> {
    let row = current_user(&state, &user.user_id).await?;
    Ok(AppJson(UserResponse {
        user: User::from(row.as_ref()),
    }))
}

/// The signed-in user (same as `/auth/me`).
#[utoipa::path(get, path = "/auth/profile", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn profile(state: State<AppState>, user: AuthUser) -> AppResult<AppJson<UserResponse>> {
    me(state, user).await
}

/// Change the display name, or the email (which needs `currentPassword` and makes the
/// account unverified again).
#[utoipa::path(put, path = "/auth/profile", tag = "auth", security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, body = UserResponse),
        (status = 401, description = "`invalid_credentials` for a wrong currentPassword", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<UpdateProfileRequest>,
) -> AppResult<AppJson<UserResponse>> {
    let mut invalid = Invalid::default();
    // None: leave it; Some(None): clear it; Some(Some(name)): set it.
    let display_name: Option<Option<String>> = match req.display_name.as_deref() {
        Some(name) => invalid.check("displayName", parse_display_name(Some(name))),
        None => None,
    };
    let email = match req.email.as_deref() {
        Some(email) => invalid.check("email", Email::parse(email)),
        None => None,
    };
    let current = current_user(&state, &user.user_id).await?;
    let new_email = email.filter(|e| e.as_str() != current.email);
    if new_email.is_some() && req.current_password.is_none() {
        invalid.check::<()>(
            "currentPassword",
            Err("is required to change the email".to_owned()),
        );
    }
    invalid.finish()?;
    if let (Some(_), Some(password)) = (&new_email, req.current_password) {
        service::check_credentials(&state, &current.email, password).await?;
    }
    let id = user.user_id.clone();
    let row = state
        .db
        .write(move |tx| {
            let now = auth::now();
            if let Some(name) = &display_name {
                store::set_display_name(tx, &id, name.as_deref(), now)?;
            }
            if let Some(email) = &new_email {
                store::set_email(tx, &id, email.as_str(), now)?;
            }
            store::user_by_id(tx, &id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    state.auth.forget_user(&row.id);
    Ok(AppJson(UserResponse {
        user: User::from(&row),
    }))
}

/// Check an access token: `{valid, user, expiresAt}`.
#[utoipa::path(post, path = "/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = VerifyResponse), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<VerifyResponse>> {
    let row = current_user(&state, &user.user_id).await?;
    Ok(AppJson(VerifyResponse {
        valid: true,
        user: User::from(row.as_ref()),
        expires_at: timestamp(user.token_expires_at as i64),
    }))
}

/// Change the password; every other session ends.
#[utoipa::path(post, path = "/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 401, description = "`invalid_credentials` for a wrong currentPassword", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    let mut invalid = Invalid::default();
    let password = invalid.check("newPassword", Password::parse(req.new_password));
    invalid.finish()?;
    let current = current_user(&state, &user.user_id).await?;
    service::check_credentials(&state, &current.email, req.current_password).await?;
    let password = password.expect("validated above");
    service::set_password(
        &state,
        &user.user_id,
        password,
        Some(user.session_id.clone()),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset. Always 202, whether or not the account exists; with SMTP
/// configured, a single-use token (30 minutes) is mailed.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = ForgotPasswordRequest,
    responses((status = 202), (status = 422, body = ErrorBody)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    AppJson(req): AppJson<ForgotPasswordRequest>,
) -> AppResult<StatusCode> {
    let mut invalid = Invalid::default();
    let email = invalid.check("email", Email::parse(&req.email));
    invalid.finish()?;
    let email = email.expect("validated above");
    // The work happens in the background so the answer takes the same time either way.
    let app = state.clone();
    tokio::spawn(async move {
        if let Err(err) = super::mail::send_password_reset(&app, email.as_str()).await {
            tracing::warn!(error = %err, "password reset mail failed");
        }
    });
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a reset token; every session of the user ends.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204),
        (status = 401, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    AppJson(req): AppJson<ResetPasswordRequest>,
) -> AppResult<StatusCode> {
    let mut invalid = Invalid::default();
    let password = invalid.check("newPassword", Password::parse(req.new_password));
    invalid.finish()?;
    let user_id = service::consume_user_token(&state, req.token.trim(), Purpose::ResetPassword)
        .await?
        .ok_or_else(invalid_token)?;
    service::set_password(&state, &user_id, password.expect("validated above"), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_token",
        message: "The token is unknown, already used or expired.".into(),
    }
}

/// Confirm the email address with the mailed token.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn verify_email(
    State(state): State<AppState>,
    AppJson(req): AppJson<VerifyEmailRequest>,
) -> AppResult<AppJson<UserResponse>> {
    let user_id = service::consume_user_token(&state, req.token.trim(), Purpose::VerifyEmail)
        .await?
        .ok_or_else(invalid_token)?;
    let row = state
        .db
        .write(move |tx| {
            store::set_email_verified(tx, &user_id, auth::now())?;
            store::user_by_id(tx, &user_id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    state.auth.forget_user(&row.id);
    Ok(AppJson(UserResponse {
        user: User::from(&row),
    }))
}

/// Mail a new verification token (SMTP only). 202 whether or not a mail went out.
#[utoipa::path(post, path = "/auth/resend-verification", tag = "auth", security(("bearer" = [])),
    responses((status = 202), (status = 401, body = ErrorBody)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<StatusCode> {
    let row = current_user(&state, &user.user_id).await?;
    if !row.email_verified {
        super::mail::send_verification(&state, &row).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// The user's live sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<SessionList>> {
    let uid = user.user_id.clone();
    let rows = state
        .db
        .read(move |conn| store::live_sessions(conn, &uid, auth::now()))
        .await?;
    Ok(AppJson(SessionList {
        items: rows
            .into_iter()
            .map(|r| Session::from_row(r, &user.session_id))
            .collect(),
    }))
}

/// End one of the user's sessions (another user's session is 404).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    let (uid, sid) = (user.user_id.clone(), id.clone());
    let revoked = state
        .db
        .write(move |tx| {
            let now = auth::now();
            let mine = store::live_sessions(tx, &uid, now)?
                .iter()
                .any(|s| s.id == sid);
            if !mine {
                return Ok(false);
            }
            store::revoke_session(tx, &sid, "revoked", now)
        })
        .await?;
    if !revoked {
        return Err(ApiError::NotFound);
    }
    state.auth.forget_session(&id);
    Ok(StatusCode::NO_CONTENT)
}
