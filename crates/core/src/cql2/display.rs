//! Canonical CQL2 text: equal filters print equally (view fingerprints and
//! cache keys use it), and the text parses back to the same filter.

use super::{ArithOp, Expr, Literal, Scalar, SpatialOp, Temporal, TemporalOp, wkt};
use std::fmt;

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Literal::Date(ms) => {
                write!(f, "DATE('{}')", crate::time::iso_date(ms.div_euclid(1000)))
            }
            Literal::Timestamp(ms) => {
                let t = jiff::Timestamp::from_millisecond(*ms).map_err(|_| fmt::Error)?;
                write!(f, "TIMESTAMP('{t}')")
            }
            Literal::Null => write!(f, "NULL"),
        }
    }
}

impl<P: fmt::Display> fmt::Display for Scalar<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Property(p) => write!(f, "\"{p}\""),
            Scalar::FeatureGeometry => write!(f, "geometry"),
            Scalar::Literal(l) => write!(f, "{l}"),
            Scalar::Geometry(g) => write!(f, "{}", wkt::to_wkt(g)),
            Scalar::Arith(op, a, b) => {
                let op = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                    ArithOp::Mod => "%",
                    ArithOp::Pow => "^",
                    ArithOp::IntDiv => return write!(f, "DIV({a}, {b})"),
                };
                write!(f, "({a} {op} {b})")
            }
            Scalar::CaseI(a) => write!(f, "CASEI({a})"),
            Scalar::AccentI(a) => write!(f, "ACCENTI({a})"),
        }
    }
}

impl<P: fmt::Display> fmt::Display for Temporal<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |s: &Scalar<P>| match s {
            Scalar::Literal(Literal::Null) => "'..'".to_string(),
            other => other.to_string(),
        };
        match self {
            Temporal::Instant(a) => write!(f, "{a}"),
            Temporal::Interval(a, b) => write!(f, "INTERVAL({}, {})", end(a), end(b)),
        }
    }
}

fn spatial_name(op: SpatialOp) -> &'static str {
    match op {
        SpatialOp::Intersects => "S_INTERSECTS",
        SpatialOp::Disjoint => "S_DISJOINT",
        SpatialOp::Equals => "S_EQUALS",
        SpatialOp::Touches => "S_TOUCHES",
        SpatialOp::Within => "S_WITHIN",
        SpatialOp::Overlaps => "S_OVERLAPS",
        SpatialOp::Crosses => "S_CROSSES",
        SpatialOp::Contains => "S_CONTAINS",
    }
}

fn temporal_name(op: TemporalOp) -> &'static str {
    use TemporalOp::*;
    match op {
        After => "T_AFTER",
        Before => "T_BEFORE",
        Contains => "T_CONTAINS",
        Disjoint => "T_DISJOINT",
        During => "T_DURING",
        Equals => "T_EQUALS",
        FinishedBy => "T_FINISHEDBY",
        Finishes => "T_FINISHES",
        Intersects => "T_INTERSECTS",
        Meets => "T_MEETS",
        MetBy => "T_METBY",
        OverlappedBy => "T_OVERLAPPEDBY",
        Overlaps => "T_OVERLAPS",
        StartedBy => "T_STARTEDBY",
        Starts => "T_STARTS",
    }
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            write!(f, "{sep}")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl<P: fmt::Display> fmt::Display for Expr<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(v) | Expr::Or(v) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                write!(f, "(")?;
                list(f, v, sep)?;
                write!(f, ")")
            }
            Expr::Not(e) => write!(f, "NOT ({e})"),
            Expr::Const(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Compare(a, op, b) => {
                let op = op.symbol();
                write!(f, "({a} {op} {b})")
            }
            Expr::Like(a, p) => {
                // The folds of the pattern apply to the value as well.
                let mut pattern = Literal::Text(p.source.clone()).to_string();
                if p.accent_insensitive {
                    pattern = format!("ACCENTI({pattern})");
                }
                if p.case_insensitive {
                    pattern = format!("CASEI({pattern})");
                }
                write!(f, "({a} LIKE {pattern})")
            }
            Expr::Between(a, lo, hi) => write!(f, "({a} BETWEEN {lo} AND {hi})"),
            Expr::In(a, items) => {
                write!(f, "({a} IN (")?;
                list(f, items, ", ")?;
                write!(f, "))")
            }
            Expr::IsNull(a) => write!(f, "({a} IS NULL)"),
            Expr::Truth(a) => write!(f, "({a} = TRUE)"),
            Expr::Spatial(op, a, b) => write!(f, "{}({a}, {b})", spatial_name(*op)),
            Expr::DWithin(a, b, d) => write!(f, "DWITHIN({a}, {b}, {d}, meters)"),
            Expr::Temporal(op, a, b) => write!(f, "{}({a}, {b})", temporal_name(*op)),
        }
    }
}

impl fmt::Display for super::FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.index)
    }
}
