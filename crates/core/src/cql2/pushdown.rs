//! What of a compiled filter a database can check exactly as [`Expr::matches`]
//! does, so that a layer served from the database is asked for fewer rows.
//! Only top-level `AND` conjuncts comparing one field with literals of the
//! field's own type qualify; the filter is still evaluated on every row the
//! database returns, so a condition left out costs time, never correctness.

use super::{CmpOp, CompiledExpr, Expr, FieldRef, Literal, Scalar};
use crate::{FieldDef, FieldType};

/// A literal as the database receives it (a bound parameter).
#[derive(Debug, Clone, PartialEq)]
pub enum PushValue {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// One condition a database checks with the same three-valued result as
/// chizu: NULL fields fail every comparison, text compares byte-wise
/// (`COLLATE "C"` in PostgreSQL), numbers as f64.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Compare {
        field: usize,
        op: CmpOp,
        value: PushValue,
    },
    In {
        field: usize,
        values: Vec<PushValue>,
    },
    IsNull {
        field: usize,
    },
}

impl CompiledExpr {
    /// The conjuncts of this filter that [`Pushed`] can express.
    pub fn pushable(&self, fields: &[FieldDef]) -> Vec<Pushed> {
        let mut out = Vec::new();
        self.push_into(fields, &mut out);
        out
    }

    fn push_into(&self, fields: &[FieldDef], out: &mut Vec<Pushed>) {
        match self {
            Expr::And(parts) => parts.iter().for_each(|p| p.push_into(fields, out)),
            Expr::Compare(a, op, b) => {
                let (field, op, literal) = match (a, b) {
                    (Scalar::Property(f), Scalar::Literal(l)) => (f, *op, l),
                    (Scalar::Literal(l), Scalar::Property(f)) => (f, flip(*op), l),
                    _ => return,
                };
                if let Some(value) = typed(fields, field, literal) {
                    out.push(Pushed::Compare {
                        field: field.index,
                        op,
                        value,
                    });
                }
            }
            Expr::Between(Scalar::Property(f), Scalar::Literal(lo), Scalar::Literal(hi)) => {
                if let (Some(lo), Some(hi)) = (typed(fields, f, lo), typed(fields, f, hi)) {
                    out.push(Pushed::Compare {
                        field: f.index,
                        op: CmpOp::Ge,
                        value: lo,
                    });
                    out.push(Pushed::Compare {
                        field: f.index,
                        op: CmpOp::Le,
                        value: hi,
                    });
                }
            }
            Expr::In(Scalar::Property(f), list) => {
                let values: Option<Vec<PushValue>> = (list.iter())
                    .map(|item| match item {
                        Scalar::Literal(l) => typed(fields, f, l),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = values.filter(|v| !v.is_empty()) {
                    out.push(Pushed::In {
                        field: f.index,
                        values,
                    });
                }
            }
            Expr::IsNull(Scalar::Property(f)) => out.push(Pushed::IsNull { field: f.index }),
            _ => {}
        }
    }

    /// Whether this filter looks at the feature's geometry.
    pub fn reads_geometry(&self) -> bool {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().any(|e| e.reads_geometry()),
            Expr::Not(e) => e.reads_geometry(),
            Expr::Spatial(..) | Expr::DWithin(..) => true,
            Expr::Compare(a, _, b) => scalar_geometry(a) || scalar_geometry(b),
            _ => false,
        }
    }

    /// The fields this filter reads, ascending, without repeats.
    pub fn fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit_fields(&mut |f| out.push(f.index));
        out.sort_unstable();
        out.dedup();
        out
    }

    fn visit_fields(&self, each: &mut dyn FnMut(&FieldRef)) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit_fields(each)),
            Expr::Not(e) => e.visit_fields(each),
            Expr::Const(_) => {}
            Expr::Compare(a, _, b) | Expr::Spatial(_, a, b) | Expr::DWithin(a, b, _) => {
                scalar_fields(a, each);
                scalar_fields(b, each);
            }
            Expr::Like(a, _) | Expr::IsNull(a) | Expr::Truth(a) => scalar_fields(a, each),
            Expr::Between(a, b, c) => [a, b, c].into_iter().for_each(|s| scalar_fields(s, each)),
            Expr::In(a, list) => {
                scalar_fields(a, each);
                list.iter().for_each(|s| scalar_fields(s, each));
            }
            Expr::Temporal(_, a, b) => {
                for t in [a, b] {
                    match t {
                        super::Temporal::Instant(s) => scalar_fields(s, each),
                        super::Temporal::Interval(s, e) => {
                            scalar_fields(s, each);
                            scalar_fields(e, each);
                        }
                    }
                }
            }
        }
    }
}

