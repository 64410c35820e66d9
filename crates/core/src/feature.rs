//! A feature as chizu stores it: an id, a geometry and values in schema order.

use crate::value::Value;
use geo::Geometry;

/// One feature of a layer.
///
/// `properties` are positional: `properties[i]` belongs to the layer's `fields[i]`.
/// Keeping names out of every feature halves memory for large layers and makes
/// "which fields may this caller see" a list of indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Stable within a layer version; 1-based (MVT and GeoPackage both reserve 0 as "no id").
    pub id: u64,
    pub geometry: Geometry<f64>,
    pub properties: Vec<Value>,
}
