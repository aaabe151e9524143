//! This process's TCP sockets by state, for `leanpoint_process_tcp_sockets`.
//!
//! Why getsockopt(TCP_INFO) on our own fds: it costs one system call per
//! open fd, so a scrape costs what this process holds, whatever the host
//! does. Every socket-table reader costs what the *host* holds instead: a
//! sock_diag dump (`sockdiag`) walks the kernel's TCP hash table, which is
//! global and sized by the host's memory whatever the network namespace
//! (measured: 91% of a scrape's CPU in `tcp_diag_dump` with 8 sockets in the
//! namespace), and /proc/net/tcp formats every socket of the namespace as
//! text. Those two stay as fallbacks, for a kernel or sandbox that refuses
//! TCP_INFO.
//!
//! A TIME_WAIT socket has no fd, so it is never ours and never counted; nor
//! is a connection still in the listener's accept queue (the kernel holds
//! it, not this process).

use std::collections::HashSet;
use std::io;
use std::os::fd::RawFd;

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};

/// Label values of `leanpoint_process_tcp_sockets`, all always present.
pub const STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

pub type Counts = [i64; STATES.len()];

/// `STATES` index of a kernel TCP state number (`TCP_ESTABLISHED` = 1 ..
/// `TCP_CLOSING` = 11, `TCP_NEW_SYN_RECV` = 12 counted as syn_recv).
fn kernel_state_index(state: usize) -> Option<usize> {
    match state {
        1..=11 => Some(state - 1),
        12 => Some(2),
        _ => None,
    }
}

fn procfs_state_index(s: &TcpState) -> usize {
    match s {
        TcpState::Established => 0,
        TcpState::SynSent => 1,
        TcpState::SynRecv | TcpState::NewSynRecv => 2,
        TcpState::FinWait1 => 3,
        TcpState::FinWait2 => 4,
        TcpState::TimeWait => 5,
        TcpState::Close => 6,
        TcpState::CloseWait => 7,
        TcpState::LastAck => 8,
        TcpState::Listen => 9,
        TcpState::Closing => 10,
    }
}

/// Counts this process's TCP sockets by state; None when no way of reading
/// them works here (no procfs).
pub fn count() -> Option<Counts> {
    match by_tcp_info() {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::debug!(error = %e, "TCP_INFO on own fds failed; reading the socket tables");
            by_socket_tables()
        }
    }
}

/// The kernel TCP state of `fd`, None when `fd` is not a TCP socket (or was
/// closed since it was listed).
pub fn tcp_state(fd: RawFd) -> io::Result<Option<u8>> {
    // tcpi_state is the first byte of struct tcp_info; the kernel copies at
    // most `len` bytes, so a short buffer is enough and always in bounds.
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is
    // `len` bytes long, and writes the copied length into `len`. `fd` is only
    // a number here: if it was closed or reused since it was listed, the call
    // fails (EBADF, ENOTSOCK) or reads another of our own sockets; no memory
    // or fd is affected either way.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 {
        return Ok((len >= 1).then_some(info[0]));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Not a socket (files, pipes, epoll), not TCP (unix, netlink, UDP),
        // or gone since the directory was read.
        Some(libc::ENOTSOCK | libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EBADF) => Ok(None),
        _ => Err(e),
    }
}

/// The fast path: TCP_INFO on every fd listed in /proc/self/fd.
fn by_tcp_info() -> io::Result<Counts> {
    let mut counts = [0i64; STATES.len()];
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        let Some(fd) = name.to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        if let Some(state) = tcp_state(fd)? {
            if let Some(i) = kernel_state_index(usize::from(state)) {
                counts[i] += 1;
            }
        }
    }
    Ok(counts)
}

/// The fallback: the socket inodes behind /proc/self/fd, looked up through
/// sock_diag, or in the namespace's /proc tcp and tcp6 tables where netlink
/// is not allowed. Costs what the host holds; see the module comment.
pub fn by_socket_tables() -> Option<Counts> {
    let me = Process::myself().ok()?;
    let inodes: HashSet<u64> = me
        .fd()
        .ok()?
        .filter_map(|fd| match fd.ok()?.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let mut counts = [0i64; STATES.len()];
    if let Ok(by_kernel_state) = crate::telemetry::sockdiag::tcp_states(&inodes) {
        for (state, n) in by_kernel_state.iter().enumerate() {
            if let Some(i) = kernel_state_index(state) {
                counts[i] += n;
            }
        }
        return Some(counts);
    }
    // tcp6 is absent on hosts without IPv6; count what exists.
    let v4 = me.tcp().ok();
    let v6 = me.tcp6().ok();
    if v4.is_none() && v6.is_none() {
        return None;
    }
    for entry in v4.into_iter().chain(v6).flatten() {
        if inodes.contains(&entry.inode) {
            counts[procfs_state_index(&entry.state)] += 1;
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn state(fd: &impl AsRawFd) -> Option<&'static str> {
        let s = tcp_state(fd.as_raw_fd()).expect("getsockopt");
        s.and_then(|s| kernel_state_index(usize::from(s)))
            .map(|i| STATES[i])
    }

    #[test]
    fn reads_listen_established_and_close_wait_of_own_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        assert_eq!(state(&listener), Some("listen"));
        assert_eq!(state(&client), Some("established"));
        assert_eq!(state(&server), Some("established"));
        // The peer closes; once its FIN is read (EOF) our side is CLOSE_WAIT
        // until we close it.
        drop(client);
        let mut buf = [0u8; 1];
        assert_eq!(server.read(&mut buf).expect("read EOF"), 0);
        assert_eq!(state(&server), Some("close_wait"));
    }

    #[test]
    fn non_tcp_fds_are_not_counted() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let file = std::fs::File::open("/proc/self/stat").expect("file");
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("unix pair");
        assert_eq!(tcp_state(udp.as_raw_fd()).expect("udp"), None);
        assert_eq!(tcp_state(file.as_raw_fd()).expect("file"), None);
        assert_eq!(tcp_state(a.as_raw_fd()).expect("unix"), None);
        assert_eq!(tcp_state(1_000_000).expect("closed fd"), None);
    }
}
