//! A bounded in-memory history for the status page and `/api/history`: the
//! agreed finalized checkpoints as they advanced (checkpointz's "historical
//! checkpoints"), the agreed slots over time, and each upstream's recent
//! poll samples.
//!
//! Memory is fixed at start whatever happens: every buffer is a ring
//! allocated to its capacity, and the per-upstream capacity shrinks with the
//! upstream count so 1000 upstreams cost what a few dozen would.
//!
//! Every entry carries a sequence number so a client asks only for what it
//! has not seen (`?after=SEQ`). A number is taken while holding the lock of
//! the ring it goes into; a reader takes the counter *before* scanning and
//! returns only entries at or below it, so an entry numbered below what a
//! reader returned is always in that answer or an earlier one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::agreement::Finalized;
use crate::lean::api::Root;
use crate::upstream::{Observation, UpstreamError};

/// Agreed finalized checkpoints kept.
pub const CHECKPOINTS: usize = 64;
/// Agreed-slot samples kept (at most one a second, plus one per change).
pub const AGREED_SAMPLES: usize = 300;
/// Poll samples kept over all upstreams together.
const SAMPLE_BUDGET: usize = 24_000;
/// Poll samples kept per upstream, whatever the count.
const SAMPLES_MIN: usize = 16;
const SAMPLES_MAX: usize = 120;
/// Agreed samples closer than this with unchanged slots are not kept: the
/// decider runs after every batch of polls, far more often than the page draws.
const AGREED_MIN_GAP_MS: u64 = 1_000;

/// One agreed finalized checkpoint, when it became the served one.
#[derive(Clone, Copy, Debug)]
struct CheckpointEntry {
    seq: u64,
    slot: u64,
    root: Option<Root>,
    at_ms: u64,
    supporters: usize,
    required: usize,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct AgreedSample {
    pub seq: u64,
    pub at_ms: u64,
    pub finalized_slot: u64,
    pub justified_slot: Option<u64>,
}

/// One poll of one upstream.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PollSample {
    pub seq: u64,
    pub at_ms: u64,
    pub ok: bool,
    pub latency_us: u64,
    pub head_slot: Option<u64>,
    pub finalized_slot: Option<u64>,
}

/// What a poll observed, as the history keeps it.
#[derive(Clone, Copy, Debug)]
pub struct PollOutcome {
    pub ok: bool,
    pub latency_us: u64,
    pub head_slot: Option<u64>,
    pub finalized_slot: Option<u64>,
}

impl PollOutcome {
    pub fn of(result: &Result<Observation, UpstreamError>, latency: Duration) -> PollOutcome {
        let obs = result.as_ref().ok();
        PollOutcome {
            ok: obs.is_some(),
            latency_us: latency.as_micros().try_into().unwrap_or(u64::MAX),
            head_slot: obs.and_then(|o| o.head_slot),
            finalized_slot: obs.map(|o| o.finalized_slot),
        }
    }
}

#[derive(Clone, Debug)]
struct Agreement {
    checkpoints: VecDeque<CheckpointEntry>,
    agreed: VecDeque<AgreedSample>,
}

#[derive(Debug)]
pub struct History {
    seq: AtomicU64,
    agreement: Mutex<Agreement>,
    upstreams: Vec<Mutex<VecDeque<PollSample>>>,
    samples_per_upstream: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Rings stay consistent whatever panicked while one was held.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn push<T>(ring: &mut VecDeque<T>, cap: usize, v: T) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(v);
}

impl History {
    /// Takes over `prev`'s timeline when a reload builds a new state: the
    /// sequence, the agreed checkpoints and samples, and the recent polls of
    /// every upstream kept (`index` maps its old position to its new one).
    /// Without it a SIGHUP would blank the page's history.
    pub fn adopt(&self, prev: &History, index: impl Fn(usize) -> Option<usize>) {
        self.seq
            .store(prev.seq.load(Ordering::Relaxed), Ordering::Relaxed);
        *lock(&self.agreement) = lock(&prev.agreement).clone();
        for (i, old) in prev.upstreams.iter().enumerate() {
            let Some(ring) = index(i).and_then(|j| self.upstreams.get(j)) else {
                continue;
            };
            let mut ring = lock(ring);
            for sample in lock(old).iter() {
                push(&mut ring, self.samples_per_upstream, *sample);
            }
        }
    }

