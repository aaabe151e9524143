//! A raw upstream for what the simulator cannot send: responses built from
//! the request itself (a node or proxy that reflects it), heads no HTTP
//! library would write. It records every request head it reads. Blocking,
//! on a thread of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Builds the bytes to send for a request head (request line and headers).
pub type Respond = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// Serves `respond(head)` once per connection, then closes it.
pub struct RawUpstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn serve(mut s: TcpStream, respond: &Respond, recorded: &Mutex<Vec<String>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        match s.read(&mut chunk) {
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
    let _ = s.write_all(&respond(&head));
    let _ = s.shutdown(std::net::Shutdown::Write);
}

impl RawUpstream {
    pub fn start(respond: Respond) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a raw upstream");
        let addr = listener.local_addr().expect("raw upstream address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, stopped) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(s) = s else { continue };
                let (respond, recorded) = (respond.clone(), recorded.clone());
                std::thread::spawn(move || serve(s, &respond, &recorded));
            }
        });
        RawUpstream { addr, heads, stop }
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
        // Wake the accept loop so it sees the flag and drops the listener.
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
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
