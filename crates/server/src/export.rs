//! Export: the items endpoint in another format (`f=gpkg|fgb|geojson|csv|shp`),
//! streamed, through the caller's view. A caller that may read a layer but not
//! export it gets 403 (the layer's existence is no secret to it); a layer it
//! may not read is a 404, as everywhere.

use crate::caller::Ctx;
use crate::selection::Selection;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chizu_access::{AuditEvent, LayerView};
use chizu_core::Feature;
use chizu_io::export::{ExportFormat, ExportSpec, TextEncoding};
use chizu_store::LayerSource;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A `Write` that sends 64 KiB chunks to the response body. When the client
/// goes away the receiver is dropped, the send fails, and the export stops.
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// Raises the cancel flag when dropped: the request future is dropped when the
/// client goes away, and the export thread then stops at its next feature.
struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn today() -> String {
    chizu_core::time::iso_date(chizu_core::time::unix_now()).replace('-', "")
}

pub struct ExportRequest {
    pub index: Arc<dyn LayerSource>,
    pub view: LayerView,
    pub format: ExportFormat,
    pub encoding: Option<String>,
    /// Which features, which properties, which CRS.
    pub selection: Selection,
    /// Features of the selection skipped, then taken (`offset`, `limit` when given).
    pub skip: usize,
    pub take: usize,
    pub area: String,
    /// Why the data is taken out (利用目的), for the audit log.
    pub purpose: String,
}

/// The selected features, read on a thread of their own as the writer
/// takes them (a bounded channel: memory stays flat for a layer of any
/// size, also one served from the database). The reading stops when the
/// writer stops taking, or when `cancel` is raised (the client left), also
/// while no row matches.
fn produce(req: &ExportRequest, cancel: Arc<AtomicBool>) -> std::sync::mpsc::Receiver<Feature> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Feature>(256);
    let (source, view) = (req.index.clone(), req.view.clone());
    let (skip, take) = (req.skip, req.take);
    let selection = Arc::new(req.selection.clone());
    crate::work::background(move || {
        let budget = crate::work::Budget::until_cancelled(cancel);
        let mut seen = 0usize;
        let mut sent = 0usize;
        let result = selection.each(source.as_ref(), &view, Some(&budget), &mut |f| {
            seen += 1;
            if seen <= skip {
                return true;
            }
            if sent >= take {
                return false;
            }
            sent += 1;
            let feature = Feature {
                id: f.id,
                geometry: f.lonlat(),
                properties: (selection.properties.iter())
                    .map(|p| f.properties[*p].clone())
                    .collect(),
            };
            sender.send(feature).is_ok()
        });
        if let Err(e) = result {
            tracing::warn!("export read stopped: {}", e.detail);
        }
    });
    receiver
}

/// The answer to a caller who may read a layer but not export it.
pub fn forbidden(layer: &str) -> ApiError {
    let shown: String = layer.chars().take(64).collect();
    ApiError {
        status: StatusCode::FORBIDDEN,
        title: "Forbidden",
        code: Some("export_forbidden"),
        detail: format!("your roles may read `{shown}` but not export it"),
    }
}

