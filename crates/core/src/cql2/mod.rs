//! CQL2 filters (OGC 21-065r2), text and JSON, for query filters and for the
//! row filters of layer files.
//!
//! Parsing is the `cql2` crate's (the whole CQL2 1.0 grammar); this module
//! turns its syntax tree into chizu's own [`Expr`], which [`Expr::compile`]
//! resolves against one layer's fields once, so evaluating a row is index
//! lookups and comparisons, with no name lookups and no allocation for
//! properties. Evaluation is three-valued (SQL's unknown is `None`).
//!
//! What is implemented (and declared in `/ogc/conformance`): basic-cql2 with
//! `DATE`/`TIMESTAMP` literals, advanced comparison operators (`LIKE`,
//! `BETWEEN`, `IN`), case-insensitive (`CASEI`) and accent-insensitive
//! (`ACCENTI`) comparison, basic spatial functions and all eight `S_*`
//! spatial functions (DE-9IM through geo's `relate`), the temporal functions on
//! `date` fields, property-property comparisons and arithmetic. Array
//! functions are not: chizu's fields hold no arrays.
//!
//! Anything a caller sends is bounded before the parser sees it: its size, its
//! nesting and its number of operators ([`Limits`]), so no filter can exhaust
//! the stack or make the parser work without end.

mod convert;
mod display;
mod eval;
mod fold;
mod like;
mod pushdown;
pub mod wkt;

pub use fold::{accent_fold, case_fold};
pub use like::LikePattern;
pub use pushdown::{PushValue, Pushed};

use crate::config::{FieldDef, FieldType};

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    /// A calendar day, as milliseconds since 1970-01-01T00:00Z.
    Date(i64),
    /// An instant, as milliseconds since 1970-01-01T00:00Z.
    Timestamp(i64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as CQL2 text and SQL write it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Integer division (`div`).
    IntDiv,
    Mod,
    Pow,
}

/// A value-producing expression: a property, a literal, or a function of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<P = String> {
    Property(P),
    /// The feature's geometry (`geometry`, `geom`, `the_geom` or `shape`).
    FeatureGeometry,
    Literal(Literal),
    Geometry(geo::Geometry<f64>),
    Arith(ArithOp, Box<Scalar<P>>, Box<Scalar<P>>),
    CaseI(Box<Scalar<P>>),
    AccentI(Box<Scalar<P>>),
}

/// The eight spatial relations of CQL2 (DE-9IM), in argument order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialOp {
    Intersects,
    Disjoint,
    Equals,
    Touches,
    Within,
    Overlaps,
    Crosses,
    Contains,
}

/// The temporal relations of CQL2 (Allen's interval algebra).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalOp {
    After,
    Before,
    Contains,
    Disjoint,
    During,
    Equals,
    FinishedBy,
    Finishes,
    Intersects,
    Meets,
    MetBy,
    OverlappedBy,
    Overlaps,
    StartedBy,
    Starts,
}

/// A temporal argument: an instant, or an interval whose open ends are `..`
/// (given as [`Literal::Null`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Temporal<P = String> {
    Instant(Scalar<P>),
    Interval(Scalar<P>, Scalar<P>),
}

/// A parsed filter. `P` is how a property is named: a `String` after parsing,
/// a [`FieldRef`] after [`Expr::compile`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<P = String> {
    And(Vec<Expr<P>>),
    Or(Vec<Expr<P>>),
    Not(Box<Expr<P>>),
    Const(bool),
    Compare(Scalar<P>, CmpOp, Scalar<P>),
    Like(Scalar<P>, LikePattern),
    Between(Scalar<P>, Scalar<P>, Scalar<P>),
    In(Scalar<P>, Vec<Scalar<P>>),
    IsNull(Scalar<P>),
    /// A boolean-valued scalar used as a condition (`swimming_pool`).
    Truth(Scalar<P>),
    Spatial(SpatialOp, Scalar<P>, Scalar<P>),
    /// Within `distance` metres (not part of CQL2 1.0; kept for the staff map).
    DWithin(Scalar<P>, Scalar<P>, f64),
    Temporal(TemporalOp, Temporal<P>, Temporal<P>),
}

/// A property resolved against a layer: its position in the row and whether
/// it holds dates (stored as `YYYY-MM-DD` text, compared as instants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef {
    pub index: usize,
    pub is_date: bool,
}

/// A filter whose properties are fields of one layer.
pub type CompiledExpr = Expr<FieldRef>;

/// Property names that mean the feature's geometry.
pub fn is_geometry_property(name: &str) -> bool {
    ["geometry", "geom", "the_geom", "shape"]
        .iter()
        .any(|g| g.eq_ignore_ascii_case(name))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub kind: FilterErrorKind,
    pub message: String,
}

