//! A raw upstream for what [`super::FakeUpstream`] cannot send: responses
//! built from the request itself (a node or proxy that reflects it), heads
//! no HTTP library would write. It records every request head it reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// Builds the bytes to send for a request head (request line and headers).
pub type Respond = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// Serves `respond(head)` once per connection, then closes it.
pub struct RawUpstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: AbortHandle,
}

impl RawUpstream {
    pub async fn start(respond: Respond) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a raw upstream");
        let addr = listener.local_addr().expect("raw upstream address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (respond, recorded) = (respond.clone(), recorded.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break String::from_utf8_lossy(&buf[..end]).into_owned();
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if buf.len() > 64 * 1024 {
                            return;
                        }
                    };
                    recorded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(head.clone());
                    let _ = s.write_all(&respond(&head)).await;
                    let _ = s.shutdown().await;
                });
            }
        })
        .abort_handle();
        RawUpstream { addr, heads, task }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request head read so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A 200 `application/json` response with `body`.
pub fn json_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
