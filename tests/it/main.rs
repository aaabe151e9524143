//! leanpoint's integration tests, one binary: the real `leanpoint` binary on
//! real 127.0.0.1 sockets, polling simulated upstreams (the simulator, in
//! this process or as `leanpoint sim`), and the shipped deploy files.
//! `support` is the one harness (see its module doc); each group below is a
//! topic, each file in it one suite.

mod support;

/// `leanpoint` serving: agreement, configuration, fallbacks, hostile and
/// hung upstreams, State downloads, the Zig migration, secrets.
mod service {
    mod agreement;
    mod config;
    mod fallback;
    mod finalized;
    mod hardening;
    mod hostile;
    mod incident;
    mod migration;
    mod process_sockets;
    mod secrets;
    mod slow_drip;
    mod state_download;
}

/// Faults between leanpoint and a simulated devnet (`leanpoint sim`), and
/// on leanpoint's own listener.
mod fault {
    mod inbound;
    mod incident;
    mod matrix;
}

/// The HTTP surface: routes, pages, ranges, the server's limits.
mod http {
    mod binary;
    mod pages;
    mod range;
    mod routes;
    mod scrape;
    mod server;
    mod status_page;
}

/// The simulator and the demo, and verified block+State pairs end to end.
mod sim {
    mod api;
    mod convert;
    mod demo;
    mod demo_pair;
    mod faults;
    mod pair;
    mod verified_pair;
}

/// Alert rules, dashboards, the compose stack and Kubernetes manifests.
mod deploy {
    mod alert_rules;
    mod compose_stack;
    mod dashboards;
    mod kubernetes;
}

mod fuzz;
