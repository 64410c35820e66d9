//! The one selection type: which features of a layer a request (or
//! `chizu export`) takes, through the caller's view.

use crate::ApiError;
use crate::crs::Crs;
use crate::ogc::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::work::Budget;
use chizu_access::LayerView;
use chizu_core::cql2::{self, CompiledExpr};
use chizu_core::{Bounds, LayerConfig, Value};
use chizu_store::{IndexedFeature, LayerSource, Pushdown};
use geo::{Geometry, Intersects};

/// Which features of one layer, seen through one view, and how: the bbox,
/// the CQL2 filter (compiled), equality filters on properties, the
/// properties to return, the output CRS and the page. Built once per request
/// from query parameters; `chizu export` passes its arguments as the same
/// parameters, so the HTTP items, the HTTP export and the CLI export select
/// with one piece of code.
#[derive(Clone)]
pub struct Selection {
    pub crs: Crs,
    bbox: Option<Geometry<f64>>,
    bbox_envelope: Option<Bounds>,
    filter: Option<CompiledExpr>,
    equals: Vec<(usize, String)>,
    /// Visible fields to return, in the order asked for.
    pub properties: Vec<usize>,
    pub limit: usize,
    pub offset: usize,
    /// What a database may check and read for this selection.
    push: Pushdown,
}

/// What a database may check and read for a view alone (tiles, point
/// queries, summaries): the pushable conditions of its row filter, and the
/// fields it shows or filters on; hidden fields are never read.
pub fn view_pushdown(config: &LayerConfig, view: &LayerView) -> Pushdown {
    let mut columns = view.fields.clone();
    let mut conditions = Vec::new();
    if let Some(rows) = &view.rows {
        columns.extend(rows.fields());
        conditions = rows.pushable(&config.fields);
    }
    columns.sort_unstable();
    columns.dedup();
    Pushdown {
        conditions,
        columns: Some(columns),
        skip_geometry: false,
    }
}

const RESERVED: &[&str] = &[
    "f",
    "encoding",
    "purpose",
    "bbox",
    "bbox-crs",
    "limit",
    "offset",
    "properties",
    "filter",
    "filter-lang",
    "filter-crs",
    "crs",
    "datetime",
    "sortby",
];

