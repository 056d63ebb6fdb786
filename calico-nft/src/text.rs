//! `nft -f` text for a [`Ruleset`] and a [`RulesetDelta`].
//!
//! Chain bodies put one statement per line (nft's parser wants newlines, not `;`, between
//! rules). Base chains come first (by hook and priority), then the other chains by name.

use std::fmt::Write as _;

use crate::ruleset::{
    AddrValue, BaseChain, Chain, ChainPolicy, Hook, IfnameMatch, IpFamily, LogLevel, Match, Op,
    PortProto, PortValue, Rule, RuleVerdict, Ruleset, RulesetDelta, Set, SetElement, SetKey, Side,
    Statement, TABLE, Verdict, ct_state,
};

fn family_kw(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// The nft name of an IP protocol number (keywords nft knows without `/etc/protocols`).
fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        136 => "udplite".to_owned(),
        n => n.to_string(),
    }
}

fn quote(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    format!("\"{clean}\"")
}

fn neg(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

fn key_text(k: SetKey) -> &'static str {
    match k {
        SetKey::Ipv4Addr => "ipv4_addr",
        SetKey::Ipv6Addr => "ipv6_addr",
        SetKey::InetService => "inet_service",
        SetKey::Ifname => "ifname",
        SetKey::AddrProtoService(IpFamily::V4) => "ipv4_addr . inet_proto . inet_service",
        SetKey::AddrProtoService(IpFamily::V6) => "ipv6_addr . inet_proto . inet_service",
    }
}

/// The text of one set element.
pub(crate) fn element_text(e: &SetElement) -> String {
    match e {
        SetElement::Net(n) => {
            if n.prefix_len() == n.max_prefix_len() {
                n.addr().to_string()
            } else {
                n.to_string()
            }
        }
        SetElement::AddrRange(a, b) => format!("{a}-{b}"),
        SetElement::Port(p) => p.to_string(),
        SetElement::PortRange(a, b) => format!("{a}-{b}"),
        SetElement::Ifname(s) => quote(s),
        SetElement::AddrProtoPort(a, p, port) => format!("{a} . {} . {port}", proto_name(*p)),
    }
}

fn elements_text<'a>(it: impl IntoIterator<Item = &'a SetElement>) -> String {
    it.into_iter()
        .map(element_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text of a verdict.
pub(crate) fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".to_owned(),
        Verdict::Drop => "drop".to_owned(),
        Verdict::Return => "return".to_owned(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
    }
}

fn ifname_text(m: &IfnameMatch) -> String {
    match m {
        IfnameMatch::Exact(s) => quote(s),
        IfnameMatch::Prefix(s) => quote(&format!("{s}*")),
    }
}

fn side_kw(s: Side, addr: bool) -> &'static str {
    match (s, addr) {
        (Side::Src, true) => "saddr",
        (Side::Dst, true) => "daddr",
        (Side::Src, false) => "sport",
        (Side::Dst, false) => "dport",
    }
}

