//! The per-upstream families as OpenMetrics text (the classic format is
//! converted from it, as for the rest of the registry: `exposition`).
//!
//! The table below is where these families are defined: name, type, HELP and
//! which handle of `UpstreamMetrics` gives the value. The text is what
//! prometheus-client's encoder writes for the same families (HELP with a
//! closing period, `# UNIT`, counters sampled as `_total`, `le` first in a
//! bucket's labels), which a test checks byte for byte; only the order of the
//! series differs, configuration order here against a hash map's order there.

use std::fmt::{Result, Write};

use super::labels::LabelText;
use super::latency;
use super::per_upstream::UpstreamMetrics;
use crate::upstream::Endpoint;

/// Writes every per-upstream family for `ups`. One row per family, in
/// exposition order (rustfmt would fold the table into a page per row).
#[rustfmt::skip]
pub(super) fn encode<W: Write>(w: &mut W, ups: &[UpstreamMetrics]) -> Result {
    use Kind::{Counter, Gauge};
    let mut e = Families { w, ups };
    e.plain(Gauge, "upstream_head_slot", "Head slot reported by the upstream at its last successful poll (polled in the background; a scrape never contacts upstreams)", |u| u.head_slot.get())?;
    e.plain(Gauge, "upstream_justified_slot", "Justified slot reported by the upstream at its last successful poll", |u| u.justified_slot.get())?;
    e.plain(Gauge, "upstream_finalized_slot", "Finalized slot reported by the upstream at its last successful poll", |u| u.finalized_slot.get())?;
    e.plain(Gauge, "upstream_up", "1 if the upstream's last poll succeeded, else 0", |u| u.up.get())?;
    e.plain(Gauge, "upstream_agrees_with_consensus", "1 if the upstream's fresh finalized checkpoint is the agreed one, else 0", |u| u.agrees.get())?;
    e.family("upstream_last_success_timestamp_seconds", "Unix time of the upstream's last successful poll (0 = never)", "gauge", None)?;
    e.each(|w, u| {
        sample(w, "leanpoint_upstream_last_success_timestamp_seconds", u, None)?;
        float(w, u.last_success.get())
    })?;
    e.plain(Gauge, "upstream_consecutive_errors", "Polls in a row that failed for this upstream", |u| u.consecutive_errors.get())?;
    e.plain(Gauge, "upstream_in_flight_requests", "Requests to this upstream in flight now: 0 or 1 by construction (one poll at a time, requests in sequence)", |u| u.in_flight.get())?;
    e.plain(Counter, "upstream_polls", "Polls started for this upstream", |u| u.polls.get())?;
    e.plain(Counter, "upstream_polls_skipped", "Poll ticks skipped because the previous poll of this upstream was still running", |u| u.polls_skipped.get())?;
    e.with_key(Counter, "upstream_requests", "Requests sent to the upstream, by Lean API endpoint (failed ones included)", "endpoint", |u| &u.requests)?;
    e.latency()?;
    e.with_key(Counter, "upstream_timeouts", "Requests to the upstream cancelled at a deadline: connect (TCP handshake) or total (whole request, body included)", "phase", |u| &u.timeouts)?;
    e.with_key(Counter, "upstream_errors", "Failed requests to the upstream, by kind (timeouts included)", "kind", |u| &u.errors)?;
    e.with_key(Gauge, "upstream_source", "1 for the data source the upstream currently gives: fork_choice (full checkpoints) or fallback (checkpoints/justified + state slot); unknown before the first success", "source", |u| &u.source)?;
    e.with_key(Gauge, "upstream_standing", "1 for the upstream's standing to the agreed chain (agreeing, ahead, behind, conflicting, unknown, failing), 0 for the others", "standing", |u| &u.standing)
}

const PREFIX: &str = "leanpoint_";

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }

    /// What a sample's name adds to the family's.
    fn suffix(self) -> &'static str {
        match self {
            Kind::Gauge => "",
            Kind::Counter => "_total",
        }
    }
}

