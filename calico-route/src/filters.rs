//! BGPFilter rules evaluated on a route, as the rendered BIRD functions evaluate them
//! (a session's `filters`, the export policy and the per-filter BIRD functions).
//!
//! A session's import runs each filter's import function in order and then `accept`s; its
//! export runs each filter's export function in order and then
//! `calico_export_to_bgp_peers(…)`. A BIRD `accept` or `reject` inside a function ends the
//! whole filter, so the rules of a session's filters, concatenated in order, form one
//! program whose first matching rule decides ([`FilterProgram::run`]); when none matches, the
//! caller's default applies. A rule with `peerType` applies only on sessions of that type
//! (iBGP: the peer's AS equals the local AS). Rules the renderer cannot express (a CIDR of
//! the other family, bad community values, a quote in an interface pattern) are rendered as
//! comments, so they never match here either.
//!
//! What a rule sees of a route ([`RouteAttrs`]): the prefix; whether it came from BGP
//! (`source: RemotePeers`); the interface — none for the static blackholes a node
//! originates, the parent interface (`eth0`, the planner's default) for BGP routes, whose
//! recursive next hop resolves through it; the communities it carries; its AS path (before
//! the sender's own AS is prepended on eBGP export); and its priority, which the rendered
//! configuration carries in `bgp_local_pref` as 2147483647 − priority: the normal route
//! priority for a route a node originates or learned over eBGP, kept across iBGP, and set by
//! a `setPriority` operation.

use std::fmt::Write as _;

use calico_model::resources::bgp::{
    BgpFilterRule, FilterAction, FilterSource, MatchOperator, PeerType,
};
use ipnet::IpNet;

use crate::input::Family;

/// The largest BIRD integer: a route's priority travels as `bgp_local_pref` = this − priority.
pub const PRIORITY_MAX: i64 = 2_147_483_647;

pub(crate) fn in_family(net: &IpNet, family: Family) -> bool {
    Family::of(net.addr()) == family
}

pub(crate) fn community_adds(value: &str) -> Option<String> {
    match Community::parse(value)? {
        Community::Standard(a, b) => Some(format!("bgp_community.add(({a},{b}));")),
        Community::Large(a, b, c) => Some(format!("bgp_large_community.add(({a},{b},{c}));")),
    }
}

fn community_match(value: &str) -> Option<String> {
    match Community::parse(value)? {
        Community::Standard(a, b) => Some(format!("({a}, {b}) ~ bgp_community")),
        Community::Large(a, b, c) => Some(format!("({a}, {b}, {c}) ~ bgp_large_community")),
    }
}

/// Whether a BGPFilter rule is rendered as a statement (else as a comment: a CIDR of the
/// other family, a bad community, a quote in an interface pattern).
pub(crate) fn rule_renders(rule: &BgpFilterRule, family: Family) -> bool {
    rule_statement(rule, family).is_ok()
}

