use super::*;
use crate::config::{FieldDef, FieldType};
use crate::value::Value;

fn fields() -> Vec<FieldDef> {
    [
        ("status", FieldType::Text),
        ("rank", FieldType::Integer),
        ("name", FieldType::Text),
        ("note", FieldType::Text),
        ("built", FieldType::Date),
        ("depth", FieldType::Float),
        ("pool", FieldType::Boolean),
    ]
    .into_iter()
    .map(|(n, ty)| FieldDef::new(n, ty))
    .collect()
}

fn row() -> Vec<Value> {
    vec![
        Value::Text("published".into()),
        Value::Int(3),
        Value::Text("鹿島 O'Brien".into()),
        Value::Null,
        Value::Text("2015-06-01".into()),
        Value::Float(2.5),
        Value::Bool(true),
    ]
}

fn check(filter: &str, row: &[Value]) -> bool {
    parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .compile(&fields())
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(row)
}

#[test]
fn every_comparison() {
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
    assert!(check("pool", &r) && check("pool = TRUE", &r));
}

#[test]
fn arithmetic_property_property_and_functions() {
    let r = row();
    assert!(check("rank - 1 = 2", &r));
    assert!(check("rank * 2 > depth + 3", &r));
    assert!(check("depth < (rank - 0.4)", &r));
    assert!(check("rank > depth", &r));
    assert!(!check("rank / 0 = 1", &r), "division by zero is unknown");
    assert!(check("CASEI(status) = CASEI('PUBLISHED')", &r));
    assert!(check(
        "CASEI(status) IN (CASEI('Draft'), CASEI('Published'))",
        &r
    ));
    assert!(check("CASEI(name) LIKE CASEI('%o''brien')", &r));
    assert!(check("ACCENTI(status) = ACCENTI('públishéd')", &r));
    assert!(check("ACCENTI(status) = ACCENTI('ｐｕｂｌｉｓｈｅｄ')", &r));
}

#[test]
fn dates_and_temporal_functions() {
    let r = row();
    assert!(check("built >= DATE('2015-01-01')", &r));
    assert!(check("built = DATE('2015-06-01')", &r));
    assert!(check("built > TIMESTAMP('2015-05-31T23:00:00Z')", &r));
    assert!(check("T_AFTER(built, DATE('2015-01-01'))", &r));
    assert!(check(
        "T_BEFORE(built, TIMESTAMP('2016-01-01T00:00:00Z'))",
        &r
    ));
    assert!(check(
        "T_DURING(built, INTERVAL('2015-01-01', '2016-01-01'))",
        &r
    ));
    assert!(check(
        "T_INTERSECTS(built, INTERVAL('..', '2015-06-01'))",
        &r
    ));
    assert!(!check(
        "T_DISJOINT(built, INTERVAL('2015-06-01', '..'))",
        &r
    ));
    assert!(check("T_EQUALS(built, DATE('2015-06-01'))", &r));
    assert!(parse("built = DATE('2015-02-30')").is_err());
}

