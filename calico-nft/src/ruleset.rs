//! A structured model of one nftables table (`table inet calico`).
//!
//! Every type here maps 1:1 to nf_tables kernel objects and expressions, so the same value can
//! be rendered as `nft -f` text ([`Ruleset::to_nft`]) or encoded as netlink messages by a
//! dataplane crate. There is no free-form text in rules: a [`Rule`] is a list of typed
//! [`Match`]es, then [`Statement`]s, then an optional [`RuleVerdict`], plus an optional comment
//! (stored by the kernel as user data).
//!
//! Kernel mapping of the matches (for encoders):
//!
//! | Variant | Kernel expressions |
//! |---|---|
//! | [`Match::Iifname`] / [`Match::Oifname`] | `meta load iifname/oifname` + `cmp` (exact: the name NUL-padded to 16 bytes; [`IfnameMatch::Prefix`]: `cmp eq` on the prefix bytes only) |
//! | [`Match::L4proto`] | `meta load l4proto` + `cmp eq/neq` (1 byte) |
//! | [`Match::Nfproto`] | `meta load nfproto` + `cmp eq` (NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10) |
//! | [`Match::Mark`] | `meta load mark` + `bitwise & mask` + `cmp eq/neq value` |
//! | [`Match::Addr`] | `payload load` network header (IPv4 saddr 12/daddr 16, 4 bytes; IPv6 8/24, 16 bytes); a prefix is `bitwise` mask + `cmp`, a single address `cmp`, a set `lookup` (with the invert flag when negated) |
//! | [`Match::Port`] | `payload load` transport header offset 0 (sport) / 2 (dport), 2 bytes; single `cmp`, range `range` (or `cmp gte`+`cmp lte`), set `lookup`. The rule always carries an [`Match::L4proto`] before it (the builder guarantees it). |
//! | [`Match::IcmpType`] / [`Match::IcmpCode`] | `payload load` transport header offset 0 / 1, 1 byte, + `cmp eq/neq`; preceded by `meta l4proto icmp/icmpv6` |
//! | [`Match::CtState`] | `ct load state` + `bitwise & states` + `cmp neq 0` |
//! | [`Match::AddrProtoPort`] | `payload load` address into reg 1, `meta load l4proto` into the next 32-bit register, `payload load` th dport into the next; `lookup` on the concatenated set |
//!
//! Statements: [`Statement::Counter`] is `counter`; [`Statement::Log`] is `log`;
//! [`Statement::MarkSet`] is `meta load mark` + `bitwise (mark & and) | or` + `meta set mark`.
//! A [`RuleVerdict::Vmap`] is `meta load iifname/oifname` + `lookup` on the verdict map with a
//! data register of type verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// The name of the table every ruleset lives in (family `inet`).
pub const TABLE: &str = "calico";

/// The maximum length of a chain, set or map name (an nftables limit).
pub const NAME_MAX: usize = 256;

/// One `table inet calico`: named sets, verdict maps and chains, each keyed by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ruleset {
    /// Named sets.
    pub sets: BTreeMap<String, Set>,
    /// Verdict maps.
    pub maps: BTreeMap<String, VerdictMap>,
    /// Chains (base and regular).
    pub chains: BTreeMap<String, Chain>,
}

/// The IP family a match or a concatenated set key is about: IPv4 is `ip` (`ipv4_addr`) and
/// IPv6 `ip6` (`ipv6_addr`) in nftables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
}

/// The key type of a named set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKey {
    /// `ipv4_addr`.
    Ipv4Addr,
    /// `ipv6_addr`.
    Ipv6Addr,
    /// `inet_service` (a port).
    InetService,
    /// `ifname`.
    Ifname,
    /// `ipv4_addr . inet_proto . inet_service` (or the IPv6 form).
    AddrProtoService(IpFamily),
}

