//! One configured upstream: where it is, what is sent, what may be shown.

use reqwest::Url;

/// One upstream (a lean node leanpoint polls), as configured.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    /// Full base URL, credentials included. Used for requests only; anything
    /// shown to a person goes through `display_url`.
    pub url: Url,
    /// The Zig leanpoint's `path` field, kept for /api/upstreams.
    pub path: String,
    /// Sent on every request; never logged or shown.
    pub headers: Vec<(String, String)>,
    /// The operator marked the URL's path as public: it is shown, and not
    /// treated as a secret (by default it is neither; see `redact`).
    pub path_public: bool,
    /// `url` as shown: scheme, host, port (and the path if public).
    pub display_url: String,
}

impl Upstream {
    /// The base URL joined with a Lean API path (`/lean/v0/...`). Keeps any
    /// path prefix of the base (a proxy or the simulator's `/node/3`).
    pub fn endpoint(&self, api_path: &str) -> Url {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{api_path}"));
        url
    }
}
