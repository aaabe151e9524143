//! Coalesced `/metrics` encodings ("single flight"): scrapes that arrive
//! while the registry is being encoded share the next encoding instead of
//! each encoding its own.
//!
//! Why: at 16 upstreams a body is ~86 KB and costs ~120 µs to encode (and
//! as much again to gzip); a scrape storm (many Prometheus replicas, a
//! dashboard, `wrk`) spent a core per concurrent scrape on identical bytes
//! and could starve the pollers. Nothing reported is dropped to make it
//! cheaper: the body is what it was, it is just made fewer times.
//!
//! The rule, per format (OpenMetrics and classic text have their own slot):
//!
//! - **At most one encoding runs at a time.** The slot's async mutex is held
//!   while the registry is encoded, so a storm uses about one core per
//!   format and tokio's other worker keeps polling.
//! - **Never stale.** A request that finds an encoding running waits for it
//!   to end, then reuses the latest body only if that body's encoding
//!   *started after the request arrived* ([`reusable`]); else it encodes
//!   anew. So every answer reflects the registry at or after the request's
//!   arrival, exactly as an encoding of its own would.
//! - **Gzip once per body.** A scraper that asks for gzip gets that body
//!   compressed once and the compressed bytes shared as well.
//! - **Nothing held between scrapes.** A body can only serve requests that
//!   arrived before its encoding started, i.e. ones already waiting, so the
//!   last waiter out drops it: an idle process holds no copy of a body
//!   (7 MB at 1000 upstreams).
//!
//! `leanpoint_metrics_encodings_total` and
//! `leanpoint_metrics_compressions_total` count the bodies made; against
//! `leanpoint_http_requests_total{route="/metrics"}` they give the sharing
//! ratio.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::Mutex;

use super::exposition::{self, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use super::families::Metrics;
use super::per_upstream::UpstreamSeries;

/// Bodies smaller than this are not gzipped (tower-http's `SizeAbove(256)`
/// in `http::routes`, which then decides as it always did).
pub const GZIP_MIN_BYTES: usize = 256;

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// A body for one scrape: shared bytes, gzipped when `gzip`.
#[derive(Clone, Debug)]
pub struct Body {
    pub bytes: Bytes,
    pub gzip: bool,
}

/// The registry and its shared encodings. Built once in `service::build`,
/// shared by every `AppState` a reload makes (same registry, same slots),
/// read by the `/metrics` handlers of both listeners.
pub struct Scrapes {
    registry: Arc<Registry>,
    /// The per-upstream series, written after the registry's families.
    series: Arc<UpstreamSeries>,
    openmetrics: Slot,
    text: Slot,
    encodings: Counter,
    compressions: Counter,
}

impl std::fmt::Debug for Scrapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrapes").finish_non_exhaustive()
    }
}

