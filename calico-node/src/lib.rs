//! `calico-node`: Calico's per-node agent as a library.
//!
//! Calico runs three things on every node: Felix (follows the datastore, programs the
//! kernel, reports status), confd (renders BIRD's configuration and makes BIRD reload it)
//! and BIRD (the BGP daemon). This crate is one agent doing Felix's and confd's jobs and
//! supervising BIRD:
//!
//! * [`Agent`] — the running agent ([`AgentConfig`]; `calico node run` is a thin wrapper):
//!   follows the datastore with a syncer, feeds each change to the [`Calculator`] (the
//!   incremental policy compiler, calico-route's per-node plan and BIRD configuration), and
//!   programs the kernel with a [`KernelWriter`] (deltas; a sweeping first apply; drift
//!   repaired on the refresh timers). Its behaviour, limits and the FelixConfiguration
//!   settings it honours ([`AgentSettings`]) are described on those types.
//! * [`View`] — the datastore as the agent sees it (resources decoded as Calico's tools
//!   decode them, block affinities); once the calculation has taken the objects over, it
//!   keeps endpoints of other nodes only as summaries (one copy of 100,000 pods, not two).
//! * [`memory`] — a process's resident memory (the cold-start log lines, the benchmarks).
//! * [`EndpointStatusDir`] — endpoint status files for the CNI plugin to wait on.
//!
//! * [`BirdControl`] — a client of BIRD's control socket (the protocol `birdc` speaks):
//!   numbered reply lines, continuation lines, error codes as typed errors.
//! * [`protocols`] — `show protocols` parsed into rows, and Calico's BGP protocol names
//!   (`Mesh_10_0_0_2`, `Node_…`, `Global_…_port_1790`) into peer type, address and port.
//! * [`NodeStatus`] — what `calico node status` prints: calicoctl's table, byte for byte,
//!   and a JSON form for scripts.
//! * [`BirdProcess`] — BIRD started, watched and restarted by the agent, stopped on exit.
//! * [`Health`] — components report live/ready; [`serve_health`] answers `/liveness` and
//!   `/readiness` with Felix's status codes and table; [`Metrics`] and [`serve_metrics`]
//!   give Prometheus Felix's metric names.
//! * [`StatusReporter`] — Felix's status keys (`/calico/felix/v2/…/status` on one kept-alive
//!   lease, `…/last_reported_status`).
//! * [`install_config`] — a new BIRD configuration checked with `bird -p`, installed
//!   atomically only when it changed, and loaded with `configure`; a configuration BIRD
//!   rejects leaves the old file and the running BIRD untouched.
//!
//! ```
//! use calico_node::{NodeStatus, protocols};
//!
//! let show = "Name       Proto      Table      State  Since         Info\n\
//!             Mesh_10_0_0_2 BGP     ---        up     12:25:01.493  Established\n";
//! let rows = protocols::parse_show_protocols(show);
//! let status = NodeStatus::from_protocols(true, &rows);
//! assert!(status.to_table().contains("| 10.0.0.2     | node-to-node mesh | up    |"));
//! ```
#![deny(missing_docs)]

mod agent;
mod bird_config;
mod bird_control;
mod bird_process;
mod calc;
mod endpoint_status;
mod health;
mod http;
mod kernel;
pub mod memory;
mod metrics;
mod node_status;
pub mod node_status_report;
pub mod protocols;
pub mod settings;
mod status_report;
mod table;
pub mod view;

pub use agent::{Agent, AgentConfig, AgentError, Logger};
pub use bird_config::{ConfigError, InstallOutcome, install_config};
pub use bird_control::{BirdControl, BirdError, Reply, ReplyLine};
pub use bird_process::{BirdPaths, BirdProcess, ProcessError};
pub use calc::{CalcOptions, CalcProblem, Calculator, NftPending, Outputs, Touched};
pub use endpoint_status::{EndpointStatus, EndpointStatusDir};
pub use health::{ComponentHealth, Health, HealthReport, HealthSummary};
pub use http::{HttpError, HttpServer, serve_health, serve_metrics};
pub use kernel::{KernelError, KernelReport, KernelWriter, NftUpdate};
pub use metrics::Metrics;
pub use node_status::{NodeStatus, PeerRow};
pub use settings::{AgentSettings, SettingProblem};
pub use status_report::{StatusOptions, StatusReporter, go_json_float, status_value};
pub use view::{View, ViewChange};
