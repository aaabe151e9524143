//! Exposition: the registry encoded as OpenMetrics (what Prometheus asks
//! for) or as the classic text format, converted while it is written.

use std::fmt::Write as _;

use prometheus_client::registry::Registry;

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
pub fn encode(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(64 * 1024);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        let mut text = ClassicText::new(&mut out);
        prometheus_client::encoding::text::encode(&mut text, registry)?;
        text.finish();
    }
    Ok(out)
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
/// (unknown to the classic format) go. Sample lines pass straight through;
/// only comment lines are buffered. prometheus-client writes `# HELP` before
/// `# TYPE`, so the HELP line waits until its family's TYPE tells which
/// suffix it needs.
pub struct ClassicText<'a> {
    out: &'a mut String,
    /// The comment line being written (empty outside one).
    comment: String,
    pending_help: String,
    at_line_start: bool,
    in_comment: bool,
}

impl<'a> ClassicText<'a> {
    pub fn new(out: &'a mut String) -> Self {
        ClassicText {
            out,
            comment: String::new(),
            pending_help: String::new(),
            at_line_start: true,
            in_comment: false,
        }
    }

    /// Flushes a last line that had no newline.
    pub fn finish(mut self) {
        if self.in_comment {
            self.end_comment();
        }
    }

    fn end_comment(&mut self) {
        let line = std::mem::take(&mut self.comment);
        self.comment_line(&line);
        self.comment = line;
        self.comment.clear();
        self.in_comment = false;
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
        if !self.pending_help.is_empty() {
            let help = self.pending_help.split_once(' ').map_or("", |(_, t)| t);
            let _ = writeln!(self.out, "# HELP {name}{suffix} {help}");
            self.pending_help.clear();
        }
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {kind}");
    }
}

impl std::fmt::Write for ClassicText<'_> {
    fn write_str(&mut self, mut s: &str) -> std::fmt::Result {
        // Fast path: prometheus-client writes a sample line in many small
        // pieces, the newline on its own; none of them needs a look.
        if !self.in_comment && !self.at_line_start {
            match s.as_bytes().iter().position(|&b| b == b'\n') {
                None => {
                    self.out.push_str(s);
                    return Ok(());
                }
                Some(nl) if nl + 1 == s.len() => {
                    self.out.push_str(s);
                    self.at_line_start = true;
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        while !s.is_empty() {
            if self.at_line_start {
                self.in_comment = s.starts_with('#');
                self.at_line_start = false;
            }
            let (piece, rest, ends_line) = match s.find('\n') {
                Some(nl) => (&s[..nl], &s[nl + 1..], true),
                None => (s, "", false),
            };
            if self.in_comment {
                self.comment.push_str(piece);
                if ends_line {
                    self.end_comment();
                }
            } else {
                self.out.push_str(piece);
                if ends_line {
                    self.out.push('\n');
                }
            }
            self.at_line_start = ends_line;
            s = rest;
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
        let _m = Metrics::new(&mut reg, &["a".into()], 0.8);
        let mut om = String::new();
        prometheus_client::encoding::text::encode(&mut om, &reg).expect("encode");
        assert_eq!(
            encode(&reg, false).expect("encode"),
            openmetrics_to_text(&om)
        );
    }
}
