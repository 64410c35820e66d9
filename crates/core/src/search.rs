//! The search index of one layer version: normalised values of the fields
//! marked `searchable`, sorted, so that a lookup is a binary search and a
//! walk over the matching prefix, never a scan of the layer. Built once per
//! layer version, when the layer is loaded.

/// Folds the ways people type lot numbers and place names: full-width
/// digits and letters, the many dashes of Japanese text (－ ー ‐ − ― ‑),
/// 番, 番地, の and ノ between digits (`1234番5`, `1234番地5`, `1234の5` are
/// `1234-5`; a trailing `番` or `番地` goes), the optional 大字 and 字 before
/// a district name, and surrounding spaces. Index values and queries are
/// folded alike.
pub fn normalize(s: &str) -> String {
    let folded = fold_width(s);
    let lots = fold_lot_numbers(&folded);
    lots.split(' ')
        .map(|token| {
            token
                .strip_prefix("大字")
                .or_else(|| token.strip_prefix('字'))
                .filter(|rest| !rest.is_empty())
                .unwrap_or(token)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The tokens of a normalised query: `中村282-3` (a name run into a lot
/// number, as people type it) is `中村` and `282-3`.
pub fn query_tokens(normalized: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    for token in normalized.split_whitespace() {
        let lot_start = token
            .char_indices()
            .find(|(i, c)| {
                c.is_ascii_digit()
                    && *i > 0
                    && token[*i..].chars().all(|c| c.is_ascii_digit() || c == '-')
            })
            .map(|(i, _)| i);
        match lot_start {
            Some(i) if !token[..i].ends_with(|c: char| c.is_ascii_digit() || c == '-') => {
                tokens.push(&token[..i]);
                tokens.push(&token[i..]);
            }
            _ => tokens.push(token),
        }
    }
    tokens
}

/// `1234番5`, `1234番地5`, `1234の5`, `1234ノ5` → `1234-5`; `1234番(地)` → `1234`.
fn fold_lot_numbers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let after_digit = out.ends_with(|c: char| c.is_ascii_digit());
        let marker = match chars[i] {
            '番' if chars.get(i + 1) == Some(&'地') => 2,
            '番' | 'の' | 'ノ' => 1,
            _ => 0,
        };
        if after_digit && marker > 0 {
            match chars.get(i + marker) {
                Some(c) if c.is_ascii_digit() => out.push('-'),
                // 番 and 番地 end a lot number; の and ノ are words there.
                None | Some(' ') if chars[i] == '番' => {}
                _ => {
                    out.extend(&chars[i..i + marker]);
                }
            }
            i += marker;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn fold_width(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            // Katakana to hiragana: readings match however they are typed.
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' | '\u{30FC}' | '\u{FF70}' => '-',
            c => c,
        })
        .map(|c| if c == '\u{FF0D}' { '-' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// One searchable value: its normalised text, the field it is in and the
/// position of its feature in the layer.
#[derive(Debug, Clone)]
struct Entry {
    key: Box<str>,
    field: u32,
    feature: u32,
}

#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    entries: Vec<Entry>,
}

/// A feature whose value starts with the looked-up token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub feature: u32,
    pub field: u32,
    /// The whole value equals the token.
    pub exact: bool,
}

impl SearchIndex {
    /// `values` yields (feature position, field index, raw text).
    pub fn build<'a>(values: impl Iterator<Item = (u32, u32, &'a str)>) -> SearchIndex {
        let mut entries: Vec<Entry> = values
            .filter(|(_, _, text)| !text.trim().is_empty())
            .map(|(feature, field, text)| Entry {
                key: normalize(text).into_boxed_str(),
                field,
                feature,
            })
            .collect();
        entries.sort_unstable_by(|a, b| (&a.key, a.feature).cmp(&(&b.key, b.feature)));
        entries.shrink_to_fit();
        SearchIndex { entries }
    }

    /// Values starting with `token` (already normalised): exact ones first,
    /// then the others in key order.
    pub fn prefix<'a>(&'a self, token: &'a str) -> impl Iterator<Item = Hit> + 'a {
        let start = self.entries.partition_point(|e| &*e.key < token);
        self.entries[start..]
            .iter()
            .take_while(move |e| e.key.starts_with(token))
            .map(move |e| Hit {
                feature: e.feature,
                field: e.field,
                exact: &*e.key == token,
            })
    }

    /// How many values start with `token`: two binary searches, no walk.
    pub fn prefix_count(&self, token: &str) -> usize {
        let start = self.entries.partition_point(|e| &*e.key < token);
        let rest = &self.entries[start..];
        rest.partition_point(|e| e.key.starts_with(token))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A place people look for by name (a district, a road): one distinct value
/// of a field marked `place`, with the extent and count of its features.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub field: u32,
    pub value: String,
    /// Its reading (読み仮名), when the layer gives one.
    pub reading: Option<String>,
    /// Longitude/latitude.
    pub bounds: crate::Bounds,
    pub features: u64,
}

/// The places of one layer version, found by a prefix of their normalised
/// name with the spaces taken out (`国道207` finds `国道207号`, `大字高津`
/// finds `高津原`). Built once per layer version, like [`SearchIndex`].
#[derive(Debug, Clone, Default)]
pub struct PlaceIndex {
    places: Vec<Place>,
    keys: Vec<(Box<str>, u32)>,
}

/// A normalised text with its spaces taken out: how places are keyed.
pub fn compact(normalized: &str) -> String {
    normalized.split_whitespace().collect()
}

impl PlaceIndex {
    /// `values` yields (field, raw value, its reading, longitude/latitude
    /// bounds) per feature.
    pub fn build<'a>(
        values: impl Iterator<Item = (u32, &'a str, Option<&'a str>, crate::Bounds)>,
    ) -> PlaceIndex {
        let mut by_value: std::collections::HashMap<(u32, &str), usize> = Default::default();
        let mut places: Vec<Place> = Vec::new();
        for (field, value, reading, bounds) in values {
            if value.trim().is_empty() || bounds.is_empty() {
                continue;
            }
            let i = *by_value.entry((field, value)).or_insert_with(|| {
                places.push(Place {
                    field,
                    value: value.to_string(),
                    reading: None,
                    bounds: crate::Bounds::EMPTY,
                    features: 0,
                });
                places.len() - 1
            });
            if places[i].reading.is_none() {
                places[i].reading = reading.filter(|r| !r.trim().is_empty()).map(str::to_string);
            }
            places[i].bounds.expand(&bounds);
            places[i].features += 1;
        }
        PlaceIndex::of_places(places)
    }

    /// An index over places whose extents are already known (a database's
    /// `GROUP BY`).
    pub fn of_places(mut places: Vec<Place>) -> PlaceIndex {
        // One order whatever built them: the same answers from every store.
        places.sort_by(|a, b| (a.field, &a.value).cmp(&(b.field, &b.value)));
        let mut keys: Vec<(Box<str>, u32)> = Vec::with_capacity(places.len() * 2);
        for (i, p) in places.iter().enumerate() {
            for name in std::iter::once(&p.value).chain(&p.reading) {
                keys.push((compact(&normalize(name)).into_boxed_str(), i as u32));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        PlaceIndex { places, keys }
    }

    /// The places whose compact name starts with `query` (compact and
    /// normalised), exact ones first; at most `limit`.
    pub fn lookup(&self, query: &str, limit: usize) -> Vec<(&Place, bool)> {
        let start = self.keys.partition_point(|(k, _)| &**k < query);
        let mut found: Vec<(u32, bool)> = self.keys[start..]
            .iter()
            .take_while(|(k, _)| k.starts_with(query))
            // Keys equal to the query sort first; a place has at most two
            // keys (name, reading): a short query walks a bounded run.
            .take(limit.saturating_mul(2))
            .map(|(k, i)| (*i, &**k == query))
            .collect();
        found.sort_by_key(|(i, exact)| (!exact, *i));
        // A place found by its name and by its reading is listed once.
        let mut seen = std::collections::HashSet::new();
        found.retain(|(i, _)| seen.insert(*i));
        found.truncate(limit);
        found
            .into_iter()
            .map(|(i, exact)| (&self.places[i as usize], exact))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_and_dashes_fold() {
        assert_eq!(normalize("　１２３４－５ "), "1234-5");
        assert_eq!(normalize("1234ー5"), "1234-5");
        assert_eq!(normalize("ＡＢ"), "ab");
        assert_eq!(normalize("タカツハラ"), "たかつはら");
    }

    #[test]
    fn lot_numbers_fold_as_people_write_them() {
        for written in [
            "1234-5",
            "1234番5",
            "1234番地5",
            "1234の5",
            "1234ノ5",
            "１２３４番地５",
        ] {
            assert_eq!(normalize(written), "1234-5", "{written}");
        }
        assert_eq!(normalize("1234番"), "1234");
        assert_eq!(normalize("1234番地"), "1234");
        assert_eq!(normalize("一番町"), "一番町");
        assert_eq!(normalize("ひばりの丘"), "ひばりの丘");
        assert_eq!(normalize("大字高津原"), "高津原");
        assert_eq!(normalize("字中村 12の3"), "中村 12-3");
        assert_eq!(normalize("大字"), "大字");
        assert_eq!(
            query_tokens(&normalize("中村282番3")),
            vec!["中村", "282-3"]
        );
        assert_eq!(query_tokens("国道207号"), vec!["国道207号"]);
        assert_eq!(query_tokens("282-3"), vec!["282-3"]);
        assert_eq!(query_tokens("a1 b"), vec!["a", "1", "b"]);
    }

    #[test]
    fn places_are_one_entry_per_value_with_their_extent() {
        let b = |x: f64| crate::Bounds {
            min_x: x,
            min_y: 0.0,
            max_x: x + 1.0,
            max_y: 1.0,
        };
        let index = PlaceIndex::build(
            [
                (0, "国道207号", None, b(0.0)),
                (0, "国道207号", None, b(5.0)),
                (0, "国道444号", None, b(2.0)),
                (1, "大字高津原", Some("タカツハラ"), b(9.0)),
                (1, "", None, b(1.0)),
            ]
            .into_iter(),
        );
        assert_eq!(index.len(), 3);
        let found = index.lookup(&compact(&normalize("国道207")), 10);
        assert_eq!(found.len(), 1);
        let (road, exact) = found[0];
        assert!(!exact);
        assert_eq!(
            (road.bounds.min_x, road.bounds.max_x, road.features),
            (0.0, 6.0, 2)
        );
        assert_eq!(index.lookup(&compact(&normalize("国道")), 10).len(), 2);
        let district = index.lookup(&compact(&normalize("高津原")), 10);
        assert_eq!(district[0].0.value, "大字高津原");
        assert!(district[0].1, "大字 is optional");
        assert!(index.lookup("中村", 10).is_empty());
        // By its reading, in katakana or hiragana, whole or begun.
        for typed in ["たかつはら", "タカツハラ", "たかつ"] {
            let found = index.lookup(&compact(&normalize(typed)), 10);
            assert_eq!(found.len(), 1, "{typed}");
            assert_eq!(found[0].0.value, "大字高津原", "{typed}");
        }
    }

    #[test]
    fn prefix_walks_exact_first() {
        let index = SearchIndex::build(
            [
                (0, 0, "12-3"),
                (1, 0, "12"),
                (2, 0, "123"),
                (3, 1, "中村"),
                (4, 0, "2"),
            ]
            .into_iter(),
        );
        let hits: Vec<_> = index.prefix("12").collect();
        assert_eq!(
            hits.iter().map(|h| h.feature).collect::<Vec<_>>(),
            vec![1, 0, 2]
        );
        assert!(hits[0].exact && !hits[1].exact);
        assert_eq!(index.prefix("中").count(), 1);
        assert_eq!(index.prefix("9").count(), 0);
    }
}
