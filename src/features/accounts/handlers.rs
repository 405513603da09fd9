//! `/auth` handlers: extract, validate, call `service`, respond.

use axum::{extract::State, http::StatusCode, response::IntoResponse};

use super::{
    service::{self, ProfileChange},
    tokens,
    types::*,
};
use crate::{
    app::AppState,
    auth::{AuthUser, Role},
    domain::Email,
    domain::Timestamp,
    error::{AppResult, ErrorBody, field, validate},
    http::extract::{AppJson, AppPath},
};

/// Create an account and sign in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = AuthResponse),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `rate_limit.login_per_ip_per_minute`", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<impl IntoResponse> {
    let (email, password, display_name) = validate((
        ("email", Email::parse(&req.email)),
        ("password", Password::parse(req.password)),
        (
            "displayName",
            parse_display_name(req.display_name.as_deref()),
        ),
    ))?;
    let user = service::create_user(&state, email, password, display_name, Role::User).await?;
    if state.notify.can_mail() {
        let (app, row) = (state.clone(), user.clone());
        state.tasks.spawn(async move {
            if let Err(err) = tokens::send_verification(&app, &row).await {
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
        (status = 422, description = "`validation_failed`: a malformed or over-long email", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `rate_limit.login_per_ip_per_minute`, or repeated failures for this account (backoff)", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<AppJson<AuthResponse>> {
    // The email is checked before anything else: junk never reaches the throttle, the
    // database or the hasher. Its format says nothing about whether an account exists.
    let email = field("email", Email::parse(&req.email))?;
    let device = parse_device_name(req.device_name.as_deref());
    Ok(AppJson(
        service::login(&state, &email, req.password, device).await?,
    ))
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
        service::refresh(&state, req.refresh_token.expose().trim()).await?,
    ))
}

/// End the current session; its access tokens stop working at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    service::end_session(&state, &user.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the user.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn logout_all(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    service::end_all_sessions(&state, &user.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> AppResult<AppJson<UserResponse>> {
    let row = service::current_user(&state, &user.user_id).await?;
    Ok(AppJson(UserResponse {
        user: User::from(row.as_ref()),
    }))
}

/// The signed-in user (same as `/auth/me`).
#[utoipa::path(get, path = "/auth/profile", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserResponse)))]
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
    ))]
pub async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<UpdateProfileRequest>,
) -> AppResult<AppJson<UserResponse>> {
    // None: leave it; Some(None): clear it; Some(Some(name)): set it.
    let (display_name, email) = validate((
        (
            "displayName",
            req.display_name
                .as_deref()
                .map(|name| parse_display_name(Some(name)))
                .transpose(),
        ),
        ("email", req.email.as_deref().map(Email::parse).transpose()),
    ))?;
    let change = ProfileChange {
        display_name,
        email,
        current_password: req.current_password,
    };
    let row = service::update_profile(&state, &user.user_id, change).await?;
    Ok(AppJson(UserResponse {
        user: User::from(&row),
    }))
}

/// Check an access token: `{valid, user, expiresAt}`.
#[utoipa::path(post, path = "/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = VerifyResponse)))]
pub async fn verify(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<VerifyResponse>> {
    let row = service::current_user(&state, &user.user_id).await?;
    Ok(AppJson(VerifyResponse {
        valid: true,
        user: User::from(row.as_ref()),
        expires_at: Timestamp::from_unix(user.token_expires_at as i64),
    }))
}

/// Change the password; every other session ends.
#[utoipa::path(post, path = "/auth/change-password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 401, description = "`invalid_credentials` for a wrong currentPassword", body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    let password = field("newPassword", Password::parse(req.new_password))?;
    service::change_password(&state, &user, req.current_password, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset. Always 202, whether or not the account exists; with SMTP
/// configured, a single-use token (30 minutes) is mailed.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = ForgotPasswordRequest,
    responses(
        (status = 202),
        (status = 429, description = "`rate_limited`: over `rate_limit.login_per_ip_per_minute`", body = ErrorBody),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    AppJson(req): AppJson<ForgotPasswordRequest>,
) -> AppResult<StatusCode> {
    let email = field("email", Email::parse(&req.email))?;
    // The work happens in the background so the answer takes the same time either way.
    let app = state.clone();
    state.tasks.spawn(async move {
        if let Err(err) = tokens::send_password_reset(&app, &email).await {
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
        (status = 429, description = "`rate_limited`: over `rate_limit.login_per_ip_per_minute`", body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    AppJson(req): AppJson<ResetPasswordRequest>,
) -> AppResult<StatusCode> {
    let password = field("newPassword", Password::parse(req.new_password))?;
    tokens::reset_password(&state, req.token.expose().trim(), password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirm the email address with the mailed token.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses(
        (status = 200, body = UserResponse),
        (status = 401, description = "`invalid_token`: unknown, used or expired", body = ErrorBody),
        (status = 429, description = "`rate_limited`: over `rate_limit.login_per_ip_per_minute`", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    AppJson(req): AppJson<VerifyEmailRequest>,
) -> AppResult<AppJson<UserResponse>> {
    let row = tokens::verify_email(&state, req.token.expose().trim()).await?;
    Ok(AppJson(UserResponse {
        user: User::from(&row),
    }))
}

/// Mail a new verification token (SMTP only). 202 whether or not a mail went out.
#[utoipa::path(post, path = "/auth/resend-verification", tag = "auth", security(("bearer" = [])),
    responses((status = 202)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<StatusCode> {
    let row = service::current_user(&state, &user.user_id).await?;
    if !row.email_verified {
        tokens::send_verification(&state, &row).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// The user's live sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList)))]
pub async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<SessionList>> {
    let rows = service::live_sessions(&state, &user.user_id).await?;
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
    responses((status = 204)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    service::revoke_own_session(&state, &user.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
