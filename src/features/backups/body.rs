//! The body of a download, streamed: raw bytes, or the JSON `{"data":"<base64>", ...info}`
//! written as it goes. Both have an exact length known before the first byte (the plaintext
//! size is in the row), sent as `Content-Length`; a download that fails midway ends the
//! body with an error, so hyper closes the connection short of that length and the client
//! sees an aborted transfer, never a complete-looking wrong one.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::body::{Body, Bytes};
use base64::{Engine, engine::general_purpose::STANDARD};
use futures_util::{Stream, StreamExt, stream};
use hyper::body::{Frame, SizeHint};

use super::{
    download::{Chunks, Download},
    transfers::Transfer,
};
use crate::{
    db::run_blocking,
    error::{ApiError, AppResult},
};

type Plaintext = Pin<Box<dyn Stream<Item = AppResult<Vec<u8>>> + Send>>;
type Encoded = Pin<Box<dyn Stream<Item = AppResult<Bytes>> + Send>>;

/// The plaintext of `download`, one chunk per item.
fn plaintext(download: Download) -> Plaintext {
    enum State {
        First(Vec<u8>, Option<Chunks>),
        Rest(Chunks),
        Done,
    }
    let state = match download {
        Download::Whole(data) => State::First(data, None),
        Download::Chunked { first, rest } => State::First(first, Some(rest)),
    };
    Box::pin(stream::unfold(state, |state| async move {
        match state {
            State::First(data, rest) => Some((Ok(data), rest.map_or(State::Done, State::Rest))),
            State::Rest(mut chunks) => match chunks.next().await {
                Ok(Some(data)) => Some((Ok(data), State::Rest(chunks))),
                Ok(None) => None,
                Err(e) => Some((Err(e), State::Done)),
            },
            State::Done => None,
        }
    }))
}

/// The raw body: the plaintext as it is, `size` bytes.
pub fn raw(download: Download, size: u64, transfer: Transfer) -> Body {
    let bytes = plaintext(download).map(|chunk| chunk.map(Bytes::from));
    ExactBody::body(Box::pin(bytes), size, transfer)
}

/// The JSON body `{"data":"<base64 of the plaintext>",<the rest of info>`; `info` is a
/// serialized JSON object. Returns the body and its length.
pub fn json(
    download: Download,
    size: u64,
    info: &[u8],
    transfer: Transfer,
) -> AppResult<(Body, u64)> {
    const HEAD: &[u8] = b"{\"data\":\"";
    let encoded = usize::try_from(size)
        .ok()
        .and_then(|size| base64::encoded_len(size, true))
        .ok_or(ApiError::PayloadTooLarge)?;
    let mut tail = b"\",".to_vec();
    tail.extend_from_slice(info.get(1..).unwrap_or_default());
    let length = (HEAD.len() + encoded + tail.len()) as u64;

    struct State {
        plaintext: Plaintext,
        encoder: Option<Base64Chunks>,
        tail: Vec<u8>,
    }
    let state = State {
        plaintext: plaintext(download),
        encoder: Some(Base64Chunks::default()),
        tail,
    };
    let encoded = stream::unfold(state, |mut state| async move {
        let mut encoder = state.encoder.take()?;
        match state.plaintext.next().await {
            Some(Ok(chunk)) => {
                // A megabyte of base64 is about a millisecond: off the async workers.
                let done = run_blocking(move || {
                    let text = encoder.push(&chunk);
                    Ok((text, encoder))
                })
                .await;
                match done {
                    Ok((text, encoder)) => {
                        state.encoder = Some(encoder);
                        Some((Ok(Bytes::from(text)), state))
                    }
                    Err(e) => Some((Err(e), state)),
                }
            }
            Some(Err(e)) => Some((Err(e), state)),
            None => {
                let mut text = encoder.finish();
                text.append(&mut state.tail);
                Some((Ok(Bytes::from(text)), state))
            }
        }
    });
    let body = stream::once(async { Ok(Bytes::from_static(HEAD)) }).chain(encoded);
    Ok((ExactBody::body(Box::pin(body), length, transfer), length))
}

/// Standard padded base64 of a byte stream fed in pieces of any length: each piece is
/// encoded up to a multiple of three bytes, the one or two left over wait for the next.
#[derive(Default)]
struct Base64Chunks {
    carry: Vec<u8>,
}

impl Base64Chunks {
    fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4 + 4);
        if !self.carry.is_empty() {
            let take = (3 - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < 3 {
                return out.into_bytes();
            }
            STANDARD.encode_string(&self.carry, &mut out);
            self.carry.clear();
        }
        let whole = data.len() / 3 * 3;
        STANDARD.encode_string(&data[..whole], &mut out);
        self.carry.extend_from_slice(&data[whole..]);
        out.into_bytes()
    }

    fn finish(self) -> Vec<u8> {
        STANDARD.encode(&self.carry).into_bytes()
    }
}

/// A streamed body of a length known in advance, holding the user's transfer slot until it
/// is sent in full or dropped (the client went away). A stream that fails, or ends short of
/// the length, ends the body with an error: the log says why, the client sees a cut
/// connection.
struct ExactBody {
    stream: Encoded,
    remaining: u64,
    span: tracing::Span,
    _transfer: Transfer,
}

impl ExactBody {
    fn body(stream: Encoded, length: u64, transfer: Transfer) -> Body {
        Body::new(ExactBody {
            stream,
            remaining: length,
            span: tracing::Span::current(),
            _transfer: transfer,
        })
    }

    fn fail(&mut self, error: &ApiError) -> std::io::Error {
        let _entered = self.span.enter();
        tracing::warn!(error = %error, remaining = self.remaining, "backup download cut short");
        self.remaining = 0;
        std::io::Error::other("backup download failed")
    }
}

impl hyper::body::Body for ExactBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let result = match ready!(this.stream.poll_next_unpin(cx)) {
            Some(Ok(bytes)) if bytes.len() as u64 <= this.remaining => {
                this.remaining -= bytes.len() as u64;
                Ok(Frame::data(bytes))
            }
            Some(Ok(_)) => Err(this.fail(&ApiError::internal(anyhow::anyhow!(
                "more bytes than announced"
            )))),
            Some(Err(e)) => Err(this.fail(&e)),
            None if this.remaining == 0 => return Poll::Ready(None),
            None => Err(this.fail(&ApiError::internal(anyhow::anyhow!(
                "fewer bytes than announced"
            )))),
        };
        Poll::Ready(Some(result))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_pieces_is_base64_of_the_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        for pieces in [
            vec![0, 1000],
            vec![0, 1, 2, 3, 1000],
            vec![0, 1, 1, 2, 500, 502, 999, 1000],
            vec![0, 334, 668, 1000],
            vec![0, 0, 1000, 1000],
        ] {
            let mut encoder = Base64Chunks::default();
            let mut out = Vec::new();
            for window in pieces.windows(2) {
                out.extend(encoder.push(&data[window[0]..window[1]]));
            }
            out.extend(encoder.finish());
            assert_eq!(String::from_utf8(out).unwrap(), STANDARD.encode(&data));
        }
        for len in 0..5 {
            let mut encoder = Base64Chunks::default();
            let mut out = encoder.push(&data[..len]);
            out.extend(encoder.finish());
            assert_eq!(out, STANDARD.encode(&data[..len]).into_bytes());
        }
    }
}
