//! Evaluation of a compiled filter against one row (and its geometry).
//!
//! Three-valued: `None` is SQL's unknown (a NULL operand, or operands of
//! types that do not compare), and a row passes only on `Some(true)`, so
//! `NOT (x = 1)` does not admit rows where `x` is NULL.

use super::{
    ArithOp, CmpOp, CompiledExpr, Expr, FieldRef, Literal, Scalar, SpatialOp, Temporal, TemporalOp,
    fold,
};
use crate::value::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

const MS_PER_DAY: i64 = 86_400_000;

/// A value during evaluation; text borrowed from the row where it can be.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Text(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    /// Milliseconds since 1970-01-01T00:00Z.
    Instant(i64),
}

/// `YYYY-MM-DD` as milliseconds since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = crate::time::days_from_civil(y, m, d);
    // Reject 2023-02-30 and the like: the day must come back unchanged.
    (crate::time::civil_from_days(days) == (y, m, d)).then_some(days * MS_PER_DAY)
}

/// An RFC 3339 timestamp as milliseconds since the epoch.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    Some(t.as_millisecond())
}

impl CompiledExpr {
    /// Whether a row passes (filters without spatial predicates).
    pub fn matches(&self, row: &[Value]) -> bool {
        self.eval(row, None) == Some(true)
    }

    /// Like [`matches`](Self::matches), with the feature's geometry (longitude/latitude)
    /// for spatial predicates.
    pub fn matches_feature(&self, row: &[Value], geometry: &geo::Geometry<f64>) -> bool {
        self.eval(row, Some(geometry)) == Some(true)
    }

    fn eval(&self, row: &[Value], geometry: Option<&geo::Geometry<f64>>) -> Option<bool> {
        match self {
            Expr::Const(b) => Some(*b),
            Expr::And(v) => {
                let mut unknown = false;
                for e in v {
                    match e.eval(row, geometry) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                (!unknown).then_some(true)
            }
            Expr::Or(v) => {
                let mut unknown = false;
                for e in v {
                    match e.eval(row, geometry) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                (!unknown).then_some(false)
            }
            Expr::Not(e) => e.eval(row, geometry).map(|b| !b),
            Expr::Compare(a, op, b) => {
                let ord = compare(&value(a, row)?, &value(b, row)?)?;
                Some(match op {
                    CmpOp::Eq => ord.is_eq(),
                    CmpOp::Ne => !ord.is_eq(),
                    CmpOp::Lt => ord.is_lt(),
                    CmpOp::Le => ord.is_le(),
                    CmpOp::Gt => ord.is_gt(),
                    CmpOp::Ge => ord.is_ge(),
                })
            }
            Expr::Between(a, lo, hi) => {
                let v = value(a, row)?;
                Some(
                    compare(&v, &value(lo, row)?)?.is_ge()
                        && compare(&v, &value(hi, row)?)?.is_le(),
                )
            }
            Expr::In(a, list) => {
                let v = value(a, row)?;
                let mut unknown = false;
                for item in list {
                    match value(item, row).and_then(|i| compare(&v, &i)) {
                        Some(Ordering::Equal) => return Some(true),
                        None => unknown = true,
                        Some(_) => {}
                    }
                }
                (!unknown).then_some(false)
            }
            Expr::IsNull(a) => Some(value(a, row).is_none()),
            Expr::Truth(a) => match value(a, row)? {
                Val::Bool(b) => Some(b),
                _ => None,
            },
            Expr::Like(a, pattern) => match value(a, row)? {
                Val::Text(s) => Some(pattern.matches(&s)),
                _ => None,
            },
            Expr::Spatial(op, a, b) => {
                let (a, b) = (shape(a, geometry)?, shape(b, geometry)?);
                Some(spatial(*op, a, b))
            }
            Expr::DWithin(a, b, d) => {
                let (a, b) = (shape(a, geometry)?, shape(b, geometry)?);
                let distance = match (a, b) {
                    (geo::Geometry::Point(p), other) | (other, geo::Geometry::Point(p)) => {
                        super::distance_m(p.0, other)
                    }
                    _ => return None,
                };
                Some(distance <= *d)
            }
            Expr::Temporal(op, a, b) => Some(temporal(*op, interval(a, row)?, interval(b, row)?)),
        }
    }
}

/// The value of a scalar; `None` for NULL (and for anything that fails).
fn value<'a>(s: &'a Scalar<FieldRef>, row: &'a [Value]) -> Option<Val<'a>> {
    let v = match s {
        Scalar::Property(f) => match row.get(f.index)? {
            Value::Null => return None,
            Value::Text(t) if f.is_date => Val::Instant(parse_date(t)?),
            Value::Text(t) => Val::Text(Cow::Borrowed(t)),
            Value::Int(i) => Val::Num(*i as f64),
            Value::Float(x) => Val::Num(*x),
            Value::Bool(b) => Val::Bool(*b),
        },
        Scalar::Literal(l) => match l {
            Literal::Text(t) => Val::Text(Cow::Borrowed(t)),
            Literal::Number(n) => Val::Num(*n),
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Date(t) | Literal::Timestamp(t) => Val::Instant(*t),
            Literal::Null => Val::Null,
        },
        Scalar::Arith(op, a, b) => match (value(a, row)?, value(b, row)?) {
            (Val::Num(x), Val::Num(y)) => Val::Num(arith(*op, x, y)?),
            _ => return None,
        },
        Scalar::CaseI(a) => match value(a, row)? {
            Val::Text(t) => Val::Text(Cow::Owned(fold::case_fold(&t))),
            other => other,
        },
        Scalar::AccentI(a) => match value(a, row)? {
            Val::Text(t) => Val::Text(Cow::Owned(fold::accent_fold(&t))),
            other => other,
        },
        Scalar::FeatureGeometry | Scalar::Geometry(_) => return None,
    };
    (v != Val::Null).then_some(v)
}

fn arith(op: ArithOp, x: f64, y: f64) -> Option<f64> {
    let r = match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div if y != 0.0 => x / y,
        ArithOp::IntDiv if y != 0.0 => (x / y).trunc(),
        ArithOp::Mod if y != 0.0 => x % y,
        ArithOp::Pow => x.powf(y),
        _ => return None,
    };
    r.is_finite().then_some(r)
}

fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Text(x), Val::Text(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Instant(x), Val::Instant(y)) => Some(x.cmp(y)),
        // A date written as a plain string: compared as the instant it names.
        (Val::Instant(x), Val::Text(t)) => Some(x.cmp(&text_instant(t)?)),
        (Val::Text(t), Val::Instant(y)) => Some(text_instant(t)?.cmp(y)),
        _ => None,
    }
}

