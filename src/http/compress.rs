//! Response compression (gzip, brotli) where it applies: tower-http's layer for requests that
//! say which encodings they accept (`Accept-Encoding`), and nothing but its `Vary` for the
//! rest.
//!
//! Without `Accept-Encoding` a client takes the identity encoding, and tower-http's layer
//! only adds `Vary: accept-encoding` to a compressible answer; it still wrapped every answer's
//! body, and the body went into one more box. Those requests now get that header, the same
//! way, and nothing else (`GET /auth/me` from such a client: about 900 fewer instructions,
//! BENCHMARKS.md). Answers are compressed when [`Compressible`] says so.

use std::task::{Context, Poll};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, Response, header},
};
use futures_util::{
    FutureExt as _,
    future::{Either, Map},
};
use tower_http::compression::{
    Compression, CompressionBody, CompressionLayer, Predicate, ResponseFuture,
};

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
        Compress {
            compression: CompressionLayer::new()
                .compress_when(Compressible)
                .layer(inner),
        }
    }
}

#[derive(Clone)]
pub struct Compress<S> {
    compression: Compression<S, Compressible>,
}

type Boxed<E> = fn(Result<Response<CompressionBody<Body>>, E>) -> Result<Response<Body>, E>;

type Identity<E> = fn(Result<Response<Body>, E>) -> Result<Response<Body>, E>;

impl<S> tower::Service<Request> for Compress<S>
where
    S: tower::Service<Request, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<
        Map<ResponseFuture<S::Future, Compressible>, Boxed<S::Error>>,
        Map<S::Future, Identity<S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.compression.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.headers().contains_key(header::ACCEPT_ENCODING) {
            let boxed: Boxed<S::Error> = |answer| answer.map(|response| response.map(Body::new));
            return Either::Left(self.compression.call(req).map(boxed));
        }
        let vary: Identity<S::Error> = |answer| {
            answer.map(|mut response| {
                if would_compress(&response) {
                    response
                        .headers_mut()
                        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
                }
                response
            })
        };
        Either::Right(self.compression.get_mut().call(req).map(vary))
    }
}

/// Whether tower-http would have compressed `response` for a client that asked, and so
/// added `Vary: accept-encoding` (unless it was there).
fn would_compress(response: &Response<Body>) -> bool {
    let headers = response.headers();
    !headers.contains_key(header::CONTENT_ENCODING)
        && !headers.contains_key(header::CONTENT_RANGE)
        && Compressible.should_compress(response)
        && !headers.get_all(header::VARY).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|value| value.to_ascii_lowercase().contains("accept-encoding"))
        })
}
