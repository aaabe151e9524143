//! Exposition: the registry encoded as OpenMetrics (what Prometheus asks
//! for) or as the classic text format, converted while it is written.

use std::fmt::Write as _;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use super::per_upstream::{UpstreamMetrics, UpstreamSeries};
use super::upstream_text;

/// Content type of the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes the registry. OpenMetrics when the scraper asks for it (Prometheus
/// does), else the classic text format, which `promtool check metrics`, curl
/// users and older scrapers read.
///
/// The classic text is converted while prometheus-client writes, line by
/// line, not from a finished OpenMetrics copy: at 1000 upstreams the body is
/// about 7 MB, and a second copy doubled the memory of every scrape (and the
/// heap it leaves behind).
///
/// The per-upstream families (`series`) follow the registry's, before
/// `# EOF`. The body is sized up front from the upstream count: growing a
/// 4 MB string by doubling copied it several times per scrape.
pub fn encode(
    registry: &Registry,
    series: &UpstreamSeries,
    openmetrics: bool,
) -> Result<String, std::fmt::Error> {
    series.with_current(|ups| {
        let mut out = String::with_capacity(64 * 1024 + BYTES_PER_UPSTREAM * ups.len());
        if openmetrics {
            encode_all(&mut out, registry, ups)?;
        } else {
            let mut text = ClassicText::new(&mut out);
            encode_all(&mut text, registry, ups)?;
            text.finish();
        }
        Ok(out)
    })
}

/// About what one upstream's series take (4.35 MB for 1000 upstreams).
const BYTES_PER_UPSTREAM: usize = 4608;

fn encode_all<W: std::fmt::Write>(
    w: &mut W,
    registry: &Registry,
    ups: &[UpstreamMetrics],
) -> std::fmt::Result {
    encode_registry(w, registry)?;
    upstream_text::encode(w, ups)?;
    encode_eof(w)
}

/// Rewrites OpenMetrics text into the classic format (see [`ClassicText`]).
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + om.len() / 16);
    let mut text = ClassicText::new(&mut out);
    let _ = text.write_str(om);
    text.finish();
    out
}

/// A `fmt::Write` that turns the OpenMetrics text written into it into the
/// classic format: counter and info families are named with their sample
/// suffix (`_total`, `_info`), info becomes a gauge, and `# UNIT` / `# EOF`
/// (unknown to the classic format) go. prometheus-client writes `# HELP`
/// before `# TYPE`, so the HELP line waits until its family's TYPE tells
/// which suffix it needs.
///
/// prometheus-client writes a sample in a dozen pieces of a few bytes, so
/// looking at each piece cost as much as the encoding itself (classic text
/// took 1.8x the OpenMetrics time). The pieces are appended as they come;
/// whole lines are converted once [`CHUNK`] bytes are waiting (and at
/// `finish`), runs of sample lines copied in one go. The waiting text stays
/// that small, so the body is never held twice.
pub struct ClassicText<'a> {
    out: &'a mut String,
    /// OpenMetrics text not converted yet.
    raw: String,
    /// Convert once `raw` holds this many bytes.
    chunk: usize,
    pending_help: String,
}

/// Bytes of OpenMetrics text converted at a time.
const CHUNK: usize = 32 * 1024;

impl<'a> ClassicText<'a> {
    pub fn new(out: &'a mut String) -> Self {
        ClassicText {
            out,
            raw: String::with_capacity(CHUNK + 1024),
            chunk: CHUNK,
            pending_help: String::new(),
        }
    }

    /// Converts what is left, a last line without a newline included.
    pub fn finish(mut self) {
        self.convert(true);
    }

    /// Converts the whole lines of `raw` (and with `all` a last partial
    /// line), keeping a partial line for the pieces still to come. Only
    /// comment lines change: the text between them is copied as it is.
    fn convert(&mut self, all: bool) {
        let raw = std::mem::take(&mut self.raw);
        let bytes = raw.as_bytes();
        // `at` is always at a line start; `run` starts the sample lines not
        // copied yet.
        let (mut at, mut run) = (0, 0);
        loop {
            let comment = if bytes.get(at) == Some(&b'#') {
                Some(at)
            } else {
                memchr::memmem::find(&bytes[at..], b"\n#").map(|i| at + i + 1)
            };
            let Some(c) = comment else {
                at = if all {
                    bytes.len()
                } else {
                    memchr::memrchr(b'\n', &bytes[at..]).map_or(at, |i| at + i + 1)
                };
                break;
            };
            let (end, next) = match memchr::memchr(b'\n', &bytes[c..]) {
                Some(i) => (c + i, c + i + 1),
                None if all => (bytes.len(), bytes.len()),
                None => {
                    at = c;
                    break;
                }
            };
            self.out.push_str(&raw[run..c]);
            self.comment_line(&raw[c..end]);
            run = next;
            at = next;
        }
        self.out.push_str(&raw[run..at]);
        let mut raw = raw;
        raw.drain(..at);
        self.raw = raw;
    }

    fn comment_line(&mut self, line: &str) {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            return;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            self.pending_help.clear();
            self.pending_help.push_str(rest);
            return;
        }
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            self.out.push_str(line);
            self.out.push('\n');
            return;
        };
        let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
        let (suffix, kind) = match kind {
            "counter" if !name.ends_with("_total") => ("_total", "counter"),
            "info" => ("_info", "gauge"),
            "unknown" => ("", "untyped"),
            other => ("", other),
        };
        // Pushes, not writeln!: a scrape has hundreds of these lines.
        if !self.pending_help.is_empty() {
            let help = self.pending_help.split_once(' ').map_or("", |(_, t)| t);
            for piece in ["# HELP ", name, suffix, " ", help, "\n"] {
                self.out.push_str(piece);
            }
            self.pending_help.clear();
        }
        for piece in ["# TYPE ", name, suffix, " ", kind, "\n"] {
            self.out.push_str(piece);
        }
    }
}

impl std::fmt::Write for ClassicText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.raw.push_str(s);
        if self.raw.len() >= self.chunk {
            self.convert(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;
    use prometheus_client::registry::Registry;

    #[test]
    fn classic_text_is_the_same_however_the_input_is_split() {
        let om = "# HELP a_polls Polls started.\n# TYPE a_polls counter\na_polls_total{upstream=\"x\"} 3\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_d Duration.\n# TYPE a_d histogram\n# UNIT a_d seconds\n\
                  a_d_bucket{le=\"+Inf\"} 0\n# EOF\n";
        let want = "# HELP a_polls_total Polls started.\n# TYPE a_polls_total counter\n\
                    a_polls_total{upstream=\"x\"} 3\n# HELP a_build_info Build.\n\
                    # TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
                    # HELP a_d Duration.\n# TYPE a_d histogram\na_d_bucket{le=\"+Inf\"} 0\n";
        assert_eq!(openmetrics_to_text(om), want);
        for size in [1, 2, 3, 7, 64] {
            let mut out = String::new();
            let mut w = ClassicText::new(&mut out);
            for chunk in om.as_bytes().chunks(size) {
                w.write_str(std::str::from_utf8(chunk).expect("ASCII"))
                    .expect("write");
            }
            w.finish();
            assert_eq!(out, want, "chunks of {size}");
        }
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg, &["a".into()], 0.8);
        let om = encode(&reg, m.series(), true).expect("encode");
        assert_eq!(
            encode(&reg, m.series(), false).expect("encode"),
            openmetrics_to_text(&om)
        );
    }
}
