//! Every bound on what one request may ask of the server, in one place: URI
//! and header size, body size, time, requests in flight per client address,
//! query work; the client address itself (trusting `X-Forwarded-For` only
//! from configured proxies); and the last word on every answer: errors are
//! problem details (RFC 9457), whoever produced them.

use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Longest request target (path and query). Longer: 414.
    pub max_uri_bytes: usize,
    /// All request headers together. More: 431.
    pub max_header_bytes: usize,
    /// Request bodies (only logins have one). Larger: 413.
    pub max_body_bytes: usize,
    /// Until the response starts. Longer: 408.
    pub timeout: Duration,
    /// Requests in flight from one client address. More: 429.
    pub per_client: usize,
    /// Wall-clock time of one query's work (filters, point queries, search).
    pub query_budget: Duration,
    /// Queries worked on at once, over all clients.
    pub query_slots: usize,
    /// Tiles rendered at once, over all clients (the others wait their
    /// turn, without a thread): two a core by default, so that a tile of a
    /// database layer waiting on its query leaves its core to another.
    /// More would not render faster, only share the cores, the allocator and
    /// memory among more threads: measured on the bench city, 16 at once on
    /// 2 cores tripled the p99 of the mixed list for 15% more tiles/s.
    pub render_slots: usize,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed to read the API from other sites (CORS); none by default.
    pub cors_origins: Vec<String>,
}

impl Default for RequestLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RequestLimits {
            max_uri_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            timeout: Duration::from_secs(60),
            per_client: 64,
            query_budget: Duration::from_secs(5),
            query_slots: cores,
            render_slots: cores * 2,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

/// An address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip {
                IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u32::from(v4) as u128, 32),
                    None => (u128::from(v6), 128),
                },
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        let shift = u32::from(width - self.prefix.min(width));
        net.checked_shr(shift).unwrap_or(0) == addr.checked_shr(shift).unwrap_or(0)
    }
}

/// The address of the client, as decided once per request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy
/// (the left part of the header is whatever the client chose to send).
pub fn client_addr(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// Requests in flight per client address.
#[derive(Default)]
pub struct InFlight {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

pub struct InFlightSlot<'a> {
    owner: &'a InFlight,
    addr: IpAddr,
}

impl InFlight {
    fn enter(&self, addr: IpAddr, max: usize) -> Option<InFlightSlot<'_>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(addr).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(InFlightSlot { owner: self, addr })
    }
}

impl Drop for InFlightSlot<'_> {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    ApiError {
        status,
        title: status.canonical_reason().unwrap_or("Error"),
        code: None,
        detail: detail.to_string(),
    }
    .into_response()
}

/// The outermost middleware: bounds, the client address, and problem details
/// for every error answered by anything below (axum's rejections, 405s,
/// tower-http's limits).
pub async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let limits = &state.config.limits;
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return problem(
            StatusCode::URI_TOO_LONG,
            &format!("the URL is longer than {} bytes", limits.max_uri_bytes),
        );
    }
    if request.uri().query().is_some_and(|q| !decodes_to_utf8(q)) {
        return problem(
            StatusCode::BAD_REQUEST,
            "the query string is not valid UTF-8 once percent-decoded",
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "the request headers exceed {} bytes",
                limits.max_header_bytes
            ),
        );
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let addr = client_addr(peer, request.headers(), &limits.trusted_proxies);
    request.extensions_mut().insert(ClientAddr(addr));
    let Some(_slot) = state.in_flight.enter(addr, limits.per_client) else {
        let mut r = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in flight from your address",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let response = next.run(request).await;
    problem_details(response).await
}

/// Whether a query string percent-decodes to UTF-8 (the extractors would
/// otherwise replace bad bytes with U+FFFD and answer something else).
fn decodes_to_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&out).is_ok()
}

/// Gives problem details to an error answered without them.
async fn problem_details(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The bodies of axum's rejections say what was wrong with the request
    // (only ever about what the caller sent); keep a short one as the detail.
    let text = axum::body::to_bytes(body, 2048).await.unwrap_or_default();
    let detail = std::str::from_utf8(&text)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 500)
        .map(str::to_string)
        .unwrap_or_else(|| default_detail(status).to_string());
    let mut r = problem(status, &detail);
    for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

fn default_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "this resource does not answer that method; see Allow",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::REQUEST_TIMEOUT => "the request took too long",
        StatusCode::FORBIDDEN => "cross-site requests are refused",
        StatusCode::NOT_FOUND => "no such resource",
        _ => "the request could not be answered",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_forwarded_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        let trusted = vec!["127.0.0.1".parse().unwrap()];
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            client_addr(proxy, &headers, &trusted),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(stranger, &headers, &trusted), stranger);
        assert_eq!(
            client_addr(proxy, &axum::http::HeaderMap::new(), &trusted),
            proxy
        );
    }
}
