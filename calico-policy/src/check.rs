//! `check`: the verdict for one flow, with its explanation per direction.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use calico_model::resources::policy::{Action, TierAction};
use calico_model::resources::values::Protocol;
use serde::Serialize;

use crate::addr::{AddrRange, Family};
use crate::conn::PortProtocol;
use crate::eval::{Packet, PeerSpec, Step};
use crate::model::{Direction, EndpointKind, EndpointToHostAction, Model, PolicyKind};

/// A peer as named on the command line: `NAMESPACE/NAME`, `NAME` or a literal IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerQuery {
    /// An endpoint by name.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

impl FromStr for PeerQuery {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<IpAddr>() {
            Ok(ip) => PeerQuery::Ip(ip),
            Err(_) => PeerQuery::Name(s.to_owned()),
        })
    }
}

/// One flow to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowQuery {
    /// Source.
    pub from: PeerQuery,
    /// Destination.
    pub to: PeerQuery,
    /// Protocol (default TCP).
    pub protocol: Protocol,
    /// Destination port (protocols with ports). Without it, rules that constrain
    /// destination ports do not match.
    pub port: Option<u16>,
    /// ICMP type. Without it, rules with `icmp`/`notICMP` do not match.
    pub icmp_type: Option<u8>,
    /// ICMP code.
    pub icmp_code: Option<u8>,
}

/// Why a flow could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// No endpoint has this name.
    #[error("no Pod, workload controller, WorkloadEndpoint or HostEndpoint named {0:?}")]
    UnknownPeer(String),
    /// The two addresses are of different families.
    #[error("{from} and {to} are of different IP families")]
    MixedFamilies {
        /// Source address.
        from: IpAddr,
        /// Destination address.
        to: IpAddr,
    },
    /// The protocol and the family disagree (ICMP with IPv6 or ICMPv6 with IPv4).
    #[error("protocol {protocol} cannot be used with {family}")]
    ProtocolFamily {
        /// The protocol.
        protocol: Protocol,
        /// The family of the flow's addresses.
        family: Family,
    },
    /// [`FlowQuery::port`] was set for a protocol without ports.
    #[error("a destination port needs protocol TCP, UDP or SCTP, not {0}")]
    PortWithoutPorts(Protocol),
    /// [`FlowQuery::icmp_type`] or [`FlowQuery::icmp_code`] was set for another protocol.
    #[error("an ICMP type or code needs protocol ICMP or ICMPv6, not {0}")]
    IcmpWithoutIcmp(Protocol),
    /// [`FlowQuery::icmp_code`] was set without [`FlowQuery::icmp_type`].
    #[error("an ICMP code needs an ICMP type")]
    CodeWithoutType,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The flow is allowed.
    Allow,
    /// The flow is dropped.
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// The name of a rule action as Calico writes it: `Allow`, `Deny`, `Pass` or `Log`.
pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allow => "Allow",
        Action::Deny => "Deny",
        Action::Pass => "Pass",
        Action::Log => "Log",
    }
}

/// The name of a tier's default action as Calico writes it: `Deny` or `Pass`.
pub fn tier_action_name(a: TierAction) -> &'static str {
    match a {
        TierAction::Deny => "Deny",
        TierAction::Pass => "Pass",
    }
}

fn ser_action<S: serde::Serializer>(a: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(action_name(*a))
}

fn ser_tier_action<S: serde::Serializer>(a: &TierAction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tier_action_name(*a))
}

/// Which failsafe ports let a flow through a host endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailsafeDirection {
    /// `failsafeInboundHostPorts`: traffic arriving at the host endpoint.
    Inbound,
    /// `failsafeOutboundHostPorts`: traffic leaving the host endpoint.
    Outbound,
}

impl fmt::Display for FailsafeDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailsafeDirection::Inbound => "inbound",
            FailsafeDirection::Outbound => "outbound",
        })
    }
}

