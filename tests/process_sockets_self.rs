//! `tcp_sockets::count` on this test's own process, which holds exactly the
//! sockets made here (one test in this file, so no other test's sockets):
//! LISTEN, ESTABLISHED pairs and a CLOSE-WAIT held open are counted exactly,
//! and the fallback (sock_diag / socket tables) counts the same.

use std::io::Read;
use std::net::{TcpListener, TcpStream};

use leanpoint::telemetry::tcp_sockets::{self, STATES};

fn at(counts: &tcp_sockets::Counts, state: &str) -> i64 {
    let i = STATES.iter().position(|s| *s == state).expect("state");
    counts[i]
}

#[test]
fn own_sockets_are_counted_by_state_and_both_paths_agree() {
    let before = tcp_sockets::count().expect("count");
    assert_eq!(
        before.iter().sum::<i64>(),
        0,
        "no TCP socket yet: {before:?}"
    );

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut pairs = Vec::new();
    for _ in 0..10 {
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        pairs.push((client, server));
    }
    // Hold a CLOSE-WAIT: the peer closes, we read its FIN and keep our end.
    let peer = TcpStream::connect(addr).expect("connect");
    let (mut close_wait, _) = listener.accept().expect("accept");
    drop(peer);
    let mut buf = [0u8; 1];
    assert_eq!(close_wait.read(&mut buf).expect("EOF"), 0);

    let counts = tcp_sockets::count().expect("count");
    assert_eq!(at(&counts, "listen"), 1, "{counts:?}");
    assert_eq!(at(&counts, "established"), 20, "{counts:?}");
    assert_eq!(at(&counts, "close_wait"), 1, "{counts:?}");
    assert_eq!(counts.iter().sum::<i64>(), 22, "{counts:?}");

    let tables = tcp_sockets::by_socket_tables().expect("socket tables");
    assert_eq!(tables, counts, "fallback and TCP_INFO disagree");

    drop(close_wait);
    drop(pairs);
    let after = tcp_sockets::count().expect("count");
    assert_eq!(after.iter().sum::<i64>(), 1, "only the listener: {after:?}");
}