/// What kind of problem a filter has: callers answer each differently (and the
/// tests of the OGC examples tell syntax errors from unknown names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterErrorKind {
    /// Over a [`Limits`] bound: too long, too deep, too many operators.
    TooComplex,
    Syntax,
    UnknownProperty,
    UnknownFunction,
    /// Well-formed but meaningless (e.g. `S_WITHIN` of two numbers).
    Invalid,
}

impl FilterError {
    fn new(kind: FilterErrorKind, message: impl Into<String>) -> Self {
        FilterError {
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        FilterError::new(FilterErrorKind::Invalid, message)
    }
    pub fn unknown_property(name: &str) -> Self {
        let shown: String = name.chars().take(64).collect();
        FilterError::new(
            FilterErrorKind::UnknownProperty,
            format!("unknown property `{shown}`"),
        )
    }
}

/// Bounds on what a filter may ask of the parser and the evaluator.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of filter text (or JSON).
    pub max_bytes: usize,
    /// Nesting: parentheses, `NOT`s and function calls inside each other.
    pub max_depth: usize,
    /// Operators in all (`AND`, `OR`, `NOT`, comparisons, functions).
    pub max_operators: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 * 1024,
            max_depth: 32,
            max_operators: 512,
        }
    }
}

/// Parses CQL2 text within the default [`Limits`].
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    parse_with(text, Limits::default())
}

pub fn parse_with(text: &str, limits: Limits) -> Result<Expr, FilterError> {
    convert::check_text(text, limits)?;
    let parsed = guarded(|| cql2::parse_text(text).map_err(|e| syntax(&e)))??;
    convert::expr(&parsed)
}

/// Parses CQL2 JSON within the default [`Limits`].
pub fn parse_json(text: &str) -> Result<Expr, FilterError> {
    parse_json_with(text, Limits::default())
}

pub fn parse_json_with(text: &str, limits: Limits) -> Result<Expr, FilterError> {
    if text.len() > limits.max_bytes {
        return Err(convert::too_long(limits));
    }
    // serde_json refuses nesting deeper than 128 by itself; the tree is then
    // measured before the cql2 crate walks it.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let kind = if e.to_string().contains("recursion limit") {
            FilterErrorKind::TooComplex
        } else {
            FilterErrorKind::Syntax
        };
        FilterError::new(kind, format!("not JSON: {e}"))
    })?;
    convert::check_json(&value, limits)?;
    let parsed = guarded(|| cql2::Expr::try_from(value).map_err(|e| syntax(&e)))??;
    convert::expr(&parsed)
}

fn syntax(e: &cql2::Error) -> FilterError {
    FilterError::new(FilterErrorKind::Syntax, convert::syntax_message(e))
}

/// Runs the third-party parser so that a bug in it is a refused filter, not a
/// dead worker thread.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, FilterError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        FilterError::new(
            FilterErrorKind::Syntax,
            "the filter could not be parsed".to_string(),
        )
    })
}

impl Expr<String> {
    /// Resolves property names to the fields of a layer. An unknown name is an
    /// error naming it (callers decide whether the name may be shown).
    pub fn compile(&self, fields: &[FieldDef]) -> Result<CompiledExpr, FilterError> {
        self.check_geometry_arguments()?;
        let resolve = |name: &String| -> Result<FieldRef, FilterError> {
            let index = fields
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(|| FilterError::unknown_property(name))?;
            Ok(FieldRef {
                index,
                is_date: fields[index].ty == FieldType::Date,
            })
        };
        self.map_properties(&resolve)
    }

