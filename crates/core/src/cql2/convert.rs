//! From the `cql2` crate's syntax tree to chizu's [`Expr`], and the bounds
//! checked before that crate sees any input.

use super::{
    ArithOp, CmpOp, Expr, FilterError, FilterErrorKind, LikePattern, Limits, Literal, Scalar,
    SpatialOp, Temporal, TemporalOp, is_geometry_property,
};
use cql2::Expr as C;

pub(super) fn too_long(limits: Limits) -> FilterError {
    FilterError::new(
        FilterErrorKind::TooComplex,
        format!("the filter is longer than {} bytes", limits.max_bytes),
    )
}

fn too_deep(limits: Limits) -> FilterError {
    FilterError::new(
        FilterErrorKind::TooComplex,
        format!(
            "the filter nests deeper than {} levels (parentheses, NOT and functions)",
            limits.max_depth
        ),
    )
}

fn too_many(limits: Limits) -> FilterError {
    FilterError::new(
        FilterErrorKind::TooComplex,
        format!(
            "the filter has more than {} operators",
            limits.max_operators
        ),
    )
}

/// Measures CQL2 text without parsing it: quoted strings and names are
/// skipped, parentheses and `NOT`s counted as nesting, keywords and operators
/// as operators. Linear in the text, and conservative: what passes here
/// cannot nest deeper than `max_depth` in any parser.
pub(super) fn check_text(text: &str, limits: Limits) -> Result<(), FilterError> {
    if text.len() > limits.max_bytes {
        return Err(too_long(limits));
    }
    let bytes = text.as_bytes();
    let (mut depth, mut nots, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                // A doubled quote inside is an escaped quote: the scan just
                // closes and reopens, which counts nothing.
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'(' => {
                depth += 1;
                if depth + nots > limits.max_depth {
                    return Err(too_deep(limits));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            b'=' | b'<' | b'>' | b'+' | b'*' | b'/' | b'%' | b'^' => operators += 1,
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                if word.eq_ignore_ascii_case("not") {
                    nots += 1;
                    if depth + nots > limits.max_depth {
                        return Err(too_deep(limits));
                    }
                }
                if ["and", "or", "not", "like", "between", "in", "is"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operators += 1;
                }
                continue;
            }
            _ => {}
        }
        if operators > limits.max_operators {
            return Err(too_many(limits));
        }
        i += 1;
    }
    if operators > limits.max_operators {
        return Err(too_many(limits));
    }
    Ok(())
}

/// The same bounds on a CQL2 JSON document: nesting of values, number of `op`s.
pub(super) fn check_json(value: &serde_json::Value, limits: Limits) -> Result<(), FilterError> {
    fn walk(
        v: &serde_json::Value,
        depth: usize,
        ops: &mut usize,
        limits: Limits,
    ) -> Result<(), FilterError> {
        // Each CQL2 level is an object and its `args` array: two JSON levels.
        if depth > 2 * limits.max_depth + 2 {
            return Err(too_deep(limits));
        }
        match v {
            serde_json::Value::Array(items) => items
                .iter()
                .try_for_each(|i| walk(i, depth + 1, ops, limits)),
            serde_json::Value::Object(map) => {
                if map.contains_key("op") {
                    *ops += 1;
                    if *ops > limits.max_operators {
                        return Err(too_many(limits));
                    }
                }
                map.values()
                    .try_for_each(|i| walk(i, depth + 1, ops, limits))
            }
            _ => Ok(()),
        }
    }
    walk(value, 0, &mut 0, limits)
}

/// One line for a syntax error of the cql2 crate, with the byte offset
/// where parsing stopped (pest's own messages span several lines).
pub(super) fn syntax_message(e: &cql2::Error) -> String {
    if let cql2::Error::Pest(pest) = e {
        let at = match pest.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
        let expected = pest.variant.message();
        // The grammar's rule names mean little to a caller; say what they are.
        let what = if expected.contains("DECIMAL") || expected.contains("SingleQuotedString") {
            "expected a value, a property or an expression".to_string()
        } else {
            expected.chars().take(200).collect()
        };
        return format!("syntax error at character {at}: {what}");
    }
    let text = e.to_string();
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let shown: String = line.chars().take(300).collect();
    format!("syntax error: {shown}")
}

fn unknown_function(name: &str) -> FilterError {
    let shown: String = name.chars().take(64).collect();
    FilterError::new(
        FilterErrorKind::UnknownFunction,
        format!("unknown function `{shown}`"),
    )
}

/// A boolean expression.
pub(super) fn expr(e: &C) -> Result<Expr, FilterError> {
    match e {
        C::Bool(b) => Ok(Expr::Const(*b)),
        C::Operation { op, args } => operation(op, args),
        C::Property { .. } => Ok(Expr::Truth(scalar(e)?)),
        other => Err(FilterError::invalid(format!(
            "expected a condition, found {}",
            describe(other)
        ))),
    }
}

