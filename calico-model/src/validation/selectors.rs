//! Selector-field checks: length, syntax and where `global()` may appear (see
//! [selector fields](crate::selector#selector-fields-and-global)). All selector validation goes
//! through [`check`], so the selector parser is wired in one place.

use super::Ctx;

/// Maximum length of a selector field.
pub(crate) const MAX_SELECTOR_LEN: usize = 1024;

pub(crate) use crate::selector::GlobalRule as GlobalUse;

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

fn syntax_and_global(value: &str, rule: GlobalUse) -> Result<(), String> {
    crate::selector::check_field(value, rule)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
