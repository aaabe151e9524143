//! The upstreams file, in the Zig leanpoint's format
//! (`{"upstreams":[{"name","url","path"}]}`) plus optional `headers` and
//! `url_path_public`: read bounded, parsed, every entry checked, unknown
//! fields turned into warnings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use reqwest::Url;
use serde::Deserialize;

use super::error::{err, ConfigError};
use super::limits::MAX_HEADER_VALUE;
use super::upstream::Upstream;

// Unknown fields are collected, not refused: the Zig leanpoint ignored them
// (`"enabled": false`, notes, keys of other tools), so files it loaded load.
#[derive(Deserialize)]
struct UpstreamsFile {
    upstreams: Vec<UpstreamRow>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
pub(super) struct UpstreamRow {
    name: String,
    url: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The URL's path may be shown (by default it is treated as a secret:
    /// node providers put API keys there).
    #[serde(default)]
    url_path_public: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_path() -> String {
    "/status".to_string()
}

impl UpstreamRow {
    /// An entry given by flags or by the caller rather than read from a
    /// file: no headers, no unknown fields.
    pub(super) fn new(name: String, url: String, path: Option<String>) -> UpstreamRow {
        UpstreamRow {
            name,
            url,
            path: path.unwrap_or_else(default_path),
            headers: BTreeMap::new(),
            url_path_public: false,
            unknown: BTreeMap::new(),
        }
    }
}

/// The warning for an unknown field `key` under `at` (`upstreams[2]`).
/// A key is shown only when it looks like a field name: a misplaced
/// `"apikey=..."` or a pasted token must not reach the log.
fn unknown_field(source: &str, at: &str, key: &str) -> String {
    let name_like = key.len() <= 32
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let shown = if name_like {
        key.to_string()
    } else {
        format!("(a key of {} bytes)", key.len())
    };
    let dot = if at.is_empty() { "" } else { "." };
    format!("{source}: {at}{dot}{shown}: unknown field, ignored (as the Zig leanpoint did)")
}

/// Reads and validates an upstreams file in the Zig leanpoint's format.
pub fn load_upstreams_file(path: &Path) -> Result<Vec<Upstream>, ConfigError> {
    read_upstreams_file(path).map(|(ups, _)| ups)
}

/// Like [`load_upstreams_file`], with a warning for each unknown field.
pub(super) fn read_upstreams_file(
    path: &Path,
) -> Result<(Vec<Upstream>, Vec<String>), ConfigError> {
    let source = path.display().to_string();
    let text = crate::config::input::read_regular(path, crate::config::input::MAX_CONFIG_FILE)
        .map_err(|e| err(&source, "file", e))?;
    let file: UpstreamsFile = serde_json::from_str(&text).map_err(|e| {
        // serde quotes the offending value, which may be a credential; it
        // does not name the field, the text before the error does.
        let near = match e.classify() {
            // A missing field is reported at the end of its object.
            serde_json::error::Category::Data if !e.to_string().starts_with("missing field") => {
                key_before(&text, e.line(), e.column())
                    .map_or(String::new(), |k| format!(" (in \"{k}\")"))
            }
            _ => String::new(),
        };
        err(
            &source,
            "upstreams",
            format!(
                "invalid JSON at line {} column {}{near}: {}",
                e.line(),
                e.column(),
                crate::redact::values_hidden(&e.to_string())
            ),
        )
    })?;
    let mut warnings: Vec<String> = file
        .unknown
        .keys()
        .map(|k| unknown_field(&source, "", k))
        .collect();
    for (i, e) in file.upstreams.iter().enumerate() {
        warnings.extend(
            e.unknown
                .keys()
                .map(|k| unknown_field(&source, &format!("upstreams[{i}]"), k)),
        );
    }
    let ups = validate_entries(&source, file.upstreams, "upstreams")?;
    Ok((ups, warnings))
}

/// The last field name before line `line`, column `column` of `text`, if it
/// is one of the file's own (never a user's key: it may be anything).
fn key_before(text: &str, line: usize, column: usize) -> Option<&'static str> {
    const KEYS: [&str; 6] = [
        "upstreams",
        "name",
        "url",
        "path",
        "headers",
        "url_path_public",
    ];
    let offset: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column;
    let before = text.get(..offset.min(text.len()))?;
    KEYS.iter()
        .filter_map(|k| before.rfind(&format!("\"{k}\"")).map(|at| (at, *k)))
        .max()
        .map(|(_, k)| k)
}

/// Checks every entry, in order, and turns it into an `Upstream`; the first
/// refusal names the entry's field (`upstreams[2].url`) and why.
pub(super) fn validate_entries(
    source: &str,
    entries: Vec<UpstreamRow>,
    list_field: &str,
) -> Result<Vec<Upstream>, ConfigError> {
    if entries.is_empty() {
        return Err(err(source, list_field, "no upstreams configured"));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let refuse =
            |f: &str, reason: String| err(source, format!("{list_field}[{i}].{f}"), reason);
        let name = name_of(&e.name).map_err(|r| refuse("name", r))?;
        path_ok(&e.path).map_err(|r| refuse("path", r))?;
        if let Some(first) = seen.insert(name.clone(), i) {
            let reason = format!("{name:?} duplicates {list_field}[{first}].name");
            return Err(refuse("name", reason));
        }
        let url = url_of(&e.url).map_err(|r| refuse("url", r))?;
        let headers = headers_of(e.headers).map_err(|(f, r)| refuse(&f, r))?;
        out.push(Upstream {
            display_url: crate::redact::display_url(&url, e.url_path_public),
            name,
            url,
            path: e.path,
            headers,
            path_public: e.url_path_public,
        });
    }
    Ok(out)
}

/// The trimmed name, shown everywhere an upstream is named: non-empty,
/// short and printable.
fn name_of(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 128 || name.chars().any(|c| c.is_control()) {
        return Err("must be at most 128 printable characters".into());
    }
    Ok(name.to_string())
}

/// Shown in /api/upstreams: bounded like the name.
fn path_ok(path: &str) -> Result<(), String> {
    if path.len() > 256 || path.chars().any(|c| c.is_control()) {
        return Err("must be at most 256 printable characters".into());
    }
    Ok(())
}

/// An http(s) URL with a host. Never echoed: it may carry credentials.
fn url_of(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|pe| format!("not a URL ({pe})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        // A pasted `token:...` parses as a URL whose scheme is the
        // token: only a short word of letters is shown.
        let scheme = url.scheme();
        return Err(
            if scheme.len() <= 8 && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
                format!("scheme {scheme:?} is not http or https")
            } else {
                "scheme is not http or https".to_string()
            },
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(url)
}

/// The configured headers, each a valid name (given once, ignoring case)
/// with a valid, bounded value. A refusal is `(field, reason)`; values are
/// secrets and never shown.
fn headers_of(given: BTreeMap<String, String>) -> Result<Vec<(String, String)>, (String, String)> {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(given.len());
    for (k, v) in given {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            // Never echoed: the usual typo is the whole header as its
            // name, `"Authorization: Bearer <token>"`.
            return Err((
                "headers".into(),
                format!(
                    "a key of {} bytes is not a valid header name (a name has no ':' or spaces; the value goes after it)",
                    k.len()
                ),
            ));
        }
        let field = format!("headers.{k}");
        if headers
            .iter()
            .any(|(seen, _)| seen.eq_ignore_ascii_case(&k))
        {
            return Err((field, "is given twice (header names ignore case)".into()));
        }
        if v.len() > MAX_HEADER_VALUE {
            return Err((field, format!("value is over {MAX_HEADER_VALUE} bytes")));
        }
        if http::HeaderValue::from_str(&v).is_err() {
            // The value is a secret: say what is wrong, not what it is.
            return Err((field, "value is not a valid header value".into()));
        }
        headers.push((k, v));
    }
    Ok(headers)
}