fn scalar_fields(s: &Scalar<FieldRef>, each: &mut dyn FnMut(&FieldRef)) {
    match s {
        Scalar::Property(f) => each(f),
        Scalar::Arith(_, a, b) => {
            scalar_fields(a, each);
            scalar_fields(b, each);
        }
        Scalar::CaseI(a) | Scalar::AccentI(a) => scalar_fields(a, each),
        Scalar::FeatureGeometry | Scalar::Literal(_) | Scalar::Geometry(_) => {}
    }
}

fn scalar_geometry(s: &Scalar<FieldRef>) -> bool {
    matches!(s, Scalar::FeatureGeometry | Scalar::Geometry(_))
}

/// `literal op field` is `field flip(op) literal`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// The literal as a parameter of the field's own type; `None` when chizu
/// would compare them some other way (dates, mixed types, NULL).
fn typed(fields: &[FieldDef], field: &FieldRef, literal: &Literal) -> Option<PushValue> {
    let ty = fields.get(field.index)?.ty;
    match (ty, literal) {
        _ if field.is_date => None,
        (FieldType::Text, Literal::Text(t)) => Some(PushValue::Text(t.clone())),
        (FieldType::Integer | FieldType::Float, Literal::Number(n)) if n.is_finite() => {
            Some(PushValue::Number(*n))
        }
        (FieldType::Boolean, Literal::Bool(b)) => Some(PushValue::Bool(*b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FieldDef;

    fn fields() -> Vec<FieldDef> {
        let f = |name: &str, ty| -> FieldDef {
            serde_json::from_value(serde_json::json!({"name": name, "type": ty})).unwrap()
        };
        vec![
            f("name", "text"),
            f("n", "integer"),
            f("ok", "boolean"),
            f("on", "date"),
        ]
    }

    fn pushed(filter: &str) -> Vec<Pushed> {
        let fields = fields();
        crate::cql2::parse(filter)
            .unwrap()
            .compile(&fields)
            .unwrap()
            .pushable(&fields)
    }

    #[test]
    fn only_exact_conjuncts_are_pushed() {
        assert_eq!(pushed("name = 'a' AND 3 < n").len(), 2);
        assert_eq!(
            pushed("3 < n")[0],
            Pushed::Compare {
                field: 1,
                op: CmpOp::Gt,
                value: PushValue::Number(3.0)
            }
        );
        assert_eq!(pushed("n BETWEEN 1 AND 5").len(), 2);
        assert_eq!(pushed("name IN ('a', 'b') AND ok IS NULL").len(), 2);
        // Left to chizu: OR, NOT, LIKE, mixed types, dates, functions.
        for filter in [
            "name = 'a' OR n = 1",
            "NOT name = 'a'",
            "name LIKE 'a%'",
            "name = 1",
            "on = DATE('2020-01-01')",
            "CASEI(name) = 'a'",
            "n + 1 = 2",
        ] {
            assert!(pushed(filter).is_empty(), "{filter}");
        }
        // Part of an AND still goes.
        assert_eq!(pushed("name LIKE 'a%' AND n = 2").len(), 1);
    }

    #[test]
    fn fields_read_by_a_filter() {
        let fields = fields();
        let e = crate::cql2::parse("n > 1 OR (CASEI(name) = 'a' AND ok)")
            .unwrap()
            .compile(&fields)
            .unwrap();
        assert_eq!(e.fields(), vec![0, 1, 2]);
        assert!(!e.reads_geometry());
        let spatial = crate::cql2::parse("n > 1 AND S_INTERSECTS(geometry, POINT(1 2))")
            .unwrap()
            .compile(&fields)
            .unwrap();
        assert!(spatial.reads_geometry());
    }
}
