//! The one request-body reader: at most [`MAX_BODY`] bytes, refused up front
//! when Content-Length says more and cut off mid-stream when a chunked body
//! grows past it. Callers turn [`BodyError`] into their own answer (the API
//! and the incoming routes word the 413 differently).

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::HeaderMap;

/// Largest request body accepted (1 MiB); more is a 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Declared or streamed past [`MAX_BODY`].
    TooLarge,
    /// The connection failed mid-body (the cause, for the message).
    Unreadable(warp::Error),
}

/// Reads the whole body of a request whose headers are `headers`.
pub async fn read_body<S, B>(headers: &HeaderMap, body: S) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut out = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(BodyError::Unreadable)?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}
