//! Selector rewriting: the exact strings Calico builds for a policy's endpoint
//! selector and for a rule's source or destination, before they are parsed again.

use calico_model::resources::policy::EntityRule;
use calico_model::selector::{
    NAMESPACE_LABEL, SERVICE_ACCOUNT_LABEL, Selector, SelectorError,
    rewrite_rule_namespace_selector,
};

const PCNS: &str = "pcns.";
const PCSA: &str = "pcsa.";

fn prefixed_canonical(text: &str, prefix: &str) -> Result<String, SelectorError> {
    Ok(Selector::parse(text)?
        .prefixed(prefix)
        .canonical()
        .to_owned())
}

fn is_set(text: &str) -> bool {
    !text.trim().is_empty()
}

/// The rewritten endpoint selector of a namespaced policy (NetworkPolicy, converted
/// Kubernetes NetworkPolicy, StagedNetworkPolicy) in namespace `ns`.
///
/// # Errors
///
/// The service-account selector does not parse.
pub fn namespaced_policy_selector(
    selector: &str,
    ns: &str,
    service_account_selector: &str,
) -> Result<String, SelectorError> {
    let ns_clause = format!("{NAMESPACE_LABEL} == '{ns}'");
    let mut out = if is_set(selector) {
        format!("({selector}) && {ns_clause}")
    } else {
        ns_clause
    };
    if is_set(service_account_selector) {
        let s = prefixed_canonical(service_account_selector, PCSA)?;
        out = format!("({out}) && {s}");
    }
    Ok(out)
}

/// The rewritten endpoint selector of a global policy: namespace and
/// service-account selectors ANDed in, and every `all()` of the string replaced after each
/// step. An empty result means `all()`.
///
/// # Errors
///
/// The namespace or service-account selector does not parse.
pub fn global_policy_selector(
    selector: &str,
    namespace_selector: &str,
    service_account_selector: &str,
) -> Result<String, SelectorError> {
    let mut out = if is_set(selector) {
        selector.to_owned()
    } else {
        String::new()
    };
    for (extra, prefix, label) in [
        (namespace_selector, PCNS, NAMESPACE_LABEL),
        (service_account_selector, PCSA, SERVICE_ACCOUNT_LABEL),
    ] {
        if !is_set(extra) {
            continue;
        }
        let n = prefixed_canonical(extra, prefix)?;
        out = if out.is_empty() {
            n
        } else {
            format!("({out}) && {n}")
        };
        out = out.replace("all()", &format!("has({label})"));
    }
    Ok(out)
}

/// Which field of an entity rule a selector error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityField {
    /// `selector`.
    Selector,
    /// `notSelector`.
    NotSelector,
    /// `namespaceSelector`.
    NamespaceSelector,
    /// `serviceAccounts.selector`.
    ServiceAccountSelector,
    /// `serviceAccounts.names`.
    ServiceAccountNames,
}

impl EntityField {
    /// The field path below the entity rule.
    pub fn path(self) -> &'static str {
        match self {
            EntityField::Selector => "selector",
            EntityField::NotSelector => "notSelector",
            EntityField::NamespaceSelector => "namespaceSelector",
            EntityField::ServiceAccountSelector => "serviceAccounts.selector",
            EntityField::ServiceAccountNames => "serviceAccounts.names",
        }
    }
}

/// The selectors of one side of a rule after rewriting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntitySelectors {
    /// The positive selector (with a `notSelector` folded in), if any.
    pub positive: Option<String>,
    /// A lone negative selector (only when there is no positive one).
    pub negative: Option<String>,
}

