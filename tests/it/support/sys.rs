//! What /proc says about a process (fds, TCP sockets, memory), ports where
//! nothing listens, and this test process's own fd limit.

/// A port on 127.0.0.1 free a moment ago, for a leanpoint child to bind
/// (bound and released: the child binds it soon after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    l.local_addr().expect("probe port").port()
}

/// A port on 127.0.0.1 where nothing listens (connections are refused),
/// and nothing will: the port stays bound, without listen(), for the rest of
/// the test process. A port bound and released at once could be taken by a
/// server of a test running in parallel (it happened: a "dead" upstream
/// answered 404), and a socket bound without SO_REUSEADDR keeps every other
/// bind off it. The port is taken below the ephemeral range, so holding it
/// can never take a port another test picked with bind(0) and released to
/// a child. Close-on-exec, so no leanpoint child inherits it; a few dozen
/// per test run, so they are leaked.
pub fn dead_port() -> u16 {
    use rustix::net::{bind, socket_with, AddressFamily, SocketFlags, SocketType};
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let offset = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = FIRST + (offset.wrapping_add(n)) % SPAN;
        let fd = socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("a probe socket");
        if bind(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            std::mem::forget(fd);
            return port;
        }
    }
    panic!(
        "no free port in {FIRST}..{} for a dead upstream",
        FIRST + SPAN
    );
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// VmRSS of `pid` in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Lets this test process hold many client sockets whatever the shell's
/// soft limit is.
pub fn raise_own_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (l.current, l.maximum) {
        if cur < 4096 && max > cur {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max.min(4096)),
                    maximum: Some(max),
                },
            );
        }
    }
}

/// A TCP socket as /proc/net/tcp shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local_port: u16,
    pub remote_port: u16,
    /// Kernel state in hex as the table writes it: 01 established, 0A listen, 08 close-wait...
    pub state: u8,
}

/// One open fd of a process: the link target and, for an IPv4 TCP socket,
/// its ports and state.
#[derive(Clone, Debug)]
pub struct Fd {
    pub target: String,
    pub tcp: Option<TcpSocket>,
}

impl Fd {
    /// An accepted connection on `port` (not the listener itself).
    pub fn is_inbound_to(&self, port: u16) -> bool {
        self.tcp
            .is_some_and(|t| t.local_port == port && t.state != 0x0A)
    }
}

/// The open fds of process `pid`, TCP sockets resolved through /proc/net/tcp.
pub fn fds(pid: u32) -> Vec<Fd> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let targets: Vec<String> = dir
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    let table = tcp_table();
    targets
        .into_iter()
        .map(|target| {
            let tcp = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|inode| table.get(inode).copied());
            Fd { target, tcp }
        })
        .collect()
}

/// Inode -> socket, for every IPv4 TCP socket that has an inode.
fn tcp_table() -> std::collections::HashMap<String, TcpSocket> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode = *f.get(9)?;
            let socket = TcpSocket {
                local_port: port(f.get(1)?)?,
                remote_port: port(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
            };
            (inode != "0").then(|| (inode.to_string(), socket))
        })
        .collect()
}
