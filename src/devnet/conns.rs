//! An exact account of the connections a node's own port accepted: how many,
//! how many are open now, the most ever open at once, when each opened and
//! closed, and which paths were asked for. What a test reads to judge a
//! client's connection discipline from the server's side (one request in
//! flight per upstream, sockets closed at the deadline).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// One accepted connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnRecord {
    pub accepted_at: Instant,
    /// When the node saw the peer close it (FIN, reset, or a failed write).
    pub closed_at: Option<Instant>,
    pub requests: usize,
}

#[derive(Default)]
struct Inner {
    /// Open connections: id and a duplicate of the socket, polled for a
    /// pending peer close without disturbing the connection's own task.
    open: Vec<(usize, OwnedFd)>,
    records: Vec<ConnRecord>,
    max_open: usize,
    paths: Vec<String>,
}

/// The ledger of one node. Connections on a shared port are not counted
/// (they carry requests for many nodes).
#[derive(Default)]
pub struct Conns(Mutex<Inner>);

/// A snapshot of a node's connections.
#[derive(Clone, Debug, Default)]
pub struct ConnStats {
    /// Every connection accepted so far, in order.
    pub records: Vec<ConnRecord>,
    /// Open now (peer closes already in the kernel are counted as closed).
    pub open: usize,
    /// The most that were ever open at once.
    pub max_open: usize,
}

impl ConnStats {
    pub fn accepted(&self) -> usize {
        self.records.len()
    }
}

/// True once the peer has closed (or reset) its side. POLLRDHUP reports a
/// FIN even behind request bytes the connection's task has not read yet.
fn peer_closed(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::RDHUP)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(0) => false,
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
        Err(_) => true,
    }
}

impl Inner {
    fn close(&mut self, id: usize, at: Instant) {
        self.open.retain(|(i, _)| *i != id);
        if let Some(r) = self.records.get_mut(id) {
            r.closed_at.get_or_insert(at);
        }
    }

    /// Marks every open connection whose peer has already closed it. The
    /// kernel has the FIN of a connection the client closed before it could
    /// open the next one, so refreshing before counting a newly accepted
    /// connection makes "open at once" exact, whatever order the
    /// connections' tasks happen to be scheduled in.
    fn refresh(&mut self) {
        let now = Instant::now();
        let gone: Vec<usize> = self
            .open
            .iter()
            .filter(|(_, fd)| peer_closed(fd))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.close(id, now);
        }
    }
}

impl Conns {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a newly accepted connection; its id for [`Conns::request`]
    /// and [`Conns::closed`].
    pub fn accepted(&self, socket: impl AsFd) -> usize {
        let mut c = self.lock();
        c.refresh();
        let id = c.records.len();
        c.records.push(ConnRecord {
            accepted_at: Instant::now(),
            closed_at: None,
            requests: 0,
        });
        // Without a duplicate the connection counts as open until its task
        // ends, which is only later than the truth.
        if let Ok(dup) = socket.as_fd().try_clone_to_owned() {
            c.open.push((id, dup));
            c.max_open = c.max_open.max(c.open.len());
        }
        id
    }

    /// Counts a request for `path` on connection `id`.
    pub fn request(&self, id: Option<usize>, path: &str) {
        let mut c = self.lock();
        c.paths.push(path.to_string());
        if let Some(r) = id.and_then(|id| c.records.get_mut(id)) {
            r.requests += 1;
        }
    }

    /// The connection's task has ended: the socket is closed.
    pub fn closed(&self, id: usize) {
        self.lock().close(id, Instant::now());
    }

    /// Requests received for `path`.
    pub fn requests(&self, path: &str) -> usize {
        self.lock().paths.iter().filter(|p| *p == path).count()
    }

    pub fn stats(&self) -> ConnStats {
        let mut c = self.lock();
        c.refresh();
        ConnStats {
            records: c.records.clone(),
            open: c.open.len(),
            max_open: c.max_open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn counts_connections_and_sees_a_peer_close_before_its_task_does() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Conns::default();
        let first_client = TcpStream::connect(addr).expect("connect");
        let (first, _) = listener.accept().expect("accept");
        let a = conns.accepted(&first);
        conns.request(Some(a), "/lean/v0/health");
        let _second_client = TcpStream::connect(addr).expect("connect");
        let (second, _) = listener.accept().expect("accept");
        let b = conns.accepted(&second);
        let s = conns.stats();
        assert_eq!((s.accepted(), s.open, s.max_open), (2, 2, 2));

        // The peer closes; the server's own socket stays open (its task has
        // not read the EOF yet), and the ledger sees the FIN anyway.
        drop(first_client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while conns.stats().open != 1 {
            assert!(Instant::now() < deadline, "{:?}", conns.stats());
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = conns.stats();
        assert!(s.records[0].closed_at.is_some(), "{s:?}");
        assert_eq!(s.records[0].requests, 1);
        assert!(s.records[1].closed_at.is_none(), "{s:?}");

        conns.closed(b);
        let s = conns.stats();
        assert_eq!((s.open, s.max_open), (0, 2));
        assert_eq!(conns.requests("/lean/v0/health"), 1);
        assert_eq!(conns.requests("/lean/v0/fork_choice"), 0);
        drop((first, second));
    }
}
