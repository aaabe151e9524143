//! Requests to upstreams: what can fail and how it is named (`error`), the
//! one bounded request path (`request`), the kept connection a plain-HTTP
//! upstream is asked over (`conn`), which redirects it follows
//! (`redirect`), and which endpoints a poll asks (`poll`).

mod conn;
mod error;
mod poll;
pub mod redirect;
mod request;

pub use conn::Channel;
pub use error::{is_not_found, Endpoint, ErrorKind, UpstreamError};
pub use poll::{LastForkChoice, Observation, Source};
pub use request::{build_client, Prepared, Report, Requester};

#[cfg(test)]
mod tests;
