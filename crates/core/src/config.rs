//! Layer files: one TOML file per layer, read strictly.
//!
//! A layer is data, not code: adding a sixth layer means writing one more file.
//! Every key is checked: an unknown key, an unknown role or type, or a field named
//! in `access` that the schema does not have is an error naming the file and key,
//! because a misspelt `acess` or `owner_nmae` would otherwise silently publish data.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The role every caller has, logged in or not.
pub const PUBLIC_ROLE: &str = "public";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    fn invalid(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: file.display().to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Text in Japanese and English. Japanese is required: it is what residents read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedText {
    pub ja: String,
    #[serde(default)]
    pub en: Option<String>,
}

impl LocalizedText {
    pub fn en_or_ja(&self) -> &str {
        self.en.as_deref().unwrap_or(&self.ja)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Shapefile,
    Geojson,
    Flatgeobuf,
    Geopackage,
    /// The Ministry of Justice map XML (地図XML, 登記所備付地図データ): one XML,
    /// a zip of XMLs, or a zip of zips.
    Mojxml,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Shapefile => "shapefile",
            SourceFormat::Geojson => "geojson",
            SourceFormat::Flatgeobuf => "flatgeobuf",
            SourceFormat::Geopackage => "geopackage",
            SourceFormat::Mojxml => "mojxml",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Relative paths are resolved against the directory of the layer file.
    pub path: PathBuf,
    pub format: SourceFormat,
    /// The CRS of the source coordinates, as `EPSG:<code>`. MOJ XML names
    /// its zone in every sheet: there `crs` may be left out, and when given,
    /// every sheet must be in it.
    #[serde(default)]
    pub crs: String,
    /// What a contradiction between `crs` and the file's own CRS (a
    /// Shapefile's `.prj`, a GeoPackage's SRS, a FlatGeobuf header, a MOJ
    /// XML sheet's zone) is: an error (default) or a warning in the report,
    /// for files known to carry a wrong `.prj`; `crs` is used either way.
    #[serde(default)]
    pub crs_check: CrsCheck,
    /// Text encoding of shapefile attributes when the file does not say (no `.cpg`).
    #[serde(default)]
    pub encoding: Option<String>,
    /// The table to read from a GeoPackage holding several.
    #[serde(default)]
    pub table: Option<String>,
    /// What to read from a MOJ XML file (`format = "mojxml"` only).
    #[serde(default)]
    pub mojxml: Option<MojxmlOptions>,
    /// Attributes joined from a table (a CSV ledger such as the land tax
    /// register 土地課税台帳), matched on columns the source also has.
    #[serde(default)]
    pub join: Option<JoinConfig>,
}

/// A CSV table whose rows add attributes to the source's features: the
/// row whose `on` columns equal the feature's attributes of the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// Relative paths are resolved against the directory of the layer file.
    pub path: PathBuf,
    /// The key columns (at least one), named as in both the source and the CSV.
    pub on: Vec<String>,
    /// The CSV's text encoding (default UTF-8; Excel in Japan writes CP932).
    #[serde(default)]
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrsCheck {
    #[default]
    Error,
    Warn,
}

/// Which features of a MOJ XML file make a layer, and what happens to
/// sheets in 任意座標系 (arbitrary local coordinates).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MojxmlOptions {
    #[serde(default)]
    pub features: MojFeatures,
    #[serde(default)]
    pub arbitrary: ArbitrarySheets,
    /// A TOML file of control points per 任意座標系 sheet (with
    /// `arbitrary = "control_points"`); relative to the layer file.
    #[serde(default)]
    pub control_points: Option<PathBuf>,
}

/// The feature classes of a MOJ XML file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MojFeatures {
    /// 筆: parcels (polygons).
    #[default]
    Parcels,
    /// 図郭: map sheet frames (polygons).
    Sheets,
    /// 筆界線 and 仮行政界線: boundary lines.
    BoundaryLines,
    /// 筆界点: boundary points.
    BoundaryPoints,
    /// 基準点: control points (survey marks).
    ControlPoints,
}

