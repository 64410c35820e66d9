//! chizu's model: what a layer is, what a feature holds, how tiles are addressed.
//!
//! This crate does no I/O (its one system call sets a thread's scheduling
//! priority, [`priority`]): readers, stores and servers build on these types, so
//! every part of chizu agrees on one meaning of "layer", "field" and "tile".

pub mod config;
pub mod cql2;
pub mod feature;
pub mod label;
pub mod priority;
pub mod search;
pub mod tile;
pub mod time;
pub mod value;

pub use config::{
    AccessConfig, ArbitrarySheets, ConfigError, CrsCheck, FieldDef, FieldType, GeometryKind,
    InvalidGeometryPolicy, JoinConfig, LayerConfig, LocalizedText, MojFeatures, MojxmlOptions,
    RoleSet, ServeMode, SourceConfig, SourceFormat, TileOptions, ZoomRange,
};
pub use feature::Feature;
pub use tile::{Bounds, TileCoord, TileError};
pub use value::{CoerceError, Value};