/// One BGPFilter rule as a BIRD statement (what the per-filter functions of
/// [`crate::bird::render`] hold), or why it cannot be rendered.
pub(crate) fn rule_statement(rule: &BgpFilterRule, family: Family) -> Result<String, String> {
    let mut conds = Vec::new();
    if let Some(cidr) = &rule.cidr {
        let net = cidr.network();
        if !in_family(&net, family) {
            return Err(format!("CIDR {net} is not {}", family.label()));
        }
        let range = match &rule.prefix_length {
            Some(pl) => {
                let min = pl.min.unwrap_or(i32::from(net.prefix_len()));
                let max = pl.max.unwrap_or(i32::from(family.host_len()));
                format!("{net}{{{min},{max}}}")
            }
            None => format!("{net}+"),
        };
        conds.push(match rule.match_operator.unwrap_or(MatchOperator::In) {
            MatchOperator::Equal => format!("net = {net}"),
            MatchOperator::NotEqual => format!("net != {net}"),
            MatchOperator::In => format!("net ~ [ {range} ]"),
            MatchOperator::NotIn => format!("net !~ [ {range} ]"),
        });
    }
    if rule.source == Some(FilterSource::RemotePeers) {
        conds.push("source = RTS_BGP".to_owned());
    }
    if let Some(iface) = &rule.interface {
        if iface.contains('"') {
            return Err("interface pattern contains a quote".to_owned());
        }
        conds.push(format!("defined(ifname) && ifname ~ \"{iface}\""));
    }
    if let Some(c) = &rule.communities {
        for v in &c.values {
            conds.push(community_match(v).ok_or_else(|| format!("bad community {v:?}"))?);
        }
    }
    if !rule.as_path_prefix.is_empty() {
        let path: Vec<String> = rule
            .as_path_prefix
            .iter()
            .map(|a| a.0.to_string())
            .collect();
        conds.push(format!("bgp_path ~ [= {} * =]", path.join(" ")));
    }
    if let Some(p) = rule.priority {
        conds.push(format!(
            "defined(bgp_local_pref) && bgp_local_pref = {}",
            PRIORITY_MAX - p
        ));
    }
    let mut body = String::new();
    match rule.action {
        FilterAction::Reject => body.push_str("reject;"),
        FilterAction::Accept => {
            for op in &rule.operations {
                if let Some(c) = &op.add_community {
                    let add = community_adds(&c.value)
                        .ok_or_else(|| format!("bad community {:?}", c.value))?;
                    body.push_str(&add);
                    body.push(' ');
                }
                if let Some(p) = &op.prepend_as_path {
                    for a in p.prefix.iter().rev() {
                        let _ = write!(body, "bgp_path.prepend({}); ", a.0);
                    }
                }
                if let Some(sp) = &op.set_priority {
                    let _ = write!(body, "bgp_local_pref = {}; ", PRIORITY_MAX - sp.value);
                }
            }
            body.push_str("accept;");
        }
    }
    let stmt = if conds.is_empty() {
        body
    } else {
        format!("if ( {} ) then {{ {body} }}", conds.join(" && "))
    };
    Ok(match rule.peer_type {
        None => stmt,
        Some(PeerType::Ibgp) => format!("if ( is_same_as ) then {{ {stmt} }}"),
        Some(PeerType::Ebgp) => format!("if ( !is_same_as ) then {{ {stmt} }}"),
    })
}

/// A BGP community: standard `(a, b)` or large `(a, b, c)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    /// Standard community.
    Standard(u32, u32),
    /// Large community.
    Large(u32, u32, u32),
}

impl Community {
    /// Parses `a:b` (each part at most 65535) or `a:b:c` (32-bit parts).
    pub fn parse(value: &str) -> Option<Community> {
        let parts: Vec<u32> = value
            .split(':')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .ok()?;
        match parts.as_slice() {
            [a, b] if *a <= 0xffff && *b <= 0xffff => Some(Community::Standard(*a, *b)),
            [a, b, c] => Some(Community::Large(*a, *b, *c)),
            _ => None,
        }
    }
}

/// The parent interface a BGP route resolves through, as filter rules see it.
pub const BGP_ROUTE_INTERFACE: &str = "eth0";

/// What a filter rule sees of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// The prefix (`None`: a route outside every filter CIDR, for prefix-less analyses).
    pub net: Option<IpNet>,
    /// Learned over BGP (else originated by this node's static protocol).
    pub from_bgp: bool,
    /// AS path, first AS first.
    pub as_path: Vec<u32>,
    /// Communities, sorted and distinct.
    pub communities: Vec<Community>,
    /// The route's priority as `bgp_local_pref` carries it (2147483647 − local pref),
    /// `None` when the route has no local preference (received over eBGP, before any
    /// `setPriority`).
    pub krt_metric: Option<i64>,
}

impl RouteAttrs {
    /// Adds a community, keeping the list sorted and distinct.
    pub fn add_community(&mut self, c: Community) {
        if let Err(i) = self.communities.binary_search(&c) {
            self.communities.insert(i, c);
        }
    }
}

