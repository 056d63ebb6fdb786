//! Policy kinds: rules, NetworkPolicy, GlobalNetworkPolicy, their staged
//! variants, Tier and Profile.
//!
//! Every `spec` type here rejects unknown fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Labels, ObjectMeta};
use super::values::serde_util::is_false;
use super::values::{IpCidr, Port, Protocol};

/// A rule action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Accept the packet; final.
    Allow,
    /// Drop the packet; final.
    Deny,
    /// Log and continue with the next rule.
    Log,
    /// Skip the rest of the tier; continue with the next tier.
    Pass,
}

/// A policy direction (`types` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic arriving at the selected endpoints.
    Ingress,
    /// Traffic leaving the selected endpoints.
    Egress,
}

/// ICMP match `{type, code}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpFields {
    /// ICMP type, 0–254.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code, 0–255; requires `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// `http` match of a rule (enforced by an L7 proxy, never by the kernel).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMatch {
    /// HTTP methods (≤ 20, no duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Path matches (≤ 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<HttpPath>,
}

/// One `http.paths` entry: exactly one of `exact` and `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPath {
    /// Exact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Rule `metadata` (annotations rendered as rule comments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
}

/// `serviceAccounts` match of an entity rule: names and selector are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountMatch {
    /// Service-account names (a set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Selector over service-account labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

/// `services` match of an entity rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMatch {
    /// Service name (required).
    #[serde(default)]
    pub name: String,
    /// Service namespace (required in a GlobalNetworkPolicy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The source or destination of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    /// Addresses in any of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<IpCidr>,
    /// Addresses in none of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<IpCidr>,
    /// Endpoint selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Negated endpoint selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_selector: String,
    /// Namespace selector (`global()` allowed as the whole selector).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// Ports (numbers, ranges, names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Negated ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<Port>,
    /// Service-account match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
    /// Kubernetes service match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceMatch>,
}

impl EntityRule {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == EntityRule::default()
    }
}

/// One policy or profile rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Action (required).
    pub action: Action,
    /// IP version, 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Negated protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// ICMP match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    /// Negated ICMP match.
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    /// Source match.
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub source: EntityRule,
    /// Destination match.
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub destination: EntityRule,
    /// HTTP match (L7 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpMatch>,
    /// Rule metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

impl Rule {
    /// A rule with only an action.
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: EntityRule::default(),
            destination: EntityRule::default(),
            http: None,
            metadata: None,
        }
    }
}

/// A policy performance hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PerformanceHint {
    /// Program the policy on every node whether or not it selects a local endpoint.
    AssumeNeededOnEveryNode,
}

/// Staged policy action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StagedAction {
    /// Stage setting (creating or updating) the policy (default).
    #[default]
    Set,
    /// Stage deleting the policy.
    Delete,
    /// Learn mode.
    Learn,
    /// Ignore.
    Ignore,
}

/// Default policy types: no egress rules → `[Ingress]`; egress only →
/// `[Egress]`; both → `[Ingress, Egress]`.
pub fn default_policy_types(ingress: &[Rule], egress: &[Rule]) -> Vec<PolicyType> {
    match (ingress.is_empty(), egress.is_empty()) {
        (_, true) => vec![PolicyType::Ingress],
        (true, false) => vec![PolicyType::Egress],
        (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
    }
}

/// `spec` of a (namespaced) NetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Tier name (defaulted to `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    /// Order; unset = +∞.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoint selector (`""` = `all()`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Service-account selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    /// Policy types (defaulted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Performance hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<PerformanceHint>,
}

/// `spec` of a GlobalNetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicySpec {
    /// Tier name (defaulted to `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    /// Order; unset = +∞.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoint selector (`""` = `all()`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Service-account selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    /// Namespace selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// Policy types (defaulted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Apply before connection tracking (host endpoints).
    #[serde(default, skip_serializing_if = "is_false")]
    pub do_not_track: bool,
    /// Apply before DNAT (host endpoints, ingress only).
    #[serde(default, rename = "preDNAT", skip_serializing_if = "is_false")]
    pub pre_dnat: bool,
    /// Apply to forwarded traffic (host endpoints).
    #[serde(default, skip_serializing_if = "is_false")]
    pub apply_on_forward: bool,
    /// Performance hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<PerformanceHint>,
}

/// `spec` of a StagedNetworkPolicy: the NetworkPolicy spec plus `stagedAction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StagedNetworkPolicySpec {
    /// Staged action (default `Set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_action: Option<StagedAction>,
    /// Tier name (defaulted to `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    /// Order; unset = +∞.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoint selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Service-account selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    /// Policy types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Performance hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<PerformanceHint>,
}

