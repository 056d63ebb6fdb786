//! Selector-field checks (model.md §1.3, selector.md §10.3). All selector validation goes
//! through [`check`], so the selector parser is wired in one place.

use super::Ctx;

/// Maximum length of a selector field.
pub(crate) const MAX_SELECTOR_LEN: usize = 1024;

/// Where `global()` may appear in a field (selector.md §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GlobalUse {
    /// Only as the entire selector (rule `namespaceSelector`).
    WholeSelectorOnly,
    /// Rejected by a plain substring test for `global(`.
    Forbidden,
    /// Syntax check only.
    Anywhere,
}

/// Checks one selector field and reports at `path`.
pub(crate) fn check(cx: &mut Ctx<'_>, path: &str, value: &str, rule: GlobalUse) {
    if let Err(msg) = check_selector(value, rule) {
        cx.report(path, msg);
    }
}

/// The selector rules of one field: length, syntax, and where `global()` may appear.
pub(crate) fn check_selector(value: &str, rule: GlobalUse) -> Result<(), String> {
    if value.len() > MAX_SELECTOR_LEN {
        return Err(format!(
            "selector is {} characters long; at most {MAX_SELECTOR_LEN} are allowed",
            value.len()
        ));
    }
    syntax_and_global(value, rule)
}

// Interim implementation until the selector parser lands: the `global(` rules of
// selector.md §10.3 only (no syntax check).
fn syntax_and_global(value: &str, rule: GlobalUse) -> Result<(), String> {
    match rule {
        GlobalUse::Anywhere => Ok(()),
        GlobalUse::Forbidden => {
            if value.contains("global(") {
                Err("global() is not allowed in this selector".to_owned())
            } else {
                Ok(())
            }
        }
        GlobalUse::WholeSelectorOnly => {
            if !value.contains("global(") {
                return Ok(());
            }
            let compact: String = value.chars().filter(|c| *c != ' ' && *c != '\t').collect();
            if compact == "global()" {
                Ok(())
            } else {
                Err("global() must be the entire namespaceSelector".to_owned())
            }
        }
    }
}