impl Scrapes {
    /// `registry` holds every family already (`Metrics::new`, the process
    /// collector); `metrics` gives the two counters of this mechanism.
    pub fn new(registry: Arc<Registry>, metrics: &Metrics) -> Scrapes {
        Scrapes {
            registry,
            series: metrics.series().clone(),
            openmetrics: Slot::default(),
            text: Slot::default(),
            encodings: metrics.metrics_encodings.clone(),
            compressions: metrics.metrics_compressions.clone(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The body for a scrape arriving now (see the module's rule). `gzip`:
    /// the scraper accepts gzip; the body comes back gzipped unless it is
    /// under [`GZIP_MIN_BYTES`] (or compressing failed), `Body::gzip` says.
    pub async fn body(&self, format: Format, gzip: bool) -> Result<Body, std::fmt::Error> {
        let slot = match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Text => &self.text,
        };
        let ticket = slot.arrive();
        slot.serve(
            ticket,
            gzip,
            || {
                // Counted before encoding: the body reports itself.
                self.encodings.inc();
                exposition::encode(&self.registry, &self.series, format == Format::OpenMetrics)
            },
            |plain| {
                self.compressions.inc();
                gzip_fast(plain)
            },
        )
        .await
    }
}

/// Gzip at level 1, what tower-http's `CompressionLevel::Fastest` gives.
pub fn gzip_fast(plain: &[u8]) -> std::io::Result<Bytes> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(plain)?;
    Ok(Bytes::from(gz.finish()?))
}

/// The freshness rule: a body whose encoding had number `encoded` may answer
/// a request that saw `arrived` encodings started when it arrived only if
/// that encoding started after the arrival, i.e. it was not among them.
pub fn reusable(encoded: u64, arrived: u64) -> bool {
    encoded > arrived
}

/// One format's encodings.
#[derive(Default)]
struct Slot {
    /// Encodings started so far; an encoding's number is this count once it
    /// has started (taken before the registry is read).
    started: AtomicU64,
    /// Requests arrived and not answered yet (or given up).
    waiting: AtomicUsize,
    /// The latest body while someone may still reuse it. Held while
    /// encoding: this is what serializes encodings.
    last: Mutex<Option<Encoded>>,
}

struct Encoded {
    number: u64,
    body: Bytes,
    /// `body` gzipped, made by the first gzip scrape that needs it.
    gzip: Option<Bytes>,
}

/// A request's arrival: how many encodings had started. Dropping it (the
/// client went away while waiting) un-counts the request.
struct Ticket<'a> {
    slot: &'a Slot,
    arrived: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.slot.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slot {
    fn arrive(&self) -> Ticket<'_> {
        // Counted waiting first: a body the last waiter drops after this
        // could not have served this request anyway (its encoding started
        // before the load below).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Ticket {
            slot: self,
            arrived: self.started.load(Ordering::SeqCst),
        }
    }

    async fn serve(
        &self,
        ticket: Ticket<'_>,
        gzip: bool,
        encode: impl FnOnce() -> Result<String, std::fmt::Error>,
        compress: impl FnOnce(&[u8]) -> std::io::Result<Bytes>,
    ) -> Result<Body, std::fmt::Error> {
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .is_some_and(|e| reusable(e.number, ticket.arrived));
        if !fresh {
            let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            *last = None;
            let body = Bytes::from(encode()?);
            *last = Some(Encoded {
                number,
                body,
                gzip: None,
            });
        }
        let Some(shared) = last.as_mut() else {
            return Err(std::fmt::Error);
        };
        let body = if gzip && shared.body.len() >= GZIP_MIN_BYTES {
            if shared.gzip.is_none() {
                // A failure (none is known for an in-memory Vec) leaves the
                // plain body, which the compression layer then handles.
                shared.gzip = compress(&shared.body).ok();
            }
            match &shared.gzip {
                Some(gz) => Body {
                    bytes: gz.clone(),
                    gzip: true,
                },
                None => Body {
                    bytes: shared.body.clone(),
                    gzip: false,
                },
            }
        } else {
            Body {
                bytes: shared.body.clone(),
                gzip: false,
            }
        };
        drop(ticket);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            *last = None;
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies this long are over [`GZIP_MIN_BYTES`].
    const REPS: usize = 1000;

    fn plain(s: &str) -> impl FnOnce() -> Result<String, std::fmt::Error> + '_ {
        move || Ok(s.repeat(REPS))
    }

    fn never() -> Result<String, std::fmt::Error> {
        panic!("encoded, but a fresh body was there to share")
    }

    fn no_gzip(_: &[u8]) -> std::io::Result<Bytes> {
        panic!("compressed a body nobody asked gzip for")
    }

    async fn text(
        slot: &Slot,
        t: Ticket<'_>,
        e: impl FnOnce() -> Result<String, std::fmt::Error>,
    ) -> String {
        let b = slot.serve(t, false, e, no_gzip).await.expect("encoded");
        String::from_utf8(b.bytes.to_vec()).expect("UTF-8")
    }

    #[test]
    fn only_an_encoding_started_after_the_arrival_is_reused() {
        // Encoding 3 had started (or ended) when the request arrived having
        // seen 3: never handed to it. Encoding 4 started after: shared.
        assert!(!reusable(3, 3));
        assert!(!reusable(2, 3));
        assert!(reusable(4, 3));
        assert!(!reusable(0, 0));
    }