    pub fn new(upstreams: usize) -> History {
        let per = (SAMPLE_BUDGET / upstreams.max(1)).clamp(SAMPLES_MIN, SAMPLES_MAX);
        History {
            seq: AtomicU64::new(0),
            agreement: Mutex::new(Agreement {
                checkpoints: VecDeque::with_capacity(CHECKPOINTS),
                agreed: VecDeque::with_capacity(AGREED_SAMPLES),
            }),
            upstreams: (0..upstreams)
                .map(|_| Mutex::new(VecDeque::with_capacity(per)))
                .collect(),
            samples_per_upstream: per,
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records a poll of upstream `i`.
    pub fn record_poll(&self, i: usize, at_ms: u64, o: PollOutcome) {
        let Some(ring) = self.upstreams.get(i) else {
            return;
        };
        let mut ring = lock(ring);
        let sample = PollSample {
            seq: self.next_seq(),
            at_ms,
            ok: o.ok,
            latency_us: o.latency_us,
            head_slot: o.head_slot,
            finalized_slot: o.finalized_slot,
        };
        push(&mut ring, self.samples_per_upstream, sample);
    }

    /// Records a decision that reached agreement, with the checkpoint served
    /// after it. A served checkpoint at a new slot opens a timeline entry; a
    /// root learned for the last entry's slot completes that entry.
    pub fn record_agreement(
        &self,
        at_ms: u64,
        served: Finalized,
        justified_slot: Option<u64>,
        supporters: usize,
        required: usize,
    ) {
        let mut a = lock(&self.agreement);
        match a.checkpoints.back_mut() {
            Some(last) if last.slot == served.slot => {
                if last.root.is_none() && served.root.is_some() {
                    last.root = served.root;
                    last.seq = self.next_seq();
                }
            }
            Some(last) if last.slot > served.slot => {}
            _ => {
                let entry = CheckpointEntry {
                    seq: self.next_seq(),
                    slot: served.slot,
                    root: served.root,
                    at_ms,
                    supporters,
                    required,
                };
                push(&mut a.checkpoints, CHECKPOINTS, entry);
            }
        }
        let keep = a.agreed.back().is_none_or(|l| {
            l.finalized_slot != served.slot
                || l.justified_slot != justified_slot
                || at_ms >= l.at_ms + AGREED_MIN_GAP_MS
        });
        if keep {
            let sample = AgreedSample {
                seq: self.next_seq(),
                at_ms,
                finalized_slot: served.slot,
                justified_slot,
            };
            push(&mut a.agreed, AGREED_SAMPLES, sample);
        }
    }

    /// The agreed finalized checkpoints kept, oldest first.
    pub fn checkpoints(&self) -> Vec<CheckpointJson> {
        checkpoints_json(&lock(&self.agreement), |_| true)
    }

    /// Everything numbered after `after`, oldest first; `names[i]` names
    /// upstream i (names only: no URL reaches this answer).
    pub fn read(&self, after: u64, names: &[&str]) -> HistoryJson {
        let upto = self.seq.load(Ordering::Relaxed);
        let new = |seq: u64| seq > after && seq <= upto;
        let (checkpoints, agreed) = {
            let a = lock(&self.agreement);
            let checkpoints = checkpoints_json(&a, new);
            let agreed = a.agreed.iter().filter(|s| new(s.seq)).copied().collect();
            (checkpoints, agreed)
        };
        let upstreams = self
            .upstreams
            .iter()
            .zip(names)
            .map(|(ring, name)| UpstreamHistory {
                name: name.to_string(),
                samples: lock(ring).iter().filter(|s| new(s.seq)).copied().collect(),
            })
            .collect();
        HistoryJson {
            seq: upto,
            capacity: Capacity {
                checkpoints: CHECKPOINTS,
                agreed_samples: AGREED_SAMPLES,
                samples_per_upstream: self.samples_per_upstream,
            },
            checkpoints,
            agreed,
            upstreams,
        }
    }
}

fn checkpoints_json(a: &Agreement, keep: impl Fn(u64) -> bool) -> Vec<CheckpointJson> {
    a.checkpoints
        .iter()
        .filter(|c| keep(c.seq))
        .map(|c| CheckpointJson {
            seq: c.seq,
            slot: c.slot,
            root: c.root.map(|r| r.to_string()),
            at_ms: c.at_ms,
            supporters: c.supporters,
            required: c.required,
        })
        .collect()
}

/// `GET /api/history`.
#[derive(Debug, Serialize)]
pub struct HistoryJson {
    /// The highest sequence number included: pass it as `?after=` next time.
    pub seq: u64,
    pub capacity: Capacity,
    /// Agreed finalized checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointJson>,
    pub agreed: Vec<AgreedSample>,
    pub upstreams: Vec<UpstreamHistory>,
}

#[derive(Debug, Serialize)]
pub struct Capacity {
    pub checkpoints: usize,
    pub agreed_samples: usize,
    pub samples_per_upstream: usize,
}

#[derive(Debug, Serialize)]
pub struct CheckpointJson {
    pub seq: u64,
    pub slot: u64,
    pub root: Option<String>,
    pub at_ms: u64,
    /// Upstreams that supported it when it was agreed.
    pub supporters: usize,
    pub required: usize,
}

#[derive(Debug, Serialize)]
pub struct UpstreamHistory {
    pub name: String,
    pub samples: Vec<PollSample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(slot: u64, root: Option<u8>) -> Finalized {
        Finalized {
            slot,
            root: root.map(|b| Root([b; 32])),
        }
    }

    fn ok(latency_us: u64) -> PollOutcome {
        PollOutcome {
            ok: true,
            latency_us,
            head_slot: Some(3),
            finalized_slot: Some(1),
        }
    }

    #[test]
    fn checkpoints_open_on_a_new_slot_complete_a_root_and_stay_bounded() {
        let h = History::new(1);
        h.record_agreement(10, fin(4, None), Some(5), 3, 2);
        h.record_agreement(11, fin(4, Some(1)), Some(5), 3, 2);
        h.record_agreement(12, fin(4, Some(1)), Some(5), 3, 2);
        let r = h.read(0, &["a"]);
        assert_eq!(r.checkpoints.len(), 1);
        assert_eq!(r.checkpoints[0].root, Some(Root([1; 32]).to_string()));
        assert_eq!(r.checkpoints[0].at_ms, 10, "when it was first served");
        for slot in 5..(5 + 2 * CHECKPOINTS as u64) {
            h.record_agreement(20 + slot, fin(slot, Some(2)), None, 3, 2);
        }
        let r = h.read(0, &["a"]);
        assert_eq!(r.checkpoints.len(), CHECKPOINTS);
        let slots: Vec<u64> = r.checkpoints.iter().map(|c| c.slot).collect();
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");
        assert_eq!(*slots.last().expect("one"), 4 + 2 * CHECKPOINTS as u64);
        assert!(r.agreed.len() <= AGREED_SAMPLES);
    }

    #[test]
    fn agreed_samples_are_thinned_unless_a_slot_changes() {
        let h = History::new(0);
        for t in 0..100 {
            h.record_agreement(t * 10, fin(4, Some(1)), Some(5), 1, 1);
        }
        // 1 s of decisions every 10 ms, slots unchanged: the first and the one at 1 s.
        assert_eq!(h.read(0, &[]).agreed.len(), 1);
        h.record_agreement(1_000, fin(4, Some(1)), Some(5), 1, 1);
        h.record_agreement(1_001, fin(4, Some(1)), Some(6), 1, 1);
        assert_eq!(h.read(0, &[]).agreed.len(), 3);
    }

    #[test]
    fn after_returns_only_what_is_new_and_samples_are_bounded() {
        let h = History::new(2);
        h.record_poll(0, 1, ok(900));
        h.record_poll(1, 2, ok(1_500));
        let first = h.read(0, &["a", "b"]);
        assert_eq!(first.upstreams[0].samples.len(), 1);
        assert_eq!(first.upstreams[1].samples[0].latency_us, 1_500);
        h.record_poll(0, 3, ok(800));
        let next = h.read(first.seq, &["a", "b"]);
        assert_eq!(next.upstreams[0].samples.len(), 1);
        assert_eq!(next.upstreams[0].samples[0].latency_us, 800);
        assert!(next.upstreams[1].samples.is_empty());
        assert!(h.read(next.seq, &["a", "b"]).upstreams[0]
            .samples
            .is_empty());
        for t in 0..1000 {
            h.record_poll(0, t, ok(t));
        }
        assert_eq!(
            h.read(0, &["a", "b"]).upstreams[0].samples.len(),
            SAMPLES_MAX
        );
        h.record_poll(7, 0, ok(1)); // no such upstream: ignored
    }

    #[test]
    fn per_upstream_capacity_shrinks_with_the_count() {
        assert_eq!(History::new(8).samples_per_upstream, SAMPLES_MAX);
        assert_eq!(History::new(1000).samples_per_upstream, 24);
        assert_eq!(History::new(100_000).samples_per_upstream, SAMPLES_MIN);
    }
}
