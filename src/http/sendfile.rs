//! Inbound sockets that send the served State with sendfile(2).
//!
//! hyper writes a response as iovecs: its head, then the body's `Bytes` as a
//! slice of its own (its queue write strategy, which `Connection::serve`
//! asks for). [`SendfileStream`] looks each slice up in [`SendableBodies`]. A
//! slice of the served State goes to the socket by sendfile from its file
//! at the same offset, so the kernel sends the file's pages instead of
//! copying the bytes once per download (see `served::sendable`). The head
//! before it is sent with MSG_MORE, so it still shares the first segment.
//! Anything else is written as before. hyper sees what it always sees: how
//! many bytes from the front of its iovecs were written.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use prometheus_client::metrics::counter::Counter;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::served::sendable::{SendableBodies, SendableBody};

/// A TCP stream whose writes of the served State go out by sendfile.
#[derive(Debug)]
pub struct SendfileStream {
    inner: TcpStream,
    bodies: Arc<SendableBodies>,
    /// `leanpoint_http_sendfile_bytes_total`.
    sent: Counter,
}

impl SendfileStream {
    pub fn new(inner: TcpStream, bodies: Arc<SendableBodies>, sent: Counter) -> Self {
        SendfileStream {
            inner,
            bodies,
            sent,
        }
    }

    /// Sends up to `len` bytes of `body` from `offset`.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        body: &SendableBody,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let n = ready!(self.poll_io(cx, || {
            let mut at = offset;
            rustix::fs::sendfile(&self.inner, body.fd(), Some(&mut at), len)
        }))?;
        if n == 0 {
            // Nothing can shorten the file below the mapping's length, so
            // it cannot end early; were it to, hyper must not loop on a zero
            // write.
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.sent.inc_by(n as u64);
        Poll::Ready(Ok(n))
    }

    /// Sends `bufs` (what precedes a sendable body) with MSG_MORE: the kernel
    /// holds them for the sendfile that follows rather than sending a
    /// segment of its own (TCP_NODELAY is on).
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, || {
            rustix::net::sendmsg(
                &self.inner,
                bufs,
                &mut SendAncillaryBuffer::default(),
                SendFlags::MORE | SendFlags::NOSIGNAL,
            )
        })
    }

    /// Runs a non-blocking write syscall when the socket is writable,
    /// waiting again (through tokio's readiness) while it would block.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            match self
                .inner
                .try_io(Interest::WRITABLE, || write().map_err(io::Error::from))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.bodies.find(buf) {
            Some((body, offset)) => self.poll_sendfile(cx, &body, offset, buf.len()),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        for (k, buf) in bufs.iter().enumerate() {
            let Some((body, offset)) = self.bodies.find(buf) else {
                continue;
            };
            return if k == 0 {
                self.poll_sendfile(cx, &body, offset, buf.len())
            } else {
                self.poll_send_more(cx, &bufs[..k])
            };
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    /// A head, a range of the served body and a tail, written the way hyper
    /// writes them, arrive intact; only the body's bytes went by sendfile.
    #[tokio::test]
    async fn state_slices_go_by_sendfile_and_arrive_intact() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let bodies = Arc::new(SendableBodies::in_temp_dir());
        let (state, body) = bodies.make(Bytes::from(data.clone()));
        assert!(body.is_some(), "memfd available");
        bodies.set(body);
        let (mut client, server) = pair().await;
        let sent = Counter::default();
        let mut out = SendfileStream::new(server, bodies, sent.clone());
        let part = state.slice(1000..2_500_000);
        let writer = tokio::spawn(async move {
            let (head, tail) = (b"HEAD".as_slice(), b"TAIL".as_slice());
            let mut bufs = [IoSlice::new(head), IoSlice::new(&part), IoSlice::new(tail)];
            let mut rest: &mut [IoSlice<'_>] = &mut bufs;
            while !rest.is_empty() {
                let n = out.write_vectored(rest).await.expect("write");
                IoSlice::advance_slices(&mut rest, n);
            }
            out.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer");
        let mut want = b"HEAD".to_vec();
        want.extend_from_slice(&data[1000..2_500_000]);
        want.extend_from_slice(b"TAIL");
        assert!(
            got == want,
            "{} bytes received, {} expected",
            got.len(),
            want.len()
        );
        assert_eq!(sent.get(), 2_499_000, "exactly the State range by sendfile");
    }
}
