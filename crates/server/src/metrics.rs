//! `/metrics`: Prometheus text for the city's monitoring, for callers with the
//! `admin` role (a scraper uses an API token). To everyone else it does not
//! exist (404, like any unknown resource): the layer list and request counts
//! are not the public's business.
//!
//! Requests are counted per kind of resource (the first path segment, a fixed
//! set, so no caller can grow the label space) and status class, with a
//! latency histogram per kind.

use crate::caller::Ctx;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The role that may read `/metrics`.
pub const METRICS_ROLE: &str = "admin";

const KINDS: [&str; 13] = [
    "tiles", "ogc", "styles", "fonts", "assets", "auth", "query", "search", "catalog", "health",
    "page", "metrics", "other",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Counters the server keeps while it runs.
pub struct Metrics {
    started: Instant,
    requests: Vec<AtomicU64>,
    latency: Vec<Histogram>,
    pub tiles_rendered: AtomicU64,
    /// Features the tile size budget left out: under a pixel, then smallest.
    pub tile_features_dropped_small: AtomicU64,
    pub tile_features_dropped_budget: AtomicU64,
    pub tiles_served: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_succeeded: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: (0..KINDS.len() * CLASSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: (0..KINDS.len()).map(|_| Histogram::default()).collect(),
            tiles_rendered: AtomicU64::new(0),
            tile_features_dropped_small: AtomicU64::new(0),
            tile_features_dropped_budget: AtomicU64::new(0),
            tiles_served: AtomicU64::new(0),
            logins_failed: AtomicU64::new(0),
            logins_succeeded: AtomicU64::new(0),
        }
    }
}

fn kind_of(path: &str) -> usize {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let kind = match first {
        "" | "staff" => "page",
        "query" => "query",
        other => other,
    };
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

impl Metrics {
    fn record(&self, kind: usize, status: u16, seconds: f64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[kind * CLASSES.len() + class].fetch_add(1, Ordering::Relaxed);
        let h = &self.latency[kind];
        for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Counts every request and its latency.
pub async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let kind = kind_of(request.uri().path());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(
        kind,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

pub async fn metrics(State(state): State<Arc<AppState>>, ctx: Ctx) -> Result<Response, ApiError> {
    if !ctx.caller.roles.contains(METRICS_ROLE) {
        return Err(ApiError::not_found("no such resource"));
    }
    let m = &state.metrics;
    let mut out = String::with_capacity(8 * 1024);
    let section = |out: &mut String, name: &str, kind: &str, help: &str, body: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for line in body {
            out.push_str(&line);
            out.push('\n');
        }
    };
    section(
        &mut out,
        "chizu_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        vec![format!(
            "chizu_uptime_seconds {:.0}",
            m.started.elapsed().as_secs_f64()
        )],
    );
    let requests = KINDS
        .iter()
        .enumerate()
        .flat_map(|(k, kind)| {
            CLASSES.iter().enumerate().filter_map(move |(c, class)| {
                let n = m.requests[k * CLASSES.len() + c].load(Ordering::Relaxed);
                (n > 0).then(|| {
                    format!("chizu_http_requests_total{{kind=\"{kind}\",status=\"{class}\"}} {n}")
                })
            })
        })
        .collect();
    section(
        &mut out,
        "chizu_http_requests_total",
        "counter",
        "HTTP requests by kind of resource and status class.",
        requests,
    );
    let mut latency = Vec::new();
    for (k, kind) in KINDS.iter().enumerate() {
        let h = &m.latency[k];
        let count = h.count.load(Ordering::Relaxed);
        if count == 0 {
            continue;
        }
        for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
            latency.push(format!(
                "chizu_http_request_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            ));
        }
        latency.push(format!(
            "chizu_http_request_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {count}"
        ));
        latency.push(format!(
            "chizu_http_request_duration_seconds_sum{{kind=\"{kind}\"}} {:.6}",
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        latency.push(format!(
            "chizu_http_request_duration_seconds_count{{kind=\"{kind}\"}} {count}"
        ));
    }
    section(
        &mut out,
        "chizu_http_request_duration_seconds",
        "histogram",
        "Time to answer, by kind of resource.",
        latency,
    );
    let counter = |v: &AtomicU64| v.load(Ordering::Relaxed);
    section(
        &mut out,
        "chizu_tiles_served_total",
        "counter",
        "Vector tiles answered (from the cache or rendered).",
        vec![format!(
            "chizu_tiles_served_total {}",
            counter(&m.tiles_served)
        )],
    );
    section(
        &mut out,
        "chizu_tiles_rendered_total",
        "counter",
        "Vector tiles rendered (cache misses).",
        vec![format!(
            "chizu_tiles_rendered_total {}",
            counter(&m.tiles_rendered)
        )],
    );
    section(
        &mut out,
        "chizu_tile_features_dropped_total",
        "counter",
        "Features the tile size budget left out of rendered tiles, by reason.",
        vec![
            format!(
                "chizu_tile_features_dropped_total{{reason=\"under_a_pixel\"}} {}",
                counter(&m.tile_features_dropped_small)
            ),
            format!(
                "chizu_tile_features_dropped_total{{reason=\"smallest_over_budget\"}} {}",
                counter(&m.tile_features_dropped_budget)
            ),
        ],
    );
    state.tile_cache.run_pending_tasks().await;
    section(
        &mut out,
        "chizu_tile_cache_bytes",
        "gauge",
        "Bytes held by the tile cache.",
        vec![format!(
            "chizu_tile_cache_bytes {}",
            state.tile_cache.weighted_size()
        )],
    );
    section(
        &mut out,
        "chizu_logins_total",
        "counter",
        "Login attempts by outcome.",
        vec![
            format!(
                "chizu_logins_total{{outcome=\"success\"}} {}",
                counter(&m.logins_succeeded)
            ),
            format!(
                "chizu_logins_total{{outcome=\"failure\"}} {}",
                counter(&m.logins_failed)
            ),
        ],
    );
    // Per-layer series go through the caller's view like every other output.
    let layers: Vec<_> = ctx.visible().collect();
    let mut counts = Vec::with_capacity(layers.len());
    for (l, view) in &layers {
        counts.push(format!(
            "chizu_layer_features{{layer=\"{}\"}} {}",
            l.meta().config.id,
            state.summary(l, view).await?.0
        ));
    }
    section(
        &mut out,
        "chizu_layer_version",
        "gauge",
        "Data version served, per layer.",
        layers
            .iter()
            .map(|(l, _)| {
                format!(
                    "chizu_layer_version{{layer=\"{}\"}} {}",
                    l.meta().config.id,
                    l.meta().version
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "chizu_layer_features",
        "gauge",
        "Features served, per layer, as this caller's view counts them (row filters apply).",
        counts,
    );
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_a_closed_set() {
        assert_eq!(KINDS[kind_of("/tiles/parcels/14/1/2.mvt")], "tiles");
        assert_eq!(KINDS[kind_of("/")], "page");
        assert_eq!(KINDS[kind_of("/staff")], "page");
        assert_eq!(KINDS[kind_of("/query/point")], "query");
        assert_eq!(KINDS[kind_of("/anything-a-caller-makes-up")], "other");
    }

    #[test]
    fn latency_lands_in_every_bucket_at_or_above_it() {
        let m = Metrics::default();
        m.record(0, 200, 0.004);
        let h = &m.latency[0];
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(m.requests[1].load(Ordering::Relaxed), 1, "tiles 2xx");
    }
}