/// One element of a set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetElement {
    /// An address prefix (a single address is a full-length prefix); key `ipvN_addr`.
    Net(IpNet),
    /// An inclusive address range (interval sets only); key `ipvN_addr`.
    AddrRange(IpAddr, IpAddr),
    /// A port; key `inet_service`.
    Port(u16),
    /// An inclusive port range (interval sets only); key `inet_service`.
    PortRange(u16, u16),
    /// An interface name; key `ifname`.
    Ifname(String),
    /// (address, IP protocol number, port); key [`SetKey::AddrProtoService`].
    AddrProtoPort(IpAddr, u8, u16),
}

/// A named set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Set {
    /// Key type.
    pub key: SetKey,
    /// `flags interval`.
    pub interval: bool,
    /// Elements (for interval sets, non-overlapping).
    pub elements: BTreeSet<SetElement>,
}

/// A verdict map keyed by interface name (`type ifname : verdict`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VerdictMap {
    /// Interface name → verdict.
    pub elements: BTreeMap<String, Verdict>,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
}

impl Verdict {
    /// The chain this verdict transfers control to, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

/// A base chain's default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainPolicy {
    /// `policy accept`.
    Accept,
    /// `policy drop`.
    Drop,
}

/// The hook attachment of a base chain (always `type filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// Hook.
    pub hook: Hook,
    /// Priority (`filter` is 0).
    pub priority: i32,
    /// Default policy.
    pub policy: ChainPolicy,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Chain {
    /// `Some` for a base chain.
    pub base: Option<BaseChain>,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// An interface name match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IfnameMatch {
    /// The exact name.
    Exact(String),
    /// Any name starting with this prefix (`"cali*"` in nft text).
    Prefix(String),
}

/// Source or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `saddr` / `sport`.
    Src,
    /// `daddr` / `dport`.
    Dst,
}

/// The value an address is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrValue {
    /// A prefix (a single address when full length).
    Net(IpNet),
    /// A named set (`@name`) of the matching address type.
    Set(String),
}

/// The transport protocol header a port match is written for (the kernel load is the same
/// transport-header offset for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProto {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
    /// `udplite`.
    Udplite,
    /// `th` (any transport header with ports).
    Th,
}

/// The value a port is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortValue {
    /// One port.
    Single(u16),
    /// An inclusive range.
    Range(u16, u16),
    /// A named set (`@name`, key `inet_service`).
    Set(String),
}

/// `ct state` bits (kernel `NF_CT_STATE_*_BIT` values).
pub mod ct_state {
    /// `invalid`.
    pub const INVALID: u32 = 1;
    /// `established`.
    pub const ESTABLISHED: u32 = 2;
    /// `related`.
    pub const RELATED: u32 = 4;
    /// `new`.
    pub const NEW: u32 = 8;
    /// `untracked`.
    pub const UNTRACKED: u32 = 64;
}