struct Families<'a, W> {
    w: &'a mut W,
    ups: &'a [UpstreamMetrics],
}

impl<W: Write> Families<'_, W> {
    /// `# HELP`, `# TYPE` and `# UNIT` of family `name` (without the
    /// prefix; with `unit`, the name is suffixed by it).
    fn family(&mut self, name: &str, help: &str, kind: &str, unit: Option<&str>) -> Result {
        let w = &mut *self.w;
        let full = |w: &mut W| {
            w.write_str(PREFIX)?;
            w.write_str(name)?;
            match unit {
                Some(unit) => {
                    w.write_char('_')?;
                    w.write_str(unit)
                }
                None => Ok(()),
            }
        };
        w.write_str("# HELP ")?;
        full(w)?;
        w.write_char(' ')?;
        w.write_str(help)?;
        w.write_str(".\n# TYPE ")?;
        full(w)?;
        w.write_char(' ')?;
        w.write_str(kind)?;
        w.write_char('\n')?;
        if let Some(unit) = unit {
            w.write_str("# UNIT ")?;
            full(w)?;
            w.write_char(' ')?;
            w.write_str(unit)?;
            w.write_char('\n')?;
        }
        Ok(())
    }

    fn each(&mut self, mut f: impl FnMut(&mut W, &UpstreamMetrics) -> Result) -> Result {
        for u in self.ups {
            f(self.w, u)?;
            self.w.write_char('\n')?;
        }
        Ok(())
    }

    /// A family with only the upstream label.
    fn plain<T: itoa::Integer>(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        value: impl Fn(&UpstreamMetrics) -> T,
    ) -> Result {
        self.family(name, help, kind.name(), None)?;
        let sample_name = [PREFIX, name, kind.suffix()].concat();
        self.each(|w, u| {
            sample(w, &sample_name, u, None)?;
            w.write_str(itoa::Buffer::new().format(value(u)))
        })
    }

    /// A family with one more label, one series per key.
    fn with_key<K: LabelText, V: Value>(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        label: &str,
        handles: impl Fn(&UpstreamMetrics) -> &[(K, V)],
    ) -> Result {
        self.family(name, help, kind.name(), None)?;
        self.keyed(&[PREFIX, name, kind.suffix()].concat(), label, handles)
    }

    fn keyed<K: LabelText, V: Value>(
        &mut self,
        sample_name: &str,
        label: &str,
        handles: impl Fn(&UpstreamMetrics) -> &[(K, V)],
    ) -> Result {
        let Some(first) = self.ups.first() else {
            return Ok(());
        };
        // `,endpoint="fork_choice"`, once per key rather than once per sample.
        // Every upstream's handles have the same keys in the same order
        // (`UpstreamMetrics::new` builds them from the `ALL` arrays).
        let keys: Vec<String> = handles(first)
            .iter()
            .map(|(k, _)| key_text(label, k.label_text()))
            .collect();
        for u in self.ups {
            for ((_, v), key) in handles(u).iter().zip(&keys) {
                sample(self.w, sample_name, u, Some(key))?;
                v.write(self.w)?;
                self.w.write_char('\n')?;
            }
        }
        Ok(())
    }

    /// `upstream_request_duration_seconds`: fork_choice for every upstream,
    /// another endpoint once it has been asked.
    fn latency(&mut self) -> Result {
        self.family("upstream_request_duration", "Duration of requests to the upstream, by Lean API endpoint, until the body is read or the request fails", "histogram", Some("seconds"))?;
        let name = "leanpoint_upstream_request_duration_seconds";
        let (sum, count, bucket) = (
            [name, "_sum"].concat(),
            [name, "_count"].concat(),
            [name, "_bucket"].concat(),
        );
        let les: Vec<String> = latency::upper_bounds()
            .map(|b| match b {
                Some(b) => ["{le=\"", dtoa::Buffer::new().format(b), "\","].concat(),
                None => "{le=\"+Inf\",".to_string(),
            })
            .collect();
        let keys: Vec<String> = Endpoint::ALL
            .iter()
            .map(|e| key_text("endpoint", e.as_str()))
            .collect();
        let w = &mut *self.w;
        for u in self.ups {
            for ((endpoint, h), key) in u.latency.iter().zip(&keys) {
                let c = h.counts();
                if c.count == 0 && *endpoint != Endpoint::ForkChoice {
                    continue;
                }
                sample(w, &sum, u, Some(key))?;
                float(w, c.sum)?;
                w.write_char('\n')?;
                sample(w, &count, u, Some(key))?;
                w.write_str(itoa::Buffer::new().format(c.count))?;
                w.write_char('\n')?;
                let mut cumulative = 0;
                for (le, n) in les.iter().zip(c.buckets) {
                    cumulative += n;
                    w.write_str(&bucket)?;
                    w.write_str(le)?;
                    w.write_str(&u.label)?;
                    w.write_str(key)?;
                    w.write_str("} ")?;
                    w.write_str(itoa::Buffer::new().format(cumulative))?;
                    w.write_char('\n')?;
                }
            }
        }
        Ok(())
    }
}

