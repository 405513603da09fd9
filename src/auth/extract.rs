//! `AuthUser` (a valid access token of a live session), `AdminUser` (the same, with the
//! admin role) and `MaybeAuthUser` (public routes: no token is anonymous, a bad one is still
//! 401). Handlers take them as arguments; nothing else reads `Authorization`.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};

use super::Role;
use crate::{app::AppState, error::ApiError};

#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Shared with the verified token's cached claims: no copy per request.
    pub user_id: std::sync::Arc<str>,
    pub session_id: std::sync::Arc<str>,
    pub role: Role,
    /// When the presented access token expires (Unix seconds).
    pub token_expires_at: u64,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("Sign in first: send Authorization: Bearer <access token>.")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("The Authorization header must be `Bearer <access token>`.")
            })?;
        let claims = state.auth.jwt().verify(token)?;
        let session = state.auth.session(&state.db, &claims.sid).await?;
        match session {
            Some(s) if *s.user_id != *claims.sub => {
                Err(ApiError::unauthorized("The access token is invalid."))
            }
            Some(s) if s.disabled => Err(ApiError::account_disabled()),
            Some(s) if s.live => Ok(AuthUser {
                user_id: claims.sub.clone(),
                session_id: claims.sid.clone(),
                role: s.role,
                token_expires_at: claims.exp,
            }),
            _ => Err(ApiError::unauthorized(
                "The session has ended; sign in again.",
            )),
        }
    }
}

/// A signed-in admin; anyone else is 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(ApiError::admin_only());
        }
        Ok(AdminUser(user))
    }
}

/// A signed-in user if the request carries a token, `None` without one. A token that is
/// there but invalid, expired or revoked is refused (401) like anywhere else: a client that
/// thinks it is signed in must learn that it is not.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeAuthUser(None));
        }
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|user| MaybeAuthUser(Some(user)))
    }
}