/// One step of an explanation: what matched or which default applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Decision {
    /// A policy rule matched.
    PolicyRule {
        /// Tier.
        tier: String,
        /// Policy kind.
        kind: PolicyKind,
        /// Policy namespace, for namespaced policies.
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Policy name.
        policy: String,
        /// Rule index in the policy's rules of this direction (for a Kubernetes
        /// NetworkPolicy, in its converted rules).
        rule: usize,
        /// The rule's action.
        #[serde(serialize_with = "ser_action")]
        action: Action,
    },
    /// The end of a tier was reached.
    EndOfTier {
        /// Tier.
        tier: String,
        /// The tier's default action (`Deny` or `Pass`).
        #[serde(serialize_with = "ser_tier_action")]
        action: TierAction,
    },
    /// A profile rule matched.
    ProfileRule {
        /// Profile.
        profile: String,
        /// Rule index.
        rule: usize,
        /// The rule's action.
        #[serde(serialize_with = "ser_action")]
        action: Action,
        /// True when no tier had a policy for the endpoint in this direction.
        no_policy: bool,
    },
    /// A profile named by the endpoint does not exist: deny.
    MissingProfile {
        /// Profile.
        profile: String,
    },
    /// Nothing in the profiles allowed the flow: deny.
    NoProfileMatched,
    /// The peer is not an endpoint: it has no policy of its own.
    NotAnEndpoint,
    /// Workload to its own host: after the workload's egress, `defaultEndpointToHostAction`
    /// decides; host-endpoint ingress policy is not applied.
    EndpointToHost {
        /// The configured action (`Return`, to the host's own rules, counts as allowed).
        action: EndpointToHostAction,
    },
    /// Host-originated traffic to a workload on the same host is not policed.
    HostToLocalWorkload,
    /// A failsafe port of the host endpoint's node (allowed before any policy).
    Failsafe {
        /// Inbound to or outbound from the host endpoint.
        direction: FailsafeDirection,
        /// Protocol and port as configured.
        port: String,
    },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::PolicyRule {
                tier,
                kind,
                namespace,
                policy,
                rule,
                action,
            } => {
                write!(f, "tier {tier}, {kind} ")?;
                if let Some(ns) = namespace {
                    write!(f, "{ns}/")?;
                }
                write!(f, "{policy}, rule {rule}: {}", action_name(*action))
            }
            Decision::EndOfTier { tier, action } => {
                write!(f, "end of tier {tier}: {}", tier_action_name(*action))
            }
            Decision::ProfileRule {
                profile,
                rule,
                action,
                no_policy,
            } => {
                if *no_policy && *action == Action::Allow {
                    write!(f, "no policy: allowed by profile {profile} (rule {rule})")
                } else {
                    write!(
                        f,
                        "profile {profile}, rule {rule}: {}",
                        action_name(*action)
                    )
                }
            }
            Decision::MissingProfile { profile } => {
                write!(f, "profile {profile} does not exist: Deny")
            }
            Decision::NoProfileMatched => f.write_str("no profile matched: Deny"),
            Decision::NotAnEndpoint => f.write_str("not an endpoint: no policy of its own"),
            Decision::EndpointToHost { action } => {
                write!(
                    f,
                    "workload to its own host: defaultEndpointToHostAction {action}"
                )
            }
            Decision::HostToLocalWorkload => {
                f.write_str("host to a local workload: not subject to workload policy")
            }
            Decision::Failsafe { direction, port } => {
                write!(f, "failsafe {direction} port {port}: Allow")
            }
        }
    }
}

/// The evaluation of one direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DirectionResult {
    /// `egress` (of the source) or `ingress` (of the destination).
    pub direction: Direction,
    /// The endpoint whose policy was evaluated (`None` for an external peer).
    pub endpoint: Option<String>,
    /// This direction's verdict.
    pub verdict: Verdict,
    /// What decided.
    pub decided_by: Decision,
    /// `decided_by` as text.
    pub reason: String,
    /// Every step that matched the flow, in order (Log and Pass rules included).
    pub steps: Vec<Decision>,
}

/// What a peer of a flow is. Displays (and serializes) as the endpoint's kind or `External`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// An endpoint of the model.
    Endpoint(EndpointKind),
    /// An address that is no endpoint's.
    External,
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKind::Endpoint(k) => k.fmt(f),
            PeerKind::External => f.write_str("External"),
        }
    }
}

impl Serialize for PeerKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A resolved peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeerInfo {
    /// What was asked for.
    pub query: String,
    /// What the peer is.
    pub kind: PeerKind,
    /// The endpoint (`ns/name`) when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The address the flow uses, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The answer for one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CheckResult {
    /// `allow` when both directions allow.
    pub verdict: Verdict,
    /// Source.
    pub from: PeerInfo,
    /// Destination.
    pub to: PeerInfo,
    /// The family of the flow (serialized as `IPv4` or `IPv6`).
    pub family: Family,
    /// The packet.
    pub packet: Packet,
    /// Egress of the source, then ingress of the destination.
    pub explanation: Vec<DirectionResult>,
}

