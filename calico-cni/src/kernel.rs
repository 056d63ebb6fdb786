//! The kernel [`PodNetwork`]: an adapter over calico-dataplane's `workload` module
//! (`wire`/`unwire`) and its netlink backend, with the host side in the plugin's own network
//! namespace and the container side in `CNI_NETNS`.

use std::net::IpAddr;
use std::path::Path;

use calico_dataplane::Dataplane;
use calico_dataplane::netlink::{NetlinkDataplane, NetlinkError};
use calico_dataplane::netns::{Netns, NetnsError};
use calico_dataplane::state::Sysctl;
use calico_dataplane::workload::{self, HOST_MAC, WorkloadError, WorkloadSpec};

use ipnet::IpNet;

use crate::plugin::{GATEWAY_V4, GATEWAY_V6, PodLinks, PodNetwork, PodSpec, Teardown};

/// The kernel pod network (host side: the caller's network namespace).
#[derive(Debug, Default)]
pub struct KernelPodNetwork {}

/// Why a kernel operation failed, or what `CHECK` found missing.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: &'static str,
        /// Why.
        #[source]
        source: NetlinkError,
    },
    /// Wiring or unwiring failed.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// `CHECK`: something is not as `ADD` left it.
    #[error("{0}")]
    Missing(String),
}

fn nl(step: &'static str) -> impl FnOnce(NetlinkError) -> KernelError {
    move |source| KernelError::Netlink { step, source }
}

impl PodNetwork for KernelPodNetwork {
    type Error = KernelError;

    fn netns_exists(&self, netns: &Path) -> bool {
        Netns::at(netns).is_ok()
    }

    fn create(&self, spec: &PodSpec<'_>) -> Result<PodLinks, KernelError> {
        let mut host = NetlinkDataplane::current().map_err(nl("open the host namespace"))?;
        let pod = Netns::at(spec.netns)?;
        let mut ws = WorkloadSpec::new(
            spec.host_ifname,
            spec.addresses.iter().map(|a| a.addr()).collect(),
        );
        ws.pod_iface = spec.container_ifname.to_owned();
        ws.mtu = spec.mtu;
        let wired = workload::wire(&mut host, &pod, &ws)?;
        Ok(PodLinks {
            host_mac: HOST_MAC.to_string(),
            container_mac: wired.pod_mac.to_string(),
        })
    }

    fn remove(&self, t: &Teardown<'_>) -> Result<(), KernelError> {
        let mut host = NetlinkDataplane::current().map_err(nl("open the host namespace"))?;
        let newer_sandbox = match t.addresses {
            None => false,
            Some(ours) => {
                let routed: Vec<IpNet> = host
                    .routes()
                    .map_err(nl("read the host routes"))?
                    .into_iter()
                    .filter(|r| r.dev.as_deref() == Some(t.host_ifname))
                    .map(|r| r.dst)
                    .collect();
                !routed.is_empty() && !routed.iter().any(|d| ours.contains(d))
            }
        };
        if !newer_sandbox {
            workload::unwire(&mut host, t.host_ifname)?;
        }
        // Calico also removes CNI_IFNAME from the container (a veth whose host side was
        // already gone cannot exist, but one under another host name can).
        if let Some(p) = t.netns {
            let Ok(ns) = Netns::at(p) else {
                return Ok(());
            };
            let mut pod = NetlinkDataplane::open(ns).map_err(nl("open the pod namespace"))?;
            let c = t.container_ifname;
            let is_veth = pod
                .link(c)
                .map_err(nl("read the pod side"))?
                .is_some_and(|l| l.kind.as_deref() == Some("veth"));
            if is_veth {
                pod.delete_link_if_present(c)
                    .map_err(nl("delete the pod side"))?;
            }
        }
        Ok(())
    }

    fn check(&self, spec: &PodSpec<'_>) -> Result<(), KernelError> {
        let h = spec.host_ifname;
        let wanted_sysctls: Vec<Sysctl> = Sysctl::workload_interface(h);
        let paths: Vec<&str> = wanted_sysctls.iter().map(|s| s.path.as_str()).collect();
        let mut host = NetlinkDataplane::current().map_err(nl("open the host namespace"))?;
        let seen = host
            .observe(&paths)
            .map_err(nl("read the host namespace"))?;
        let link = seen
            .link(h)
            .ok_or_else(|| KernelError::Missing(format!("host interface {h} is missing")))?;
        if !link.up {
            return Err(KernelError::Missing(format!("host interface {h} is down")));
        }
        for s in &wanted_sysctls {
            if s.path.ends_with("rp_filter") {
                continue;
            }
            if seen.sysctls.get(&s.path) != Some(&s.value) {
                return Err(KernelError::Missing(format!(
                    "sysctl {} is {:?}, expected {}",
                    s.path,
                    seen.sysctls.get(&s.path),
                    s.value
                )));
            }
        }
        for a in spec.addresses {
            if !seen
                .routes
                .iter()
                .any(|r| r.dst == *a && r.dev.as_deref() == Some(h))
            {
                return Err(KernelError::Missing(format!(
                    "no host route to {a} via {h}"
                )));
            }
        }
        let c = spec.container_ifname;
        let mut pod =
            NetlinkDataplane::open(Netns::at(spec.netns)?).map_err(nl("open the pod namespace"))?;
        let seen = pod.observe(&[]).map_err(nl("read the pod namespace"))?;
        if seen.link(c).is_none() {
            return Err(KernelError::Missing(format!(
                "container interface {c} is missing"
            )));
        }
        for a in spec.addresses {
            if !seen.addresses.iter().any(|x| x.dev == c && x.addr == *a) {
                return Err(KernelError::Missing(format!("{c} lacks address {a}")));
            }
        }
        for (v4, gw) in [(true, GATEWAY_V4), (false, GATEWAY_V6)] {
            if !spec.addresses.iter().any(|a| a.addr().is_ipv4() == v4) {
                continue;
            }
            let ok = seen.routes.iter().any(|r| {
                r.dst.prefix_len() == 0
                    && r.dst.addr().is_ipv4() == v4
                    && r.via == Some::<IpAddr>(gw)
                    && r.dev.as_deref() == Some(c)
            });
            if !ok {
                return Err(KernelError::Missing(format!(
                    "no default route via {gw} on {c}"
                )));
            }
        }
        Ok(())
    }
}