fn describe(e: &C) -> &'static str {
    match e {
        C::Operation { .. } => "an operation",
        C::Interval { .. } => "an interval",
        C::Timestamp { .. } => "a timestamp",
        C::Date { .. } => "a date",
        C::Property { .. } => "a property",
        C::BBox { .. } => "a bounding box",
        C::Float(_) => "a number",
        C::Literal(_) => "a string",
        C::Bool(_) => "a boolean",
        C::Array(_) => "an array",
        C::Geometry(_) => "a geometry",
        C::Null => "NULL",
    }
}

fn arity<'a, const N: usize>(op: &str, args: &'a [Box<C>]) -> Result<[&'a C; N], FilterError> {
    let refs: Vec<&C> = args.iter().map(|a| a.as_ref()).collect();
    refs.try_into().map_err(|_| {
        FilterError::invalid(format!(
            "`{op}` takes {N} argument{}",
            if N == 1 { "" } else { "s" }
        ))
    })
}

fn operation(op: &str, args: &[Box<C>]) -> Result<Expr, FilterError> {
    let lower = op.to_ascii_lowercase();
    let cmp = |c: CmpOp| -> Result<Expr, FilterError> {
        let [a, b] = arity(op, args)?;
        Ok(Expr::Compare(scalar(a)?, c, scalar(b)?))
    };
    match lower.as_str() {
        "and" | "or" => {
            let parts = args
                .iter()
                .map(|a| expr(a))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if lower == "and" {
                Expr::And(parts)
            } else {
                Expr::Or(parts)
            })
        }
        "not" => {
            let [a] = arity(op, args)?;
            Ok(Expr::Not(Box::new(expr(a)?)))
        }
        "=" => cmp(CmpOp::Eq),
        "<>" => cmp(CmpOp::Ne),
        "<" => cmp(CmpOp::Lt),
        "<=" => cmp(CmpOp::Le),
        ">" => cmp(CmpOp::Gt),
        ">=" => cmp(CmpOp::Ge),
        "like" => {
            let [a, p] = arity(op, args)?;
            Ok(Expr::Like(scalar(a)?, pattern(p)?))
        }
        "between" => {
            let [a, lo, hi] = arity(op, args)?;
            Ok(Expr::Between(scalar(a)?, scalar(lo)?, scalar(hi)?))
        }
        "in" => {
            let [a, list] = arity(op, args)?;
            let C::Array(items) = list else {
                return Err(FilterError::invalid("`IN` takes a list"));
            };
            Ok(Expr::In(
                scalar(a)?,
                items.iter().map(|i| scalar(i)).collect::<Result<_, _>>()?,
            ))
        }
        "isnull" => {
            let [a] = arity(op, args)?;
            Ok(match scalar(a)? {
                // A feature always has its geometry.
                Scalar::FeatureGeometry => Expr::Const(false),
                s => Expr::IsNull(s),
            })
        }
        "dwithin" => dwithin(op, args),
        _ => {
            if let Some(sop) = spatial_op(&lower) {
                let [a, b] = arity(op, args)?;
                return Ok(Expr::Spatial(
                    sop,
                    geometry_arg(op, a)?,
                    geometry_arg(op, b)?,
                ));
            }
            if let Some(top) = temporal_op(&lower) {
                let [a, b] = arity(op, args)?;
                return Ok(Expr::Temporal(top, temporal(a)?, temporal(b)?));
            }
            // A function used as a condition: only the scalar functions are
            // known, and none of them is boolean.
            Err(unknown_function(op))
        }
    }
}

fn spatial_op(name: &str) -> Option<SpatialOp> {
    Some(match name {
        "s_intersects" => SpatialOp::Intersects,
        "s_disjoint" => SpatialOp::Disjoint,
        "s_equals" => SpatialOp::Equals,
        "s_touches" => SpatialOp::Touches,
        "s_within" => SpatialOp::Within,
        "s_overlaps" => SpatialOp::Overlaps,
        "s_crosses" => SpatialOp::Crosses,
        "s_contains" => SpatialOp::Contains,
        _ => return None,
    })
}

fn temporal_op(name: &str) -> Option<TemporalOp> {
    Some(match name {
        "t_after" => TemporalOp::After,
        "t_before" => TemporalOp::Before,
        "t_contains" => TemporalOp::Contains,
        "t_disjoint" => TemporalOp::Disjoint,
        "t_during" => TemporalOp::During,
        "t_equals" => TemporalOp::Equals,
        "t_finishedby" => TemporalOp::FinishedBy,
        "t_finishes" => TemporalOp::Finishes,
        "t_intersects" => TemporalOp::Intersects,
        "t_meets" => TemporalOp::Meets,
        "t_metby" => TemporalOp::MetBy,
        "t_overlappedby" => TemporalOp::OverlappedBy,
        "t_overlaps" => TemporalOp::Overlaps,
        "t_startedby" => TemporalOp::StartedBy,
        "t_starts" => TemporalOp::Starts,
        _ => return None,
    })
}

