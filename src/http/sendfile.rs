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
//!
//! Each sendfile call sends at most [`MAX_CHUNK`] bytes, as nginx's
//! `sendfile_max_chunk` does: one call on a fast reader runs in the kernel
//! until the socket's buffers fill, holding its worker thread meanwhile, and
//! a bounded call lets the other connections on that worker (scrapes,
//! probes, the other downloads of a burst) have their turn sooner.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use prometheus_client::metrics::counter::Counter;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::served::sendable::{SendableBodies, SendableBody};

/// The most one sendfile call sends: nginx's default `sendfile_max_chunk`.
/// In bursts of 256 fresh connections fetching a 3.5 MiB State, the mean
/// throughput against nginx's rose in each of six A/B runs (2-7%) over calls
/// of the whole remaining body; 1 MiB and 256 KiB did no better than whole
/// calls (BENCHMARKS.md, change 16).
pub const MAX_CHUNK: usize = 2 << 20;

/// A TCP stream whose writes of the served State go out by sendfile.
#[derive(Debug)]
pub struct SendfileStream {
    inner: TcpStream,
    bodies: Arc<SendableBodies>,
    /// `leanpoint_http_sendfile_bytes_total`.
    sent: Counter,
    /// The most one sendfile call sends: [`MAX_CHUNK`] but in tests.
    chunk: usize,
}

impl SendfileStream {
    pub fn new(inner: TcpStream, bodies: Arc<SendableBodies>, sent: Counter) -> Self {
        SendfileStream {
            inner,
            bodies,
            sent,
            chunk: MAX_CHUNK,
        }
    }

    /// The stream with sendfile calls of at most `chunk` bytes, so a test can
    /// tell the bound from the socket's own buffer limits.
    #[cfg(test)]
    fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk;
        self
    }

    /// Sends up to `len` bytes of `body` from `offset`, at most one chunk.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        body: &SendableBody,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let len = len.min(self.chunk);
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

    /// `data` as the served body in a file of its own, and its `Bytes`.
    fn served(data: &[u8]) -> (Bytes, Arc<SendableBodies>) {
        let bodies = Arc::new(SendableBodies::in_temp_dir());
        let (state, body) = bodies.make(Bytes::copy_from_slice(data));
        assert!(body.is_some(), "a file for the body");
        bodies.set(body);
        (state, bodies)
    }

    /// A head, a range of the served body and a tail, written the way hyper
    /// writes them, arrive intact; only the body's bytes went by sendfile.
    #[tokio::test]
    async fn state_slices_go_by_sendfile_and_arrive_intact() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let (state, bodies) = served(&data);
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

    /// No sendfile call sends more than the chunk, however much the socket
    /// would take, and the chunks still add up to the whole body.
    #[tokio::test]
    async fn each_sendfile_call_sends_at_most_one_chunk() {
        const CHUNK: usize = 16 << 10;
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let (state, bodies) = served(&data);
        let (mut client, server) = pair().await;
        let mut out = SendfileStream::new(server, bodies, Counter::default()).with_chunk(CHUNK);
        let writer = tokio::spawn(async move {
            let mut rest = state.clone();
            let mut largest = 0;
            while !rest.is_empty() {
                let n = out.write(&rest).await.expect("write");
                largest = largest.max(n);
                rest = rest.slice(n..);
            }
            out.shutdown().await.expect("shutdown");
            largest
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        let largest = writer.await.expect("writer");
        assert_eq!(largest, CHUNK, "the largest single write");
        assert!(
            got == data,
            "{} bytes received of {}",
            got.len(),
            data.len()
        );
    }
}
