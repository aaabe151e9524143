//! Inbound sockets that send the served State with sendfile(2).
//!
//! hyper writes a response as iovecs: its head, then the body's `Bytes` as a
//! slice of its own (its queue write strategy, which `Connection::serve`
//! asks for). [`SendfileStream`] looks each slice up in [`SendableBodies`]. A
//! slice of the served State goes to the socket by sendfile from its file
//! at the same offset, so the kernel sends the file's pages instead of
//! copying the bytes once per download (see `served::sendable`). Anything
//! else is written as before. hyper sees what it always sees: how many bytes
//! from the front of its iovecs were written.
//!
//! From the first write of a response that holds such a slice until hyper
//! flushes (everything it queued is in the socket), the socket is corked
//! (TCP_CORK), as nginx's `tcp_nopush` does. TCP_NODELAY is on for the small
//! JSON answers, and without the cork it also sends the partial segment at
//! the end of every sendfile call and the short remainder of every
//! page-sized batch at once: on loopback a download of a 3.5 MiB State went
//! out in 84-98 segments, a third of them 53 to 477 bytes; corked, in 63-70,
//! as nginx's (58-74).
//!
//! A socket that sends the State also keeps at most [`UNSENT_LOWAT`] of it
//! queued unsent in the kernel (TCP_NOTSENT_LOWAT): the socket is writable
//! again, and sendfile goes on, only once the queue drains below it. Without
//! it, each download puts the whole State (up to the 4 MiB send-buffer
//! limit) in kernel memory at once. A burst of 1024 syncing clients then
//! holds gigabytes of socket memory, the kernel's TCP memory pressure (which
//! shrinks every socket's buffers, the upstream polls' included) sets in,
//! and the transmissions, left to the peers' ACKs, go out in smaller
//! segments with spurious tail-loss probes. Bounded, the kernel memory of a
//! download is its congestion window plus this, whatever the State's size.
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
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::served::sendable::{SendableBodies, SendableBody};

/// The most one sendfile call sends: nginx's default `sendfile_max_chunk`.
/// In bursts of 256 fresh connections fetching a 3.5 MiB State, the mean
/// throughput against nginx's rose in each of six A/B runs (2-7%) over calls
/// of the whole remaining body; 1 MiB and 256 KiB did no better than whole
/// calls (BENCHMARKS.md, change 16).
pub const MAX_CHUNK: usize = 2 << 20;

/// The most unsent bytes one download keeps queued in the kernel
/// (TCP_NOTSENT_LOWAT). It bounds only what is not yet sent, never what is
/// in flight, so it does not cap a connection's rate on a long path: the
/// queue lasts as long as the wake-up that refills it (128 KiB is 100 µs at
/// 10 Gbit/s). In bursts of fresh connections on loopback, 128 KiB served
/// 256 clients 1.7× and 1024 clients 1.5× as fast as no bound (3.0× and
/// 2.2× with the client and the server on cores of their own), at less CPU
/// for the machine and with no TCP memory pressure; 64 KiB did worse at 256,
/// 256 and 512 KiB gained less. The price is a wake-up per 128 KiB sent
/// (BENCHMARKS.md, change 17).
pub const UNSENT_LOWAT: u32 = 128 << 10;

/// A TCP stream whose writes of the served State go out by sendfile.
#[derive(Debug)]
pub struct SendfileStream {
    inner: TcpStream,
    bodies: Arc<SendableBodies>,
    /// `leanpoint_http_sendfile_bytes_total`.
    sent: Counter,
    /// The most one sendfile call sends: [`MAX_CHUNK`] but in tests.
    chunk: usize,
    /// TCP_CORK is set: a response with a sendable body is being written
    /// and hyper has not flushed it yet.
    corked: bool,
    /// TCP_NOTSENT_LOWAT is set (once per connection, at its first body).
    bounded: bool,
}

