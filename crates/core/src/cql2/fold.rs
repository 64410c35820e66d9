//! The folds of `CASEI` and `ACCENTI`.
//!
//! `ACCENTI` folds what a Japanese city's users type differently for the same
//! text, besides Latin accents: it applies Unicode compatibility decomposition
//! (NFKD), removes the combining diacritical marks U+0300–U+036F (é → e,
//! ü → u), and composes again (NFC). So full-width letters and digits become
//! ASCII (ＡＢＣ１２３ → ABC123), half-width katakana become full-width
//! (ｶｼﾏ → カシマ), and compatibility forms their plain text (① → 1,
//! ㈱ → (株)). Kana voicing marks are kept: ガ and カ stay different words.

use unicode_normalization::UnicodeNormalization;

/// `CASEI`: Unicode lower case.
pub fn case_fold(s: &str) -> String {
    s.to_lowercase()
}

/// `ACCENTI`: see the module documentation.
pub fn accent_fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !('\u{0300}'..='\u{036F}').contains(c))
        .nfc()
        .collect()
}

pub(super) fn apply(s: &str, case: bool, accent: bool) -> String {
    match (case, accent) {
        (true, true) => case_fold(&accent_fold(s)),
        (true, false) => case_fold(s),
        (false, true) => accent_fold(s),
        (false, false) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        assert_eq!(accent_fold("débárquér"), "debarquer");
        assert_eq!(accent_fold("Beyoncé"), "Beyonce");
        assert_eq!(accent_fold("ＡＢＣ１２３"), "ABC123");
        assert_eq!(accent_fold("ｶｼﾏ"), "カシマ");
        assert_eq!(accent_fold("ｶﾞｽ"), "ガス");
        assert_eq!(accent_fold("ガス"), "ガス");
        assert_ne!(accent_fold("ガス"), accent_fold("カス"));
        assert_eq!(case_fold("Straße ΟΔΟΣ"), "straße οδος");
    }
}
