//! `LIKE` without backtracking.
//!
//! A pattern is cut at its `%`s into segments (runs of characters and `_`).
//! The first segment must match at the start and the last at the end (unless
//! the pattern starts or ends with `%`); every segment between is matched at
//! its leftmost place after the one before. Leftmost is always right for
//! such patterns, so each segment is searched once: linear in the value for
//! segments without `_` (`str::find`), and at worst value length times
//! segment length with `_`. The old recursive matcher took 52 s of CPU for
//! `'%%%%%%%%%%%%%%Z'`; this takes microseconds.

use super::fold;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `_`: any one character.
    One,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LikePattern {
    /// The pattern as written (for the canonical text).
    pub source: String,
    pub case_insensitive: bool,
    pub accent_insensitive: bool,
    segments: Vec<Vec<Token>>,
    anchored_start: bool,
    anchored_end: bool,
    /// The segments as text when none has `_`: plain string search suffices.
    literal_texts: Option<Vec<String>>,
}

impl LikePattern {
    pub fn new(source: &str, case_insensitive: bool, accent_insensitive: bool) -> LikePattern {
        let folded = fold::apply(source, case_insensitive, accent_insensitive);
        let mut segments = vec![Vec::new()];
        let mut chars = folded.chars();
        let (mut anchored_start, mut anchored_end) = (true, true);
        let mut first = true;
        while let Some(c) = chars.next() {
            let token = match c {
                '%' => {
                    if first {
                        anchored_start = false;
                    }
                    anchored_end = false;
                    if segments.last().is_some_and(|s| !s.is_empty()) {
                        segments.push(Vec::new());
                    }
                    first = false;
                    continue;
                }
                '_' => Token::One,
                '\\' => Token::Char(chars.next().unwrap_or('\\')),
                c => Token::Char(c),
            };
            first = false;
            anchored_end = true;
            if let Some(last) = segments.last_mut() {
                last.push(token);
            }
        }
        if segments.len() > 1 && segments.last().is_some_and(|s| s.is_empty()) {
            segments.pop();
        }
        let literal_texts = segments
            .iter()
            .map(|s| {
                s.iter()
                    .map(|t| match t {
                        Token::Char(c) => Some(*c),
                        Token::One => None,
                    })
                    .collect::<Option<String>>()
            })
            .collect::<Option<Vec<String>>>();
        LikePattern {
            source: source.to_string(),
            case_insensitive,
            accent_insensitive,
            segments,
            anchored_start,
            anchored_end,
            literal_texts,
        }
    }

    /// Whether `value` (unfolded) matches.
    pub fn matches(&self, value: &str) -> bool {
        let folded;
        let value = if self.case_insensitive || self.accent_insensitive {
            folded = fold::apply(value, self.case_insensitive, self.accent_insensitive);
            folded.as_str()
        } else {
            value
        };
        if let Some(texts) = &self.literal_texts {
            self.run(value, texts)
        } else {
            let chars: Vec<char> = value.chars().collect();
            self.run_tokens(&chars)
        }
    }

    /// The segment walk over string slices.
    fn run(&self, value: &str, segments: &[String]) -> bool {
        let n = segments.len();
        let mut pos = 0;
        for (k, seg) in segments.iter().enumerate() {
            let rest = &value[pos..];
            let last = k + 1 == n;
            if last && self.anchored_end {
                let Some(start) = rest.len().checked_sub(seg.len()) else {
                    return false;
                };
                if k == 0 && self.anchored_start {
                    return rest == seg;
                }
                return rest.is_char_boundary(start) && rest[start..] == **seg;
            }
            if k == 0 && self.anchored_start {
                if !rest.starts_with(seg.as_str()) {
                    return false;
                }
                pos += seg.len();
            } else {
                match rest.find(seg.as_str()) {
                    Some(at) => pos += at + seg.len(),
                    None => return false,
                }
            }
        }
        true
    }

    /// The same walk over characters, for segments with `_`.
    fn run_tokens(&self, value: &[char]) -> bool {
        let fits = |at: &[char], seg: &[Token]| {
            at.len() >= seg.len()
                && seg.iter().zip(at).all(|(t, c)| match t {
                    Token::One => true,
                    Token::Char(p) => p == c,
                })
        };
        let n = self.segments.len();
        let mut pos = 0;
        for (k, seg) in self.segments.iter().enumerate() {
            let rest = &value[pos..];
            let last = k + 1 == n;
            if last && self.anchored_end {
                let Some(start) = rest.len().checked_sub(seg.len()) else {
                    return false;
                };
                if k == 0 && self.anchored_start {
                    return rest.len() == seg.len() && fits(rest, seg);
                }
                return fits(&rest[start..], seg);
            }
            if k == 0 && self.anchored_start {
                if !fits(rest, seg) {
                    return false;
                }
                pos += seg.len();
            } else {
                match (0..=rest.len().saturating_sub(seg.len())).find(|i| fits(&rest[*i..], seg)) {
                    Some(at) if rest.len() >= seg.len() => pos += at + seg.len(),
                    _ => return false,
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    /// The obvious recursive definition, as the oracle.
    fn oracle(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| oracle(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && oracle(&s[1..], &p[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && oracle(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && oracle(&s[1..], &p[1..]),
        }
    }

    #[test]
    fn agrees_with_the_definition() {
        let values = [
            "",
            "a",
            "ab",
            "abc",
            "aXbXc",
            "鹿島市",
            "1234-5",
            "%",
            "a_b",
            "aaa",
            "abab",
        ];
        let patterns = [
            "", "%", "%%", "a", "a%", "%a", "%b%", "_", "__", "a_c", "%_%", "a%c", "%X%X%", "鹿%",
            "%市", "1234-_", "\\%", "a\\_b", "a%a", "%ab", "ab%ab", "%a%b%", "_%_",
        ];
        for v in values {
            for p in patterns {
                let want = oracle(
                    &v.chars().collect::<Vec<_>>(),
                    &p.chars().collect::<Vec<_>>(),
                );
                assert_eq!(
                    LikePattern::new(p, false, false).matches(v),
                    want,
                    "{v:?} LIKE {p:?}"
                );
            }
        }
    }

    #[test]
    fn many_percent_signs_are_cheap() {
        let value = "a".repeat(100_000);
        let p = LikePattern::new(&format!("{}Z", "%".repeat(1000)), false, false);
        assert!(!p.matches(&value));
        let p = LikePattern::new(&format!("{}Z", "%_".repeat(500)), false, false);
        assert!(!p.matches(&value));
        assert!(LikePattern::new(&format!("{}a", "%".repeat(1000)), false, false).matches(&value));
    }
}