pub async fn respond(
    state: &AppState,
    ctx: &Ctx,
    req: ExportRequest,
) -> Result<Response, ApiError> {
    let c = req.index.meta().config.clone();
    if !req.view.can_export {
        return Err(forbidden(&c.id));
    }
    let epsg = req.selection.crs.epsg.unwrap_or(4326);
    let encoding = match (req.format, req.encoding.as_deref()) {
        (_, Some(e)) => TextEncoding::parse(e)
            .ok_or_else(|| ApiError::bad_request("encoding is cp932 or utf-8"))?,
        // Japanese CAD and GIS tools expect Shift_JIS in a DBF; Excel reads UTF-8 CSV with a BOM.
        (ExportFormat::Shp, None) => TextEncoding::Cp932,
        _ => TextEncoding::Utf8,
    };
    let spec = ExportSpec {
        layer: c.id.clone(),
        title: c.title.ja.clone(),
        kind: c.geometry,
        fields: (req.selection.properties.iter())
            .map(|i| c.fields[*i].clone())
            .collect(),
        epsg,
        format: req.format,
        encoding,
    };
    let crs_label = if epsg == 4326 {
        "WGS84".to_string()
    } else {
        format!("EPSG{epsg}")
    };
    let filename = format!(
        "{}_{}_{crs_label}.{}",
        c.id,
        today(),
        req.format.extension()
    );
    // Reads of personal fields by a logged-in caller are audited with the
    // number of features written, once the export has finished.
    let personal: Vec<&str> = (req.view.personal.iter())
        .filter(|i| req.selection.properties.contains(i))
        .map(|i| c.fields[*i].name.as_str())
        .collect();
    let audit = ctx
        .caller
        .user
        .clone()
        .filter(|_| !personal.is_empty())
        .map(|user| {
            let (log, event) = (
                state.audit.clone(),
                AuditEvent {
                    at: 0,
                    user,
                    layer: c.id.clone(),
                    via: "export".into(),
                    area: req.area.clone(),
                    features: 0,
                    fields: personal.join(","),
                    purpose: req.purpose.clone(),
                },
            );
            move |written: u64| {
                if written > 0 {
                    log.record(AuditEvent {
                        features: written,
                        ..event
                    });
                }
            }
        });
    // Raised when the client leaves: the response body (streamed formats) or
    // the request (files) is dropped before the export is done.
    let cancel = Arc::new(AtomicBool::new(false));
    let receiver = produce(&req, cancel.clone());
    let features = move || receiver.into_iter();
    let body = if req.format.streams() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        crate::work::background(move || {
            let mut out = ChannelWriter {
                buffer: Vec::with_capacity(1 << 16),
                sender: sender.clone(),
            };
            let cancel = AtomicBool::new(false);
            let mut iter = features();
            match chizu_io::export::export_stream(&spec, &mut iter, &mut out, &cancel, &mut |_| {})
            {
                Ok(stats) => {
                    if let Some(audit) = audit {
                        audit(stats.features);
                    }
                }
                Err(e) => {
                    // Mid-stream the status is sent already: end the body with an error
                    // so the client sees a truncated transfer, not a complete file.
                    tracing::warn!("export of {} stopped: {e}", spec.layer);
                    let _ = sender.blocking_send(Err(std::io::Error::other("export failed")));
                }
            }
        });
        let gone = CancelOnDrop(Some(cancel));
        Body::from_stream(futures::stream::poll_fn(move |cx| {
            let _ = &gone;
            receiver.poll_recv(cx)
        }))
    } else {
        let dir = tempfile::tempdir().map_err(|e| ApiError::internal("export temp dir", e))?;
        let path = dir.path().join(&filename);
        let path2 = path.clone();
        let guard = CancelOnDrop(Some(cancel.clone()));
        let written = crate::work::background(move || {
            let mut iter = features();
            chizu_io::export::export_file(&spec, &mut iter, &path2, &cancel, &mut |_| {})
        })
        .await;
        // Finished: nothing left to cancel.
        guard.disarm();
        let stats = written
            .map_err(|e| ApiError::internal("export", e))?
            .map_err(|e| match e {
                e @ chizu_io::IoError::Field { .. } => ApiError::bad_request(e.to_string()),
                e => ApiError::internal("export", e),
            })?;
        if let Some(audit) = audit {
            audit(stats.features);
        }
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::internal("export file", e))?;
        // The open file outlives its directory (unlinked at drop) while streaming.
        drop(dir);
        let mut file = file;
        let stream = futures::stream::poll_fn(move |cx| {
            use tokio::io::AsyncRead;
            let mut buf = vec![0u8; 1 << 16];
            let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
            match std::pin::Pin::new(&mut file).poll_read(cx, &mut read_buf) {
                std::task::Poll::Ready(Ok(())) => {
                    let n = read_buf.filled().len();
                    if n == 0 {
                        std::task::Poll::Ready(None)
                    } else {
                        buf.truncate(n);
                        std::task::Poll::Ready(Some(Ok::<Bytes, std::io::Error>(Bytes::from(buf))))
                    }
                }
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        });
        Body::from_stream(stream)
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(req.format.media_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", req.selection.crs.uri())) {
        h.insert("content-crs", v);
    }
    Ok(response)
}