fn ct_text(bits: u32) -> String {
    let names = [
        (ct_state::INVALID, "invalid"),
        (ct_state::ESTABLISHED, "established"),
        (ct_state::RELATED, "related"),
        (ct_state::NEW, "new"),
        (ct_state::UNTRACKED, "untracked"),
    ];
    names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The text of one match.
pub(crate) fn match_text(m: &Match) -> String {
    match m {
        Match::Iifname { name, negate } => format!("iifname {}{}", neg(*negate), ifname_text(name)),
        Match::Oifname { name, negate } => format!("oifname {}{}", neg(*negate), ifname_text(name)),
        Match::L4proto { proto, negate } => {
            format!("meta l4proto {}{}", neg(*negate), proto_name(*proto))
        }
        Match::Nfproto(f) => format!(
            "meta nfproto {}",
            match f {
                IpFamily::V4 => "ipv4",
                IpFamily::V6 => "ipv6",
            }
        ),
        Match::Mark {
            mask,
            value,
            negate,
        } => format!(
            "meta mark & 0x{mask:08x} {} 0x{value:08x}",
            if *negate { "!=" } else { "==" }
        ),
        Match::Addr {
            family,
            side,
            value,
            negate,
        } => {
            let v = match value {
                AddrValue::Net(n) => element_text(&SetElement::Net(*n)),
                AddrValue::Set(s) => format!("@{s}"),
            };
            format!(
                "{} {} {}{v}",
                family_kw(*family),
                side_kw(*side, true),
                neg(*negate)
            )
        }
        Match::Port {
            proto,
            side,
            value,
            negate,
        } => {
            let p = match proto {
                PortProto::Tcp => "tcp",
                PortProto::Udp => "udp",
                PortProto::Sctp => "sctp",
                PortProto::Udplite => "udplite",
                PortProto::Th => "th",
            };
            let v = match value {
                PortValue::Single(x) => x.to_string(),
                PortValue::Range(a, b) => format!("{a}-{b}"),
                PortValue::Set(s) => format!("@{s}"),
            };
            format!("{p} {} {}{v}", side_kw(*side, false), neg(*negate))
        }
        Match::IcmpType {
            family,
            value,
            negate,
        } => format!("{} type {}{value}", icmp_kw(*family), neg(*negate)),
        Match::IcmpCode {
            family,
            value,
            negate,
        } => format!("{} code {}{value}", icmp_kw(*family), neg(*negate)),
        Match::CtState(bits) => format!("ct state {}", ct_text(*bits)),
        Match::AddrProtoPort {
            family,
            side,
            set,
            negate,
        } => format!(
            "{} {} . meta l4proto . th dport {}@{set}",
            family_kw(*family),
            side_kw(*side, true),
            neg(*negate)
        ),
    }
}

fn icmp_kw(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "icmp",
        IpFamily::V6 => "icmpv6",
    }
}

fn level_text(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Emerg => "emerg",
        LogLevel::Alert => "alert",
        LogLevel::Crit => "crit",
        LogLevel::Err => "err",
        LogLevel::Warn => "warn",
        LogLevel::Notice => "notice",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    }
}

/// The text of one statement.
pub(crate) fn statement_text(s: &Statement) -> String {
    match s {
        Statement::Counter => "counter".to_owned(),
        Statement::Log { prefix, level } => {
            let mut t = "log".to_owned();
            if let Some(p) = prefix {
                t.push_str(" prefix ");
                t.push_str(&quote(p));
            }
            if let Some(l) = level {
                t.push_str(" level ");
                t.push_str(level_text(*l));
            }
            t
        }
        Statement::MarkSet { and, or } => match (*and, *or) {
            (u32::MAX, o) => format!("meta mark set meta mark | 0x{o:08x}"),
            (a, 0) => format!("meta mark set meta mark & 0x{a:08x}"),
            (a, o) => format!("meta mark set meta mark & 0x{a:08x} | 0x{o:08x}"),
        },
    }
}

/// The text of one rule (as inside a chain body or after `add rule inet calico CHAIN`).
pub(crate) fn rule_text(r: &Rule) -> String {
    let mut parts: Vec<String> = r.matches.iter().map(match_text).collect();
    parts.extend(r.statements.iter().map(statement_text));
    match &r.verdict {
        Some(RuleVerdict::Verdict(v)) => parts.push(verdict_text(v)),
        Some(RuleVerdict::Vmap { side, map }) => parts.push(format!(
            "{} vmap @{map}",
            match side {
                Side::Src => "iifname",
                Side::Dst => "oifname",
            }
        )),
        None => {}
    }
    if let Some(c) = &r.comment {
        parts.push(format!("comment {}", quote(c)));
    }
    if parts.is_empty() {
        // A rule with nothing in it is a no-op; `counter` is the nearest nft text, but the
        // builder never emits one.
        parts.push("counter".to_owned());
    }
    parts.join(" ")
}

