//! What may be shown of untrusted or secret text: the one module every
//! message, page and log line that carries such text goes through.
//!
//! Three rules, used everywhere:
//!
//! - **Upstream text is excerpted.** A string that came from an upstream
//!   (a root, a Content-Type, serde's `invalid type: string "..."`) is shown
//!   as at most [`UPSTREAM_EXCERPT`] characters, escaped, with its length.
//!   A whole error message is at most [`MAX_MESSAGE`] bytes.
//! - **Configuration values are never echoed.** A config error names the
//!   field and the reason; a quoted value in a parser's message becomes
//!   `a string of N bytes` ([`values_hidden`]).
//! - **Known secrets are scrubbed.** Whatever an upstream reflects back
//!   (its request's `authorization` header, the `?apikey=` query), the
//!   credentials of that upstream's URL and headers are replaced by `***`
//!   before an error message is kept ([`Secrets::scrub`]), also when an
//!   excerpt cut one short.
//!
//! URLs are shown as scheme, host and port ([`display_url`]); the path only
//! where the operator marked it public, since node providers put API keys in
//! the path.

use reqwest::Url;

/// Characters of an upstream's string shown in an error message.
pub const UPSTREAM_EXCERPT: usize = 24;

/// Longest error message kept (bytes): `last_error`, logs, the page.
pub const MAX_MESSAGE: usize = 256;

/// Longest field name (backtick-quoted) shown from a parser's message.
const MAX_FIELD_NAME: usize = 32;

/// What serde writes before a backtick-quoted piece of its input.
const INPUT_BEFORE_BACKTICK: [&str; 6] = [
    "unknown field ",
    "unknown variant ",
    "integer ",
    "floating point ",
    "character ",
    "boolean ",
];

/// Shortest secret scrubbed. Shorter tokens (a path segment `v1`) would
/// replace ordinary words; leanpoint never prints them itself either way.
const MIN_SECRET: usize = 6;

/// Marks text cut short.
const ELLIPSIS: char = '…';

/// `"first chars…" (N bytes)`: at most `keep` characters of `s`, escaped as
/// Rust escapes a `str` (quotes, backslashes, control characters), quoted.
/// `keep == 0` gives `a string of N bytes`.
pub fn excerpt(s: &str, keep: usize) -> String {
    if keep == 0 {
        return format!("a string of {} bytes", s.len());
    }
    let mut out = String::with_capacity(keep * 2 + 24);
    out.push('"');
    let mut cut = false;
    for (shown, c) in s.chars().enumerate() {
        if shown == keep {
            cut = true;
            break;
        }
        out.extend(c.escape_debug());
    }
    if cut {
        out.push(ELLIPSIS);
        out.push('"');
        out.push_str(&format!(" ({} bytes)", s.len()));
    } else {
        out.push('"');
    }
    out
}

/// `msg` cut to at most `max` bytes (at a character boundary), with the
/// original length when cut.
pub fn bound(msg: &str, max: usize) -> String {
    if msg.len() <= max {
        return msg.to_string();
    }
    let suffix = format!("{ELLIPSIS} ({} bytes)", msg.len());
    let mut end = max.saturating_sub(suffix.len());
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &msg[..end])
}

/// A parser's message (serde's) with every `"quoted"` value excerpted to
/// `keep` characters (0: not shown at all) and every `` `name` `` cut to a
/// few dozen, then bounded to [`MAX_MESSAGE`]. serde quotes values with
/// `{:?}`, so a quoted value ends at the first unescaped `"`.
pub fn quoted_values(msg: &str, keep: usize) -> String {
    let mut out = String::with_capacity(msg.len().min(MAX_MESSAGE * 2));
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if out.len() > MAX_MESSAGE * 2 {
            break; // what follows is cut by `bound` anyway
        }
        match c {
            '"' => {
                let mut inner = String::new();
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    }
                    // Keep the escaped form, bounded: only its length and
                    // first characters are ever shown.
                    if inner.len() <= keep * 4 + 8 {
                        inner.push(d);
                    }
                }
                out.push_str(&excerpt_escaped(&inner, keep));
            }
            '`' => {
                let name: String = chars.by_ref().take_while(|&d| d != '`').collect();
                // serde names what it did not know first (`unknown field
                // `x`, expected one of ...`): that name is input; the
                // expected ones are the program's.
                // serde backticks input after these words (`unknown field
                // `x``, `integer `5``); other names are the program's own
                // (`missing field `url``, `expected one of `name``).
                let input = INPUT_BEFORE_BACKTICK.iter().any(|w| out.ends_with(w));
                if input {
                    out.push_str(&excerpt(&name, keep.min(MAX_FIELD_NAME)));
                } else {
                    out.push('`');
                    out.push_str(&bound(&name, MAX_FIELD_NAME));
                    out.push('`');
                }
            }
            c => out.push(c),
        }
    }
    bound(&out, MAX_MESSAGE)
}

/// Like [`excerpt`] for text that is already escaped (from a `{:?}`).
fn excerpt_escaped(inner: &str, keep: usize) -> String {
    if keep == 0 {
        return "a string".to_string();
    }
    let shown: String = inner.chars().take(keep).collect();
    if shown.len() < inner.len() {
        format!("\"{shown}{ELLIPSIS}\"")
    } else {
        format!("\"{shown}\"")
    }
}

/// [`quoted_values`] for configuration: values are never shown.
pub fn values_hidden(msg: &str) -> String {
    quoted_values(msg, 0)
}

/// The URL as shown to people: `scheme://host:port`, and the path only when
/// `show_path` (the operator marked it public). Never userinfo, query or
/// fragment.
pub fn display_url(url: &Url, show_path: bool) -> String {
    // host_str brackets an IPv6 address.
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if show_path {
        shown.push_str(url.path().trim_end_matches('/'));
    }
    shown
}