#[test]
fn every_spatial_relation() {
    let square: geo::Geometry<f64> = geo::Rect::new((130.0, 33.0), (130.2, 33.2))
        .to_polygon()
        .into();
    let inside: geo::Geometry<f64> = geo::Point::new(130.1, 33.1).into();
    let r = row();
    let f = |text: &str, g: &geo::Geometry<f64>| {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .compile(&fields())
            .unwrap()
            .matches_feature(&r, g)
    };
    assert!(f(
        "S_INTERSECTS(geometry, BBOX(130, 33, 130.2, 33.2))",
        &inside
    ));
    assert!(f(
        "S_INTERSECTS(geometry, BBOX(130, 33, 0, 130.2, 33.2, 10))",
        &inside
    ));
    assert!(!f("S_DISJOINT(geometry, POINT(130.1 33.1))", &inside));
    assert!(f(
        "S_WITHIN(geometry, BBOX(130, 33, 130.2, 33.2)) AND rank = 3",
        &inside
    ));
    assert!(
        f("S_CONTAINS(BBOX(130, 33, 130.2, 33.2), geometry)", &inside),
        "literal first"
    );
    assert!(f("S_CONTAINS(geometry, POINT(130.1 33.1))", &square));
    assert!(f(
        "S_EQUALS(geometry, POLYGON((130 33, 130.2 33, 130.2 33.2, 130 33.2, 130 33)))",
        &square
    ));
    assert!(f(
        "S_TOUCHES(geometry, LINESTRING(130.2 33, 130.3 33))",
        &square
    ));
    assert!(f(
        "S_CROSSES(LINESTRING(129.9 33.1, 130.1 33.1), geometry)",
        &square
    ));
    assert!(f(
        "S_OVERLAPS(geometry, BBOX(130.1, 33.1, 130.3, 33.3))",
        &square
    ));
    assert!(f(
        "S_WITHIN(geometry, POLYGON Z((130 33 1, 130.2 33 1, 130.2 33.2 1, 130 33.2 1, 130 33 1)))",
        &inside
    ));
    // 0.001 degrees of latitude is ~111 m.
    assert!(f(
        "DWITHIN(geometry, POINT(130.1 33.101), 120, meters)",
        &inside
    ));
    assert!(!f(
        "DWITHIN(geometry, POINT(130.1 33.101), 100, meters)",
        &inside
    ));
    let env = parse("rank = 3 AND S_INTERSECTS(geometry, BBOX(130, 33, 130.2, 33.2))")
        .unwrap()
        .envelope()
        .unwrap();
    assert_eq!((env.min().x, env.max().y), (130.0, 33.2));
    assert!(
        parse("S_DISJOINT(geometry, POINT(1 2))")
            .unwrap()
            .envelope()
            .is_none()
    );
}

