//! IPAM kinds: IPPool, IPReservation, BlockAffinity and the
//! IPAMConfiguration singleton.
//!
//! Every `spec` type here rejects unknown fields.

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::policy::calico_object;
use super::values::IpCidr;
use super::values::serde_util::{is_false, is_zero};

/// IPIP / VXLAN encapsulation mode of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncapMode {
    /// No encapsulation (default).
    #[default]
    Never,
    /// Always encapsulate.
    Always,
    /// Encapsulate only across subnets.
    CrossSubnet,
}

/// What a pool may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AllowedUse {
    /// Workload (pod) addresses.
    Workload,
    /// Tunnel device addresses.
    Tunnel,
    /// LoadBalancer service addresses.
    LoadBalancer,
}

/// How a pool is chosen for allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssignmentMode {
    /// Used automatically (default).
    #[default]
    Automatic,
    /// Used only when requested by name or CIDR.
    Manual,
}

/// `spec` of an IPPool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    /// Pool CIDR (required, strictly masked).
    pub cidr: IpCidr,
    /// Block prefix length; 0 = default (26 for IPv4, 122 for IPv6).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub block_size: u8,
    /// IPIP mode (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    /// VXLAN mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    /// SNAT traffic leaving the pool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    /// Allocate no new addresses from the pool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Do not export the pool's routes over BGP.
    #[serde(default, rename = "disableBGPExport", skip_serializing_if = "is_false")]
    pub disable_bgp_export: bool,
    /// Nodes that may allocate from the pool (defaulted to `all()`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    /// Namespaces whose pods may allocate from the pool (`""` = all).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    /// Allowed uses (defaulted to `[Workload, Tunnel]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<AllowedUse>,
    /// Assignment mode (defaulted to `Automatic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

impl Default for IpPoolSpec {
    fn default() -> Self {
        IpPoolSpec {
            cidr: IpCidr::from_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            block_size: 0,
            ipip_mode: None,
            vxlan_mode: None,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: String::new(),
            namespace_selector: String::new(),
            allowed_uses: Vec::new(),
            assignment_mode: None,
        }
    }
}

impl IpPoolSpec {
    /// The effective block size (the family default when 0).
    pub fn effective_block_size(&self) -> u8 {
        match self.block_size {
            0 if self.cidr.is_ipv4() => 26,
            0 => 122,
            n => n,
        }
    }

    /// The effective IPIP mode.
    pub fn effective_ipip_mode(&self) -> EncapMode {
        self.ipip_mode.unwrap_or_default()
    }

    /// The effective VXLAN mode.
    pub fn effective_vxlan_mode(&self) -> EncapMode {
        self.vxlan_mode.unwrap_or_default()
    }

    /// The effective allowed uses.
    pub fn effective_allowed_uses(&self) -> Vec<AllowedUse> {
        if self.allowed_uses.is_empty() {
            vec![AllowedUse::Workload, AllowedUse::Tunnel]
        } else {
            self.allowed_uses.clone()
        }
    }
}

/// `spec` of an IPReservation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpReservationSpec {
    /// Reserved IPs or CIDRs (host bits allowed).
    #[serde(
        default,
        rename = "reservedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reserved_cidrs: Vec<IpCidr>,
}

/// State of a block affinity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AffinityState {
    /// `""`: reads as confirmed.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// Confirmed.
    #[serde(rename = "confirmed")]
    Confirmed,
    /// Pending.
    #[serde(rename = "pending")]
    Pending,
    /// Pending deletion.
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
}

/// Owner type of a block affinity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AffinityType {
    /// `""`: reads as host.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// A host.
    #[serde(rename = "host")]
    Host,
    /// A virtual owner.
    #[serde(rename = "virtual")]
    Virtual,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `spec` of a BlockAffinity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinitySpec {
    /// State (`""` reads as confirmed).
    #[serde(default, skip_serializing_if = "is_default")]
    pub state: AffinityState,
    /// Owning host (or virtual owner).
    #[serde(default)]
    pub node: String,
    /// Owner type (`""` reads as host).
    #[serde(default, rename = "type", skip_serializing_if = "is_default")]
    pub affinity_type: AffinityType,
    /// Block CIDR (required).
    pub cidr: IpCidr,
    /// Deletion marker; must not be true when written through the API.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

impl Default for BlockAffinitySpec {
    fn default() -> Self {
        BlockAffinitySpec {
            state: AffinityState::Unset,
            node: String::new(),
            affinity_type: AffinityType::Unset,
            cidr: IpCidr::from_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            deleted: false,
        }
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `spec` of the IPAMConfiguration singleton `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfigurationSpec {
    /// Only allocate from blocks affine to the host.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_affinity: bool,
    /// Claim new blocks automatically (default true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub auto_allocate_blocks: bool,
    /// Maximum blocks per host; 0 = 20 at run time (range 0–1 000 000).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_blocks_per_host: i64,
    /// Seconds before a released address is reused (0–1200).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ip_cooldown_seconds: i64,
}

impl Default for IpamConfigurationSpec {
    fn default() -> Self {
        IpamConfigurationSpec {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
            ip_cooldown_seconds: 0,
        }
    }
}

calico_object!(
    /// projectcalico.org/v3 IPPool (cluster).
    IpPool,
    IpPoolSpec,
    required
);
calico_object!(
    /// projectcalico.org/v3 IPReservation (cluster).
    IpReservation,
    IpReservationSpec
);
calico_object!(
    /// projectcalico.org/v3 BlockAffinity (cluster, IPAM state).
    BlockAffinity,
    BlockAffinitySpec,
    required
);
calico_object!(
    /// projectcalico.org/v3 IPAMConfiguration (singleton `default`).
    IpamConfiguration,
    IpamConfigurationSpec
);