    /// The spatial functions take the geometry, not an attribute.
    fn check_geometry_arguments(&self) -> Result<(), FilterError> {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().try_for_each(|e| e.check_geometry_arguments()),
            Expr::Not(e) => e.check_geometry_arguments(),
            Expr::Spatial(_, a, b) | Expr::DWithin(a, b, _) => {
                [a, b].into_iter().try_for_each(|s| match s {
                    Scalar::Property(name) if !name.is_empty() => {
                        Err(FilterError::invalid(format!(
                            "`{}` is not the geometry; spatial functions take `geometry`",
                            name.chars().take(64).collect::<String>()
                        )))
                    }
                    _ => Ok(()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Every property the filter names.
    pub fn properties(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_scalars(&mut |s| {
            if let Scalar::Property(p) = s {
                out.push(p.as_str());
            }
        });
        out
    }
}

impl<P> Scalar<P> {
    fn map_properties<Q, E>(&self, f: &dyn Fn(&P) -> Result<Q, E>) -> Result<Scalar<Q>, E> {
        let boxed = |s: &Scalar<P>| s.map_properties(f).map(Box::new);
        Ok(match self {
            Scalar::Property(p) => Scalar::Property(f(p)?),
            Scalar::FeatureGeometry => Scalar::FeatureGeometry,
            Scalar::Literal(l) => Scalar::Literal(l.clone()),
            Scalar::Geometry(g) => Scalar::Geometry(g.clone()),
            Scalar::Arith(op, a, b) => Scalar::Arith(*op, boxed(a)?, boxed(b)?),
            Scalar::CaseI(a) => Scalar::CaseI(boxed(a)?),
            Scalar::AccentI(a) => Scalar::AccentI(boxed(a)?),
        })
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Scalar<P>)) {
        f(self);
        match self {
            Scalar::Arith(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Scalar::CaseI(a) | Scalar::AccentI(a) => a.visit(f),
            _ => {}
        }
    }

    fn visit_mut(
        &mut self,
        f: &mut dyn FnMut(&mut Scalar<P>) -> Result<(), String>,
    ) -> Result<(), String> {
        f(self)?;
        match self {
            Scalar::Arith(_, a, b) => {
                a.visit_mut(f)?;
                b.visit_mut(f)
            }
            Scalar::CaseI(a) | Scalar::AccentI(a) => a.visit_mut(f),
            _ => Ok(()),
        }
    }
}

impl<P> Temporal<P> {
    fn map_properties<Q, E>(&self, f: &dyn Fn(&P) -> Result<Q, E>) -> Result<Temporal<Q>, E> {
        Ok(match self {
            Temporal::Instant(a) => Temporal::Instant(a.map_properties(f)?),
            Temporal::Interval(a, b) => {
                Temporal::Interval(a.map_properties(f)?, b.map_properties(f)?)
            }
        })
    }

    fn scalars(&self) -> Vec<&Scalar<P>> {
        match self {
            Temporal::Instant(a) => vec![a],
            Temporal::Interval(a, b) => vec![a, b],
        }
    }

    fn scalars_mut(&mut self) -> Vec<&mut Scalar<P>> {
        match self {
            Temporal::Instant(a) => vec![a],
            Temporal::Interval(a, b) => vec![a, b],
        }
    }
}

impl<P> Expr<P> {
    /// The same filter with every property mapped by `f`.
    pub fn map_properties<Q, E>(&self, f: &dyn Fn(&P) -> Result<Q, E>) -> Result<Expr<Q>, E> {
        let list = |v: &[Expr<P>]| {
            v.iter()
                .map(|e| e.map_properties(f))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match self {
            Expr::And(v) => Expr::And(list(v)?),
            Expr::Or(v) => Expr::Or(list(v)?),
            Expr::Not(e) => Expr::Not(Box::new(e.map_properties(f)?)),
            Expr::Const(b) => Expr::Const(*b),
            Expr::Compare(a, op, b) => {
                Expr::Compare(a.map_properties(f)?, *op, b.map_properties(f)?)
            }
            Expr::Like(a, p) => Expr::Like(a.map_properties(f)?, p.clone()),
            Expr::Between(a, lo, hi) => Expr::Between(
                a.map_properties(f)?,
                lo.map_properties(f)?,
                hi.map_properties(f)?,
            ),
            Expr::In(a, list) => Expr::In(
                a.map_properties(f)?,
                list.iter()
                    .map(|s| s.map_properties(f))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::IsNull(a) => Expr::IsNull(a.map_properties(f)?),
            Expr::Truth(a) => Expr::Truth(a.map_properties(f)?),
            Expr::Spatial(op, a, b) => {
                Expr::Spatial(*op, a.map_properties(f)?, b.map_properties(f)?)
            }
            Expr::DWithin(a, b, d) => Expr::DWithin(a.map_properties(f)?, b.map_properties(f)?, *d),
            Expr::Temporal(op, a, b) => {
                Expr::Temporal(*op, a.map_properties(f)?, b.map_properties(f)?)
            }
        })
    }

    /// Calls `f` on every scalar of the filter, nested ones included.
    pub fn visit_scalars<'a>(&'a self, f: &mut dyn FnMut(&'a Scalar<P>)) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit_scalars(f)),
            Expr::Not(e) => e.visit_scalars(f),
            Expr::Const(_) => {}
            Expr::Compare(a, _, b) | Expr::Spatial(_, a, b) | Expr::DWithin(a, b, _) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Like(a, _) | Expr::IsNull(a) | Expr::Truth(a) => a.visit(f),
            Expr::Between(a, lo, hi) => [a, lo, hi].into_iter().for_each(|s| s.visit(f)),
            Expr::In(a, list) => std::iter::once(a).chain(list).for_each(|s| s.visit(f)),
            Expr::Temporal(_, a, b) => a
                .scalars()
                .into_iter()
                .chain(b.scalars())
                .for_each(|s| s.visit(f)),
        }
    }

    fn visit_scalars_mut(
        &mut self,
        f: &mut dyn FnMut(&mut Scalar<P>) -> Result<(), String>,
    ) -> Result<(), String> {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter_mut().try_for_each(|e| e.visit_scalars_mut(f)),
            Expr::Not(e) => e.visit_scalars_mut(f),
            Expr::Const(_) => Ok(()),
            Expr::Compare(a, _, b) | Expr::Spatial(_, a, b) | Expr::DWithin(a, b, _) => {
                a.visit_mut(f)?;
                b.visit_mut(f)
            }
            Expr::Like(a, _) | Expr::IsNull(a) | Expr::Truth(a) => a.visit_mut(f),
            Expr::Between(a, lo, hi) => [a, lo, hi].into_iter().try_for_each(|s| s.visit_mut(f)),
            Expr::In(a, list) => std::iter::once(a)
                .chain(list.iter_mut())
                .try_for_each(|s| s.visit_mut(f)),
            Expr::Temporal(_, a, b) => a
                .scalars_mut()
                .into_iter()
                .chain(b.scalars_mut())
                .try_for_each(|s| s.visit_mut(f)),
        }
    }

    /// Rewrites the coordinates of every geometry literal (e.g. from the
    /// filter's CRS to longitude/latitude).
    pub fn transform_literals(
        &mut self,
        f: &mut dyn FnMut(&mut geo::Geometry<f64>) -> Result<(), String>,
    ) -> Result<(), String> {
        self.visit_scalars_mut(&mut |s| match s {
            Scalar::Geometry(g) => f(g),
            _ => Ok(()),
        })
    }

    /// An envelope (longitude/latitude) every matching feature must meet, when
    /// the filter has one: lets a query use the R-tree instead of a scan.
    pub fn envelope(&self) -> Option<geo::Rect<f64>> {
        use geo::BoundingRect;
        match self {
            // Every relation but disjointness implies that the two intersect.
            Expr::Spatial(op, a, b) if *op != SpatialOp::Disjoint => match (a, b) {
                (Scalar::FeatureGeometry, Scalar::Geometry(g))
                | (Scalar::Geometry(g), Scalar::FeatureGeometry) => g.bounding_rect(),
                _ => None,
            },
            Expr::DWithin(a, b, d) => {
                let c = match (a, b) {
                    (Scalar::FeatureGeometry, Scalar::Geometry(g))
                    | (Scalar::Geometry(g), Scalar::FeatureGeometry) => g.bounding_rect()?,
                    _ => return None,
                };
                // Degrees of latitude are ~111.1 km everywhere; of longitude, less by cos(lat).
                let dlat = d / 111_000.0 * 1.01;
                let lat = c.max().y.abs().max(c.min().y.abs()).min(89.0);
                let dlon = dlat / lat.to_radians().cos().max(0.01);
                Some(geo::Rect::new(
                    (c.min().x - dlon, c.min().y - dlat),
                    (c.max().x + dlon, c.max().y + dlat),
                ))
            }
            Expr::And(v) => v.iter().filter_map(|e| e.envelope()).reduce(|a, b| {
                geo::Rect::new(
                    (a.min().x.max(b.min().x), a.min().y.max(b.min().y)),
                    (a.max().x.min(b.max().x), a.max().y.min(b.max().y)),
                )
            }),
            Expr::Or(v) => {
                let all: Option<Vec<_>> = v.iter().map(|e| e.envelope()).collect();
                all?.into_iter().reduce(|a, b| {
                    geo::Rect::new(
                        (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
                        (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
                    )
                })
            }
            _ => None,
        }
    }
}

/// Metres from a point to a geometry, both in longitude/latitude, on a local
/// equirectangular plane around the point (well under 0.1% off within a few km).
pub fn distance_m(c: geo::Coord<f64>, g: &geo::Geometry<f64>) -> f64 {
    use geo::{Distance, Euclidean, MapCoords};
    const R: f64 = 6_371_008.8;
    let k = c.y.to_radians().cos();
    let local = g.map_coords(|p| geo::Coord {
        x: (p.x - c.x).to_radians() * R * k,
        y: (p.y - c.y).to_radians() * R,
    });
    Euclidean.distance(&geo::Point::new(0.0, 0.0), &local)
}

#[cfg(test)]
mod tests;
