//! Support for the browser test: Chromium over the DevTools protocol.

pub mod cdp;
