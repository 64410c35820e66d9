//! The search index of one layer version: normalised values of the fields
//! marked `searchable`, sorted, so that a lookup is a binary search and a
//! walk over the matching prefix, never a scan of the layer. Built once per
//! layer version, when the layer is loaded.

/// Folds the ways people type lot numbers: full-width digits and letters,
/// the many dashes of Japanese text (－ ー ‐ − ― ‑), and surrounding spaces.
pub fn normalize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
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

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
