//! The console's page and assets (`console/` in the repository, embedded in the binary):
//! plain HTML, CSS and one JavaScript module, no framework and no build step. Served with
//! a CSP that allows only this server's own script, style and API (no inline script, no
//! `eval`), and never framed.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{app::AppState, error::ApiError};

/// The console's CSP: same-origin script, style and API calls; nothing inline, nothing
/// evaluated, no plugins, no forms to elsewhere, never in a frame.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file: its bytes, type and ETag.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static [u8], content_type: &'static str) -> Asset {
        let digest = hex::encode(Sha256::digest(body));
        Asset {
            body,
            content_type,
            // A hex digest is always a valid header value.
            etag: HeaderValue::from_str(&format!("\"{}\"", &digest[..32]))
                .unwrap_or(HeaderValue::from_static("\"console\"")),
        }
    }
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("../../../console/index.html"),
        "text/html; charset=utf-8",
    )
});
static FILES: LazyLock<[(&str, Asset); 3]> = LazyLock::new(|| {
    [
        (
            "app.js",
            Asset::new(
                include_bytes!("../../../console/app.js"),
                "text/javascript; charset=utf-8",
            ),
        ),
        (
            "app.css",
            Asset::new(
                include_bytes!("../../../console/app.css"),
                "text/css; charset=utf-8",
            ),
        ),
        (
            "icon.svg",
            Asset::new(include_bytes!("../../../console/icon.svg"), "image/svg+xml"),
        ),
    ]
});

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes());
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    // Always revalidated: a new binary serves new files at the same paths.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match FILES.iter().find(|(n, _)| *n == name) {
        Some((_, asset)) => serve(asset, &headers),
        None => ApiError::NotFound.into_response(),
    }
}

/// `/admin` (the page) and `/admin/{file}` (its assets), with the console's CSP. Not in
/// the API document: a page for people, like `/api-docs` itself.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/{file}", get(file))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ))
}
