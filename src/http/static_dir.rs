//! `--static-dir`, confined to the directory.
//!
//! `ServeDir` refuses `..`, but follows symlinks: a link in the directory to
//! `/etc` would serve `/etc`. Here a request whose file resolves (symlinks
//! followed) outside the directory is a 404, as if it did not exist; links
//! that stay inside work.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;

/// `ServeDir` for `dir` behind the confinement check.
pub fn confined(dir: &Path) -> axum::Router {
    // Resolved once: the root every served file must be under.
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    axum::Router::new()
        .fallback_service(ServeDir::new(&root))
        .layer(axum::middleware::from_fn_with_state(root, confine))
}

async fn confine(State(root): State<PathBuf>, req: Request, next: Next) -> Response {
    if outside(&root, req.uri().path()) {
        return (StatusCode::NOT_FOUND, Body::from("404: Not Found\n")).into_response();
    }
    next.run(req).await
}

/// True when `uri_path` names a file that resolves outside `root`. A path
/// that does not resolve (no such file) is left to `ServeDir` (a 404).
fn outside(root: &Path, uri_path: &str) -> bool {
    let decoded = crate::redact::percent_decode(uri_path);
    let mut p = root.to_path_buf();
    for part in decoded.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
    }
    if decoded.ends_with('/') || decoded.is_empty() {
        p.push("index.html");
    }
    match std::fs::canonicalize(&p) {
        Ok(real) => !real.starts_with(root),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::outside;

    #[test]
    fn symlinks_out_of_the_directory_are_outside() {
        let base = std::env::temp_dir().join(format!("lp-static-{}", std::process::id()));
        let dir = base.join("www");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(base.join("secret.txt"), "s").expect("write");
        std::fs::write(dir.join("index.html"), "i").expect("write");
        std::os::unix::fs::symlink(base.join("secret.txt"), dir.join("leak")).expect("link");
        std::os::unix::fs::symlink(dir.join("index.html"), dir.join("alias")).expect("link");
        let root = std::fs::canonicalize(&dir).expect("canon");
        assert!(outside(&root, "/leak"));
        assert!(outside(&root, "/%6ceak"));
        assert!(!outside(&root, "/alias"));
        assert!(!outside(&root, "/"));
        assert!(!outside(&root, "/missing"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