    #[tokio::test]
    async fn a_body_encoded_before_a_request_arrived_is_never_handed_to_it() {
        let slot = Slot::default();
        let early = slot.arrive();
        // `early` waits while `a` (arrived after it) encodes.
        let a = slot.arrive();
        assert_eq!(text(&slot, a, plain("1")).await, "1".repeat(REPS));
        // Encoding 1 started after `early` arrived: shared, no encoding.
        assert_eq!(text(&slot, early, never).await, "1".repeat(REPS));
        // Nobody waits now: the body is gone, and one arriving now encodes.
        assert!(slot.last.lock().await.is_none());
        let late = slot.arrive();
        assert_eq!(text(&slot, late, plain("2")).await, "2".repeat(REPS));
    }

    #[tokio::test]
    async fn a_request_arriving_during_an_encoding_waits_for_the_next_one() {
        let slot = Slot::default();
        let mut during = Vec::new();
        let a = slot.arrive();
        let one = text(&slot, a, || {
            // Two scrapes arrive while encoding 1 reads the registry.
            during.push(slot.arrive());
            during.push(slot.arrive());
            Ok("1".repeat(REPS))
        })
        .await;
        assert_eq!(one, "1".repeat(REPS));
        let mut during = during.into_iter();
        let (b, c) = (during.next().expect("b"), during.next().expect("c"));
        // Encoding 1 had started when they arrived: never theirs.
        assert_eq!(text(&slot, b, plain("2")).await, "2".repeat(REPS));
        // Encoding 2 started after `c` arrived: shared.
        assert_eq!(text(&slot, c, never).await, "2".repeat(REPS));
    }

    #[tokio::test]
    async fn gzip_is_made_once_per_body_and_shared() {
        let slot = Slot::default();
        let (a, b, c) = (slot.arrive(), slot.arrive(), slot.arrive());
        let compressions = AtomicUsize::new(0);
        let gz = |p: &[u8]| {
            compressions.fetch_add(1, Ordering::SeqCst);
            gzip_fast(p)
        };
        let one = slot.serve(a, true, plain("x"), gz).await.expect("a");
        let two = slot.serve(b, true, never, gz).await.expect("b");
        let three = slot.serve(c, false, never, no_gzip).await.expect("c");
        assert_eq!(compressions.load(Ordering::SeqCst), 1);
        assert!(one.gzip && two.gzip && !three.gzip);
        assert_eq!(one.bytes, two.bytes);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&one.bytes[..]), &mut out)
            .expect("gunzip");
        assert_eq!(out.as_bytes(), &three.bytes[..]);
        // Under the size threshold: plain, the layer decides.
        let small = slot.arrive();
        let b = slot
            .serve(small, true, || Ok("tiny".into()), no_gzip)
            .await
            .expect("small");
        assert!(!b.gzip);
    }

    #[tokio::test]
    async fn a_request_given_up_while_waiting_is_uncounted() {
        let slot = Slot::default();
        let gone = slot.arrive();
        let t = slot.arrive();
        drop(gone);
        assert_eq!(text(&slot, t, plain("1")).await, "1".repeat(REPS));
        assert_eq!(slot.waiting.load(Ordering::SeqCst), 0);
        assert!(slot.last.lock().await.is_none());
    }

    #[tokio::test]
    async fn scrapes_count_their_encodings() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg, &["a".into()], 0.8);
        let s = Scrapes::new(Arc::new(reg), &m);
        let b = s.body(Format::Text, false).await.expect("text");
        let body = String::from_utf8(b.bytes.to_vec()).expect("UTF-8");
        assert!(
            body.contains("leanpoint_metrics_encodings_total 1\n"),
            "{body}"
        );
        let _ = s.body(Format::OpenMetrics, true).await.expect("om");
        assert_eq!(m.metrics_encodings.get(), 2);
        assert_eq!(m.metrics_compressions.get(), 1);
    }
}
