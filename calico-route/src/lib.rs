//! Calico routing: BGP session graph, BIRD 2 configuration, kernel route plans
//! and route-propagation analysis.
//!
//! Pure: no I/O, no threads. Build a [`input::Cluster`] from resources, then:
//!
//! - [`graph::SessionGraph::new`] — every node's peer protocols and the session count;
//! - [`sessions::node_peerings`] — one node's peer protocols;
//! - [`kernel::plan_node`] — a node's kernel routes, neighbours, FDB entries, devices, MTUs,
//!   as the [`state`] types calico-dataplane programs;
//! - [`bird::render`] — a node's BIRD 2 configuration for one family;
//!   [`bird::render_to`] writes it into a caller's (reused) buffer from prepared
//!   [`bird::MeshPeers`], for rendering every node of a large cluster;
//! - [`check::check`] — reachability of every remote block and misconfiguration findings;
//! - [`propagation::Propagation`] — who learns a node's routes under iBGP/reflection rules,
//!   BGPFilters ([`filters`]) included, over which paths and next hops (multipath);
//! - [`scale::count_sessions`], [`scale::BirdCache`] — session counts without enumerating the
//!   mesh, and per-node configurations re-rendered only where a joining node changes them;
//! - [`plans::ClusterPlans`] — every node's kernel plan, updated incrementally on a join;
//! - [`ownership::ClusterRouteOwners`] — who (Felix or BIRD) programs which pool type's routes;
//! - [`advertise`] — prefix communities and Service addresses a node advertises;
//!
//! All output is deterministic (sorted by name or address). The prepared, read-only
//! inputs ([`kernel::PlanContext`], [`bird::MeshPeers`], [`sessions::PeerExpansion`], the
//! [`input::Cluster`]) are `Sync`: a caller may plan and render nodes from several threads
//! at once, with the same results as one by one (tested).
//!
//! # Modules
//!
//! Each module uses only modules of lower layers (its "uses" column), so no two modules
//! depend on each other and the table reads bottom-up. (Documentation links to higher
//! modules are not uses.) `tests/module_layering.rs` keeps the code to this table.
//!
//! | layer | module | uses |
//! |---|---|---|
//! | 6 | [`check`] | `advertise`, `graph`, `input`, `kernel`, `ownership`, `propagation`, `sessions` |
//! | 6 | [`plans`] | `input`, `kernel`, `sessions` |
//! | 5 | [`kernel`] | `graph`, `input`, `ownership`, `propagation`, `sessions`, `state` |
//! | 5 | [`scale`] | `bird`, `input`, `sessions` |
//! | 4 | [`bird`] | `advertise`, `filters`, `input`, `ownership`, `sessions` |
//! | 4 | [`propagation`] | `advertise`, `filters`, `graph`, `input`, `sessions` |
//! | 3 | [`advertise`] | `filters`, `input` |
//! | 3 | [`graph`] | `input`, `sessions` |
//! | 2 | [`filters`], [`ownership`], [`sessions`] | `input` |
//! | 1 | [`input`] | `state` |
//! | 0 | [`state`] | nothing in this crate |
//!
//! Items that moved down to break a cycle stay reachable at their first path:
//! [`bird::PRIORITY_MAX`] is [`filters::PRIORITY_MAX`], [`bird::normal_priority`] is
//! [`input::normal_priority`]. (The route-ownership setting, once `kernel::ownership`, is
//! [`ownership::cluster_route_owners`].)
//!
//! # Example
//!
//! ```
//! use calico_model::loader::load_str;
//! use calico_route::graph::SessionGraph;
//! use calico_route::input::Cluster;
//!
//! // Three nodes and no BGPConfiguration: the node-to-node mesh is on by default.
//! let yaml = (1..=3)
//!     .map(|i| {
//!         format!(
//!             "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: node-{i}}}\n\
//!              spec: {{bgp: {{ipv4Address: 10.0.0.{i}/24}}}}\n"
//!         )
//!     })
//!     .collect::<Vec<_>>()
//!     .join("---\n");
//! let mut set = load_str("nodes.yaml", &yaml);
//! set.apply_defaults();
//! let cluster = Cluster::from_resources(set.resources());
//! let graph = SessionGraph::new(&cluster);
//! // A full mesh of 3 nodes has 3 sessions (each unordered pair once).
//! assert_eq!(graph.session_count(), 3);
//! ```
//!
//! # Design decisions
//!
//! - A port that is *set* (per-node or global `listenPort`, or `peerIP: "ip:port"`) is kept
//!   even when it is 179, so such protocols are named `…_port_179` (a `Global_`/`Node_`
//!   protocol gets the suffix whenever its peer's port is set).
//! - BGPPeer payload collisions compare AS, cluster ID and every session option; identical
//!   payloads from two BGPPeers are not reported.
//! - Reverse peerings take the BGPPeer's options but the local node's own AS.
//! - Passwords are read from Secrets in `kube-system` (where calico-node runs), or
//!   [`input::Cluster::secret_namespace`]; a value holding a double quote or a line break is
//!   unreadable (a BIRD string cannot hold it). Unreadable passwords are `route check`
//!   errors, as they were.
//! - Service addresses: the kernel filter rejects every configured Service range (cluster,
//!   external and LoadBalancer), not only the cluster range, as confd does; a Service
//!   without `externalTrafficPolicy` gets no single-address routes.
//! - Export policy: service cluster CIDRs are accepted with everything inside them; external
//!   and LoadBalancer CIDRs as the exact aggregate on ordinary nodes and with everything
//!   inside them on route reflectors (so that clients' per-Service routes are
//!   reflected), so no line is duplicated.
//! - BGPFilter functions are rendered for every BGPFilter with rules in the family (as the
//!   reference does); community values out of range (a standard part above 65535) make the
//!   rule a comment and are reported, since BIRD would reject the whole file.
//! - Route priority (see the README): the kernel protocol has `metric 0` and eBGP imports
//!   start with `unset(bgp_local_pref);`, two BIRD 2 adjustments that make BIRD 2 install
//!   the metrics confd's BIRD 1.x does. The propagation analysis prefers paths by local
//!   preference first, so kernel plans show a `setPriority` metric where BIRD installs it.
//! - The kernel filter starts with `if ( source = RTS_DEVICE ) then { reject; }`: BIRD 1.x
//!   never exported interface routes to the kernel (`device routes` off by default), BIRD 2
//!   has no such default and, as real BIRD 2.0.12 showed (tests/bird_netns.rs), installs every
//!   interface subnet the direct protocol sees as a `proto bird` route. Confd's kernel filter has
//!   no such line.
//! - Kernel plans: IPv6 routes print `metric 1024` (what `ip -6 route` shows); when Felix and
//!   BIRD both claim a pool type the plan shows the dataplane's routes; BIRD-owned routes
//!   appear only when the propagation analysis says the node learns them, with the origin's
//!   address as next hop; duplicate affinities route to the first owner by name.
//! - Propagation follows each path separately (every session has `add paths on`) with BIRD
//!   2's next-hop rules; kernel routes get the next hops of the paths BIRD's `merge paths`
//!   merges with the best one (equal AS-path length and iBGP/eBGP), so an eBGP member of a
//!   mesh gets multipath routes (tests/bird_netns.rs checks this against real BIRD). Their
//!   `-o text` form is `DST proto bird nexthop via A dev D weight 1 nexthop via B dev D
//!   weight 1` (the next hops `ip -o route` prints, on one line).
//! - BGPFilters are part of the propagation model; for `interface` rules a BGP-learned route
//!   is taken to be on `eth0` (its recursive next hop's interface; the planner's default
//!   parent), a locally originated blackhole on none.
//! - Every session, mesh or explicit, is a full `protocol bgp NAME from bgp_template` stanza
//!   exactly as confd writes it (a shorter per-node
//!   mesh template would cut a 5,000-node mesh's configurations from about 6 GB to 2.3 GB but
//!   departs from the reference's layout, and the route tables dominate the total anyway).
//! - `route check` severities: errors for what breaks routing or is ambiguous; warnings for
//!   redundancy, scale, ignored options, CrossSubnet asymmetry, pending affinities and the
//!   missing `ipip` device kind. Only errors and unreachable blocks make it fail.

#![deny(missing_docs)]

pub mod advertise;
pub mod bird;
pub mod check;
pub mod filters;
pub mod graph;
pub mod input;
pub mod kernel;
pub mod ownership;
pub mod plans;
pub mod propagation;
pub mod scale;
pub mod sessions;
pub mod state;

pub use graph::SessionGraph;
pub use input::{Cluster, EndpointWorkload, Family};
