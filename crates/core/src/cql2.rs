//! A CQL2-text subset for row filters (and, later, query filters): comparisons,
//! `AND`/`OR`/`NOT`, `IN`, `LIKE`, `BETWEEN`, `IS [NOT] NULL`, parentheses.
//!
//! Parsing yields an [`Expr`] over property names; [`Expr::compile`] resolves the
//! names against a layer's fields once, so evaluating a row is index lookups only.
//! Errors carry the byte offset of the problem.

use crate::config::FieldDef;
use crate::value::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
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

/// A parsed filter. `P` is how a property is named: a `String` after parsing,
/// a field index after [`Expr::compile`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<P = String> {
    And(Vec<Expr<P>>),
    Or(Vec<Expr<P>>),
    Not(Box<Expr<P>>),
    Compare(P, CmpOp, Literal),
    Like(P, String),
    Between(P, Literal, Literal),
    In(P, Vec<Literal>),
    IsNull(P),
    Const(bool),
    /// A spatial predicate between the feature's geometry and a literal.
    Spatial(SpatialOp, geo::Geometry<f64>),
    /// The feature's geometry lies within `distance` metres of a point.
    DWithin(geo::Coord<f64>, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialOp {
    Intersects,
    /// The feature lies within the literal.
    Within,
    /// The feature contains the literal.
    Contains,
    Disjoint,
}

/// Property names that mean the feature's geometry.
pub fn is_geometry_property(name: &str) -> bool {
    ["geometry", "geom", "the_geom", "shape"]
        .iter()
        .any(|g| g.eq_ignore_ascii_case(name))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("filter error at character {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

/// A filter whose property names are field indices of one layer.
pub type CompiledExpr = Expr<usize>;

pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        len: text.len(),
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(p.error_at(t.at, format!("unexpected {}", t.kind))),
    }
}

impl Expr<String> {
    /// Resolves property names to field indices. An unknown name is an error
    /// naming it (callers decide whether the name may be shown).
    pub fn compile(&self, fields: &[FieldDef]) -> Result<CompiledExpr, String> {
        let idx = |name: &String| {
            fields
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(|| name.clone())
        };
        let list = |v: &[Expr]| {
            v.iter()
                .map(|e| e.compile(fields))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match self {
            Expr::And(v) => Expr::And(list(v)?),
            Expr::Or(v) => Expr::Or(list(v)?),
            Expr::Not(e) => Expr::Not(Box::new(e.compile(fields)?)),
            Expr::Compare(p, op, l) => Expr::Compare(idx(p)?, *op, l.clone()),
            Expr::Like(p, s) => Expr::Like(idx(p)?, s.clone()),
            Expr::Between(p, a, b) => Expr::Between(idx(p)?, a.clone(), b.clone()),
            Expr::In(p, v) => Expr::In(idx(p)?, v.clone()),
            Expr::IsNull(p) => Expr::IsNull(idx(p)?),
            Expr::Const(b) => Expr::Const(*b),
            Expr::Spatial(op, g) => Expr::Spatial(*op, g.clone()),
            Expr::DWithin(c, d) => Expr::DWithin(*c, *d),
        })
    }

    /// Every property the filter names.
    pub fn properties(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_properties(&mut |p| out.push(p.as_str()));
        out
    }
}

impl<P> Expr<P> {
    fn visit_properties<'a>(&'a self, f: &mut dyn FnMut(&'a P)) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit_properties(f)),
            Expr::Not(e) => e.visit_properties(f),
            Expr::Compare(p, ..)
            | Expr::Like(p, _)
            | Expr::Between(p, ..)
            | Expr::In(p, _)
            | Expr::IsNull(p) => f(p),
            Expr::Const(_) | Expr::Spatial(..) | Expr::DWithin(..) => {}
        }
    }

    /// Rewrites the coordinates of every geometry literal (e.g. from the
    /// filter's CRS to longitude/latitude).
    pub fn transform_literals(
        &mut self,
        f: &mut dyn FnMut(&mut geo::Geometry<f64>) -> Result<(), String>,
    ) -> Result<(), String> {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter_mut().try_for_each(|e| e.transform_literals(f)),
            Expr::Not(e) => e.transform_literals(f),
            Expr::Spatial(_, g) => f(g),
            Expr::DWithin(c, _) => {
                let mut g = geo::Geometry::Point(geo::Point(*c));
                f(&mut g)?;
                if let geo::Geometry::Point(p) = g {
                    *c = p.0;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// An envelope (longitude/latitude) every matching feature must meet, when
    /// the filter has one: lets a query use the R-tree instead of a scan.
    pub fn envelope(&self) -> Option<geo::Rect<f64>> {
        use geo::BoundingRect;
        match self {
            Expr::Spatial(SpatialOp::Intersects | SpatialOp::Within | SpatialOp::Contains, g) => {
                g.bounding_rect()
            }
            Expr::DWithin(c, d) => {
                // Degrees of latitude are ~111.1 km everywhere; of longitude, less by cos(lat).
                let dlat = d / 111_000.0 * 1.01;
                let dlon = dlat / c.y.to_radians().cos().max(0.01);
                Some(geo::Rect::new(
                    (c.x - dlon, c.y - dlat),
                    (c.x + dlon, c.y + dlat),
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

impl CompiledExpr {
    /// Whether a row passes. Comparisons with NULL are false (SQL semantics, with
    /// unknown treated as false), so `NOT (x = 1)` does not admit rows where x is NULL.
    pub fn matches(&self, row: &[Value]) -> bool {
        self.eval(row, None).unwrap_or(false)
    }

    /// Like [`matches`](Self::matches), with the feature's geometry (longitude/latitude)
    /// for spatial predicates.
    pub fn matches_feature(&self, row: &[Value], geometry: &geo::Geometry<f64>) -> bool {
        self.eval(row, Some(geometry)).unwrap_or(false)
    }

    fn eval(&self, row: &[Value], geometry: Option<&geo::Geometry<f64>>) -> Option<bool> {
        let get = |i: &usize| row.get(*i).filter(|v| !v.is_null());
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
                if unknown { None } else { Some(true) }
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
                if unknown { None } else { Some(false) }
            }
            Expr::Not(e) => e.eval(row, geometry).map(|b| !b),
            Expr::Spatial(op, literal) => {
                use geo::{Intersects, Relate};
                let g = geometry?;
                Some(match op {
                    SpatialOp::Intersects => g.intersects(literal),
                    SpatialOp::Disjoint => !g.intersects(literal),
                    SpatialOp::Within => g.relate(literal).is_within(),
                    SpatialOp::Contains => g.relate(literal).is_contains(),
                })
            }
            Expr::DWithin(c, d) => Some(distance_m(*c, geometry?) <= *d),
            Expr::IsNull(p) => Some(get(p).is_none()),
            Expr::Compare(p, op, lit) => {
                let ord = compare(get(p)?, lit)?;
                Some(match op {
                    CmpOp::Eq => ord.is_eq(),
                    CmpOp::Ne => !ord.is_eq(),
                    CmpOp::Lt => ord.is_lt(),
                    CmpOp::Le => ord.is_le(),
                    CmpOp::Gt => ord.is_gt(),
                    CmpOp::Ge => ord.is_ge(),
                })
            }
            Expr::Between(p, lo, hi) => {
                let v = get(p)?;
                Some(compare(v, lo)?.is_ge() && compare(v, hi)?.is_le())
            }
            Expr::In(p, list) => {
                let v = get(p)?;
                Some(
                    list.iter()
                        .any(|l| compare(v, l).is_some_and(|o| o.is_eq())),
                )
            }
            Expr::Like(p, pattern) => match get(p)? {
                Value::Text(s) => Some(like(s, pattern)),
                _ => None,
            },
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

fn compare(v: &Value, lit: &Literal) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Value::Text(a), Literal::Text(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Int(a), Literal::Number(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Literal::Number(b)) => a.partial_cmp(b),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// SQL LIKE: `%` any run, `_` one character; `\` escapes.
fn like(s: &str, pattern: &str) -> bool {
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&s, &p)
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
        }
    }
}

impl<P: fmt::Display> fmt::Display for Expr<P> {
    /// Canonical text: equal filters print equally (used in cache keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Expr<P>], sep: &str| -> fmt::Result {
            write!(f, "(")?;
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                write!(f, "{e}")?;
            }
            write!(f, ")")
        };
        match self {
            Expr::And(v) => join(f, v, "AND"),
            Expr::Or(v) => join(f, v, "OR"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Compare(p, op, l) => {
                let op = match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "<>",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                write!(f, "(\"{p}\" {op} {l})")
            }
            Expr::Like(p, s) => write!(f, "(\"{p}\" LIKE {})", Literal::Text(s.clone())),
            Expr::Between(p, a, b) => write!(f, "(\"{p}\" BETWEEN {a} AND {b})"),
            Expr::In(p, v) => {
                write!(f, "(\"{p}\" IN (")?;
                for (i, l) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{l}")?;
                }
                write!(f, "))")
            }
            Expr::IsNull(p) => write!(f, "(\"{p}\" IS NULL)"),
            Expr::Const(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Spatial(op, g) => {
                let name = match op {
                    SpatialOp::Intersects => "S_INTERSECTS",
                    SpatialOp::Within => "S_WITHIN",
                    SpatialOp::Contains => "S_CONTAINS",
                    SpatialOp::Disjoint => "S_DISJOINT",
                };
                write!(f, "{name}(geometry, {})", wkt::to_wkt(g))
            }
            Expr::DWithin(c, d) => {
                write!(f, "DWITHIN(geometry, POINT({} {}), {d}, meters)", c.x, c.y)
            }
        }
    }
}

/// Minimal WKT for geometry literals in filters.
pub mod wkt {
    use geo::{
        Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon,
        Rect,
    };

    pub fn is_keyword(word: &str) -> bool {
        [
            "POINT",
            "LINESTRING",
            "POLYGON",
            "MULTIPOINT",
            "MULTILINESTRING",
            "MULTIPOLYGON",
            "BBOX",
            "ENVELOPE",
        ]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
    }

    /// Parses the text between the outer parentheses of `KEYWORD( ... )`.
    pub fn parse(keyword: &str, body: &str) -> Result<Geometry<f64>, String> {
        let k = keyword.to_ascii_uppercase();
        let nums = |s: &str| -> Result<Vec<f64>, String> {
            s.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or(format!("`{t}` is not a coordinate"))
                })
                .collect()
        };
        let coord = |s: &str| -> Result<Coord<f64>, String> {
            match nums(s)?[..] {
                [x, y] | [x, y, _] => Ok(Coord { x, y }),
                _ => Err(format!("`{}` is not a coordinate pair", s.trim())),
            }
        };
        let line = |s: &str| -> Result<LineString<f64>, String> {
            let s = strip(s)?;
            s.split(',')
                .map(coord)
                .collect::<Result<Vec<_>, _>>()
                .map(LineString::new)
        };
        let polygon = |s: &str| -> Result<Polygon<f64>, String> {
            let rings = split_groups(strip(s)?)?;
            let mut rings = rings.into_iter().map(line);
            let exterior = rings.next().ok_or("a polygon needs a ring")??;
            if exterior.0.len() < 4 || exterior.0.first() != exterior.0.last() {
                return Err("polygon rings must be closed, with at least 4 points".into());
            }
            Ok(Polygon::new(
                exterior,
                rings.collect::<Result<Vec<_>, _>>()?,
            ))
        };
        let g = match k.as_str() {
            "POINT" => Geometry::Point(Point(coord(body)?)),
            "LINESTRING" => Geometry::LineString(line(&format!("({body})"))?),
            "POLYGON" => Geometry::Polygon(polygon(&format!("({body})"))?),
            "MULTIPOINT" => {
                let parts = body.split(',').map(|p| {
                    coord(p.trim().trim_start_matches('(').trim_end_matches(')')).map(Point)
                });
                Geometry::MultiPoint(MultiPoint::new(parts.collect::<Result<Vec<_>, _>>()?))
            }
            "MULTILINESTRING" => Geometry::MultiLineString(MultiLineString::new(
                split_groups(body)?
                    .into_iter()
                    .map(line)
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            "MULTIPOLYGON" => Geometry::MultiPolygon(MultiPolygon::new(
                split_groups(body)?
                    .into_iter()
                    .map(polygon)
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            _ => match nums(body)?[..] {
                [a, b, c, d] => {
                    // BBOX(minx, miny, maxx, maxy); ENVELOPE(minx, maxx, maxy, miny) as in CQL2.
                    let (x0, y0, x1, y1) = if k == "ENVELOPE" {
                        (a, d, b, c)
                    } else {
                        (a, b, c, d)
                    };
                    Geometry::Polygon(Rect::new((x0, y0), (x1, y1)).to_polygon())
                }
                _ => return Err(format!("{k} takes four numbers")),
            },
        };
        Ok(g)
    }

    fn strip(s: &str) -> Result<&str, String> {
        let t = s.trim();
        t.strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .ok_or(format!("expected parentheses around `{t}`"))
    }

    /// Splits `(..), (..)` at top-level commas.
    fn split_groups(s: &str) -> Result<Vec<&str>, String> {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0i32, 0);
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err("unbalanced parentheses".into());
            }
        }
        out.push(&s[start..]);
        Ok(out)
    }

    pub fn to_wkt(g: &Geometry<f64>) -> String {
        fn ring(l: &LineString<f64>) -> String {
            format!(
                "({})",
                l.0.iter()
                    .map(|c| format!("{} {}", c.x, c.y))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        fn poly(p: &Polygon<f64>) -> String {
            format!(
                "({})",
                std::iter::once(p.exterior())
                    .chain(p.interiors())
                    .map(ring)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        match g {
            Geometry::Point(p) => format!("POINT({} {})", p.x(), p.y()),
            Geometry::LineString(l) => format!("LINESTRING{}", ring(l)),
            Geometry::Polygon(p) => format!("POLYGON{}", poly(p)),
            Geometry::MultiPoint(mp) => format!(
                "MULTIPOINT({})",
                mp.0.iter()
                    .map(|p| format!("{} {}", p.x(), p.y()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Geometry::MultiLineString(ml) => format!(
                "MULTILINESTRING({})",
                ml.0.iter().map(ring).collect::<Vec<_>>().join(", ")
            ),
            Geometry::MultiPolygon(mp) => format!(
                "MULTIPOLYGON({})",
                mp.0.iter().map(poly).collect::<Vec<_>>().join(", ")
            ),
            other => format!("{other:?}"),
        }
    }
}

// ---- lexer and parser ----

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Geom(geo::Geometry<f64>),
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Geom(_) => write!(f, "a geometry"),
            Kind::Ident(s) => write!(f, "`{s}`"),
            Kind::Str(_) => write!(f, "a string"),
            Kind::Num(n) => write!(f, "number {n}"),
            Kind::Op(o) => write!(f, "`{o}`"),
            Kind::LParen => write!(f, "`(`"),
            Kind::RParen => write!(f, "`)`"),
            Kind::Comma => write!(f, "`,`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    at: usize,
    quoted: bool,
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: &str| FilterError {
        position: at,
        message: m.to_string(),
    };
    while i < bytes.len() {
        let (at, c) = bytes[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token {
                    kind: Kind::LParen,
                    at,
                    quoted: false,
                });
                i += 1
            }
            ')' => {
                out.push(Token {
                    kind: Kind::RParen,
                    at,
                    quoted: false,
                });
                i += 1
            }
            ',' => {
                out.push(Token {
                    kind: Kind::Comma,
                    at,
                    quoted: false,
                });
                i += 1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err(at, "string literal is not closed")),
                        Some((_, '\'')) if matches!(bytes.get(i + 1), Some((_, '\''))) => {
                            s.push('\'');
                            i += 2
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Token {
                    kind: Kind::Str(s),
                    at,
                    quoted: true,
                });
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err(at, "quoted property name is not closed")),
                        Some((_, '"')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Token {
                    kind: Kind::Ident(s),
                    at,
                    quoted: true,
                });
            }
            '=' => {
                out.push(Token {
                    kind: Kind::Op("="),
                    at,
                    quoted: false,
                });
                i += 1
            }
            '<' | '>' => {
                let next = bytes.get(i + 1).map(|b| b.1);
                let (op, n) = match (c, next) {
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("<>", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('<', _) => ("<", 1),
                    _ => (">", 1),
                };
                out.push(Token {
                    kind: Kind::Op(op),
                    at,
                    quoted: false,
                });
                i += n;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < bytes.len()
                    && (bytes[i].1.is_ascii_digit()
                        || matches!(bytes[i].1, '.' | 'e' | 'E')
                        || (matches!(bytes[i].1, '-' | '+') && matches!(bytes[i - 1].1, 'e' | 'E')))
                {
                    i += 1;
                }
                let end = bytes.get(i).map(|b| b.0).unwrap_or(text.len());
                let s = &text[bytes[start].0..end];
                let n: f64 = s
                    .parse()
                    .map_err(|_| err(at, &format!("`{s}` is not a number")))?;
                if !n.is_finite() {
                    return Err(err(at, "number out of range"));
                }
                out.push(Token {
                    kind: Kind::Num(n),
                    at,
                    quoted: false,
                });
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].1.is_alphanumeric() || bytes[i].1 == '_') {
                    i += 1;
                }
                let end = bytes.get(i).map(|b| b.0).unwrap_or(text.len());
                let word = &text[bytes[start].0..end];
                let rest = text[end..].trim_start();
                if wkt::is_keyword(word) && rest.starts_with('(') {
                    // A geometry literal: read to the matching parenthesis.
                    let open = end + (text[end..].len() - rest.len());
                    let mut depth = 0;
                    let mut close = None;
                    for (k, ch) in text[open..].char_indices() {
                        match ch {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    close = Some(open + k);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let close = close.ok_or_else(|| err(at, "geometry literal is not closed"))?;
                    let g = wkt::parse(word, &text[open + 1..close]).map_err(|m| err(at, &m))?;
                    out.push(Token {
                        kind: Kind::Geom(g),
                        at,
                        quoted: false,
                    });
                    while i < bytes.len() && bytes[i].0 <= close {
                        i += 1;
                    }
                    continue;
                }
                out.push(Token {
                    kind: Kind::Ident(word.to_string()),
                    at,
                    quoted: false,
                });
            }
            other => return Err(err(at, &format!("unexpected character `{other}`"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn error_at(&self, at: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position: at,
            message: message.into(),
        }
    }
    fn here(&self) -> usize {
        self.peek().map(|t| t.at).unwrap_or(self.len)
    }
    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token {
                kind: Kind::Ident(s),
                quoted: false,
                ..
            }) if s.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
    fn expect(&mut self, kind: Kind, what: &str) -> Result<(), FilterError> {
        match self.peek() {
            Some(t) if t.kind == kind => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(self.error_at(t.at, format!("expected {what}, found {}", t.kind))),
            None => Err(self.error_at(self.len, format!("expected {what} at the end"))),
        }
    }
    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }
    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.not()?];
        while self.keyword("AND") {
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }
    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.predicate()
    }
    fn predicate(&mut self) -> Result<Expr, FilterError> {
        if matches!(
            self.peek(),
            Some(Token {
                kind: Kind::LParen,
                ..
            })
        ) {
            self.pos += 1;
            let e = self.or()?;
            self.expect(Kind::RParen, "`)`")?;
            return Ok(e);
        }
        if self.keyword("TRUE") {
            return Ok(Expr::Const(true));
        }
        if self.keyword("FALSE") {
            return Ok(Expr::Const(false));
        }
        for (word, op) in [
            ("S_INTERSECTS", Some(SpatialOp::Intersects)),
            ("S_WITHIN", Some(SpatialOp::Within)),
            ("S_CONTAINS", Some(SpatialOp::Contains)),
            ("S_DISJOINT", Some(SpatialOp::Disjoint)),
            ("DWITHIN", None),
        ] {
            if self.keyword(word) {
                return self.spatial(word, op);
            }
        }
        let at = self.here();
        let property = match self.peek().cloned() {
            Some(Token {
                kind: Kind::Ident(name),
                ..
            }) => {
                self.pos += 1;
                name
            }
            Some(t) => {
                return Err(
                    self.error_at(t.at, format!("expected a property name, found {}", t.kind))
                );
            }
            None => return Err(self.error_at(at, "expected a condition")),
        };
        if self.keyword("IS") {
            let negate = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(self.error_at(self.here(), "expected NULL after IS"));
            }
            let e = Expr::IsNull(property);
            return Ok(if negate { Expr::Not(Box::new(e)) } else { e });
        }
        let negate = self.keyword("NOT");
        let e = if self.keyword("LIKE") {
            match self.literal()? {
                Literal::Text(s) => Expr::Like(property, s),
                _ => return Err(self.error_at(at, "LIKE needs a string pattern")),
            }
        } else if self.keyword("BETWEEN") {
            let lo = self.literal()?;
            if !self.keyword("AND") {
                return Err(self.error_at(self.here(), "expected AND in BETWEEN"));
            }
            let hi = self.literal()?;
            Expr::Between(property, lo, hi)
        } else if self.keyword("IN") {
            self.expect(Kind::LParen, "`(` after IN")?;
            let mut list = vec![self.literal()?];
            while matches!(
                self.peek(),
                Some(Token {
                    kind: Kind::Comma,
                    ..
                })
            ) {
                self.pos += 1;
                list.push(self.literal()?);
            }
            self.expect(Kind::RParen, "`)` closing the IN list")?;
            Expr::In(property, list)
        } else if negate {
            return Err(self.error_at(self.here(), "expected LIKE, BETWEEN or IN after NOT"));
        } else {
            let op = match self.peek() {
                Some(Token {
                    kind: Kind::Op(op), ..
                }) => *op,
                Some(t) => {
                    return Err(self.error_at(
                        t.at,
                        format!("expected a comparison operator, found {}", t.kind),
                    ));
                }
                None => {
                    return Err(
                        self.error_at(self.len, "expected a comparison operator at the end")
                    );
                }
            };
            self.pos += 1;
            let op = match op {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            Expr::Compare(property, op, self.literal()?)
        };
        Ok(if negate { Expr::Not(Box::new(e)) } else { e })
    }
    fn spatial(&mut self, word: &str, op: Option<SpatialOp>) -> Result<Expr, FilterError> {
        self.expect(Kind::LParen, &format!("`(` after {word}"))?;
        let at = self.here();
        match self.peek().cloned() {
            Some(Token {
                kind: Kind::Ident(name),
                ..
            }) if is_geometry_property(&name) => self.pos += 1,
            Some(Token {
                kind: Kind::Ident(name),
                ..
            }) => {
                return Err(self.error_at(
                    at,
                    format!("`{name}` is not a geometry property (use `geometry`)"),
                ));
            }
            _ => return Err(self.error_at(at, format!("{word} takes the geometry property first"))),
        }
        self.expect(Kind::Comma, "`,`")?;
        let at = self.here();
        let geometry = match self.peek().cloned() {
            Some(Token {
                kind: Kind::Geom(g),
                ..
            }) => {
                self.pos += 1;
                g
            }
            _ => {
                return Err(
                    self.error_at(at, "expected a geometry literal such as POINT(130.1 33.1)")
                );
            }
        };
        let expr = match op {
            Some(op) => Expr::Spatial(op, geometry),
            None => {
                let geo::Geometry::Point(p) = geometry else {
                    return Err(self.error_at(at, "DWITHIN takes a POINT"));
                };
                self.expect(Kind::Comma, "`,`")?;
                let at = self.here();
                let distance = match self.literal()? {
                    Literal::Number(d) if d >= 0.0 => d,
                    _ => return Err(self.error_at(at, "DWITHIN takes a distance in metres")),
                };
                if matches!(
                    self.peek(),
                    Some(Token {
                        kind: Kind::Comma,
                        ..
                    })
                ) {
                    self.pos += 1;
                    let at = self.here();
                    if !(self.keyword("meters") || self.keyword("metres") || self.keyword("m")) {
                        return Err(self.error_at(at, "DWITHIN distances are in meters"));
                    }
                }
                Expr::DWithin(p.0, distance)
            }
        };
        self.expect(Kind::RParen, "`)`")?;
        Ok(expr)
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let t = self
            .peek()
            .cloned()
            .ok_or_else(|| self.error_at(self.len, "expected a value at the end"))?;
        self.pos += 1;
        match t.kind {
            Kind::Str(s) => Ok(Literal::Text(s)),
            Kind::Num(n) => Ok(Literal::Number(n)),
            Kind::Ident(s) if !t.quoted && s.eq_ignore_ascii_case("TRUE") => {
                Ok(Literal::Bool(true))
            }
            Kind::Ident(s) if !t.quoted && s.eq_ignore_ascii_case("FALSE") => {
                Ok(Literal::Bool(false))
            }
            other => Err(self.error_at(t.at, format!("expected a value, found {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FieldType;

    fn fields() -> Vec<FieldDef> {
        ["status", "rank", "name", "note"]
            .iter()
            .zip([
                FieldType::Text,
                FieldType::Integer,
                FieldType::Text,
                FieldType::Text,
            ])
            .map(|(n, ty)| FieldDef::new(*n, ty))
            .collect()
    }

    fn check(filter: &str, row: &[Value]) -> bool {
        parse(filter)
            .unwrap()
            .compile(&fields())
            .unwrap()
            .matches(row)
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Text("published".into()),
            Value::Int(3),
            Value::Text("鹿島 O'Brien".into()),
            Value::Null,
        ]
    }

    #[test]
    fn every_operator() {
        let r = row();
        assert!(check("status = 'published'", &r));
        assert!(!check("status <> 'published'", &r));
        assert!(check(
            "rank > 2 AND rank >= 3 AND rank < 4 AND rank <= 3",
            &r
        ));
        assert!(check("rank = 1 OR rank = 3", &r));
        assert!(check("NOT rank = 1", &r));
        assert!(check("rank IN (1, 2, 3)", &r));
        assert!(check("rank NOT IN (1, 2)", &r));
        assert!(check("rank BETWEEN 2 AND 3", &r));
        assert!(!check("rank NOT BETWEEN 2 AND 3", &r));
        assert!(check("name LIKE '鹿島%'", &r));
        assert!(check("name LIKE '%O''Brien'", &r));
        assert!(check("name LIKE '鹿_ %'", &r));
        assert!(check("note IS NULL AND status IS NOT NULL", &r));
        assert!(check(
            "(rank = 1 OR rank = 3) AND \"status\" = 'published'",
            &r
        ));
        // NULL compares as unknown: neither x = v nor NOT x = v admits it.
        assert!(!check("note = 'a'", &r));
        assert!(!check("NOT note = 'a'", &r));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("status = 'published").unwrap_err();
        assert_eq!(e.position, 9);
        let e = parse("status = = 1").unwrap_err();
        assert_eq!(e.position, 9, "{e}");
        let e = parse("rank > 1 AND").unwrap_err();
        assert!(e.message.contains("condition"), "{e}");
        let e = parse("rank ~ 1").unwrap_err();
        assert_eq!(e.position, 5);
        assert_eq!(
            parse("nope = 1").unwrap().compile(&fields()).unwrap_err(),
            "nope"
        );
    }

    #[test]
    fn injection_stays_inside_the_literal() {
        // Quotes, comments and semicolons inside a literal are only text.
        let r = row();
        assert!(!check("status = 'x'' OR ''1''=''1'", &r));
        assert!(!check("status = 'published; DROP TABLE parcels; --'", &r));
        assert!(parse("status = 'a' ; DROP TABLE x").is_err());
        assert!(parse("status = 'a' -- comment").is_err());
    }

    #[test]
    fn spatial_predicates() {
        let square: geo::Geometry<f64> = geo::Rect::new((130.0, 33.0), (130.2, 33.2))
            .to_polygon()
            .into();
        let inside: geo::Geometry<f64> = geo::Point::new(130.1, 33.1).into();
        let outside: geo::Geometry<f64> = geo::Point::new(131.0, 33.1).into();
        let r = row();
        let f = |text: &str, g: &geo::Geometry<f64>| {
            parse(text)
                .unwrap()
                .compile(&fields())
                .unwrap()
                .matches_feature(&r, g)
        };
        assert!(f(
            "S_INTERSECTS(geometry, POLYGON((130 33, 130.2 33, 130.2 33.2, 130 33.2, 130 33)))",
            &inside
        ));
        assert!(!f(
            "S_INTERSECTS(geometry, BBOX(130, 33, 130.2, 33.2))",
            &outside
        ));
        assert!(f(
            "S_WITHIN(geometry, BBOX(130, 33, 130.2, 33.2)) AND rank = 3",
            &inside
        ));
        assert!(f("S_CONTAINS(geometry, POINT(130.1 33.1))", &square));
        assert!(!f("S_CONTAINS(geometry, POINT(131 33.1))", &square));
        // 0.001 degrees of latitude is ~111 m.
        assert!(f(
            "DWITHIN(geometry, POINT(130.1 33.101), 120, meters)",
            &inside
        ));
        assert!(!f(
            "DWITHIN(geometry, POINT(130.1 33.101), 100, meters)",
            &inside
        ));
        let e = parse("S_INTERSECTS(geometry, POLYGON((0 0, 1 1)))").unwrap_err();
        assert!(e.message.contains("closed"), "{e}");
        let env = parse("rank = 3 AND S_INTERSECTS(geometry, BBOX(130, 33, 130.2, 33.2))")
            .unwrap()
            .envelope()
            .unwrap();
        assert_eq!((env.min().x, env.max().y), (130.0, 33.2));
        let again = parse(&parse("S_WITHIN(geometry, POINT(1 2))").unwrap().to_string()).unwrap();
        assert_eq!(again, parse("S_WITHIN(geometry, POINT(1 2))").unwrap());
    }

    #[test]
    fn canonical_text_round_trips() {
        let e = parse("rank in (1,2) and not (status like 'p%')").unwrap();
        let again = parse(&e.to_string()).unwrap();
        assert_eq!(e, again);
    }
}

/// Parses CQL2 JSON (`{"op": "and", "args": [...]}`) into the same expression
/// as CQL2 text. Geometry literals are GeoJSON geometries or `{"bbox": [...]}`.
pub fn parse_json(value: &serde_json::Value) -> Result<Expr, FilterError> {
    let err = |m: String| FilterError {
        position: 0,
        message: m,
    };
    let obj = value
        .as_object()
        .ok_or_else(|| err("a CQL2 JSON expression is an object".into()))?;
    if let Some(b) = obj.get("boolean").or(value.as_bool().map(|_| value)) {
        return b
            .as_bool()
            .map(Expr::Const)
            .ok_or_else(|| err("`boolean` must be true or false".into()));
    }
    let op = obj
        .get("op")
        .and_then(|o| o.as_str())
        .ok_or_else(|| err("missing `op`".into()))?
        .to_ascii_lowercase();
    let args = obj
        .get("args")
        .and_then(|a| a.as_array())
        .ok_or_else(|| err(format!("`{op}` needs an `args` array")))?;
    let property = |v: &serde_json::Value| -> Result<String, FilterError> {
        v.get("property")
            .and_then(|p| p.as_str())
            .map(str::to_string)
            .ok_or_else(|| err(format!("`{op}` takes a {{\"property\": ...}} first")))
    };
    let literal = |v: &serde_json::Value| -> Result<Literal, FilterError> {
        match v {
            serde_json::Value::String(s) => Ok(Literal::Text(s.clone())),
            serde_json::Value::Number(n) => Ok(Literal::Number(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::Bool(b) => Ok(Literal::Bool(*b)),
            other => Err(err(format!("`{other}` is not a value"))),
        }
    };
    let geometry = |v: &serde_json::Value| -> Result<geo::Geometry<f64>, FilterError> {
        if let Some(b) = v.get("bbox").and_then(|b| b.as_array()) {
            let n: Vec<f64> = b.iter().filter_map(|x| x.as_f64()).collect();
            return match n[..] {
                [a, b, c, d] => Ok(geo::Rect::new((a, b), (c, d)).to_polygon().into()),
                _ => Err(err("`bbox` takes four numbers".into())),
            };
        }
        let g: geojson::Geometry = serde_json::from_value(v.clone())
            .map_err(|e| err(format!("not a GeoJSON geometry: {e}")))?;
        geo::Geometry::<f64>::try_from(g).map_err(|e| err(format!("geometry: {e}")))
    };
    let two = || -> Result<(&serde_json::Value, &serde_json::Value), FilterError> {
        match &args[..] {
            [a, b] => Ok((a, b)),
            _ => Err(err(format!("`{op}` takes two arguments"))),
        }
    };
    Ok(match op.as_str() {
        "and" | "or" => {
            let parts = args.iter().map(parse_json).collect::<Result<Vec<_>, _>>()?;
            if op == "and" {
                Expr::And(parts)
            } else {
                Expr::Or(parts)
            }
        }
        "not" => match &args[..] {
            [a] => Expr::Not(Box::new(parse_json(a)?)),
            _ => return Err(err("`not` takes one argument".into())),
        },
        "=" | "<>" | "<" | "<=" | ">" | ">=" => {
            let (a, b) = two()?;
            let cmp = match op.as_str() {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            Expr::Compare(property(a)?, cmp, literal(b)?)
        }
        "like" => {
            let (a, b) = two()?;
            match literal(b)? {
                Literal::Text(s) => Expr::Like(property(a)?, s),
                _ => return Err(err("`like` takes a string pattern".into())),
            }
        }
        "between" => match &args[..] {
            [a, lo, hi] => Expr::Between(property(a)?, literal(lo)?, literal(hi)?),
            _ => return Err(err("`between` takes three arguments".into())),
        },
        "in" => {
            let (a, b) = two()?;
            let list = b
                .as_array()
                .ok_or_else(|| err("`in` takes a list".into()))?;
            Expr::In(
                property(a)?,
                list.iter().map(literal).collect::<Result<_, _>>()?,
            )
        }
        "isnull" => match &args[..] {
            [a] => Expr::IsNull(property(a)?),
            _ => return Err(err("`isNull` takes one argument".into())),
        },
        "s_intersects" | "s_within" | "s_contains" | "s_disjoint" => {
            let (a, b) = two()?;
            if !property(a).is_ok_and(|p| is_geometry_property(&p)) {
                return Err(err(format!(
                    "`{op}` takes {{\"property\": \"geometry\"}} first"
                )));
            }
            let sop = match op.as_str() {
                "s_intersects" => SpatialOp::Intersects,
                "s_within" => SpatialOp::Within,
                "s_contains" => SpatialOp::Contains,
                _ => SpatialOp::Disjoint,
            };
            Expr::Spatial(sop, geometry(b)?)
        }
        other => return Err(err(format!("unsupported operator `{other}`"))),
    })
}
