//! `calico-cni`: Calico's CNI plugins, per the CNI 1.0.0 specification.
//!
//! - `calico-ipam` (binary): the IPAM plugin alone. `ADD` assigns addresses from Calico's
//!   block IPAM (`calico-ipam` crate) under the handle `<network>.<container ID>` with the
//!   attributes `node`, `namespace` and `pod` (from `K8S_POD_NAMESPACE` / `K8S_POD_NAME` in
//!   `CNI_ARGS`); `DEL` releases the handle; `CHECK` compares it with `prevResult`. Usable
//!   under any main plugin (calico, ptp, bridge).
//! - `calico-cni` (binary, `type: calico`): delegates addressing to the plugin named in
//!   `ipam.type` (found in `CNI_PATH`) and builds the pod network with Calico's rules: a veth
//!   pair, host side named [`calico_model::derived::interface_name`], container side
//!   `CNI_IFNAME`, /32 addresses, a default route via 169.254.1.1 on-link, proxy ARP on the
//!   host side and a /32 route to the pod.
//!
//! Modules: [`spec`] (the contract as data: environment, results, errors, versions; pure),
//! [`config`] (Calico's network configuration and workload identity; pure), [`ipam_plugin`],
//! [`plugin`] (orchestration with rollback, over the [`plugin::PodNetwork`] trait),
//! [`kernel`] (that trait over calico-dataplane's `workload` module and netlink backend),
//! [`delegate`] (running another plugin), [`run`] (the binaries' entry points), [`version`].
//!
//! ```
//! use calico_cni::config::{NetConf, Workload};
//! use calico_cni::spec::CniEnv;
//!
//! let conf = NetConf::parse(br#"{
//!     "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
//!     "etcd_endpoints": "http://127.0.0.1:2379", "ipam": {"type": "calico-ipam"}
//! }"#, "node-1")?;
//! assert_eq!(conf.store_url, "etcd://127.0.0.1:2379");
//! let vars = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c0ffee"),
//!     ("CNI_NETNS", "/var/run/netns/pod"), ("CNI_IFNAME", "eth0"),
//!     ("CNI_PATH", "/usr/lib/cni"), ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web")];
//! let env = CniEnv::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))?;
//! let w = Workload::new(&conf, &env)?;
//! assert_eq!(w.handle, "k8s-pod-network.c0ffee");
//! assert_eq!(w.host_ifname.len(), 15);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod delegate;
pub mod error;
pub mod ipam_plugin;
pub mod kernel;
pub mod plugin;
pub mod run;
pub mod spec;
pub mod version;

pub use error::PluginError;