fn hook_text(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// `type filter hook H priority P; policy X;`
pub(crate) fn base_text(b: &BaseChain) -> String {
    let prio = match b.priority {
        0 => "filter".to_owned(),
        p if p > 0 => format!("filter + {p}"),
        p => format!("filter - {}", i64::from(p).unsigned_abs()),
    };
    format!(
        "type filter hook {} priority {prio}; policy {};",
        hook_text(b.hook),
        match b.policy {
            ChainPolicy::Accept => "accept",
            ChainPolicy::Drop => "drop",
        }
    )
}

fn set_decl(s: &Set, sep: &str, indent: &str) -> String {
    let mut t = format!("{indent}type {}{sep}", key_text(s.key));
    if s.interval {
        let _ = write!(t, "{indent}flags interval{sep}");
    }
    t
}

/// The order chains are written in: base chains by (hook, priority, name), then the rest by
/// name.
pub(crate) fn chain_order(rs: &Ruleset) -> Vec<(&String, &Chain)> {
    let mut v: Vec<(&String, &Chain)> = rs.chains.iter().collect();
    v.sort_by(|(an, a), (bn, b)| {
        let key = |c: &Chain| c.base.map(|b| (b.hook, b.priority));
        match (key(a), key(b)) {
            (Some(x), Some(y)) => x.cmp(&y).then(an.cmp(bn)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => an.cmp(bn),
        }
    });
    v
}

impl Ruleset {
    /// The whole table as `nft -f` input (`table inet calico { ... }`). Loading it into an
    /// empty kernel table gives exactly this ruleset.
    pub fn to_nft(&self) -> String {
        let mut out = format!("table inet {TABLE} {{\n");
        for (name, s) in &self.sets {
            let _ = write!(out, "\tset {name} {{\n{}", set_decl(s, "\n", "\t\t"));
            if !s.elements.is_empty() {
                let _ = writeln!(out, "\t\telements = {{ {} }}", elements_text(&s.elements));
            }
            out.push_str("\t}\n");
        }
        for (name, m) in &self.maps {
            let _ = write!(out, "\tmap {name} {{\n\t\ttype ifname : verdict\n");
            if !m.elements.is_empty() {
                let els: Vec<String> = m
                    .elements
                    .iter()
                    .map(|(k, v)| format!("{} : {}", quote(k), verdict_text(v)))
                    .collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", els.join(", "));
            }
            out.push_str("\t}\n");
        }
        for (name, c) in chain_order(self) {
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some(b) = &c.base {
                let _ = writeln!(out, "\t\t{}", base_text(b));
            }
            for r in &c.rules {
                let _ = writeln!(out, "\t\t{}", rule_text(r));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

impl RulesetDelta {
    /// The delta as one `nft -f` script (one transaction), in the order of
    /// [`RulesetDelta::ops`]. Empty when the delta is empty.
    pub fn to_nft(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let t = format!("inet {TABLE}");
        let mut out = String::new();
        for op in self.ops() {
            let line = match op {
                Op::AddTable => format!("add table {t}"),
                Op::AddSet {
                    name,
                    key,
                    interval,
                } => {
                    let s = Set {
                        key,
                        interval,
                        elements: Default::default(),
                    };
                    format!("add set {t} {name} {{ {}}}", set_decl(&s, "; ", ""))
                }
                Op::AddMap { name } => {
                    format!("add map {t} {name} {{ type ifname : verdict; }}")
                }
                Op::AddChain { name, base } => match base {
                    Some(b) => format!("add chain {t} {name} {{ {} }}", base_text(&b)),
                    None => format!("add chain {t} {name}"),
                },
                Op::DeleteElements { set, elements } => {
                    format!("delete element {t} {set} {{ {} }}", elements_text(elements))
                }
                Op::AddElements { set, elements } => {
                    format!("add element {t} {set} {{ {} }}", elements_text(elements))
                }
                Op::FlushChain { chain } => format!("flush chain {t} {chain}"),
                Op::AddRule { chain, rule } => format!("add rule {t} {chain} {}", rule_text(rule)),
                Op::DeleteMapElements { map, keys } => {
                    let ks: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                    format!("delete element {t} {map} {{ {} }}", ks.join(", "))
                }
                Op::AddMapElements { map, elements } => {
                    let es: Vec<String> = elements
                        .iter()
                        .map(|(k, v)| format!("{} : {}", quote(k), verdict_text(v)))
                        .collect();
                    format!("add element {t} {map} {{ {} }}", es.join(", "))
                }
                Op::DeleteChain { chain } => format!("delete chain {t} {chain}"),
                Op::DeleteSet { name } => format!("delete set {t} {name}"),
                Op::DeleteMap { name } => format!("delete map {t} {name}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

macro_rules! display_as_nft {
    ($($ty:ty => $f:ident),* $(,)?) => {$(
        /// As in `nft -f` input.
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$f(self))
            }
        }
    )*};
}

display_as_nft! {
    SetElement => element_text,
    Verdict => verdict_text,
    Match => match_text,
    Statement => statement_text,
    Rule => rule_text,
    BaseChain => base_text,
}
