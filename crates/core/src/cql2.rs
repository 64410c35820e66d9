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
            Expr::Const(_) => {}
        }
    }
}

impl CompiledExpr {
    /// Whether a row passes. Comparisons with NULL are false (SQL semantics, with
    /// unknown treated as false), so `NOT (x = 1)` does not admit rows where x is NULL.
    pub fn matches(&self, row: &[Value]) -> bool {
        self.eval(row).unwrap_or(false)
    }

    fn eval(&self, row: &[Value]) -> Option<bool> {
        let get = |i: &usize| row.get(*i).filter(|v| !v.is_null());
        match self {
            Expr::Const(b) => Some(*b),
            Expr::And(v) => {
                let mut unknown = false;
                for e in v {
                    match e.eval(row) {
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
                    match e.eval(row) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown { None } else { Some(false) }
            }
            Expr::Not(e) => e.eval(row).map(|b| !b),
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
        }
    }
}

// ---- lexer and parser ----

#[derive(Debug, Clone, PartialEq)]
enum Kind {
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
                out.push(Token {
                    kind: Kind::Ident(text[bytes[start].0..end].to_string()),
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
            .map(|(n, ty)| FieldDef {
                name: n.to_string(),
                ty,
                title: None,
                source: None,
                required: false,
                searchable: false,
                personal: false,
            })
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
    fn canonical_text_round_trips() {
        let e = parse("rank in (1,2) and not (status like 'p%')").unwrap();
        let again = parse(&e.to_string()).unwrap();
        assert_eq!(e, again);
    }
}
