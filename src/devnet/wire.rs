//! Putting a reply on the wire, including the replies that misbehave on
//! purpose: hang, half-close, reset mid-body, endless and dripping bodies.
//! Each of these ends the connection; only a complete reply may be followed
//! by another request on the same connection.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::faults::Reply;
use super::http1;

/// A reset node sends this much of the body before the RST reaches it.
const RESET_AFTER: Duration = Duration::from_millis(50);

/// Puts `reply` on the wire. True when the connection may serve another
/// request.
pub async fn send(stream: &mut TcpStream, reply: Reply, close: bool) -> bool {
    match reply {
        Reply::Full {
            status,
            content_type,
            body,
        } => {
            http1::write_full(stream, status, content_type, &body, close)
                .await
                .is_ok()
                && !close
        }
        Reply::Canned(reply) => super::canned::send(stream, &reply, close).await,
        Reply::Hang => {
            http1::drain_until_closed(stream).await;
            false
        }
        Reply::HalfClose => {
            let _ = stream.shutdown().await;
            http1::drain_until_closed(stream).await;
            false
        }
        Reply::Reset { content_type, body } => {
            reset(stream, content_type, &body).await;
            false
        }
        Reply::Endless {
            content_type,
            chunk,
        } => {
            endless(stream, content_type, &chunk).await;
            false
        }
        Reply::Drip {
            content_type,
            body,
            every,
        } => {
            drip(stream, content_type, body, every).await;
            false
        }
    }
}

/// Announces the whole body, sends half, then closes with SO_LINGER 0 so the
/// kernel sends RST instead of FIN.
async fn reset(stream: &mut TcpStream, content_type: &str, body: &Bytes) {
    let mut out = http1::head(200, content_type, Some(body.len()), false);
    out.extend_from_slice(&body[..body.len() / 2]);
    if stream.write_all(&out).await.is_ok() {
        // Let the partial body reach the peer: a zero-linger close
        // discards whatever is still unsent.
        tokio::time::sleep(RESET_AFTER).await;
    }
    let _ = stream.set_zero_linger();
}

async fn endless(stream: &mut TcpStream, content_type: &str, chunk: &Bytes) {
    if stream
        .write_all(&http1::head(200, content_type, None, true))
        .await
        .is_err()
    {
        return;
    }
    while stream.write_all(chunk).await.is_ok() {}
}

async fn drip(stream: &mut TcpStream, content_type: &str, body: Bytes, every: Duration) {
    let body = if body.is_empty() {
        Bytes::from_static(b" ")
    } else {
        body
    };
    if stream
        .write_all(&http1::head(200, content_type, None, true))
        .await
        .is_err()
    {
        return;
    }
    for i in (0..body.len()).cycle() {
        tokio::time::sleep(every).await;
        if stream.write_all(&body[i..i + 1]).await.is_err() {
            return;
        }
    }
}
