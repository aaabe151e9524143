//! The one temp-dir helper and the one upstreams.json writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "leanpoint-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("writing a temp file");
        p
    }

    /// Writes an upstreams file of `(name, url)` pairs as `upstreams.json`.
    pub fn upstreams<N: AsRef<str>, U: AsRef<str>>(&self, upstreams: &[(N, U)]) -> PathBuf {
        self.write("upstreams.json", upstreams_json(upstreams))
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An upstreams file in the Zig leanpoint's format.
pub fn upstreams_json<N: AsRef<str>, U: AsRef<str>>(upstreams: &[(N, U)]) -> String {
    let list: Vec<serde_json::Value> = upstreams
        .iter()
        .map(|(name, url)| {
            serde_json::json!({"name": name.as_ref(), "url": url.as_ref(), "path": "/status"})
        })
        .collect();
    serde_json::json!({ "upstreams": list }).to_string()
}