/// `DWITHIN(geometry, POINT(x y), distance[, meters])`.
fn dwithin(op: &str, args: &[Box<C>]) -> Result<Expr, FilterError> {
    let (a, b, d) = match args {
        [a, b, d] => (a, b, d),
        [a, b, d, unit] => {
            let unit_name = match unit.as_ref() {
                C::Property { property } => property.as_str(),
                C::Literal(s) => s.as_str(),
                _ => "",
            };
            if !["meters", "metres", "m"]
                .iter()
                .any(|u| u.eq_ignore_ascii_case(unit_name))
            {
                return Err(FilterError::invalid("DWITHIN distances are in meters"));
            }
            (a, b, d)
        }
        _ => {
            return Err(FilterError::invalid(
                "`DWITHIN` takes a geometry, a point and a distance in meters",
            ));
        }
    };
    let distance = match d.as_ref() {
        C::Float(d) if *d >= 0.0 && d.is_finite() => *d,
        _ => return Err(FilterError::invalid("DWITHIN takes a distance in meters")),
    };
    let (a, b) = (geometry_arg(op, a)?, geometry_arg(op, b)?);
    let is_point = |s: &Scalar| matches!(s, Scalar::Geometry(geo::Geometry::Point(_)));
    if !(is_point(&a) || is_point(&b)) {
        return Err(FilterError::invalid("DWITHIN takes a POINT"));
    }
    Ok(Expr::DWithin(a, b, distance))
}

fn geometry_arg(op: &str, e: &C) -> Result<Scalar, FilterError> {
    match scalar(e)? {
        s @ (Scalar::FeatureGeometry | Scalar::Geometry(_) | Scalar::Property(_)) => Ok(s),
        _ => Err(FilterError::invalid(format!(
            "`{op}` takes geometries: the geometry property or a geometry literal"
        ))),
    }
}

fn temporal(e: &C) -> Result<Temporal, FilterError> {
    match e {
        C::Interval { interval } => match interval.as_slice() {
            [a, b] => Ok(Temporal::Interval(instant(a)?, instant(b)?)),
            _ => Err(FilterError::invalid("INTERVAL takes a start and an end")),
        },
        other => Ok(Temporal::Instant(instant(other)?)),
    }
}

/// An end of an interval or an instant: a property, `DATE`, `TIMESTAMP`, or
/// a string holding either (`'..'` is an open end).
fn instant(e: &C) -> Result<Scalar, FilterError> {
    match e {
        C::Literal(s) if s == ".." => Ok(Scalar::Literal(Literal::Null)),
        C::Literal(s) => Ok(Scalar::Literal(time_literal(s)?)),
        other => scalar(other),
    }
}

fn time_literal(s: &str) -> Result<Literal, FilterError> {
    if let Some(days) = crate::cql2::eval::parse_date(s) {
        return Ok(Literal::Date(days));
    }
    crate::cql2::eval::parse_timestamp(s)
        .map(Literal::Timestamp)
        .ok_or_else(|| {
            let shown: String = s.chars().take(40).collect();
            FilterError::invalid(format!("`{shown}` is not a date or timestamp"))
        })
}

/// A value-producing expression.
fn scalar(e: &C) -> Result<Scalar, FilterError> {
    Ok(match e {
        C::Property { property } if is_geometry_property(property) => Scalar::FeatureGeometry,
        C::Property { property } => Scalar::Property(property.clone()),
        C::Float(n) if n.is_finite() => Scalar::Literal(Literal::Number(*n)),
        C::Float(_) => return Err(FilterError::invalid("a number is out of range")),
        C::Literal(s) => Scalar::Literal(Literal::Text(s.clone())),
        C::Bool(b) => Scalar::Literal(Literal::Bool(*b)),
        C::Null => Scalar::Literal(Literal::Null),
        C::Date { date } => match date.as_ref() {
            C::Literal(s) => match crate::cql2::eval::parse_date(s) {
                Some(d) => Scalar::Literal(Literal::Date(d)),
                None => {
                    return Err(FilterError::invalid(format!(
                        "`{}` is not a date (YYYY-MM-DD)",
                        s.chars().take(40).collect::<String>()
                    )));
                }
            },
            _ => return Err(FilterError::invalid("DATE takes a string")),
        },
        C::Timestamp { timestamp } => match timestamp.as_ref() {
            C::Literal(s) => match crate::cql2::eval::parse_timestamp(s) {
                Some(t) => Scalar::Literal(Literal::Timestamp(t)),
                None => {
                    return Err(FilterError::invalid(format!(
                        "`{}` is not an RFC 3339 timestamp",
                        s.chars().take(40).collect::<String>()
                    )));
                }
            },
            _ => return Err(FilterError::invalid("TIMESTAMP takes a string")),
        },
        C::Geometry(_) | C::BBox { .. } => Scalar::Geometry(geometry(e)?),
        C::Operation { op, args } => function(op, args)?,
        C::Interval { .. } => {
            return Err(FilterError::invalid(
                "an INTERVAL is only an argument of the T_ functions",
            ));
        }
        C::Array(_) => {
            return Err(FilterError::invalid("arrays are only the list of IN"));
        }
    })
}