/// The outcome of running a [`FilterProgram`] on a route. (Not a policy verdict: this is a
/// BGP filter's decision on one route; a rule's own action is
/// [`calico_model::resources::bgp::FilterAction`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// A rule accepted the route (its operations applied).
    Accept,
    /// A rule rejected the route.
    Reject,
    /// No rule matched: the caller's default applies.
    NoMatch,
}

/// A BGP filter program: the rules of one direction and family of a session's BGPFilters,
/// in order. (Unrelated to calico-policy's rule programs.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterProgram {
    rules: Vec<BgpFilterRule>,
}

impl FilterProgram {
    /// The rules of `filters` (BGPFilter specs in the session's order) for one direction
    /// and family, keeping only those the renderer writes as statements.
    pub fn new<'a>(
        filters: impl IntoIterator<Item = &'a calico_model::resources::bgp::BgpFilterSpec>,
        import: bool,
        family: Family,
    ) -> FilterProgram {
        let mut rules = Vec::new();
        for spec in filters {
            let list = match (family, import) {
                (Family::V4, true) => &spec.import_v4,
                (Family::V4, false) => &spec.export_v4,
                (Family::V6, true) => &spec.import_v6,
                (Family::V6, false) => &spec.export_v6,
            };
            rules.extend(list.iter().filter(|r| rule_renders(r, family)).cloned());
        }
        FilterProgram { rules }
    }

    /// Whether the program has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The CIDR conditions of the rules, for grouping prefixes that every rule treats
    /// alike.
    pub fn prefix_conditions(&self) -> impl Iterator<Item = &BgpFilterRule> {
        self.rules.iter().filter(|r| r.cidr.is_some())
    }

    /// Runs the program on `route` on a session of type `ibgp` (iBGP or eBGP): the first
    /// matching rule decides, and an accepting rule's operations are applied to `route`.
    pub fn run(&self, route: &mut RouteAttrs, ibgp: bool) -> FilterOutcome {
        for r in &self.rules {
            let session_type_ok = match r.peer_type {
                None => true,
                Some(PeerType::Ibgp) => ibgp,
                Some(PeerType::Ebgp) => !ibgp,
            };
            if !session_type_ok || !matches(r, route) {
                continue;
            }
            return match r.action {
                FilterAction::Reject => FilterOutcome::Reject,
                FilterAction::Accept => {
                    for op in &r.operations {
                        if let Some(c) = op
                            .add_community
                            .as_ref()
                            .and_then(|c| Community::parse(&c.value))
                        {
                            route.add_community(c);
                        }
                        if let Some(p) = &op.prepend_as_path {
                            let mut path: Vec<u32> = p.prefix.iter().map(|a| a.0).collect();
                            path.extend(&route.as_path);
                            route.as_path = path;
                        }
                        if let Some(sp) = &op.set_priority {
                            route.krt_metric = Some(sp.value);
                        }
                    }
                    FilterOutcome::Accept
                }
            };
        }
        FilterOutcome::NoMatch
    }
}

/// Whether a rule's CIDR condition holds for `net` (`None`: outside every CIDR).
pub fn prefix_matches(rule: &BgpFilterRule, net: Option<&IpNet>) -> bool {
    let Some(cidr) = &rule.cidr else {
        return true;
    };
    let c = cidr.network();
    let op = rule.match_operator.unwrap_or(MatchOperator::In);
    let Some(net) = net else {
        return matches!(op, MatchOperator::NotEqual | MatchOperator::NotIn);
    };
    let inside = || {
        let len = i32::from(net.prefix_len());
        let (min, max) = match &rule.prefix_length {
            Some(pl) => (
                pl.min.unwrap_or(i32::from(c.prefix_len())),
                pl.max.unwrap_or(i32::from(c.max_prefix_len())),
            ),
            None => (i32::from(c.prefix_len()), i32::from(c.max_prefix_len())),
        };
        c.contains(net) && (min..=max).contains(&len)
    };
    match op {
        MatchOperator::Equal => *net == c,
        MatchOperator::NotEqual => *net != c,
        MatchOperator::In => inside(),
        MatchOperator::NotIn => !inside(),
    }
}