/// `,label="value"`: the label after `upstream`, rendered once per key
/// (values are fixed snake_case names, nothing to escape).
fn key_text(label: &str, value: &str) -> String {
    [",", label, "=\"", value, "\""].concat()
}

/// `name{upstream="..."<key>} `: everything of a sample line but its value.
fn sample<W: Write>(w: &mut W, name: &str, u: &UpstreamMetrics, key: Option<&str>) -> Result {
    w.write_str(name)?;
    w.write_char('{')?;
    w.write_str(&u.label)?;
    if let Some(key) = key {
        w.write_str(key)?;
    }
    w.write_str("} ")
}

fn float<W: Write>(w: &mut W, v: f64) -> Result {
    w.write_str(dtoa::Buffer::new().format(v))
}

/// A handle's value as text.
trait Value {
    fn write<W: Write>(&self, w: &mut W) -> Result;
}

impl Value for prometheus_client::metrics::counter::Counter {
    fn write<W: Write>(&self, w: &mut W) -> Result {
        w.write_str(itoa::Buffer::new().format(self.get()))
    }
}

impl Value for prometheus_client::metrics::gauge::Gauge {
    fn write<W: Write>(&self, w: &mut W) -> Result {
        w.write_str(itoa::Buffer::new().format(self.get()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use prometheus_client::encoding::text::encode_registry;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit};

    use super::super::labels::{LabelText, Phase};
    use super::super::per_upstream::UpstreamSeries;
    use super::super::register::LATENCY_BUCKETS;
    use crate::agreement::Standing;
    use crate::upstream::{Endpoint, ErrorKind, Report, Source};

    type Labels = Vec<(String, String)>;
    type Get<T> = fn(&super::UpstreamMetrics) -> T;

    fn text(series: &UpstreamSeries) -> String {
        let mut s = String::new();
        series
            .with_current(|ups| super::encode(&mut s, ups))
            .expect("encode");
        s
    }

    /// The same families as prometheus-client `Family`s, filled from the
    /// same handles, registered in the same order.
    struct Reference {
        reg: Registry,
        helps: Vec<(String, String)>,
    }

    impl Reference {
        fn help(&self, name: &str) -> String {
            let full = format!("leanpoint_{name}");
            let (_, h) = self.helps.iter().find(|(n, _)| *n == full).expect(name);
            h.trim_end_matches('.').to_string()
        }

        fn add<M: prometheus_client::registry::Metric + Clone>(&mut self, name: &str, m: &M) {
            let help = self.help(name);
            self.reg
                .sub_registry_with_prefix("leanpoint")
                .register(name, help, m.clone());
        }
    }

    fn labels(u: &str, extra: Option<(&str, &str)>) -> Labels {
        let mut l = vec![("upstream".to_string(), u.to_string())];
        l.extend(extra.map(|(k, v)| (k.to_string(), v.to_string())));
        l
    }

    /// Our text per family: its header lines, then its samples sorted (the
    /// reference writes a family's series in hash-map order).
    fn by_family(text: &str) -> Vec<(Vec<&str>, Vec<&str>)> {
        let mut out: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
        for line in text.lines() {
            if line.starts_with("# HELP") {
                out.push((vec![line], vec![]));
            } else if let Some(f) = out.last_mut() {
                if line.starts_with('#') {
                    f.0.push(line);
                } else {
                    f.1.push(line);
                }
            }
        }
        for f in &mut out {
            f.1.sort_unstable();
        }
        out
    }

    #[test]
    fn the_text_is_what_prometheus_client_writes_for_the_same_families() {
        let series = UpstreamSeries::default();
        let names = ["node-a".to_string(), "node-b".to_string()];
        let ups = series.set(&names);
        let durations = [0.0004, 0.001, 0.003, 0.2, 0.75, 7.5, 45.0];
        for (i, u) in ups.iter().enumerate() {
            u.head_slot.set(100 + i as i64);
            u.justified_slot.set(96);
            u.finalized_slot.set(-1);
            u.up.set(1);
            u.last_success.set(1_764_694_140.125 + i as f64);
            u.polls.inc_by(7);
            u.set_source(Source::ForkChoice);
            u.set_standing(Standing::ALL[i + 1]);
            for (k, &d) in durations.iter().enumerate() {
                let failure = (k == 6).then_some(ErrorKind::Timeout);
                u.finished(Endpoint::ForkChoice, d, failure);
            }
        }
        // Only b used a fallback endpoint: only b has its histogram.
        ups[1].finished(Endpoint::Justified, 0.02, None);
        let ours = text(&series);

        let helps = ours
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect();
        let mut r = Reference {
            reg: Registry::default(),
            helps,
        };
        let gauges: [(&str, Get<i64>); 5] = [
            ("upstream_head_slot", |u| u.head_slot.get()),
            ("upstream_justified_slot", |u| u.justified_slot.get()),
            ("upstream_finalized_slot", |u| u.finalized_slot.get()),
            ("upstream_up", |u| u.up.get()),
            ("upstream_agrees_with_consensus", |u| u.agrees.get()),
        ];
        fn plain<M: Default + Clone, T>(
            ups: &[super::UpstreamMetrics],
            get: impl Fn(&super::UpstreamMetrics) -> T,
            set: impl Fn(&M, T),
        ) -> Family<Labels, M> {
            let f = Family::<Labels, M>::default();
            for u in ups {
                set(&f.get_or_create(&labels(u.name(), None)), get(u));
            }
            f
        }
        let gauge = |g: &Gauge, v: i64| {
            g.set(v);
        };
        for (name, get) in gauges {
            r.add(name, &plain(&ups, get, gauge));
        }
        let last = plain(
            &ups,
            |u| u.last_success.get(),
            |g: &Gauge<f64, AtomicU64>, v| {
                g.set(v);
            },
        );
        r.add("upstream_last_success_timestamp_seconds", &last);
        let more: [(&str, Get<i64>); 2] = [
            ("upstream_consecutive_errors", |u| {
                u.consecutive_errors.get()
            }),
            ("upstream_in_flight_requests", |u| u.in_flight.get()),
        ];
        for (name, get) in more {
            r.add(name, &plain(&ups, get, gauge));
        }
        let counters: [(&str, Get<u64>); 2] = [
            ("upstream_polls", |u| u.polls.get()),
            ("upstream_polls_skipped", |u| u.polls_skipped.get()),
        ];
        for (name, get) in counters {
            r.add(
                name,
                &plain(&ups, get, |c: &Counter, v| {
                    c.inc_by(v);
                }),
            );
        }
        fn keyed<K: LabelText, M: Default + Clone, V>(
            ups: &[super::UpstreamMetrics],
            label: &str,
            handles: impl Fn(&super::UpstreamMetrics) -> &[(K, V)],
            set: impl Fn(&M, &V),
        ) -> Family<Labels, M> {
            let f = Family::<Labels, M>::default();
            for u in ups {
                for (k, v) in handles(u) {
                    set(
                        &f.get_or_create(&labels(u.name(), Some((label, k.label_text())))),
                        v,
                    );
                }
            }
            f
        }
        let inc = |c: &Counter, v: &Counter| {
            c.inc_by(v.get());
        };
        let set = |g: &Gauge, v: &Gauge| {
            g.set(v.get());
        };
        r.add(
            "upstream_requests",
            &keyed(&ups, "endpoint", |u| &u.requests, inc),
        );
        let latency: Family<Labels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        for u in &ups {
            let fc = latency.get_or_create(&labels(u.name(), Some(("endpoint", "fork_choice"))));
            for &d in &durations {
                fc.observe(d);
            }
        }
        latency
            .get_or_create(&labels(
                "node-b",
                Some(("endpoint", "checkpoints_justified")),
            ))
            .observe(0.02);
        let help = r.help("upstream_request_duration_seconds");
        r.reg
            .sub_registry_with_prefix("leanpoint")
            .register_with_unit("upstream_request_duration", help, Unit::Seconds, latency);
        r.add(
            "upstream_timeouts",
            &keyed::<Phase, _, _>(&ups, "phase", |u| &u.timeouts, inc),
        );
        r.add(
            "upstream_errors",
            &keyed::<ErrorKind, _, _>(&ups, "kind", |u| &u.errors, inc),
        );
        r.add(
            "upstream_source",
            &keyed::<Source, _, _>(&ups, "source", |u| &u.source, set),
        );
        r.add(
            "upstream_standing",
            &keyed::<Standing, _, _>(&ups, "standing", |u| &u.standing, set),
        );
        let mut theirs = String::new();
        encode_registry(&mut theirs, &r.reg).expect("encode");

        assert_eq!(by_family(&ours), by_family(&theirs));
        assert_eq!(by_family(&ours).len(), 16);
        assert!(ours.contains("leanpoint_upstream_request_duration_seconds_bucket{le=\"+Inf\",upstream=\"node-b\",endpoint=\"checkpoints_justified\"} 1\n"));
        assert!(!ours.contains("_count{upstream=\"node-a\",endpoint=\"checkpoints_justified\"}"));
        // Configuration order within a family.
        let a = ours.find("leanpoint_upstream_up{upstream=\"node-a\"}");
        let b = ours.find("leanpoint_upstream_up{upstream=\"node-b\"}");
        assert!(a.is_some() && a < b, "{a:?} {b:?}");
    }

    #[test]
    fn names_are_escaped_and_a_reload_keeps_or_drops_series_by_name() {
        let series = UpstreamSeries::default();
        let first = series.set(&["a\"b\\c".to_string(), "gone".to_string()]);
        first[0].polls.inc_by(3);
        let body = text(&series);
        assert!(body.contains("leanpoint_upstream_polls_total{upstream=\"a\\\"b\\\\c\"} 3\n"));
        assert!(body
            .contains("leanpoint_upstream_standing{upstream=\"gone\",standing=\"failing\"} 1\n"));
        assert!(
            body.contains("leanpoint_upstream_source{upstream=\"gone\",source=\"unknown\"} 1\n")
        );

        let next = series.set(&["new".to_string(), "a\"b\\c".to_string()]);
        assert_eq!(next[1].polls.get(), 3, "kept by name, values kept");
        let body = text(&series);
        assert!(!body.contains("\"gone\""));
        assert!(body.contains("leanpoint_upstream_polls_total{upstream=\"new\"} 0\n"));
        assert!(body.contains("leanpoint_upstream_polls_total{upstream=\"a\\\"b\\\\c\"} 3\n"));
    }
}