/// A match expression; a rule matches when all its matches do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `iifname NAME` / `iifname != NAME` / `iifname "cali*"`.
    Iifname {
        /// The name or prefix.
        name: IfnameMatch,
        /// `!=`.
        negate: bool,
    },
    /// `oifname ...`.
    Oifname {
        /// The name or prefix.
        name: IfnameMatch,
        /// `!=`.
        negate: bool,
    },
    /// `meta l4proto P` / `meta l4proto != P`.
    L4proto {
        /// IP protocol number.
        proto: u8,
        /// `!=`.
        negate: bool,
    },
    /// `meta nfproto ipv4|ipv6`.
    Nfproto(IpFamily),
    /// `meta mark & MASK == VALUE` (or `!=`).
    Mark {
        /// Mask.
        mask: u32,
        /// Value compared with the masked mark.
        value: u32,
        /// `!=`.
        negate: bool,
    },
    /// `ip saddr X`, `ip6 daddr != @set`, ...
    Addr {
        /// `ip` or `ip6`.
        family: IpFamily,
        /// `saddr` or `daddr`.
        side: Side,
        /// Prefix or set.
        value: AddrValue,
        /// `!=`.
        negate: bool,
    },
    /// `tcp dport 80`, `th sport 1-2`, `udp dport != @ports-x`, ...
    Port {
        /// Header name used in text.
        proto: PortProto,
        /// `sport` or `dport`.
        side: Side,
        /// Port, range or set.
        value: PortValue,
        /// `!=`.
        negate: bool,
    },
    /// `icmp type T` / `icmpv6 type != T`.
    IcmpType {
        /// `icmp` (V4) or `icmpv6` (V6).
        family: IpFamily,
        /// Type.
        value: u8,
        /// `!=`.
        negate: bool,
    },
    /// `icmp code C` / `icmpv6 code != C`.
    IcmpCode {
        /// `icmp` (V4) or `icmpv6` (V6).
        family: IpFamily,
        /// Code.
        value: u8,
        /// `!=`.
        negate: bool,
    },
    /// `ct state S1,S2` (any of the [`ct_state`] bits).
    CtState(u32),
    /// `ip daddr . meta l4proto . th dport @set` (or `saddr`, or `!=`).
    AddrProtoPort {
        /// `ip` or `ip6`.
        family: IpFamily,
        /// Address side (the port is always the destination port).
        side: Side,
        /// Set name (key [`SetKey::AddrProtoService`]).
        set: String,
        /// `!=`.
        negate: bool,
    },
}

/// Syslog levels for `log level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// `emerg` (0).
    Emerg,
    /// `alert` (1).
    Alert,
    /// `crit` (2).
    Crit,
    /// `err` (3).
    Err,
    /// `warn` (4).
    Warn,
    /// `notice` (5).
    Notice,
    /// `info` (6).
    Info,
    /// `debug` (7).
    Debug,
}

/// A statement (runs after all matches, before the verdict).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Statement {
    /// `counter`.
    Counter,
    /// `log prefix "..." level L`.
    Log {
        /// Prefix.
        prefix: Option<String>,
        /// Level.
        level: Option<LogLevel>,
    },
    /// `meta mark set meta mark & AND | OR`.
    MarkSet {
        /// Bits kept.
        and: u32,
        /// Bits set.
        or: u32,
    },
}

/// What ends a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleVerdict {
    /// A verdict.
    Verdict(Verdict),
    /// `iifname vmap @map` (`side` [`Side::Src`]) or `oifname vmap @map` ([`Side::Dst`]).
    Vmap {
        /// Input (`Src`, iifname) or output (`Dst`, oifname) interface.
        side: Side,
        /// Map name.
        map: String,
    },
}

/// A rule: all matches, then the statements, then the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    /// Matches (ANDed).
    pub matches: Vec<Match>,
    /// Statements.
    pub statements: Vec<Statement>,
    /// Verdict, if any.
    pub verdict: Option<RuleVerdict>,
    /// Comment (kernel user data), at most 128 bytes.
    pub comment: Option<String>,
}

impl Rule {
    /// The chains this rule jumps or goes to.
    pub fn target(&self) -> Option<&str> {
        match &self.verdict {
            Some(RuleVerdict::Verdict(v)) => v.target(),
            _ => None,
        }
    }

    /// The sets and maps this rule references.
    pub fn referenced_sets(&self) -> impl Iterator<Item = &str> {
        let from_matches = self.matches.iter().filter_map(|m| match m {
            Match::Addr {
                value: AddrValue::Set(s),
                ..
            }
            | Match::Port {
                value: PortValue::Set(s),
                ..
            }
            | Match::AddrProtoPort { set: s, .. } => Some(s.as_str()),
            _ => None,
        });
        let from_verdict = match &self.verdict {
            Some(RuleVerdict::Vmap { map, .. }) => Some(map.as_str()),
            _ => None,
        };
        from_matches.chain(from_verdict)
    }
}