fn text_instant(t: &str) -> Option<i64> {
    parse_date(t).or_else(|| parse_timestamp(t))
}

fn shape<'a>(
    s: &'a Scalar<FieldRef>,
    feature: Option<&'a geo::Geometry<f64>>,
) -> Option<&'a geo::Geometry<f64>> {
    match s {
        Scalar::FeatureGeometry => feature,
        Scalar::Geometry(g) => Some(g),
        _ => None,
    }
}

fn spatial(op: SpatialOp, a: &geo::Geometry<f64>, b: &geo::Geometry<f64>) -> bool {
    use geo::{Intersects, Relate};
    // Intersection needs no full DE-9IM matrix: the cheap test for the common case.
    let matrix = || a.relate(b);
    match op {
        SpatialOp::Intersects => a.intersects(b),
        SpatialOp::Disjoint => !a.intersects(b),
        SpatialOp::Equals => matrix().is_equal_topo(),
        SpatialOp::Touches => matrix().is_touches(),
        SpatialOp::Within => matrix().is_within(),
        SpatialOp::Overlaps => matrix().is_overlaps(),
        SpatialOp::Crosses => matrix().is_crosses(),
        SpatialOp::Contains => matrix().is_contains(),
    }
}

/// An instant or interval as (start, end) in milliseconds; open ends are the
/// extremes. `None` when an end is NULL in the row (not `..`).
fn interval(t: &Temporal<FieldRef>, row: &[Value]) -> Option<(i64, i64)> {
    let end = |s: &Scalar<FieldRef>, open: i64| -> Option<i64> {
        if matches!(s, Scalar::Literal(Literal::Null)) {
            return Some(open);
        }
        match value(s, row)? {
            Val::Instant(t) => Some(t),
            Val::Text(t) => text_instant(&t),
            _ => None,
        }
    };
    match t {
        Temporal::Instant(s) => {
            let t = end(s, i64::MIN)?;
            Some((t, t))
        }
        Temporal::Interval(a, b) => Some((end(a, i64::MIN)?, end(b, i64::MAX)?)),
    }
}

/// The relations as CQL2 defines them (OGC 21-065r2, table 7).
fn temporal(op: TemporalOp, (a0, a1): (i64, i64), (b0, b1): (i64, i64)) -> bool {
    use TemporalOp::*;
    match op {
        After => a0 > b1,
        Before => a1 < b0,
        Contains => a0 < b0 && a1 > b1,
        Disjoint => a1 < b0 || a0 > b1,
        During => a0 > b0 && a1 < b1,
        Equals => a0 == b0 && a1 == b1,
        FinishedBy => a0 < b0 && a1 == b1,
        Finishes => a0 > b0 && a1 == b1,
        Intersects => a0 <= b1 && a1 >= b0,
        Meets => a1 == b0,
        MetBy => a0 == b1,
        OverlappedBy => a0 > b0 && a0 < b1 && a1 > b1,
        Overlaps => a0 < b0 && a1 > b0 && a1 < b1,
        StartedBy => a0 == b0 && a1 > b1,
        Starts => a0 == b0 && a1 < b1,
    }
}