impl MojFeatures {
    pub fn geometry(self) -> GeometryKind {
        match self {
            MojFeatures::Parcels | MojFeatures::Sheets => GeometryKind::Polygon,
            MojFeatures::BoundaryLines => GeometryKind::Line,
            MojFeatures::BoundaryPoints | MojFeatures::ControlPoints => GeometryKind::Point,
        }
    }
}

/// What ingest does with a sheet in 任意座標系, which cannot be placed on
/// the earth by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArbitrarySheets {
    /// The ingest fails, naming the file, the sheet and its parcels.
    #[default]
    Refuse,
    /// The sheet is left out and counted in the report.
    Skip,
    /// The sheet is placed by an affine or Helmert transformation fitted to
    /// the control points of `control_points`.
    ControlPoints,
}
impl SourceConfig {
    /// The EPSG code of `crs`.
    pub fn epsg(&self) -> u32 {
        parse_epsg(&self.crs).unwrap_or(0)
    }
}

/// Parses `EPSG:6670` (or `epsg:6670`) into 6670.
pub fn parse_epsg(crs: &str) -> Option<u32> {
    let (authority, code) = crs.split_once(':')?;
    if !authority.eq_ignore_ascii_case("EPSG") {
        return None;
    }
    code.parse().ok().filter(|c| *c > 0)
}

/// The geometry a layer holds; each kind also accepts its multi-part form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeometryKind {
    Point,
    Line,
    Polygon,
}

impl GeometryKind {
    /// Whether `g` is of this kind (single or multi-part).
    pub fn accepts(&self, g: &geo::Geometry<f64>) -> bool {
        use geo::Geometry as G;
        matches!(
            (self, g),
            (GeometryKind::Point, G::Point(_) | G::MultiPoint(_))
                | (
                    GeometryKind::Line,
                    G::LineString(_) | G::MultiLineString(_) | G::Line(_)
                )
                | (
                    GeometryKind::Polygon,
                    G::Polygon(_) | G::MultiPolygon(_) | G::Rect(_) | G::Triangle(_)
                )
        )
    }

    /// The GeoPackage / OGC geometry type name for the layer's column.
    pub fn ogc_name(&self) -> &'static str {
        match self {
            GeometryKind::Point => "MULTIPOINT",
            GeometryKind::Line => "MULTILINESTRING",
            GeometryKind::Polygon => "MULTIPOLYGON",
        }
    }
}

impl fmt::Display for GeometryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GeometryKind::Point => "point",
            GeometryKind::Line => "line",
            GeometryKind::Polygon => "polygon",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Float,
    Boolean,
    /// ISO 8601 calendar date, stored as text `YYYY-MM-DD`.
    Date,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub title: Option<LocalizedText>,
    /// The attribute's name in the source file, when it differs (DBF names are cut at 10 bytes).
    #[serde(default)]
    pub source: Option<String>,
    /// A feature without a value here is an ingest error.
    #[serde(default)]
    pub required: bool,
    /// Offered by lot-number and place-name search.
    #[serde(default)]
    pub searchable: bool,
    /// A place people look for by name (大字, a road's 路線名): search answers
    /// each value once, with the extent of all its features, under this kind
    /// (`place = { ja = "大字", en = "District" }`). Needs `searchable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<LocalizedText>,
    /// The field that holds this one's reading in kana (読み仮名, e.g.
    /// `oaza_kana` for `oaza`): search finds the value by its reading too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
    /// Personal data (個人情報): reads are audited.
    #[serde(default)]
    pub personal: bool,
    /// The code list (コード表) of a text or integer field: each code with the
    /// label maps and forms show for it (`values = { DIP = { ja = "ダクタイル鋳鉄管" } }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, LocalizedText>,
}

