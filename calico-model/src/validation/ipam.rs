//! IPPool, IPReservation, BlockAffinity and IPAMConfiguration checks.

use std::collections::HashSet;

use super::Ctx;
use super::common::check_required_subdomain;
use super::selectors::{GlobalUse, check as check_sel};
use crate::resources::ipam::{
    AllowedUse, BlockAffinitySpec, EncapMode, IpPoolSpec, IpReservationSpec, IpamConfiguration,
};
use crate::resources::values::IpCidr;

const MAX_POOL_CIDR_TEXT: usize = 48;

fn link_local(v4: bool) -> IpCidr {
    let text = if v4 { "169.254.0.0/16" } else { "fe80::/10" };
    // Both literals are valid CIDRs; the fallback is never used.
    text.parse()
        .unwrap_or_else(|_| IpCidr::from_addr(std::net::IpAddr::from([0, 0, 0, 0])))
}

/// Whether two CIDRs overlap.
pub(crate) fn overlaps(a: &IpCidr, b: &IpCidr) -> bool {
    let (na, nb) = (a.network(), b.network());
    na.contains(&nb.network()) || nb.contains(&na.network())
}

pub(super) fn check_ip_pool(cx: &mut Ctx<'_>, spec: &IpPoolSpec) {
    let cidr = &spec.cidr;
    let v4 = cidr.is_ipv4();
    if !cidr.is_strictly_masked() {
        cx.report(
            "spec.cidr",
            format!(
                "{cidr} has host bits set (did you mean {}?)",
                cidr.network()
            ),
        );
    }
    if cidr.to_string().len() > MAX_POOL_CIDR_TEXT {
        cx.report(
            "spec.cidr",
            format!("CIDR text is longer than {MAX_POOL_CIDR_TEXT} characters"),
        );
    }
    let ll = link_local(v4);
    if overlaps(cidr, &ll) {
        cx.report(
            "spec.cidr",
            format!("{cidr} overlaps the link-local range {ll}"),
        );
    }
    let bs = spec.effective_block_size();
    let (lo, hi) = if v4 { (20, 32) } else { (116, 128) };
    if !(lo..=hi).contains(&bs) {
        cx.report(
            "spec.blockSize",
            format!(
                "blockSize {bs} is out of range {lo}-{hi} for an IPv{} pool",
                if v4 { 4 } else { 6 }
            ),
        );
    } else if cidr.prefix_len() > bs && !spec.disabled {
        cx.report(
            "spec",
            format!(
                "the pool prefix length /{} is longer than blockSize {bs}",
                cidr.prefix_len()
            ),
        );
    }
    let ipip = spec.effective_ipip_mode();
    let vxlan = spec.effective_vxlan_mode();
    if !v4 && ipip != EncapMode::Never {
        cx.report("spec.ipipMode", "IPIP is not supported on IPv6 pools");
    }
    if ipip != EncapMode::Never && vxlan != EncapMode::Never {
        cx.report("spec", "ipipMode and vxlanMode cannot both be enabled");
    }
    check_sel(
        cx,
        "spec.nodeSelector",
        &spec.node_selector,
        GlobalUse::Forbidden,
    );
    check_sel(
        cx,
        "spec.namespaceSelector",
        &spec.namespace_selector,
        GlobalUse::Forbidden,
    );
    let uses = spec.effective_allowed_uses();
    if uses.len() > 10 {
        cx.report("spec.allowedUses", "at most 10 entries are allowed");
    }
    for (i, u) in spec.allowed_uses.iter().enumerate() {
        if spec.allowed_uses[..i].contains(u) {
            cx.report(
                format!("spec.allowedUses[{i}]"),
                format!("duplicate use {u:?}"),
            );
        }
    }
    let lb = uses.contains(&AllowedUse::LoadBalancer);
    if lb && uses.iter().any(|u| *u != AllowedUse::LoadBalancer) {
        cx.report(
            "spec.allowedUses",
            "LoadBalancer cannot be combined with other uses",
        );
    }
    if lb {
        if ipip != EncapMode::Never || vxlan != EncapMode::Never {
            cx.report("spec", "a LoadBalancer pool cannot use IPIP or VXLAN");
        }
        if spec.disable_bgp_export {
            cx.report("spec", "a LoadBalancer pool cannot set disableBGPExport");
        }
        if spec.node_selector != "all()" {
            cx.report("spec", "a LoadBalancer pool must have nodeSelector all()");
        }
    }
    if uses.contains(&AllowedUse::Tunnel) && !spec.namespace_selector.is_empty() {
        cx.report(
            "spec",
            "a pool with the Tunnel use must have an empty namespaceSelector",
        );
    }
}

pub(super) fn check_ip_reservation(cx: &mut Ctx<'_>, spec: &IpReservationSpec) {
    let mut seen = HashSet::new();
    for (i, c) in spec.reserved_cidrs.iter().enumerate() {
        if !seen.insert(c) {
            cx.report(
                format!("spec.reservedCIDRs[{i}]"),
                format!("duplicate entry {c}"),
            );
        }
    }
}

pub(super) fn check_block_affinity(cx: &mut Ctx<'_>, spec: &BlockAffinitySpec) {
    check_required_subdomain(cx, "spec.node", "node", &spec.node);
    if !spec.cidr.is_strictly_masked() {
        cx.report(
            "spec.cidr",
            format!(
                "{} has host bits set (did you mean {}?)",
                spec.cidr,
                spec.cidr.network()
            ),
        );
    }
    if spec.deleted {
        cx.report("spec.deleted", "deleted must not be true");
    }
}

pub(super) fn check_ipam_configuration(cx: &mut Ctx<'_>, c: &IpamConfiguration) {
    if c.metadata.name != "default" && !c.metadata.name.is_empty() {
        cx.report(
            "metadata.name",
            "the IPAM configuration must be named default",
        );
    }
    let s = &c.spec;
    if !(0..=1_000_000).contains(&s.max_blocks_per_host) {
        cx.report("spec.maxBlocksPerHost", "must be 0-1000000");
    }
    if !(0..=1200).contains(&s.ip_cooldown_seconds) {
        cx.report("spec.ipCooldownSeconds", "must be 0-1200");
    }
    if !s.strict_affinity && !s.auto_allocate_blocks {
        cx.report(
            "spec",
            "autoAllocateBlocks: false requires strictAffinity: true",
        );
    }
    if s.max_blocks_per_host > 0 && !s.strict_affinity {
        cx.report("spec", "maxBlocksPerHost > 0 requires strictAffinity: true");
    }
}