/// The changes that turn one [`Ruleset`] into another, to be applied as one
/// transaction in the order of [`RulesetDelta::ops`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RulesetDelta {
    /// Chains flushed before anything else because they reference a set or map that is
    /// replaced (same name, other definition); they are refilled in `fill_chains` or deleted.
    pub pre_flush_chains: Vec<String>,
    /// Base chains whose hook, priority or policy changed: deleted first, then recreated in
    /// `create_chains`.
    pub pre_delete_chains: Vec<String>,
    /// Sets whose key or flags changed: deleted first, then recreated in `create_sets`.
    pub pre_delete_sets: Vec<String>,
    /// Sets to create (with no elements; they come in `add_elements`).
    pub create_sets: Vec<(String, SetKey, bool)>,
    /// Verdict maps to create (empty; elements come in `map_add`).
    pub create_maps: Vec<String>,
    /// Chains to create (empty; rules come in `fill_chains`).
    pub create_chains: Vec<(String, Option<BaseChain>)>,
    /// Set elements to remove, per set.
    pub remove_elements: Vec<(String, Vec<SetElement>)>,
    /// Set elements to add, per set.
    pub add_elements: Vec<(String, Vec<SetElement>)>,
    /// Chains whose rules are (re)written: flushed (when they existed), then filled with
    /// these rules. New chains are listed here too (with `flush` false).
    pub fill_chains: Vec<ChainFill>,
    /// Verdict-map elements to remove (changed ones are removed, then added).
    pub map_remove: Vec<(String, Vec<String>)>,
    /// Verdict-map elements to add.
    pub map_add: Vec<(String, Vec<(String, Verdict)>)>,
    /// Chains to delete (they are flushed first, then deleted).
    pub delete_chains: Vec<String>,
    /// Sets to delete.
    pub delete_sets: Vec<String>,
    /// Verdict maps to delete.
    pub delete_maps: Vec<String>,
}

/// The new contents of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFill {
    /// Chain name.
    pub chain: String,
    /// Whether the chain existed before (flush it first).
    pub flush: bool,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// One operation of a delta, in application order; each maps to one nf_tables netlink message
/// (or one `nft` command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `add table inet calico` (idempotent; always first).
    AddTable,
    /// `add set` (empty).
    AddSet {
        /// Name.
        name: &'a str,
        /// Key type.
        key: SetKey,
        /// `flags interval`.
        interval: bool,
    },
    /// `add map NAME { type ifname : verdict; }` (empty).
    AddMap {
        /// Name.
        name: &'a str,
    },
    /// `add chain` (empty).
    AddChain {
        /// Name.
        name: &'a str,
        /// Hook attachment for base chains.
        base: Option<BaseChain>,
    },
    /// `delete element` from a set.
    DeleteElements {
        /// Set.
        set: &'a str,
        /// Elements.
        elements: &'a [SetElement],
    },
    /// `add element` to a set.
    AddElements {
        /// Set.
        set: &'a str,
        /// Elements.
        elements: &'a [SetElement],
    },
    /// `flush chain`.
    FlushChain {
        /// Chain.
        chain: &'a str,
    },
    /// `add rule` (appended).
    AddRule {
        /// Chain.
        chain: &'a str,
        /// Rule.
        rule: &'a Rule,
    },
    /// `delete element` from a verdict map.
    DeleteMapElements {
        /// Map.
        map: &'a str,
        /// Keys.
        keys: &'a [String],
    },
    /// `add element` to a verdict map.
    AddMapElements {
        /// Map.
        map: &'a str,
        /// Key → verdict.
        elements: &'a [(String, Verdict)],
    },
    /// `delete chain` (after every chain to delete was flushed).
    DeleteChain {
        /// Chain.
        chain: &'a str,
    },
    /// `delete set`.
    DeleteSet {
        /// Set.
        name: &'a str,
    },
    /// `delete map`.
    DeleteMap {
        /// Map.
        name: &'a str,
    },
}