fn function(op: &str, args: &[Box<C>]) -> Result<Scalar, FilterError> {
    let lower = op.to_ascii_lowercase();
    let arith = match lower.as_str() {
        "+" => Some(ArithOp::Add),
        "-" => Some(ArithOp::Sub),
        "*" => Some(ArithOp::Mul),
        "/" => Some(ArithOp::Div),
        "%" => Some(ArithOp::Mod),
        "^" => Some(ArithOp::Pow),
        "div" => Some(ArithOp::IntDiv),
        _ => None,
    };
    if let Some(aop) = arith {
        // `+` and friends may chain: `a + b + c` is `(a + b) + c`.
        let mut items = args.iter().map(|a| scalar(a));
        let first = items
            .next()
            .ok_or_else(|| FilterError::invalid(format!("`{op}` takes two operands")))??;
        let mut acc = first;
        let mut n = 1;
        for item in items {
            acc = Scalar::Arith(aop, Box::new(acc), Box::new(item?));
            n += 1;
        }
        if n < 2 {
            return Err(FilterError::invalid(format!("`{op}` takes two operands")));
        }
        return Ok(acc);
    }
    match lower.as_str() {
        "casei" => {
            let [a] = arity(op, args)?;
            Ok(Scalar::CaseI(Box::new(scalar(a)?)))
        }
        "accenti" => {
            let [a] = arity(op, args)?;
            Ok(Scalar::AccentI(Box::new(scalar(a)?)))
        }
        _ => Err(unknown_function(op)),
    }
}

/// The pattern of `LIKE`: a string, possibly under `CASEI`/`ACCENTI` (which
/// then apply to the matched value too).
fn pattern(e: &C) -> Result<LikePattern, FilterError> {
    let mut folds = (false, false);
    let mut current = e;
    loop {
        match current {
            C::Literal(s) => return Ok(LikePattern::new(s, folds.0, folds.1)),
            C::Operation { op, args } if args.len() == 1 && op.eq_ignore_ascii_case("casei") => {
                folds.0 = true;
                current = &args[0];
            }
            C::Operation { op, args } if args.len() == 1 && op.eq_ignore_ascii_case("accenti") => {
                folds.1 = true;
                current = &args[0];
            }
            C::Operation { op, .. }
                if !["casei", "accenti"]
                    .iter()
                    .any(|k| op.eq_ignore_ascii_case(k)) =>
            {
                return Err(unknown_function(op));
            }
            _ => return Err(FilterError::invalid("LIKE takes a string pattern")),
        }
    }
}

/// A geometry literal in longitude/latitude order as written (WKT or GeoJSON),
/// or a `BBOX` of four or six numbers. Z values are dropped.
fn geometry(e: &C) -> Result<geo::Geometry<f64>, FilterError> {
    if let C::BBox { bbox } = e {
        let n: Vec<f64> = bbox
            .iter()
            .map(|v| match v.as_ref() {
                C::Float(f) if f.is_finite() => Ok(*f),
                _ => Err(FilterError::invalid("BBOX takes numbers")),
            })
            .collect::<Result<_, _>>()?;
        let (x0, y0, x1, y1) = match n[..] {
            [a, b, c, d] => (a, b, c, d),
            [a, b, _, d, e, _] => (a, b, d, e),
            _ => return Err(FilterError::invalid("BBOX takes four or six numbers")),
        };
        return Ok(geo::Rect::new((x0, y0), (x1, y1)).to_polygon().into());
    }
    let g = geo::Geometry::<f64>::try_from(e.clone())
        .map_err(|_| FilterError::invalid("the geometry literal is not valid WKT or GeoJSON"))?;
    let mut finite = true;
    use geo::CoordsIter;
    for c in g.coords_iter() {
        finite &= c.x.is_finite() && c.y.is_finite();
    }
    if !finite {
        return Err(FilterError::invalid(
            "a geometry coordinate is out of range",
        ));
    }
    Ok(g)
}