struct Resolved {
    endpoint: Option<usize>,
    ip: Option<IpAddr>,
    query: String,
}

impl Model {
    fn resolve_peer(&self, q: &PeerQuery) -> Result<Resolved, CheckError> {
        match q {
            PeerQuery::Name(n) => match self.find_endpoint_position(n) {
                Some(i) => Ok(Resolved {
                    endpoint: Some(i),
                    ip: None,
                    query: n.clone(),
                }),
                None => Err(CheckError::UnknownPeer(n.clone())),
            },
            PeerQuery::Ip(ip) => Ok(Resolved {
                endpoint: self.endpoint_position_with_addr(*ip),
                ip: Some(*ip),
                query: ip.to_string(),
            }),
        }
    }

    fn pick_family(
        &self,
        a: &Resolved,
        b: &Resolved,
        protocol: Protocol,
    ) -> Result<Family, CheckError> {
        let fixed = match (a.ip, b.ip) {
            (Some(x), Some(y)) if Family::of(x) != Family::of(y) => {
                return Err(CheckError::MixedFamilies { from: x, to: y });
            }
            (Some(x), _) | (None, Some(x)) => Some(Family::of(x)),
            (None, None) => None,
        };
        let by_proto = if protocol.is_icmp_v4() {
            Some(Family::V4)
        } else if protocol.is_icmp_v6() {
            Some(Family::V6)
        } else {
            None
        };
        if let (Some(f), Some(p)) = (fixed, by_proto) {
            if f != p {
                return Err(CheckError::ProtocolFamily {
                    protocol,
                    family: f,
                });
            }
        }
        if let Some(f) = fixed.or(by_proto) {
            return Ok(f);
        }
        let has = |r: &Resolved, f: Family| {
            r.endpoint
                .and_then(|i| self.endpoints.get(i))
                .is_some_and(|e| e.addrs.iter().any(|ip| Family::of(*ip) == f))
        };
        let addressed = |r: &Resolved| {
            r.endpoint
                .and_then(|i| self.endpoints.get(i))
                .is_some_and(|e| !e.addrs.is_empty())
        };
        let all_have = |f: Family| [a, b].iter().all(|r| !addressed(r) || has(r, f));
        Ok(if all_have(Family::V4) || !all_have(Family::V6) {
            Family::V4
        } else {
            Family::V6
        })
    }

    fn peer_spec(&self, r: &Resolved, family: Family) -> PeerSpec {
        match r.endpoint {
            Some(index) => PeerSpec::Endpoint {
                index,
                addr: r.ip.or_else(|| {
                    self.endpoints
                        .get(index)
                        .and_then(|e| e.addrs.iter().copied().find(|ip| Family::of(*ip) == family))
                }),
            },
            None => PeerSpec::External(AddrRange::single(
                r.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            )),
        }
    }

    fn peer_info(&self, r: &Resolved, spec: &PeerSpec) -> PeerInfo {
        let (kind, endpoint) = match r.endpoint.and_then(|i| self.endpoints.get(i)) {
            Some(e) => (
                PeerKind::Endpoint(e.kind),
                Some(match &e.namespace {
                    Some(ns) => format!("{ns}/{}", e.name),
                    None => e.name.clone(),
                }),
            ),
            None => (PeerKind::External, None),
        };
        let address = match spec {
            PeerSpec::Endpoint { addr, .. } => addr.map(|a| a.to_string()),
            PeerSpec::External(r) => Some(r.first().to_string()),
        };
        PeerInfo {
            query: r.query.clone(),
            kind,
            endpoint,
            address,
        }
    }

    fn decision(&self, s: &Step, no_policy: bool) -> Decision {
        match s {
            Step::PolicyRule {
                policy,
                rule,
                action,
            } => {
                let p = &self.policies[*policy];
                Decision::PolicyRule {
                    tier: p.tier.clone(),
                    kind: p.id.kind,
                    namespace: p.id.namespace.clone(),
                    policy: p.id.name.clone(),
                    rule: *rule,
                    action: *action,
                }
            }
            Step::EndOfTier { tier } => {
                let t = &self.policies.tiers()[*tier];
                Decision::EndOfTier {
                    tier: t.name.clone(),
                    action: t.default_action,
                }
            }
            Step::ProfileRule {
                profile,
                rule,
                action,
            } => Decision::ProfileRule {
                profile: profile.clone(),
                rule: *rule,
                action: *action,
                no_policy,
            },
            Step::MissingProfile { profile } => Decision::MissingProfile {
                profile: profile.clone(),
            },
            Step::NoProfileMatched => Decision::NoProfileMatched,
        }
    }

