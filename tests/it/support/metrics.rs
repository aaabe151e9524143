//! The one Prometheus text parser of the tests.

/// A sample: metric name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The value of the sample `name{labels}` in Prometheus text `text`, labels
/// matched as a set (order and extra labels of the sample do not matter).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .find(|(n, ls, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
}

/// Every sample of `text` (comments and unparsable lines skipped).
pub fn samples(text: &str) -> impl Iterator<Item = Sample> + '_ {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
}

/// Splits `name{k="v",...} value` into its parts.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_string(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut rest = rest.strip_suffix('}')?;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut val = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => val.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => val.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_string(), val));
        rest = &after[end + 1..];
    }
    Some((name.to_string(), labels, value))
}

/// The value of the series written exactly as `series` (`name` or
/// `name{k="v",...}`, labels in the order the exposition writes them).
pub fn metric_exact(text: &str, series: &str) -> Option<f64> {
    let (name, labels, _) = parse_sample(&format!("{series} 0"))?;
    samples(text)
        .find(|(n, ls, _)| *n == name && *ls == labels)
        .map(|(_, _, v)| v)
}

/// Asserts a sample read from an exposition is there and at least `min`
/// (counters only ever need a lower bound: they may have counted on).
pub fn assert_at_least(value: Option<f64>, min: f64, what: &str) {
    assert!(
        value.is_some_and(|n| n >= min),
        "{what}: {value:?}, want >= {min}"
    );
}

/// `leanpoint_upstream_errors_total{upstream, kind}`.
pub fn upstream_errors(text: &str, upstream: &str, kind: &str) -> Option<f64> {
    let labels = [("upstream", upstream), ("kind", kind)];
    metric(text, "leanpoint_upstream_errors_total", &labels)
}

/// `leanpoint_upstream_timeouts_total{upstream, phase}`.
pub fn upstream_timeouts(text: &str, upstream: &str, phase: &str) -> Option<f64> {
    let labels = [("upstream", upstream), ("phase", phase)];
    metric(text, "leanpoint_upstream_timeouts_total", &labels)
}
