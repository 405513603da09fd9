//! Response compression (gzip, brotli) where it applies: an answer that [`Compressible`]
//! says is worth it goes through tower-http's compression, as the client's `Accept-Encoding`
//! asks; every other answer passes untouched.
//!
//! tower-http's layer wraps every answer's body in its own body type, whose size is that of
//! its largest encoder (kilobytes: each move of an answer copied it), and parses the
//! client's `Accept-Encoding` for every request. Most answers are small JSON and never
//! compressed: `GET /auth/me` cost about 3,400 more instructions from a client without
//! `Accept-Encoding` and about 5,300 more from one that asks for gzip (BENCHMARKS.md). Here
//! the decision comes first, on the finished answer, and tower-http is called only for the
//! answers it will compress (or mark `Vary: accept-encoding`), with the same result. One
//! difference: a client that refuses every encoding we have, `identity` included, gets the
//! 406 tower-http answers only for a compressible answer; a small one it gets as it is.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, Response, StatusCode, header},
    response::IntoResponse as _,
};
use futures_util::FutureExt as _;
use tower::{Layer as _, Service as _};
use tower_http::compression::{CompressionLayer, Predicate};

use super::NoCompression;

/// Answers smaller than this go uncompressed (tower-http's default is 32 bytes). Deflating
/// a few hundred bytes of JSON saves a few hundred bytes and costs a compressor's state,
/// hundreds of KiB allocated and zeroed per response: with it, `GET /auth/me` from a client
/// that asks for gzip (browsers, aiohttp, httpx, Dart's `http`) spent about a third of its
/// CPU in deflate and page faults.
const COMPRESS_ABOVE: u64 = 1024;

/// Which answers are worth compressing: at least [`COMPRESS_ABOVE`] bytes (or of unknown
/// size), not already compact (images but SVG, gRPC but gRPC-web, `application/octet-stream`),
/// not a stream of events, and not marked [`NoCompression`]. One value with nothing in it:
/// tower-http clones the predicate for every request, and its chain of `And`s of
/// `NotForContentType`s cost a few hundred instructions to clone and drop.
#[derive(Debug, Clone, Copy)]
pub struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B: hyper::body::Body>(&self, response: &Response<B>) -> bool {
        let size = response.body().size_hint().exact().or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())
        });
        if size.is_some_and(|size| size < COMPRESS_ABOVE) {
            return false;
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let compact = (content_type.starts_with("image/")
            && !content_type.starts_with("image/svg+xml"))
            || (content_type.starts_with("application/grpc")
                && !content_type.starts_with("application/grpc-web"))
            || content_type.starts_with("text/event-stream")
            || content_type.starts_with("application/octet-stream");
        !compact && response.extensions().get::<NoCompression>().is_none()
    }
}

/// See the module docs.
pub fn layer() -> CompressLayer {
    CompressLayer
}

#[derive(Debug, Clone, Copy)]
pub struct CompressLayer;

impl<S> tower::Layer<S> for CompressLayer {
    type Service = Compress<S>;

    fn layer(&self, inner: S) -> Compress<S> {
        Compress { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Compress<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Compress<S>
where
    S: tower::Service<Request, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CompressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Every `Accept-Encoding` line, as tower-http reads them (usually one, or none).
        let accept = req
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .cloned()
            .collect();
        CompressFuture {
            answer: self.inner.call(req),
            accept,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Compress`]ed service.
    pub struct CompressFuture<F> {
        #[pin]
        answer: F,
        accept: Vec<HeaderValue>,
    }
}

impl<F, E> Future for CompressFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.answer.poll(cx))?;
        Poll::Ready(Ok(encode(response, std::mem::take(this.accept))))
    }
}

/// `response` as tower-http's compression gives it to a client that sent the `Accept-Encoding`
/// lines `accept` (none: the identity).
fn encode(response: Response<Body>, accept: Vec<HeaderValue>) -> Response<Body> {
    let headers = response.headers();
    // tower-http's own conditions: never compress twice, never a range.
    if headers.contains_key(header::CONTENT_ENCODING)
        || headers.contains_key(header::CONTENT_RANGE)
        || !Compressible.should_compress(&response)
    {
        return response;
    }
    if accept.is_empty() {
        // The identity, with the `Vary` tower-http adds to a compressible answer.
        let mut response = response;
        let varies = response
            .headers()
            .get_all(header::VARY)
            .iter()
            .any(|value| {
                value
                    .to_str()
                    .is_ok_and(|value| value.to_ascii_lowercase().contains("accept-encoding"))
            });
        if !varies {
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        return response;
    }
    let mut request = axum::http::Request::new(());
    for value in accept {
        request.headers_mut().append(header::ACCEPT_ENCODING, value);
    }
    // Called once; a second call (none comes) would get a bare 500.
    let mut response = Some(response);
    let mut compression =
        CompressionLayer::new()
            .compress_when(Compressible)
            .layer(tower::service_fn(move |_: axum::http::Request<()>| {
                let response = response
                    .take()
                    .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
                std::future::ready(Ok::<_, std::convert::Infallible>(response))
            }));
    // Ready at once: tower-http's future only wraps the answer of the (ready) service.
    match compression.call(request).now_or_never() {
        Some(Ok(response)) => response.map(Body::new),
        Some(Err(never)) => match never {},
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