impl StagedNetworkPolicySpec {
    /// The enforced NetworkPolicy spec this staged spec would become.
    pub fn to_enforced(&self) -> NetworkPolicySpec {
        NetworkPolicySpec {
            tier: self.tier.clone(),
            order: self.order,
            selector: self.selector.clone(),
            service_account_selector: self.service_account_selector.clone(),
            types: self.types.clone(),
            ingress: self.ingress.clone(),
            egress: self.egress.clone(),
            performance_hints: self.performance_hints.clone(),
        }
    }
}

/// `spec` of a StagedGlobalNetworkPolicy: the GlobalNetworkPolicy spec plus `stagedAction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StagedGlobalNetworkPolicySpec {
    /// Staged action (default `Set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_action: Option<StagedAction>,
    /// Tier name (defaulted to `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    /// Order; unset = +∞.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoint selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Service-account selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    /// Namespace selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// Policy types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Apply before connection tracking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub do_not_track: bool,
    /// Apply before DNAT.
    #[serde(default, rename = "preDNAT", skip_serializing_if = "is_false")]
    pub pre_dnat: bool,
    /// Apply to forwarded traffic.
    #[serde(default, skip_serializing_if = "is_false")]
    pub apply_on_forward: bool,
    /// Performance hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<PerformanceHint>,
}

impl StagedGlobalNetworkPolicySpec {
    /// The enforced GlobalNetworkPolicy spec this staged spec would become.
    pub fn to_enforced(&self) -> GlobalNetworkPolicySpec {
        GlobalNetworkPolicySpec {
            tier: self.tier.clone(),
            order: self.order,
            selector: self.selector.clone(),
            service_account_selector: self.service_account_selector.clone(),
            namespace_selector: self.namespace_selector.clone(),
            types: self.types.clone(),
            ingress: self.ingress.clone(),
            egress: self.egress.clone(),
            do_not_track: self.do_not_track,
            pre_dnat: self.pre_dnat,
            apply_on_forward: self.apply_on_forward,
            performance_hints: self.performance_hints.clone(),
        }
    }
}

/// A tier's default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TierAction {
    /// Drop traffic that reached the end of the tier (default).
    Deny,
    /// Continue with the next tier.
    Pass,
}

/// `spec` of a Tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierSpec {
    /// Order; unset = last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Default action (defaulted to `Deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<TierAction>,
}

/// A built-in tier: `kube-admin` (order 1000, `Pass`), `default` (order 1 000 000, `Deny`)
/// and `kube-baseline` (order 10 000 000, `Pass`) exist even when the input does not define
/// them, and an input Tier of one of these names must carry exactly these values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuiltinTier {
    /// Tier name.
    pub name: &'static str,
    /// Fixed order.
    pub order: f64,
    /// Fixed default action.
    pub default_action: TierAction,
}

/// The built-in tiers, which exist even when absent from the input.
pub const BUILTIN_TIERS: [BuiltinTier; 3] = [
    BuiltinTier {
        name: "kube-admin",
        order: 1000.0,
        default_action: TierAction::Pass,
    },
    BuiltinTier {
        name: "default",
        order: 1_000_000.0,
        default_action: TierAction::Deny,
    },
    BuiltinTier {
        name: "kube-baseline",
        order: 10_000_000.0,
        default_action: TierAction::Pass,
    },
];

/// The built-in tier of this name, if any.
pub fn builtin_tier(name: &str) -> Option<&'static BuiltinTier> {
    BUILTIN_TIERS.iter().find(|t| t.name == name)
}

/// `spec` of a Profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Labels endpoints inherit (their own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: Labels,
}

macro_rules! calico_object {
    ($(#[$doc:meta])* $name:ident, $spec:ty, required) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Object metadata.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// Object spec (required: it holds a required field).
            pub spec: $spec,
        }
    };
    ($(#[$doc:meta])* $name:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Object metadata.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// Object spec.
            #[serde(default)]
            pub spec: $spec,
        }
    };
}
pub(crate) use calico_object;

calico_object!(
    /// projectcalico.org/v3 NetworkPolicy (namespaced).
    NetworkPolicy,
    NetworkPolicySpec
);
calico_object!(
    /// projectcalico.org/v3 GlobalNetworkPolicy (cluster).
    GlobalNetworkPolicy,
    GlobalNetworkPolicySpec
);
calico_object!(
    /// projectcalico.org/v3 StagedNetworkPolicy (namespaced).
    StagedNetworkPolicy,
    StagedNetworkPolicySpec
);
calico_object!(
    /// projectcalico.org/v3 StagedGlobalNetworkPolicy (cluster).
    StagedGlobalNetworkPolicy,
    StagedGlobalNetworkPolicySpec
);
calico_object!(
    /// projectcalico.org/v3 Tier (cluster).
    Tier,
    TierSpec
);
calico_object!(
    /// projectcalico.org/v3 Profile (cluster).
    Profile,
    ProfileSpec
);
