//! A minimal client for Prometheus's HTTP API on 127.0.0.1 (the harness's
//! one HTTP client), JSON bodies.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::support::request;

pub struct Prometheus {
    pub addr: SocketAddr,
}

/// Percent-encodes a query parameter value (everything but unreserved bytes).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// GET `path` and return (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let headers = [("Accept", "application/json")];
        let r = request(
            self.addr,
            "GET",
            path,
            &headers,
            b"",
            Duration::from_secs(10),
        )?;
        Ok((r.status, r.text()))
    }

    /// `data` of a successful API call, or the API's error.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = self.get(path)?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {} {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// Instant query: the result vector (empty when nothing matches).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)))?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            // A scalar or string result is one value.
            Some(_) => Ok(vec![data["result"].clone()]),
            None => Err(format!("no resultType in {data}")),
        }
    }

    /// Active alerts (pending and firing).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Loaded rule groups.
    pub fn rule_groups(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/rules")?["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

#[test]
fn encode_escapes_promql() {
    assert_eq!(
        encode(r#"up{job="a b"}[5m]"#),
        "up%7Bjob%3D%22a%20b%22%7D%5B5m%5D"
    );
}
