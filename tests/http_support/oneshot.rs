//! Drives `router(state)` in process with `oneshot`: no socket, the exact
//! response the server would write.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use leanpoint::http::router;
use leanpoint::service::AppState;
use serde_json::Value;
use tower::ServiceExt;

pub struct Got {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(state: &Arc<AppState>, req: Request<Body>) -> Got {
    let resp = router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("request")
}

pub async fn get_path(state: &Arc<AppState>, path: &str) -> Got {
    call(state, req("GET", path, &[])).await
}

/// One upstream on a closed port; agreement stays fresh for the whole test.
pub const FLAGS: &[&str] = &["--lean-url", "http://127.0.0.1:1", "--stale-ms", "600000"];