    fn is_final(d: &Decision) -> bool {
        match d {
            Decision::PolicyRule { action, .. } | Decision::ProfileRule { action, .. } => {
                matches!(action, Action::Allow | Action::Deny)
            }
            Decision::EndOfTier { action, .. } => *action == TierAction::Deny,
            Decision::MissingProfile { .. }
            | Decision::NoProfileMatched
            | Decision::NotAnEndpoint
            | Decision::EndpointToHost { .. }
            | Decision::HostToLocalWorkload
            | Decision::Failsafe { .. } => true,
        }
    }

    fn direction_result(
        &self,
        dir: Direction,
        ep: &PeerSpec,
        other: &PeerSpec,
        family: Family,
        packet: &Packet,
    ) -> DirectionResult {
        let PeerSpec::Endpoint { index, .. } = *ep else {
            return DirectionResult {
                direction: dir,
                endpoint: None,
                verdict: Verdict::Allow,
                reason: Decision::NotAnEndpoint.to_string(),
                decided_by: Decision::NotAnEndpoint,
                steps: Vec::new(),
            };
        };
        let (allowed, steps) = self.direction_packet(index, dir, ep, other, family, packet);
        let no_policy = !steps
            .iter()
            .any(|s| matches!(s, Step::PolicyRule { .. } | Step::EndOfTier { .. }))
            && self.endpoints.applying(index, dir).is_empty();
        let steps: Vec<Decision> = steps.iter().map(|s| self.decision(s, no_policy)).collect();
        let decided_by = steps
            .iter()
            .rev()
            .find(|d| Self::is_final(d))
            .cloned()
            .unwrap_or(Decision::NoProfileMatched);
        let e = &self.endpoints[index];
        DirectionResult {
            direction: dir,
            endpoint: Some(match &e.namespace {
                Some(ns) => format!("{ns}/{}", e.name),
                None => e.name.clone(),
            }),
            verdict: if allowed {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            reason: decided_by.to_string(),
            decided_by,
            steps,
        }
    }

    fn endpoint_name(&self, index: usize) -> String {
        let e = &self.endpoints[index];
        match &e.namespace {
            Some(ns) => format!("{ns}/{}", e.name),
            None => e.name.clone(),
        }
    }

    fn fixed(&self, dir: Direction, index: usize, allow: bool, d: Decision) -> DirectionResult {
        DirectionResult {
            direction: dir,
            endpoint: Some(self.endpoint_name(index)),
            verdict: if allow { Verdict::Allow } else { Verdict::Deny },
            reason: d.to_string(),
            decided_by: d.clone(),
            steps: vec![d],
        }
    }

    fn failsafe(
        &self,
        node: &str,
        direction: FailsafeDirection,
        remote: &PeerSpec,
        packet: &Packet,
    ) -> Option<Decision> {
        let port = packet.port?;
        let remote_ip = match remote {
            PeerSpec::Endpoint { addr, .. } => *addr,
            PeerSpec::External(r) => Some(r.first()),
        };
        self.failsafe_ports(node, direction)
            .into_iter()
            .find_map(|fp| {
                let proto = match fp.protocol.to_ascii_lowercase().as_str() {
                    "tcp" => 6,
                    "udp" => 17,
                    "sctp" => 132,
                    _ => return None,
                };
                let net_ok = fp.net.is_empty()
                    || fp
                        .net
                        .parse::<calico_model::resources::values::IpCidr>()
                        .is_ok_and(|c| remote_ip.is_some_and(|ip| c.contains(ip)));
                (proto == packet.protocol && fp.port == port && net_ok).then(|| {
                    Decision::Failsafe {
                        direction,
                        port: format!("{}:{}", fp.protocol.to_ascii_lowercase(), fp.port),
                    }
                })
            })
    }

    /// Host-endpoint special paths: workload ↔ its own host, and
    /// failsafe ports. `[egress, ingress]` results that replace the policy walk.
    fn host_paths(
        &self,
        src: &PeerSpec,
        dst: &PeerSpec,
        packet: &Packet,
    ) -> [Option<DirectionResult>; 2] {
        let ep = |p: &PeerSpec| match *p {
            PeerSpec::Endpoint { index, .. } => self.endpoints.get(index).map(|e| (index, e)),
            PeerSpec::External(_) => None,
        };
        let mut out = [None, None];
        let (s, d) = (ep(src), ep(dst));
        let same_node = |a: &crate::model::Endpoint, b: &crate::model::Endpoint| {
            a.node.is_some() && a.node == b.node
        };
        if let (Some((si, se)), Some((di, de))) = (s, d) {
            if se.is_workload() && !de.is_workload() && same_node(se, de) {
                let node = de.node.clone().unwrap_or_default();
                let action = self.endpoint_to_host_action(&node);
                let allow = action.allows();
                out[1] = Some(self.fixed(
                    Direction::Ingress,
                    di,
                    allow,
                    Decision::EndpointToHost { action },
                ));
                return out;
            }
            if !se.is_workload() && de.is_workload() && same_node(se, de) {
                out[0] =
                    Some(self.fixed(Direction::Egress, si, true, Decision::HostToLocalWorkload));
                out[1] =
                    Some(self.fixed(Direction::Ingress, di, true, Decision::HostToLocalWorkload));
                return out;
            }
        }
        if let Some((si, se)) = s.filter(|(_, e)| !e.is_workload()) {
            if let Some(d) = se
                .node
                .as_deref()
                .and_then(|n| self.failsafe(n, FailsafeDirection::Outbound, dst, packet))
            {
                out[0] = Some(self.fixed(Direction::Egress, si, true, d));
            }
        }
        if let Some((di, de)) = d.filter(|(_, e)| !e.is_workload()) {
            if let Some(d) = de
                .node
                .as_deref()
                .and_then(|n| self.failsafe(n, FailsafeDirection::Inbound, src, packet))
            {
                out[1] = Some(self.fixed(Direction::Ingress, di, true, d));
            }
        }
        out
    }

    /// Checks one flow: egress of the source, then ingress of the destination.
    ///
    /// Endpoints with known addresses are matched by selectors and by `nets` on the address
    /// the flow uses (the first of the flow's family); synthetic pods by selectors only.
    ///
    /// # Errors
    ///
    /// An unknown peer name or an inconsistent query ([`CheckError`]).
    pub fn check(&self, q: &FlowQuery) -> Result<CheckResult, CheckError> {
        let supports_ports = PortProtocol::from_number(q.protocol.number()).is_some();
        let is_icmp = q.protocol.is_icmp_v4() || q.protocol.is_icmp_v6();
        if q.port.is_some() && !supports_ports {
            return Err(CheckError::PortWithoutPorts(q.protocol));
        }
        if (q.icmp_type.is_some() || q.icmp_code.is_some()) && !is_icmp {
            return Err(CheckError::IcmpWithoutIcmp(q.protocol));
        }
        if q.icmp_code.is_some() && q.icmp_type.is_none() {
            return Err(CheckError::CodeWithoutType);
        }
        let from = self.resolve_peer(&q.from)?;
        let to = self.resolve_peer(&q.to)?;
        let family = self.pick_family(&from, &to, q.protocol)?;
        let src = self.peer_spec(&from, family);
        let dst = self.peer_spec(&to, family);
        let packet = Packet {
            protocol: q.protocol.number(),
            port: q.port,
            icmp_type: q.icmp_type,
            icmp_code: q.icmp_code,
        };
        let special = self.host_paths(&src, &dst, &packet);
        let egress = special[0].clone().unwrap_or_else(|| {
            self.direction_result(Direction::Egress, &src, &dst, family, &packet)
        });
        let ingress = special[1].clone().unwrap_or_else(|| {
            self.direction_result(Direction::Ingress, &dst, &src, family, &packet)
        });
        let verdict = if egress.verdict == Verdict::Allow && ingress.verdict == Verdict::Allow {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        Ok(CheckResult {
            verdict,
            from: self.peer_info(&from, &src),
            to: self.peer_info(&to, &dst),
            family,
            packet,
            explanation: vec![egress, ingress],
        })
    }
}

/// A few lines: the verdict, then per direction the endpoint, its verdict and the reason,
/// and the steps that matched.
impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verdict: {}", self.verdict)?;
        for d in &self.explanation {
            match &d.endpoint {
                Some(e) => writeln!(f, "{} of {e}: {} ({})", d.direction, d.verdict, d.reason)?,
                None => writeln!(f, "{}: {} ({})", d.direction, d.verdict, d.reason)?,
            }
            if d.steps.len() > 1 {
                for s in &d.steps {
                    writeln!(f, "  {s}")?;
                }
            }
        }
        Ok(())
    }
}
