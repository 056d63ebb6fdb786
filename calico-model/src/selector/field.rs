//! Where `global()` may appear in resource fields (see [selector fields](crate::selector#selector-fields-and-global)).

use super::error::FieldSelectorError;
use super::parsed::Selector;
use super::tokenizer::{TokenKind, Tokenizer};

/// How a selector field treats `global()` (see [selector fields](crate::selector#selector-fields-and-global)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalRule {
    /// `global()` is allowed only as the entire selector: if the text contains `global(`,
    /// it must tokenize to exactly `global()` (EntityRule `namespaceSelector`).
    WholeSelectorOnly,
    /// The text may not contain `global(` at all, not even inside a string literal (policy
    /// `selector` and `serviceAccountSelector`, GlobalNetworkPolicy `namespaceSelector`,
    /// EntityRule `selector`, IPPool `nodeSelector` and `namespaceSelector`).
    Forbidden,
    /// Syntax check only; `global()` is an ordinary expression (every other field).
    Anywhere,
}

/// Whether `s` tokenizes to exactly `[GLOBAL, EOF]`.
fn is_lone_global(s: &str) -> bool {
    let mut tz = Tokenizer::new(s);
    matches!(tz.next_token(), Ok(t) if t.kind == TokenKind::Global)
        && matches!(tz.next_token(), Ok(t) if t.kind == TokenKind::Eof)
}

/// Validates the selector field text `s` under `rule` and returns the parsed selector. The
/// empty string is valid everywhere and means `all()`.
///
/// The syntax is checked first, then the rule for `global()`.
///
/// # Errors
///
/// [`FieldSelectorError::Syntax`] if `s` does not parse;
/// [`FieldSelectorError::GlobalNotAlone`] / [`FieldSelectorError::GlobalForbidden`] if it
/// breaks `rule`.
pub fn check_field(s: &str, rule: GlobalRule) -> Result<Selector, FieldSelectorError> {
    let sel = Selector::parse(s)?;
    let mentions_global = s.contains("global(");
    match rule {
        GlobalRule::WholeSelectorOnly if mentions_global && !is_lone_global(s) => {
            Err(FieldSelectorError::GlobalNotAlone)
        }
        GlobalRule::Forbidden if mentions_global => Err(FieldSelectorError::GlobalForbidden),
        _ => Ok(sel),
    }
}