impl FieldDef {
    /// A plain field: no title, not required, searchable or personal, no code list.
    pub fn new(name: impl Into<String>, ty: FieldType) -> FieldDef {
        FieldDef {
            name: name.into(),
            ty,
            title: None,
            source: None,
            required: false,
            searchable: false,
            place: None,
            reading: None,
            personal: false,
            values: BTreeMap::new(),
        }
    }

    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomRange {
    pub min: u8,
    pub max: u8,
}

impl ZoomRange {
    pub fn contains(&self, z: u8) -> bool {
        self.min <= z && z <= self.max
    }
}

/// What ingest does with a geometry that is not valid (OGC simple features rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidGeometryPolicy {
    /// The whole ingest fails and the previous version stays.
    #[default]
    Reject,
    /// Invalid features are left out and reported.
    Skip,
    /// Invalid features are made valid (self-intersections resolved, repeated points removed).
    Repair,
    /// Invalid features are stored as they are and reported.
    Keep,
}

/// How a layer is cut into vector tiles. Units are tile units: a tile is 4096 wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TileOptions {
    /// Geometry kept beyond the tile edge, so that strokes and labels do not break at seams.
    pub buffer: u32,
    /// Douglas-Peucker tolerance in tile units (topology-preserving for polygons).
    pub simplify: f64,
    /// Budget for this layer's share of one tile, in bytes of encoded MVT.
    pub max_bytes: usize,
    /// Fields written to tiles only from this zoom on (`{ name_en = 6 }`):
    /// a world layer's z0 tile need not carry every column. Fields not named
    /// are written at every zoom.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields_from_zoom: BTreeMap<String, u8>,
}

impl TileOptions {
    /// Whether a field's values go into tiles of zoom `z`.
    pub fn field_at_zoom(&self, field: &str, z: u8) -> bool {
        self.fields_from_zoom
            .get(field)
            .is_none_or(|from| z >= *from)
    }
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            buffer: 64,
            simplify: 4.0,
            max_bytes: 500_000,
            fields_from_zoom: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Roles that see the layer at all.
    pub read: Vec<String>,
    /// Roles that may export the layer (they must also be able to read it).
    #[serde(default)]
    pub export: Vec<String>,
    /// Per-field read roles; fields not named are readable by whoever reads the layer.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    /// Per-role row filters in CQL2 text. A caller sees a row when any of its
    /// roles that reads the layer has no filter, or has one the row passes.
    #[serde(default)]
    pub rows: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub id: String,
    pub title: LocalizedText,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// Credit shown on the map (出典).
    #[serde(default)]
    pub attribution: Option<String>,
    /// Terms the data may be used under (利用条件), shown on `/data`:
    /// e.g. "CC BY 4.0" or "政府標準利用規約 2.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    pub source: SourceConfig,
    pub geometry: GeometryKind,
    pub zoom: ZoomRange,
    #[serde(default)]
    pub invalid_geometry: InvalidGeometryPolicy,
    #[serde(default)]
    pub tiles: TileOptions,
    /// Where the server reads the layer from (memory snapshot or database).
    #[serde(default)]
    pub serve: ServeMode,
    /// Fields that identify a feature from one version of the source to the
    /// next (a parcel's 筆ID, or 大字 + 地番): an ingest then reports how many
    /// features were added, removed and changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// The text field maps write on the features (a parcel's 地番, a road's
    /// name). Tiles carry one label point per polygon (its pole of
    /// inaccessibility) and one per distinct name of a line layer, each in
    /// the one tile that holds it, so no label repeats across tile edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub fields: Vec<FieldDef>,
    pub access: AccessConfig,
}

/// How a layer is served: from an R-tree snapshot in the server's memory
/// (fastest), or from the database on each request (for layers larger than
/// memory; PostgreSQL stores only). `auto` serves from the database when the
/// store can and the layer has more than [`ServeMode::AUTO_DATABASE_FEATURES`]
/// features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeMode {
    #[default]
    Auto,
    Memory,
    Database,
}

impl ServeMode {
    pub const AUTO_DATABASE_FEATURES: u64 = 1_000_000;

    /// Whether a layer of `features` features is served from the database
    /// (when the store can).
    pub fn from_database(self, features: u64) -> bool {
        match self {
            ServeMode::Memory => false,
            ServeMode::Database => true,
            ServeMode::Auto => features > ServeMode::AUTO_DATABASE_FEATURES,
        }
    }
}