/// BIRD's shell-like pattern match (`*` any run, `?` one character).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, _) => text.is_empty(),
        (Some((b'*', rest)), _) => {
            glob(rest, text) || text.split_first().is_some_and(|(_, t)| glob(pattern, t))
        }
        (Some((b'?', rest)), Some((_, t))) => glob(rest, t),
        (Some((p, rest)), Some((c, t))) if p == c => glob(rest, t),
        _ => false,
    }
}

fn matches(rule: &BgpFilterRule, route: &RouteAttrs) -> bool {
    if !prefix_matches(rule, route.net.as_ref()) {
        return false;
    }
    if rule.source == Some(FilterSource::RemotePeers) && !route.from_bgp {
        return false;
    }
    if let Some(pattern) = &rule.interface {
        let ifname = route.from_bgp.then_some(BGP_ROUTE_INTERFACE);
        if !ifname.is_some_and(|i| glob(pattern.as_bytes(), i.as_bytes())) {
            return false;
        }
    }
    if let Some(c) = &rule.communities {
        for v in &c.values {
            match Community::parse(v) {
                Some(x) if route.communities.contains(&x) => {}
                _ => return false,
            }
        }
    }
    if !rule.as_path_prefix.is_empty() {
        let want: Vec<u32> = rule.as_path_prefix.iter().map(|a| a.0).collect();
        if !route.as_path.starts_with(&want) {
            return false;
        }
    }
    if let Some(p) = rule.priority
        && route.krt_metric != Some(p)
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::resources::bgp::BgpFilterSpec;

    fn spec(yaml: &str) -> BgpFilterSpec {
        let body: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
        let doc = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: f}}\nspec:\n{body}"
        );
        let set = calico_model::loader::load_str("f.yaml", &doc);
        let c = crate::input::Cluster::from_resources(set.resources());
        c.filters.get("f").cloned().unwrap_or_default()
    }

    impl FilterProgram {
        /// Runs on an iBGP session (no rule of these tests depends on the type).
        fn run_any(&self, route: &mut RouteAttrs) -> FilterOutcome {
            self.run(route, true)
        }
    }

    fn route(net: &str, from_bgp: bool) -> RouteAttrs {
        RouteAttrs {
            net: net.parse().ok(),
            from_bgp,
            as_path: Vec::new(),
            communities: Vec::new(),
            krt_metric: None,
        }
    }

    #[test]
    fn first_matching_rule_decides_across_filters() {
        let a = spec("exportV4:\n- {action: Reject, matchOperator: In, cidr: 10.244.1.0/24}\n");
        let b = spec(
            "exportV4:\n- {action: Accept, matchOperator: In, cidr: 10.244.0.0/16, operations: [{addCommunity: {value: \"65000:7\"}}, {prependASPath: {prefix: [65000, 65001]}}]}\n",
        );
        let p = FilterProgram::new([&a, &b], false, Family::V4);
        let mut r = route("10.244.1.0/26", false);
        assert_eq!(p.run_any(&mut r), FilterOutcome::Reject);
        let mut r = route("10.244.2.0/26", false);
        assert_eq!(p.run_any(&mut r), FilterOutcome::Accept);
        assert_eq!(r.communities, vec![Community::Standard(65000, 7)]);
        assert_eq!(r.as_path, vec![65000, 65001]);
        let mut r = route("10.245.0.0/26", false);
        assert_eq!(p.run_any(&mut r), FilterOutcome::NoMatch);
        // The other order: b accepts first.
        let p = FilterProgram::new([&b, &a], false, Family::V4);
        assert_eq!(
            p.run_any(&mut route("10.244.1.0/26", false)),
            FilterOutcome::Accept
        );
        // Import functions are separate.
        assert!(FilterProgram::new([&a, &b], true, Family::V4).is_empty());
    }

    #[test]
    fn conditions() {
        let s = spec(
            "importV4:\n\
             - {action: Reject, source: RemotePeers, matchOperator: Equal, cidr: 10.0.0.0/26}\n\
             - {action: Reject, interface: \"eth*\", matchOperator: Equal, cidr: 10.0.1.0/26}\n\
             - {action: Reject, communities: {values: [\"1:2\"]}}\n\
             - {action: Reject, asPathPrefix: [65001, 65002]}\n\
             - {action: Reject, matchOperator: In, cidr: 10.9.0.0/16, prefixLength: {min: 26, max: 28}}\n\
             - {action: Reject, peerType: eBGP}\n",
        );
        let p = FilterProgram::new([&s], true, Family::V4);
        assert_eq!(
            p.run_any(&mut route("10.0.0.0/26", false)),
            FilterOutcome::NoMatch
        );
        assert_eq!(
            p.run_any(&mut route("10.0.0.0/26", true)),
            FilterOutcome::Reject
        );
        assert_eq!(
            p.run_any(&mut route("10.0.1.0/26", false)),
            FilterOutcome::NoMatch
        );
        assert_eq!(
            p.run_any(&mut route("10.0.1.0/26", true)),
            FilterOutcome::Reject
        );
        let mut r = route("10.1.0.0/26", true);
        r.communities = vec![Community::Standard(1, 2)];
        assert_eq!(p.run_any(&mut r), FilterOutcome::Reject);
        let mut r = route("10.1.0.0/26", true);
        r.as_path = vec![65001, 65002, 65003];
        assert_eq!(p.run_any(&mut r), FilterOutcome::Reject);
        r.as_path = vec![65002, 65001];
        assert_eq!(p.run_any(&mut r), FilterOutcome::NoMatch);
        assert_eq!(
            p.run_any(&mut route("10.9.1.0/26", true)),
            FilterOutcome::Reject
        );
        assert_eq!(
            p.run_any(&mut route("10.9.1.0/24", true)),
            FilterOutcome::NoMatch
        );
        assert_eq!(
            p.run_any(&mut route("10.9.1.0/29", true)),
            FilterOutcome::NoMatch
        );
        // peerType: eBGP applies on eBGP sessions only.
        assert_eq!(
            p.run(&mut route("10.7.0.0/26", true), true),
            FilterOutcome::NoMatch
        );
        assert_eq!(
            p.run(&mut route("10.7.0.0/26", true), false),
            FilterOutcome::Reject
        );
    }

    #[test]
    fn peer_type_rules_apply_per_session() {
        let s = spec(
            "exportV4:\n\
             - {action: Reject, peerType: eBGP, matchOperator: In, cidr: 10.1.0.0/16}\n\
             - {action: Accept, peerType: iBGP, matchOperator: In, cidr: 10.2.0.0/16, operations: [{setPriority: {value: 512}}]}\n",
        );
        let p = FilterProgram::new([&s], false, Family::V4);
        assert_eq!(
            p.run(&mut route("10.1.0.0/26", false), false),
            FilterOutcome::Reject
        );
        assert_eq!(
            p.run(&mut route("10.1.0.0/26", false), true),
            FilterOutcome::NoMatch
        );
        let mut r = route("10.2.0.0/26", false);
        assert_eq!(p.run(&mut r, true), FilterOutcome::Accept);
        assert_eq!(r.krt_metric, Some(512));
        assert_eq!(
            p.run(&mut route("10.2.0.0/26", false), false),
            FilterOutcome::NoMatch
        );
    }

    #[test]
    fn glob_patterns() {
        assert!(glob(b"eth*", b"eth0"));
        assert!(glob(b"*", b"eth0"));
        assert!(glob(b"e?h0", b"eth0"));
        assert!(!glob(b"*.cali", b"eth0"));
    }
}