impl SendfileStream {
    pub fn new(inner: TcpStream, bodies: Arc<SendableBodies>, sent: Counter) -> Self {
        SendfileStream {
            inner,
            bodies,
            sent,
            chunk: MAX_CHUNK,
            corked: false,
            bounded: false,
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

    /// Before a sendable body's first write: the cork, and the bound on
    /// the unsent queue.
    fn start_body(&mut self) {
        if !self.bounded {
            // A kernel without it (before 3.12) queues as before.
            let _ = socket2::SockRef::from(&self.inner).set_tcp_notsent_lowat(UNSENT_LOWAT);
            self.bounded = true;
        }
        self.cork();
    }

    /// Holds partial segments back until [`Self::uncork`]: the head, the
    /// body's chunks and the short batches inside each sendfile call go out
    /// as full segments.
    fn cork(&mut self) {
        if !self.corked {
            // A socket that refuses it sends as before, only in more segments.
            let _ = rustix::net::sockopt::set_tcp_cork(&self.inner, true);
            self.corked = true;
        }
    }

    /// Sends whatever the cork held back.
    fn uncork(&mut self) {
        if self.corked {
            let _ = rustix::net::sockopt::set_tcp_cork(&self.inner, false);
            self.corked = false;
        }
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
            Some((body, offset)) => {
                self.start_body();
                self.poll_sendfile(cx, &body, offset, buf.len())
            }
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
            self.start_body();
            return if k == 0 {
                self.poll_sendfile(cx, &body, offset, buf.len())
            } else {
                // What precedes the body (the head) goes first, by a plain
                // write; the cork keeps it for the body's first segment.
                Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..k])
            };
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// hyper flushes once all it queued is written: the response is in the
    /// socket, and what the cork holds must go now, not at the kernel's
    /// 200 ms cork limit.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.uncork();
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.uncork();
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

    /// A response with a sendable body is corked from its first write until
    /// the flush that ends it, and not after: a cork left on would hold the
    /// response's last segment back for the kernel's 200 ms. Other writes
    /// (the JSON answers) are never corked. Its unsent queue stays bounded.
    #[tokio::test]
    async fn a_sendable_response_is_corked_until_its_flush_and_bounded() {
        let data: Vec<u8> = (0..500_000u32).map(|i| (i * 11 % 253) as u8).collect();
        let (state, bodies) = served(&data);
        let (mut client, server) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.expect("read");
            got
        });
        let mut out = SendfileStream::new(server, bodies, Counter::default());
        let corked =
            |s: &SendfileStream| rustix::net::sockopt::tcp_cork(&s.inner).expect("TCP_CORK");
        let lowat = |s: &SendfileStream| {
            socket2::SockRef::from(&s.inner)
                .tcp_notsent_lowat()
                .expect("TCP_NOTSENT_LOWAT")
        };
        let unbounded = lowat(&out);
        out.write_all(b"JSON").await.expect("write");
        assert!(!corked(&out), "a plain write is not corked");
        assert_eq!(lowat(&out), unbounded, "nor bounded");
        out.flush().await.expect("flush");
        let head = b"HEAD".as_slice();
        let mut bufs = [IoSlice::new(head), IoSlice::new(&state)];
        let mut rest: &mut [IoSlice<'_>] = &mut bufs;
        while !rest.is_empty() {
            let n = out.write_vectored(rest).await.expect("write");
            IoSlice::advance_slices(&mut rest, n);
            assert!(corked(&out), "corked while the response is written");
            assert_eq!(lowat(&out), UNSENT_LOWAT, "the unsent queue bounded");
        }
        out.flush().await.expect("flush");
        assert!(!corked(&out), "uncorked once the response is flushed");
        out.shutdown().await.expect("shutdown");
        drop(out);
        let got = reader.await.expect("reader");
        let mut want = b"JSONHEAD".to_vec();
        want.extend_from_slice(&data);
        assert!(
            got == want,
            "{} bytes received of {}",
            got.len(),
            want.len()
        );
    }
}
