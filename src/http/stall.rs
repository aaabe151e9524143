//! A write-progress deadline for inbound connections.
//!
//! There is deliberately no timeout on a whole request: a legitimate client
//! downloading a large State over a slow link may take minutes, and that is
//! fine. What must not happen is a client that stops reading altogether
//! holding its connection (and its fd and permit) forever, since once the
//! kernel's send buffer is full hyper's write simply stays pending.
//!
//! `WriteStall` wraps the socket and fails a write (or flush) that has made
//! no progress at all for `limit`: any byte accepted by the kernel resets the
//! clock, so a slow reader is never cut off, only one that has stopped. The
//! error ends hyper's connection, which drops the socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose writes fail after `limit` without progress.
#[derive(Debug)]
pub struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is pending; its deadline is `limit` after the
    /// write first stalled. Reused, so a stall costs no allocation.
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> WriteStall<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Maps one write-side poll result: progress disarms the timer, a
    /// pending write arms it (once) and fails when it expires.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    let deadline = Instant::now() + self.limit;
                    self.timer.as_mut().reset(deadline);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "client read nothing for {} ms; closing the connection",
                            self.limit.as_millis()
                        ),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write() {
        // A duplex pipe with a 16-byte buffer and nobody reading: the write
        // stalls once the buffer is full.
        let (a, _b) = tokio::io::duplex(16);
        let mut w = WriteStall::new(a, Duration::from_millis(100));
        let started = Instant::now();
        let err = w
            .write_all(&[0u8; 1024])
            .await
            .expect_err("a write nobody reads must fail");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_cut_off() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut w = WriteStall::new(a, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut total = 0;
            let mut buf = [0u8; 32];
            // 32 bytes every 30 ms: slow, but never stalled for 200 ms.
            while total < 512 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                total += b.read(&mut buf).await.expect("read");
            }
            total
        });
        w.write_all(&[1u8; 512])
            .await
            .expect("slow reader keeps the write alive");
        assert_eq!(reader.await.expect("join"), 512);
    }
}