impl Selection {
    /// Reads the parameters of an items request (`bbox`, `bbox-crs`, `filter`,
    /// `filter-lang`, `filter-crs`, `crs`, `properties`, `limit`, `offset`,
    /// and `name=value` equality filters) against a layer and a view. A hidden
    /// property is refused exactly like one that does not exist.
    pub fn parse(
        c: &LayerConfig,
        view: &LayerView,
        params: &[(String, String)],
    ) -> Result<Selection, ApiError> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let visible_index =
            |name: &str| -> Option<usize> { c.field_index(name).filter(|i| view.shows_field(*i)) };
        let queryable = || {
            view.fields
                .iter()
                .map(|i| c.fields[*i].name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unknown = |name: &str| {
            ApiError::bad_request(format!(
                "unknown property `{}`; the queryable properties are: {}",
                name.chars().take(64).collect::<String>(),
                queryable()
            ))
        };
        let parse_crs = |key: &str| -> Result<Crs, ApiError> {
            match get(key) {
                None => Ok(Crs::CRS84),
                Some(text) => Crs::parse(text).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unsupported {key} `{}`; see the collection's `crs` list",
                        text.chars().take(100).collect::<String>()
                    ))
                }),
            }
        };
        let crs = parse_crs("crs")?;
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| *l >= 1)
                .ok_or_else(|| ApiError::bad_request("limit must be a whole number of at least 1"))?
                .min(MAX_LIMIT),
        };
        let offset = match get("offset") {
            None => 0,
            Some(o) => o.parse::<usize>().map_err(|_| {
                ApiError::bad_request("offset must be a whole number of at least 0")
            })?,
        };
        let (bbox, bbox_envelope) = match get("bbox") {
            None => (None, None),
            Some(text) => {
                let bbox_crs = parse_crs("bbox-crs")?;
                let n: Vec<f64> = text
                    .split(',')
                    .map(|v| v.trim().parse::<f64>().ok().filter(|f| f.is_finite()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "bbox takes four (or six) numbers separated by commas",
                        )
                    })?;
                let (a, b, cc, d) = match n[..] {
                    [a, b, c, d] => (a, b, c, d),
                    [a, b, _, c, d, _] => (a, b, c, d),
                    _ => {
                        return Err(ApiError::bad_request(
                            "bbox takes four (or six) numbers separated by commas",
                        ));
                    }
                };
                // In the axis order of bbox-crs: for CRS84, lon/lat; for EPSG:4326, lat/lon.
                let (x0, y0, x1, y1) = (a, b, cc, d);
                if x0 > x1 || y0 > y1 {
                    return Err(ApiError::bad_request(
                        "bbox: the lower corner must come first",
                    ));
                }
                if bbox_crs.epsg.is_none() && (y0 < -90.0 || y1 > 90.0) {
                    return Err(ApiError::bad_request(
                        "bbox: latitudes lie between -90 and 90",
                    ));
                }
                // Densify the edges so that a box in a projected CRS stays a good polygon in lon/lat.
                let mut ring = Vec::new();
                for k in 0..=8 {
                    ring.push((x0 + (x1 - x0) * k as f64 / 8.0, y0));
                }
                for k in 1..=8 {
                    ring.push((x1, y0 + (y1 - y0) * k as f64 / 8.0));
                }
                for k in 1..=8 {
                    ring.push((x1 - (x1 - x0) * k as f64 / 8.0, y1));
                }
                for k in 1..=8 {
                    ring.push((x0, y1 - (y1 - y0) * k as f64 / 8.0));
                }
                let mut g: Geometry<f64> = geo::Polygon::new(ring.into(), vec![]).into();
                bbox_crs
                    .to_lonlat(&mut g)
                    .map_err(|e| ApiError::bad_request(format!("bbox: {e}")))?;
                let env = Bounds::of_geometry(&g);
                (Some(g), Some(env))
            }
        };
        let filter = match get("filter") {
            None => None,
            Some(text) => {
                let lang = get("filter-lang").unwrap_or("cql2-text");
                let parsed = match lang {
                    // Older GDAL sends the pre-1.0 names.
                    "cql2-text" | "cql-text" => cql2::parse(text),
                    "cql2-json" | "cql-json" => cql2::parse_json(text),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "filter-lang `{}` is not supported (cql2-text, cql2-json)",
                            other.chars().take(40).collect::<String>()
                        )));
                    }
                };
                let mut expr = parsed.map_err(|e| filter_error(&e, &queryable))?;
                // A hidden field is reported exactly like one that does not exist.
                for p in expr.properties() {
                    if visible_index(p).is_none() {
                        return Err(unknown(p));
                    }
                }
                let filter_crs = parse_crs("filter-crs")?;
                expr.transform_literals(&mut |g| filter_crs.to_lonlat(g))
                    .map_err(|e| ApiError::bad_request(format!("filter geometry: {e}")))?;
                Some(
                    expr.compile(&c.fields)
                        .map_err(|e| filter_error(&e, &queryable))?,
                )
            }
        };
        let mut equals = Vec::new();
        for (k, v) in params {
            if RESERVED.contains(&k.as_str()) {
                continue;
            }
            let i = visible_index(k).ok_or_else(|| unknown(k))?;
            equals.push((i, v.clone()));
        }
        let properties = match get("properties") {
            None => view.fields.clone(),
            Some(list) => list
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| visible_index(p.trim()).ok_or_else(|| unknown(p.trim())))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut push = view_pushdown(c, view);
        if let (Some(filter), Some(columns)) = (&filter, push.columns.as_mut()) {
            push.conditions.extend(filter.pushable(&c.fields));
            columns.extend(filter.fields());
        }
        if let Some(columns) = push.columns.as_mut() {
            columns.extend(equals.iter().map(|(i, _)| *i));
            columns.sort_unstable();
            columns.dedup();
        }
        Ok(Selection {
            crs,
            bbox,
            bbox_envelope,
            filter,
            equals,
            properties,
            limit,
            offset,
            push,
        })
    }

    /// Whether one feature (its row and longitude/latitude geometry) is
    /// selected: the view's rows, the bbox, the filter, the equality filters.
    /// The geometry is asked for only when the bbox or the filter needs it.
    pub fn admits(
        &self,
        view: &LayerView,
        row: &[Value],
        lonlat: impl FnOnce() -> Geometry<f64>,
    ) -> bool {
        if !(view.admits(row) && self.equals.iter().all(|(i, v)| text_of(&row[*i]) == *v)) {
            return false;
        }
        if self.bbox.is_none() && self.filter.is_none() {
            return true;
        }
        let lonlat = lonlat();
        self.bbox.as_ref().is_none_or(|b| b.intersects(&lonlat))
            && (self.filter.as_ref()).is_none_or(|e| e.matches_feature(row, &lonlat))
    }

    /// The longitude/latitude box every selected feature meets, when the bbox or
    /// the filter gives one: an index can then skip the rest.
    pub fn envelope(&self) -> Option<Bounds> {
        self.bbox_envelope.or_else(|| {
            self.filter
                .as_ref()
                .and_then(|f| f.envelope())
                .map(|r| Bounds {
                    min_x: r.min().x,
                    min_y: r.min().y,
                    max_x: r.max().x,
                    max_y: r.max().y,
                })
        })
    }

    /// Visits, in id order, every feature the selection takes: the source
    /// is asked for the area (R-tree or GiST index) and each row it yields is
    /// checked with [`admits`](Self::admits), within `budget` when given,
    /// until `visit` returns `false`.
    pub fn each(
        &self,
        source: &dyn LayerSource,
        view: &LayerView,
        budget: Option<&Budget>,
        visit: &mut dyn FnMut(&IndexedFeature) -> bool,
    ) -> Result<(), ApiError> {
        let mut stopped = None;
        let mut step = 0;
        source.scan(self.envelope().as_ref(), &self.push, &mut |f| {
            if let Some(Err(e)) = budget.map(|b| b.check_every(step, 256)) {
                stopped = Some(e);
                return false;
            }
            step += 1;
            !self.admits(view, &f.properties, || f.lonlat()) || visit(f)
        })?;
        stopped.map_or(Ok(()), Err)
    }

    /// What a database may check and read for this selection.
    pub fn pushdown(&self) -> &Pushdown {
        &self.push
    }

    /// The ids of every feature the selection takes, in order, within the
    /// request's budget.
    pub fn ids(
        &self,
        source: &dyn LayerSource,
        view: &LayerView,
        budget: &Budget,
    ) -> Result<Vec<u64>, ApiError> {
        // Only what deciding needs: the fields the filters read, and the
        // geometry only for a bbox or a spatial filter.
        let mut columns: Vec<usize> = self.equals.iter().map(|(i, _)| *i).collect();
        columns.extend(view.rows.iter().flat_map(|r| r.fields()));
        columns.extend(self.filter.iter().flat_map(|f| f.fields()));
        columns.sort_unstable();
        columns.dedup();
        let deciding = Selection {
            push: Pushdown {
                conditions: self.push.conditions.clone(),
                columns: Some(columns),
                skip_geometry: self.bbox.is_none()
                    && !self.filter.as_ref().is_some_and(|f| f.reads_geometry()),
            },
            ..self.clone()
        };
        let mut ids = Vec::new();
        deciding.each(source, view, Some(budget), &mut |f| {
            ids.push(f.id);
            true
        })?;
        Ok(ids)
    }

    /// What identifies the features taken (not the page, the properties or
    /// the output CRS): the key of the server's cache of matching ids.
    pub fn key(params: &[(String, String)]) -> String {
        const PRESENTATION: &[&str] = &[
            "limit",
            "offset",
            "f",
            "crs",
            "properties",
            "encoding",
            "purpose",
        ];
        let mut key = String::new();
        for (k, v) in params
            .iter()
            .filter(|(k, _)| !PRESENTATION.contains(&k.as_str()))
        {
            key.push_str(k);
            key.push('\u{1f}');
            key.push_str(v);
            key.push('\u{1e}');
        }
        key
    }
}

/// A filter the parser or the compiler refused, as the caller's error.
fn filter_error(e: &cql2::FilterError, queryable: &dyn Fn() -> String) -> ApiError {
    match e.kind {
        cql2::FilterErrorKind::UnknownProperty => ApiError::bad_request(format!(
            "filter: {e}; the queryable properties are: {}",
            queryable()
        )),
        _ => ApiError::bad_request(format!("filter: {e}")),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(s) => s.to_string(),
        Value::Null => String::new(),
        Value::Float(f) if f.fract() == 0.0 => format!("{f}"),
        other => other.to_string(),
    }
}