/// The credentials of one upstream, as they may come back in its text.
#[derive(Clone, Debug, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Everything secret in an upstream's URL and headers: user, password
    /// and the Basic token made of them, the query and its values, the
    /// fragment, the path's segments unless `path_public`, every header
    /// value and each word of it (`Bearer <token>`).
    pub fn of(url: &Url, headers: &[(String, String)], path_public: bool) -> Secrets {
        let mut s = Vec::new();
        let user = percent_decode(url.username());
        let pass = url.password().map(percent_decode);
        if !user.is_empty() || pass.is_some() {
            let pair = format!("{user}:{}", pass.clone().unwrap_or_default());
            s.push(base64(pair.as_bytes()));
            s.push(pair);
        }
        s.push(url.username().to_string());
        s.push(user);
        if let Some(p) = url.password() {
            s.push(p.to_string());
        }
        s.extend(pass);
        if let Some(q) = url.query() {
            s.push(q.to_string());
            for (k, v) in url.query_pairs() {
                s.push(format!("{k}={v}"));
                s.push(v.into_owned());
            }
            s.extend(q.split('&').map(str::to_string));
        }
        s.extend(url.fragment().map(str::to_string));
        if !path_public {
            s.extend(url.path().split('/').map(str::to_string));
            s.extend(url.path().split('/').map(percent_decode));
        }
        for (_, v) in headers {
            s.push(v.clone());
            s.extend(v.split_whitespace().map(str::to_string));
        }
        s.retain(|x| x.chars().count() >= MIN_SECRET);
        // Longest first, so a secret is replaced whole before a part of it.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        s.dedup();
        Secrets(s)
    }

    /// `text` with every secret replaced by `***`, and every start of a
    /// secret that an excerpt or bound cut short (its first characters just
    /// before `…`).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        for secret in &self.0 {
            let ends: Vec<usize> = secret
                .char_indices()
                .map(|(i, _)| i)
                .chain([secret.len()])
                .filter(|&i| secret[..i].chars().count() >= MIN_SECRET)
                .collect();
            for &end in ends.iter().rev() {
                let cut = format!("{}{ELLIPSIS}", &secret[..end]);
                if out.contains(&cut) {
                    out = out.replace(&cut, "***…");
                }
            }
        }
        out
    }
}

/// `%41` -> `A`; anything not a valid escape is kept as is.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding: what a Basic `Authorization` carries.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded_and_escaped() {
        assert_eq!(excerpt("abc", 24), "\"abc\"");
        let long = "\"".repeat(1_900_000);
        let e = excerpt(&long, 24);
        assert!(e.len() < 80, "{e}");
        assert!(e.ends_with("(1900000 bytes)"), "{e}");
        assert_eq!(excerpt("<a>\n", 24), "\"<a>\\n\"");
        assert_eq!(excerpt("secret", 0), "a string of 6 bytes");
    }

    #[test]
    fn bound_cuts_at_a_char_boundary() {
        let s = "é".repeat(1000);
        let b = bound(&s, 100);
        assert!(b.len() <= 100, "{}", b.len());
        assert!(b.ends_with("(2000 bytes)"));
        assert_eq!(bound("short", 100), "short");
    }

    #[test]
    fn serde_values_are_excerpted_or_hidden() {
        let big = format!(
            "{:?}",
            "Bearer abcdefghijklmnopqrstuvwxyz0123456789".repeat(100)
        );
        let msg = format!("invalid type: string {big}, expected u64 at line 1 column 9");
        let shown = quoted_values(&msg, 8);
        assert!(shown.contains("string \"Bearer a…\""), "{shown}");
        assert!(
            shown.ends_with("expected u64 at line 1 column 9"),
            "{shown}"
        );
        let hidden = values_hidden(&msg);
        assert!(!hidden.contains("Bearer"), "{hidden}");
        assert!(hidden.contains("invalid type: string a string, expected u64"));
        let field = format!("unknown field `{}`, expected `name`", "x".repeat(10_000));
        assert_eq!(
            values_hidden(&field),
            "unknown field a string of 10000 bytes, expected `name`"
        );
    }

    #[test]
    fn display_url_shows_the_origin_only() {
        let u = Url::parse("https://user:pw@node.example:8443/v2/KEY123456?apikey=s3cret#f")
            .expect("url");
        assert_eq!(display_url(&u, false), "https://node.example:8443");
        assert_eq!(
            display_url(&u, true),
            "https://node.example:8443/v2/KEY123456"
        );
        let v6 = Url::parse("http://[::1]:9/").expect("url");
        assert_eq!(display_url(&v6, true), "http://[::1]:9");
    }

    #[test]
    fn secrets_are_scrubbed_whole_and_cut() {
        let u =
            Url::parse("http://alice:hunter2pw@h:1/v1/PATHKEY77?apikey=QUERYKEY99").expect("url");
        let headers = vec![(
            "Authorization".to_string(),
            "Bearer HEADERTOKEN1".to_string(),
        )];
        let s = Secrets::of(&u, &headers, false);
        let basic = base64(b"alice:hunter2pw");
        let text = format!(
            "got authorization: Basic {basic} and Bearer HEADERTOKEN1 at /v1/PATHKEY77?apikey=QUERYKEY99 then \"HEADERTO…\""
        );
        let out = s.scrub(&text);
        for secret in [
            basic.as_str(),
            "HEADERTOKEN1",
            "PATHKEY77",
            "QUERYKEY99",
            "HEADERTO",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("got authorization: Basic ***"), "{out}");
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
