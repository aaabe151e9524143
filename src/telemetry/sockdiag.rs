//! TCP socket states from the kernel's sock_diag netlink interface
//! (inet_diag), for `leanpoint_process_tcp_sockets`.
//!
//! Why not /proc/net/tcp: the kernel formats every TCP socket of the network
//! namespace as text, TIME_WAIT ones included, one page per read(). With
//! about 13,000 sockets on the host (the TIME_WAITs of ordinary traffic) that
//! cost 35 ms of CPU per scrape, more than the rest of /metrics at 1000
//! upstreams. inet_diag filters by state inside the kernel and answers in
//! binary records. TIME_WAIT is never asked for: such a socket has no fd, so
//! it cannot belong to this process.
//!
//! Pure byte handling over a safe rustix socket; every length read from the
//! kernel is checked before use.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

/// Kernel TCP states are 1..=12 (`TCP_ESTABLISHED` .. `TCP_NEW_SYN_RECV`).
pub const STATES: usize = 13;
const TCP_TIME_WAIT: u8 = 6;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
const IPPROTO_TCP: u8 = 6;
/// `nlmsghdr` + `inet_diag_req_v2` (family, protocol, ext, pad, states,
/// a 48-byte socket id).
const REQ_LEN: usize = NLMSG_HDRLEN + 56;
/// `inet_diag_msg`: family, state, timer, retrans, a 48-byte socket id,
/// expires, rqueue, wqueue, uid, then the inode at this offset.
const MSG_INODE_AT: usize = 4 + 48 + 16;
const MSG_MIN_LEN: usize = MSG_INODE_AT + 4;
/// A dump is a few thousand records at most per recv; this bounds the loop
/// even if the kernel never said DONE.
const MAX_RECVS: usize = 100_000;

/// Counts the TCP sockets (IPv4 and IPv6) whose inode is in `inodes`, by
/// kernel state number. An IPv4 failure (netlink not allowed here) is an
/// error; an IPv6 one is taken as a host without IPv6, as the /proc reader
/// treats a missing tcp6 file.
pub fn tcp_states(inodes: &HashSet<u64>) -> io::Result<[i64; STATES]> {
    let mut counts = [0i64; STATES];
    dump(AddressFamily::INET.as_raw() as u8, inodes, &mut counts)?;
    let mut v6 = [0i64; STATES];
    if dump(AddressFamily::INET6.as_raw() as u8, inodes, &mut v6).is_ok() {
        for (c, n) in counts.iter_mut().zip(v6) {
            *c += n;
        }
    }
    Ok(counts)
}

/// The dump request: `nlmsghdr` + `inet_diag_req_v2` for every state but
/// TIME_WAIT.
fn request(family: u8, seq: u32) -> [u8; REQ_LEN] {
    let mut req = [0u8; REQ_LEN];
    req[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    let body = &mut req[NLMSG_HDRLEN..];
    body[0] = family;
    body[1] = IPPROTO_TCP;
    let states: u32 = 0xffff_fffe & !(1 << TCP_TIME_WAIT);
    body[4..8].copy_from_slice(&states.to_ne_bytes());
    req
}

fn dump(family: u8, inodes: &HashSet<u64>, counts: &mut [i64; STATES]) -> io::Result<()> {
    let fd = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        Some(netlink::SOCK_DIAG),
    )?;
    // The kernel answers a dump at once; a stuck one must not stall /metrics.
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(1)),
    )?;
    let seq = 1;
    rustix::net::sendto(
        &fd,
        &request(family, seq),
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..MAX_RECVS {
        // TRUNC: the kernel reports the datagram's full length, so a record
        // cut off by the buffer is an error, not a silent undercount.
        let (n, full) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::TRUNC)?;
        if full > n {
            return Err(io::Error::other(
                "sock_diag: datagram larger than the buffer",
            ));
        }
        if parse(&buf[..n], seq, inodes, counts)? {
            return Ok(());
        }
    }
    Err(io::Error::other("sock_diag dump did not end"))
}

/// Counts the records in one datagram; true once the dump is done.
fn parse(
    mut data: &[u8],
    seq: u32,
    inodes: &HashSet<u64>,
    counts: &mut [i64; STATES],
) -> io::Result<bool> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::other("sock_diag: malformed netlink message"));
        }
        if u32_at(data, 8) == seq {
            let payload = &data[NLMSG_HDRLEN..len];
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = payload.get(0..4).map_or(0, |_| u32_at(payload, 0) as i32);
                    return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
                }
                SOCK_DIAG_BY_FAMILY if payload.len() >= MSG_MIN_LEN => {
                    let inode = u64::from(u32_at(payload, MSG_INODE_AT));
                    let state = usize::from(payload[1]);
                    if state < STATES && inodes.contains(&inode) {
                        counts[state] += 1;
                    }
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(false)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode(fd: &impl AsRawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .expect("readlink of an own fd");
        let text = link.to_string_lossy().to_string();
        text.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .expect("socket inode")
    }

    #[test]
    fn counts_own_listening_and_established_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let mine: HashSet<u64> = [inode(&listener), inode(&client), inode(&server)].into();
        let counts = tcp_states(&mine).expect("sock_diag dump");
        assert_eq!(counts[10], 1, "one LISTEN: {counts:?}");
        assert_eq!(counts[1], 2, "two ESTABLISHED: {counts:?}");
        assert_eq!(counts.iter().sum::<i64>(), 3, "{counts:?}");
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let none = HashSet::new();
        let mut counts = [0i64; STATES];
        let mut bad = [0u8; 20];
        bad[0..4].copy_from_slice(&4000u32.to_ne_bytes());
        let malformed = |bad: &[u8], counts: &mut [i64; STATES]| {
            let e = parse(bad, 1, &none, counts).expect_err("malformed");
            assert!(e.to_string().contains("malformed netlink message"), "{e}");
        };
        malformed(&bad, &mut counts);
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        malformed(&bad, &mut counts);
        // A record too short for an inode is skipped.
        let mut short = [0u8; 24];
        short[0..4].copy_from_slice(&24u32.to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        short[8..12].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(parse(&short, 1, &none, &mut counts).ok(), Some(false));
        assert_eq!(counts, [0; STATES]);
    }
}
