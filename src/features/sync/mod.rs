//! Device sync metadata, SPEC section 4: `/api/v1/sync/status`, `/validate`, `/devices`.
//!
//! Each device reports the version and hash of its local data; the server keeps one row per
//! (user, device), refuses a report that would move a device backwards or fork it at the same
//! version (409 `sync_conflict`), and answers "where does this device stand?" (`validate`).
//! Every response carries `serverEpoch`, so a device notices a restored (rolled back) server.

mod handlers;
pub mod store;
pub mod types;

use axum::{
    extract::{Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

/// The header that carries `serverEpoch` on every `/sync` response, bodies or not.
pub const SERVER_EPOCH_HEADER: &str = "x-server-epoch";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::report_status, handlers::list_status))
        .routes(routes!(handlers::device_status))
        .routes(routes!(handlers::validate))
        .routes(routes!(handlers::deactivate_device))
}

/// Adds `X-Server-Epoch` to every response under `/api/v1/sync` and `/api/sync` (status,
/// devices and backups; errors and bodiless answers included).
pub async fn server_epoch_header(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_sync =
        crate::http::api_path(request.uri().path()).is_some_and(|path| path.starts_with("/sync/"));
    let mut response = next.run(request).await;
    if is_sync && let Ok(value) = HeaderValue::from_str(state.db.server_epoch()) {
        response.headers_mut().insert(SERVER_EPOCH_HEADER, value);
    }
    response
}