/// The roles a deployment knows (from `roles.toml`); `public` is always one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSet {
    pub roles: BTreeMap<String, String>,
}

impl RoleSet {
    pub fn from_toml(file: &Path, text: &str) -> Result<RoleSet, ConfigError> {
        let set: RoleSet = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.display().to_string(),
            message: e.to_string(),
        })?;
        if !set.roles.contains_key(PUBLIC_ROLE) {
            return Err(ConfigError::invalid(
                file,
                "roles",
                "the role `public` (every caller, logged in or not) must be declared",
            ));
        }
        for name in set.roles.keys() {
            if !is_identifier(name) {
                return Err(ConfigError::invalid(
                    file,
                    format!("roles.{name}"),
                    "role names are lower-case ASCII letters, digits and `_`",
                ));
            }
        }
        Ok(set)
    }

    pub fn contains(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }
}

impl LayerConfig {
    /// Parses and validates one layer file. `file` is used in error messages and to
    /// resolve a relative source path.
    pub fn from_toml(file: &Path, text: &str, roles: &RoleSet) -> Result<LayerConfig, ConfigError> {
        let mut config: LayerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.display().to_string(),
            message: e.to_string(),
        })?;
        config.validate(file, roles)?;
        if let Some(dir) = file.parent() {
            if config.source.path.is_relative() {
                config.source.path = dir.join(&config.source.path);
            }
            if let Some(join) = config.source.join.as_mut().filter(|j| j.path.is_relative()) {
                join.path = dir.join(&join.path);
            }
            if let Some(points) = config
                .source
                .mojxml
                .as_mut()
                .and_then(|m| m.control_points.as_mut())
                .filter(|p| p.is_relative())
            {
                *points = dir.join(&*points);
            }
        }
        Ok(config)
    }

    pub fn validate(&self, file: &Path, roles: &RoleSet) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::invalid(file, key, message));
        if !is_identifier(&self.id) {
            return bad(
                "id",
                format!(
                    "`{}` is not a layer id: use lower-case ASCII letters, digits and `_`, starting with a letter",
                    self.id
                ),
            );
        }
        if let Some(stem) = file
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|stem| *stem != self.id)
        {
            return bad(
                "id",
                format!("`{}` must match the file name `{stem}.toml`", self.id),
            );
        }
        let crs_optional = self.source.format == SourceFormat::Mojxml && self.source.crs.is_empty();
        if !crs_optional && parse_epsg(&self.source.crs).is_none() {
            return bad(
                "source.crs",
                format!("`{}` is not of the form EPSG:<code>", self.source.crs),
            );
        }
        if let Some(label) = self
            .source
            .encoding
            .as_ref()
            .filter(|l| encoding_for_label(l).is_none())
        {
            return bad(
                "source.encoding",
                format!("unknown text encoding `{label}` (try CP932 or UTF-8)"),
            );
        }
        if self.zoom.min > self.zoom.max || self.zoom.max > crate::tile::MAX_ZOOM {
            return bad(
                "zoom",
                format!(
                    "min {} and max {} must satisfy min <= max <= {}",
                    self.zoom.min,
                    self.zoom.max,
                    crate::tile::MAX_ZOOM
                ),
            );
        }
        if self.tiles.buffer > 2048
            || self.tiles.simplify.is_nan()
            || self.tiles.simplify < 0.0
            || self.tiles.max_bytes < 1024
        {
            return bad(
                "tiles",
                "buffer must be 0..=2048, simplify >= 0 and max_bytes >= 1024".into(),
            );
        }
        if let Some(name) =
            (self.tiles.fields_from_zoom.keys()).find(|name| self.field_index(name).is_none())
        {
            return bad(
                "tiles.fields_from_zoom",
                format!("`{name}` is not a field of the layer"),
            );
        }
        self.validate_mojxml(file)?;
        if let Some(join) = &self.source.join {
            if join.on.is_empty() {
                return bad("source.join.on", "name at least one key column".into());
            }
            if let Some(label) = join
                .encoding
                .as_ref()
                .filter(|l| encoding_for_label(l).is_none())
            {
                return bad(
                    "source.join.encoding",
                    format!("unknown text encoding `{label}` (try CP932 or UTF-8)"),
                );
            }
        }
        if self.fields.is_empty() {
            return bad("fields", "a layer needs at least one field".into());
        }
        let mut names = BTreeSet::new();
        for (i, field) in self.fields.iter().enumerate() {
            let key = format!("fields[{i}].name");
            if !is_identifier(&field.name) {
                return bad(
                    &key,
                    format!(
                        "`{}` is not a field name: use lower-case ASCII letters, digits and `_`",
                        field.name
                    ),
                );
            }
            if RESERVED_FIELDS.contains(&field.name.as_str()) {
                return bad(&key, format!("`{}` is reserved by chizu", field.name));
            }
            if !names.insert(field.name.as_str()) {
                return bad(&key, format!("field `{}` is declared twice", field.name));
            }
            if !field.values.is_empty() {
                let key = format!("fields[{i}].values");
                match field.ty {
                    FieldType::Text => {}
                    FieldType::Integer => {
                        if let Some(code) = field.values.keys().find(|c| c.parse::<i64>().is_err())
                        {
                            return bad(
                                &key,
                                format!(
                                    "`{code}` is not a code of the integer field `{}`",
                                    field.name
                                ),
                            );
                        }
                    }
                    _ => {
                        return bad(
                            &key,
                            format!(
                                "only text and integer fields have code lists, not `{}`",
                                field.name
                            ),
                        );
                    }
                }
            }
        }
        let check_roles = |key: String, list: &[String]| -> Result<(), ConfigError> {
            for role in list {
                if !roles.contains(role) {
                    return Err(ConfigError::invalid(
                        file,
                        key,
                        format!(
                            "unknown role `{role}` (known: {})",
                            roles.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            Ok(())
        };
        if self.access.read.is_empty() {
            return bad(
                "access.read",
                "name at least one role that may read the layer".into(),
            );
        }
        check_roles("access.read".into(), &self.access.read)?;
        check_roles("access.export".into(), &self.access.export)?;
        // Every caller holds `public`, so a public layer is readable by every role.
        let public = self.access.read.iter().any(|r| r == PUBLIC_ROLE);
        for role in &self.access.export {
            if !public && !self.access.read.contains(role) {
                return bad(
                    "access.export",
                    format!("role `{role}` may export but not read the layer"),
                );
            }
        }
        for (field, list) in &self.access.fields {
            let key = format!("access.fields.{field}");
            if !names.contains(field.as_str()) {
                return bad(&key, format!("`{field}` is not a field of this layer"));
            }
            check_roles(key, list)?;
        }
        self.validate_key(file)?;
        for (role, filter) in &self.access.rows {
            let key = format!("access.rows.{role}");
            check_roles(key.clone(), std::slice::from_ref(role))?;
            if !public && !self.access.read.contains(role) {
                return bad(
                    &key,
                    format!("role `{role}` has a row filter but does not read the layer"),
                );
            }
            let parsed = crate::cql2::parse(filter)
                .map_err(|e| ConfigError::invalid(file, &key, e.to_string()))?;
            if let Err(e) = parsed.compile(&self.fields) {
                return bad(
                    &key,
                    format!("{e}: the filter must name fields of this layer"),
                );
            }
        }
        Ok(())
    }

    fn validate_mojxml(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::invalid(file, key, message));
        if self.source.format != SourceFormat::Mojxml {
            if self.source.mojxml.is_some() {
                return bad(
                    "source.mojxml",
                    format!(
                        "only for format = \"mojxml\", not \"{}\"",
                        self.source.format
                    ),
                );
            }
            return Ok(());
        }
        let moj = self.source.mojxml.clone().unwrap_or_default();
        if moj.features.geometry() != self.geometry {
            return bad(
                "geometry",
                format!(
                    "MOJ XML {:?} are {} features",
                    moj.features,
                    moj.features.geometry()
                ),
            );
        }
        let wants_points = moj.arbitrary == ArbitrarySheets::ControlPoints;
        if wants_points != moj.control_points.is_some() {
            return bad(
                "source.mojxml.control_points",
                "give a control point file exactly when arbitrary = \"control_points\"".into(),
            );
        }
        Ok(())
    }

    /// Checks `key` and `label` against the fields (after `validate`).
    fn validate_key(&self, file: &Path) -> Result<(), ConfigError> {
        for f in &self.fields {
            let Some(reading) = &f.reading else { continue };
            let ok = f.searchable
                && (self.field_index(reading))
                    .is_some_and(|i| self.fields[i].ty == FieldType::Text);
            if !ok {
                return Err(ConfigError::invalid(
                    file,
                    "fields",
                    format!(
                        "`{}` reads as `{reading}`: that must be a text field of this layer, and `{}` searchable",
                        f.name, f.name
                    ),
                ));
            }
        }
        if let Some(f) = (self.fields.iter()).find(|f| f.place.is_some() && !f.searchable) {
            return Err(ConfigError::invalid(
                file,
                "fields",
                format!("`{}` is a place: it must also be searchable", f.name),
            ));
        }
        if let Some(name) = &self.label {
            match self.field_index(name).map(|i| self.fields[i].ty) {
                Some(FieldType::Text) => {}
                Some(_) => {
                    return Err(ConfigError::invalid(
                        file,
                        "label",
                        format!("`{name}` must be a text field"),
                    ));
                }
                None => {
                    return Err(ConfigError::invalid(
                        file,
                        "label",
                        format!("`{name}` is not a field of this layer"),
                    ));
                }
            }
        }
        for name in &self.key {
            if self.field_index(name).is_none() {
                return Err(ConfigError::invalid(
                    file,
                    "key",
                    format!("`{name}` is not a field of this layer"),
                ));
            }
        }
        Ok(())
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// Maps the encoding labels found in `.cpg` files and layer files (including the
/// Windows names Japanese data uses, such as CP932) to an encoding.
pub fn encoding_for_label(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let label = label.trim();
    match label.to_ascii_uppercase().as_str() {
        "932" | "CP932" | "SJIS" | "SHIFT_JIS" | "SHIFT-JIS" | "WINDOWS-31J" | "MS932" => {
            Some(encoding_rs::SHIFT_JIS)
        }
        "65001" | "UTF8" => Some(encoding_rs::UTF_8),
        _ => encoding_rs::Encoding::for_label(label.as_bytes()),
    }
}

/// Column names chizu uses itself in the GeoPackage and in feature output.
pub const RESERVED_FIELDS: &[&str] = &["fid", "geom", "id", "geometry"];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> RoleSet {
        RoleSet::from_toml(
            Path::new("roles.toml"),
            "[roles]\npublic = \"everyone\"\nstaff = \"city staff\"\n",
        )
        .unwrap()
    }

    const PARCELS: &str = r#"
id = "parcels"
title = { ja = "地番図", en = "Parcels" }
source = { path = "parcels.shp", format = "shapefile", crs = "EPSG:6670", encoding = "CP932" }
geometry = "polygon"
zoom = { min = 14, max = 22 }
invalid_geometry = "repair"
fields = [
  { name = "chiban", type = "text", required = true, searchable = true },
  { name = "owner_name", type = "text", personal = true },
]
[access]
read = ["public"]
export = ["staff", "public"]
fields = { owner_name = ["staff"] }
"#;

    fn parse(text: &str) -> Result<LayerConfig, ConfigError> {
        LayerConfig::from_toml(Path::new("layers/parcels.toml"), text, &roles())
    }

    #[test]
    fn parses_a_layer_and_resolves_its_source() {
        let c = parse(PARCELS).unwrap();
        assert_eq!(c.source.path, Path::new("layers/parcels.shp"));
        assert_eq!(c.source.epsg(), 6670);
        assert_eq!(c.tiles.buffer, 64);
        assert_eq!(c.field_index("owner_name"), Some(1));
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn code_lists_belong_to_text_and_integer_fields() {
        let with_codes = PARCELS.replace(
            "{ name = \"owner_name\", type = \"text\", personal = true },",
            "{ name = \"owner_name\", type = \"text\", personal = true },\n  \
             { name = \"chimoku\", type = \"text\", values = { \"宅地\" = { ja = \"宅地\", en = \"Residential land\" } } },\n  \
             { name = \"class\", type = \"integer\", values = { \"1\" = { ja = \"一級\" } } },",
        );
        let c = parse(&with_codes).unwrap();
        assert_eq!(
            c.fields[2].values["宅地"].en.as_deref(),
            Some("Residential land")
        );
        let e = error_of(&with_codes.replace("\"1\" = { ja", "\"one\" = { ja"));
        assert!(e.contains("fields[3].values") && e.contains("`one`"), "{e}");
        let e =
            error_of(&with_codes.replace("type = \"integer\", values", "type = \"float\", values"));
        assert!(
            e.contains("fields[3].values") && e.contains("text and integer"),
            "{e}"
        );
        let e = error_of(&with_codes.replace("{ ja = \"一級\" }", "{ ja = \"一級\", fr = \"x\" }"));
        assert!(e.contains("fr"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = error_of(&PARCELS.replace(
            "geometry = \"polygon\"",
            "geometry = \"polygon\"\ncolour = \"red\"",
        ));
        assert!(
            e.contains("layers/parcels.toml") && e.contains("colour"),
            "{e}"
        );
        let e = error_of(&PARCELS.replace("personal = true", "personel = true"));
        assert!(e.contains("personel"), "{e}");
    }

    #[test]
    fn unknown_roles_types_and_fields_are_named() {
        let e = error_of(&PARCELS.replace("owner_name = [\"staff\"]", "owner_name = [\"staf\"]"));
        assert!(
            e.contains("access.fields.owner_name") && e.contains("staf"),
            "{e}"
        );
        let e = error_of(&PARCELS.replace("owner_name = [", "owner = ["));
        assert!(
            e.contains("access.fields.owner") && e.contains("not a field"),
            "{e}"
        );
        let e = error_of(&PARCELS.replace("type = \"text\", required", "type = \"txt\", required"));
        assert!(e.contains("txt"), "{e}");
        let e = error_of(&PARCELS.replace("EPSG:6670", "6670"));
        assert!(e.contains("source.crs"), "{e}");
        let e = error_of(&PARCELS.replace("CP932", "klingon"));
        assert!(e.contains("source.encoding"), "{e}");
    }

    #[test]
    fn row_filters_are_parsed_and_checked() {
        let with = |rows: &str| {
            PARCELS.replace(
                "fields = { owner_name = [\"staff\"] }",
                &format!("fields = {{ owner_name = [\"staff\"] }}\nrows = {{ {rows} }}"),
            )
        };
        assert!(parse(&with("public = \"chiban LIKE '1%'\"")).is_ok());
        let e = error_of(&with("public = \"chiban LIKE\""));
        assert!(
            e.contains("access.rows.public") && e.contains("syntax error"),
            "{e}"
        );
        let e = error_of(&with("public = \"status = 'x'\""));
        assert!(
            e.contains("access.rows.public") && e.contains("status"),
            "{e}"
        );
        let e = error_of(&with("nobody = \"chiban = '1'\""));
        assert!(e.contains("unknown role `nobody`"), "{e}");
    }

    #[test]
    fn export_requires_read() {
        let text = PARCELS.replace("read = [\"public\"]", "read = [\"staff\"]");
        let e = error_of(&text);
        assert!(e.contains("access.export") && e.contains("public"), "{e}");
    }

    #[test]
    fn id_must_match_file_name() {
        let e = error_of(&PARCELS.replace("id = \"parcels\"", "id = \"lots\""));
        assert!(e.contains("key `id`"), "{e}");
    }
}