/// Rewrites one side of a rule of a policy in namespace `ns` (`""` for global policies and
/// profiles), exactly as Calico writes them (see the module docs).
///
/// # Errors
///
/// The field whose selector does not parse, and the parse error.
pub fn entity_selectors(
    ns: &str,
    e: &EntityRule,
) -> Result<EntitySelectors, (EntityField, SelectorError)> {
    let ns_clause = if is_set(&e.namespace_selector) {
        let sel = Selector::parse(&e.namespace_selector)
            .map_err(|err| (EntityField::NamespaceSelector, err))?;
        rewrite_rule_namespace_selector(&sel)
    } else if !ns.is_empty() {
        format!("{NAMESPACE_LABEL} == '{ns}'")
    } else {
        String::new()
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(sa) = &e.service_accounts {
        let u = if is_set(&sa.selector) {
            Some(
                prefixed_canonical(&sa.selector, PCSA)
                    .map_err(|err| (EntityField::ServiceAccountSelector, err))?,
            )
        } else {
            None
        };
        let m = if sa.names.is_empty() {
            None
        } else {
            let list: Vec<String> = sa.names.iter().map(|n| format!("'{n}'")).collect();
            let text = format!("{SERVICE_ACCOUNT_LABEL} in {{ {} }}", list.join(", "));
            Some(
                Selector::parse(&text)
                    .map_err(|err| (EntityField::ServiceAccountNames, err))?
                    .canonical()
                    .to_owned(),
            )
        };
        match (u, m) {
            (Some(u), Some(m)) => parts.push(format!("({u}) && ({m})")),
            (Some(x), None) | (None, Some(x)) => parts.push(x),
            (None, None) => {}
        }
    }
    if is_set(&e.selector) {
        Selector::parse(&e.selector).map_err(|err| (EntityField::Selector, err))?;
        parts.push(e.selector.clone());
    }
    let mut sel = match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b, ..] => format!("({a}) && ({b})"),
    };
    let not_sel = is_set(&e.not_selector);
    if not_sel {
        Selector::parse(&e.not_selector).map_err(|err| (EntityField::NotSelector, err))?;
    }
    if !ns_clause.is_empty() && (!sel.is_empty() || not_sel || is_set(&e.namespace_selector)) {
        sel = if sel.is_empty() {
            ns_clause
        } else {
            format!("({ns_clause}) && ({sel})")
        };
    }
    Ok(if sel.is_empty() {
        EntitySelectors {
            positive: None,
            negative: not_sel.then(|| e.not_selector.clone()),
        }
    } else if not_sel {
        EntitySelectors {
            positive: Some(format!("({sel}) && (!({}))", e.not_selector)),
            negative: None,
        }
    } else {
        EntitySelectors {
            positive: Some(sel),
            negative: None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::resources::policy::ServiceAccountMatch;

    #[test]
    fn policy_selectors() {
        assert_eq!(
            namespaced_policy_selector("", "prod", "").unwrap(),
            "projectcalico.org/namespace == 'prod'"
        );
        assert_eq!(
            namespaced_policy_selector("app == 'a'", "prod", "role == 'x'").unwrap(),
            "((app == 'a') && projectcalico.org/namespace == 'prod') && pcsa.role == \"x\""
        );
        assert_eq!(
            global_policy_selector("all()", "env == 'prod'", "").unwrap(),
            "(has(projectcalico.org/namespace)) && pcns.env == \"prod\""
        );
        assert_eq!(global_policy_selector("", "", "").unwrap(), "");
        assert_eq!(
            global_policy_selector("", "all()", "").unwrap(),
            "has(projectcalico.org/namespace)"
        );
    }

    #[test]
    fn entity_rewrites() {
        let mut e = EntityRule::default();
        assert_eq!(
            entity_selectors("ns", &e).unwrap(),
            EntitySelectors::default()
        );
        e.selector = "app == 'a'".into();
        assert_eq!(
            entity_selectors("ns", &e).unwrap().positive.unwrap(),
            "(projectcalico.org/namespace == 'ns') && (app == 'a')"
        );
        e.namespace_selector = "global()".into();
        assert_eq!(
            entity_selectors("ns", &e).unwrap().positive.unwrap(),
            "(!has(projectcalico.org/namespace)) && (app == 'a')"
        );
        let mut lone = EntityRule {
            not_selector: "x == 'y'".into(),
            ..EntityRule::default()
        };
        assert_eq!(
            entity_selectors("", &lone).unwrap(),
            EntitySelectors {
                positive: None,
                negative: Some("x == 'y'".into())
            }
        );
        assert_eq!(
            entity_selectors("ns", &lone).unwrap().positive.unwrap(),
            "(projectcalico.org/namespace == 'ns') && (!(x == 'y'))"
        );
        lone.service_accounts = Some(ServiceAccountMatch {
            names: vec!["b".into(), "a".into()],
            selector: "k == 'v'".into(),
        });
        assert_eq!(
            entity_selectors("", &lone).unwrap().positive.unwrap(),
            "((pcsa.k == \"v\") && (projectcalico.org/serviceaccount in {\"a\", \"b\"})) && (!(x == 'y'))"
        );
        let bad = EntityRule {
            selector: "a ==".into(),
            ..EntityRule::default()
        };
        assert_eq!(
            entity_selectors("", &bad).unwrap_err().0,
            EntityField::Selector
        );
    }
}