#[test]
fn json_is_the_same_filter() {
    let pairs = [
        (
            r#"{"op":"=","args":[{"property":"status"},"published"]}"#,
            "status = 'published'",
        ),
        (
            r#"{"op":"and","args":[{"op":">","args":[{"property":"rank"},2]},{"op":"like","args":[{"property":"name"},"鹿%"]}]}"#,
            "rank > 2 AND name LIKE '鹿%'",
        ),
        (
            r#"{"op":"s_intersects","args":[{"property":"geometry"},{"bbox":[130,33,130.2,33.2]}]}"#,
            "S_INTERSECTS(geometry, BBOX(130, 33, 130.2, 33.2))",
        ),
        (
            r#"{"op":"t_after","args":[{"property":"built"},{"date":"2015-01-01"}]}"#,
            "T_AFTER(built, DATE('2015-01-01'))",
        ),
    ];
    for (json, text) in pairs {
        assert_eq!(parse_json(json).unwrap(), parse(text).unwrap(), "{json}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let kind = |t: &str| {
        parse(t)
            .and_then(|e| e.compile(&fields()))
            .unwrap_err()
            .kind
    };
    assert_eq!(kind("status = 'published"), FilterErrorKind::Syntax);
    assert_eq!(kind("status = = 1"), FilterErrorKind::Syntax);
    assert_eq!(kind("rank > 1 AND"), FilterErrorKind::Syntax);
    assert_eq!(kind("nope = 1"), FilterErrorKind::UnknownProperty);
    assert_eq!(
        kind("Foo(geometry) = TRUE"),
        FilterErrorKind::UnknownFunction
    );
    assert_eq!(kind("avg(rank) < 4"), FilterErrorKind::UnknownFunction);
    let e = parse("nope = 1").unwrap().compile(&fields()).unwrap_err();
    assert_eq!(e.message, "unknown property `nope`");
}

#[test]
fn hostile_input_is_bounded() {
    let deep = format!("{}status = '1'{}", "(".repeat(2000), ")".repeat(2000));
    assert_eq!(parse(&deep).unwrap_err().kind, FilterErrorKind::TooComplex);
    let nots = format!("{}status = '1'", "NOT ".repeat(10_000));
    assert_eq!(parse(&nots).unwrap_err().kind, FilterErrorKind::TooComplex);
    let long = vec!["rank = 1"; 5000].join(" AND ");
    assert_eq!(parse(&long).unwrap_err().kind, FilterErrorKind::TooComplex);
    let huge = format!("name = '{}'", "x".repeat(100_000));
    assert_eq!(parse(&huge).unwrap_err().kind, FilterErrorKind::TooComplex);
    let deep_json = format!(
        "{}true{}",
        "{\"op\":\"not\",\"args\":[".repeat(100),
        "]}".repeat(100)
    );
    assert_eq!(
        parse_json(&deep_json).unwrap_err().kind,
        FilterErrorKind::TooComplex
    );
    // Parentheses inside strings are text, not nesting.
    assert!(check(&format!("name <> '{}'", "(".repeat(500)), &row()));
    // Within the limits, nesting still works.
    assert!(check(
        &format!("{}rank = 3{}", "(".repeat(20), ")".repeat(20)),
        &row()
    ));
}

#[test]
fn injection_stays_inside_the_literal() {
    let r = row();
    assert!(!check("status = 'x'' OR ''1''=''1'", &r));
    assert!(!check("status = 'published; DROP TABLE parcels; --'", &r));
    assert!(parse("status = 'a' ; DROP TABLE x").is_err());
}

#[test]
fn canonical_text_round_trips() {
    for text in [
        "rank in (1,2) and not (status like 'p%')",
        "CASEI(name) LIKE CASEI('%a%') OR built > DATE('2015-01-01')",
        "T_DURING(INTERVAL(built, '..'), INTERVAL('2015-01-01', '2016-01-01T10:00:00Z'))",
        "rank * 2 + 1 > depth AND S_WITHIN(geometry, POINT(1 2))",
    ] {
        let e = parse(text).unwrap();
        let again = parse(&e.to_string()).unwrap_or_else(|err| panic!("{e}: {err}"));
        assert_eq!(e, again, "{text} -> {e}");
    }
}

/// Every example of the OGC CQL2 standard parses, text and JSON: a filter is
/// either accepted or refused for a name it does not know, never for syntax.
#[test]
fn the_standard_examples_parse() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cql2-examples");
    let Ok(toml_text) = std::fs::read_to_string(dir.join("examples.toml")) else {
        eprintln!("skipped: {} is not here", dir.display());
        return;
    };
    let examples: toml::Table = toml::from_str(&toml_text).unwrap();
    let mut n = 0;
    let refused_only_for_names = |name: &str, lang: &str, result: Result<Expr, FilterError>| {
        if let Err(e) = result {
            assert_eq!(
                e.kind,
                FilterErrorKind::UnknownFunction,
                "{name} ({lang}): {e}"
            );
        }
    };
    for (name, example) in &examples {
        let text = example["cql2_text"].as_str().unwrap();
        let json = example["cql2_json"].as_str().unwrap();
        refused_only_for_names(name, "text", parse(text));
        refused_only_for_names(name, "json", parse_json(json));
        n += 1;
    }
    // The text folder holds alternative spellings too.
    for entry in std::fs::read_dir(dir.join("text")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        refused_only_for_names(&entry.file_name().to_string_lossy(), "text", parse(&text));
    }
    assert!(n >= 100, "{n} examples");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {

        /// Any text: an answer, never a panic.
        #[test]
        fn any_text(text in "\\PC{0,200}") {
            if let Ok(e) = parse(&text) {
                let _ = e.compile(&fields()).map(|c| c.matches(&row()));
            }
        }

        /// Text made of CQL2's own pieces reaches deeper into the parser.
        #[test]
        fn cql2_shaped_text(parts in proptest::collection::vec(prop_oneof![
            Just("("), Just(")"), Just(" AND "), Just(" OR "), Just("NOT "), Just("rank"),
            Just(" = "), Just(" < "), Just("3"), Just("'a'"), Just(" LIKE "), Just("'%_'"),
            Just("CASEI("), Just("S_WITHIN(geometry, "), Just("POINT(1 2)"), Just(", "),
            Just("BBOX(1,2,3,4)"), Just("T_AFTER("), Just("DATE('2020-01-01')"), Just("built"),
            Just(" IN ("), Just(" BETWEEN "), Just(" IS NULL"), Just("-"), Just("+"), Just("*"),
        ], 0..40)) {
            let text: String = parts.concat();
            if let Ok(e) = parse(&text) {
                if let Ok(c) = e.compile(&fields()) {
                    let g: geo::Geometry<f64> = geo::Point::new(1.0, 2.0).into();
                    let _ = c.matches_feature(&row(), &g);
                }
                prop_assert!(parse(&e.to_string()).is_ok(), "{} -> {}", text, e);
            }
        }

        #[test]
        fn any_json(text in "\\PC{0,200}") {
            let _ = parse_json(&text);
        }
    }
}
