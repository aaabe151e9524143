//! Operating-system helpers: temp dirs, ports, and what /proc says about a
//! process's fds and TCP sockets.

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

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("writing a temp file");
        p
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

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    l.local_addr().expect("probe port").port()
}

/// True when process `pid` holds the listening socket of 127.0.0.1:`port`
/// (found by inode in /proc/net/tcp), so a stranger on the port never
/// passes for our leanpoint.
pub fn listens(pid: u32, port: u16) -> bool {
    let Ok(tcp) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let p = u16::from_str_radix(f.get(1)?.rsplit_once(':')?.1, 16).ok()?;
            let inode = f.get(9)?;
            (p == port && *f.get(3)? == "0A").then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    !inodes.is_empty()
        && fds.flatten().any(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
        })
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
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

/// True unless the socket is in a state where the peer has not sent its FIN
/// (ESTABLISHED, or FIN_WAIT1/2 after our own half-close), found by inode
/// in /proc/net/tcp. A socket missing from the table is gone.
pub fn peer_closed(socket: &std::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd as _;
    let state = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy();
            let inode = link.strip_prefix("socket:[")?.strip_suffix(']')?;
            tcp_table().get(inode).map(|t| t.state)
        });
    !matches!(state, Some(0x01 | 0x04 | 0x05))
}
