//! Real BIRD 2 daemons in network namespaces.
//!
//! Per topology: one network namespace per node and one "switch" namespace holding a bridge
//! `br0`; per node a veth pair, `eth0` (the node's BGP addresses) in the node's namespace and
//! `pN` enslaved to the bridge. Every node runs one BIRD per family with exactly the text
//! [`bird::render`] produced. The test waits until every session of the [`SessionGraph`] is
//! Established, then checks that
//!
//! - the BGP routes each BIRD holds are exactly the blocks of the origins whose routes the
//!   propagation analysis says it learns, with exactly the next hops of the paths the
//!   analysis says it holds (the origin over iBGP, the eBGP speaker over eBGP);
//! - the routes BIRD installed into the namespace's kernel table (`proto bird`) are exactly
//!   the BIRD-owned routes of [`kernel::plan_node`] (local blackholes and remote blocks),
//!   next hops and metrics (the route priority) included, multipath (`merge paths on`)
//!   routes next hop by next hop.
//!
//! Topologies: two
//! reflectors of one cluster ID with three clients, reflectors of two cluster IDs with a
//! single-reflector client, a full mesh, a mesh with a member in another AS, an iBGP chain
//! without reflector, an eBGP AS-path loop, and a reflector whose sessions carry a BGPFilter
//! (export reject, accept with a community, reject by community, import reject); each in IPv4
//! and IPv6 (one BIRD per family). Then confd's semantics: a priority set on a reflector's
//! import travelling to its clients (kernel metrics 512 and 1024), a filter rule for eBGP
//! sessions only (`peerType`), Service addresses in a mesh with a node excluded from load
//! balancers, and an excluded reflector reflecting a client's LoadBalancer /32.
//!
//! Nothing outside these namespaces is touched: links are created inside a node namespace
//! with the peer end moved straight into the switch namespace, and BIRD runs inside the node
//! namespace. A guard kills every BIRD it started and deletes every namespace on drop, panics
//! included. What a killed earlier run left (namespaces and temporary directories
//! `cbt-<pid>-…` whose process no longer exists, BIRDs inside those namespaces) is removed
//! first.
//!
//! Not root, or `bird`/`birdc`/`ip` missing: the test says on stderr that it did NOT run and
//! passes, unless `CALICO_REQUIRE_ROOT_TESTS=1` or `CALICO_REQUIRE_BIRD=1` (CI as root).

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use calico_route::bird::render;
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::ownership::Owner;
use calico_route::propagation::{Adjacency, Propagation, learners};
use calico_route::{Cluster, Family, SessionGraph};
use common::{bgp_config, cluster, peer};

/// Prefix of every namespace this test creates: `cbt-<pid>-<topology>-<node>`.
const PREFIX: &str = "cbt-";
/// Bound for sessions to establish and routes to settle.
const WAIT: Duration = Duration::from_secs(30);
/// After the BGP routes first match, they must still match this much later (longer than
/// BIRD's kernel scan time and connect delay, both 2 s).
const SETTLE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// Gating

fn required() -> bool {
    ["CALICO_REQUIRE_ROOT_TESTS", "CALICO_REQUIRE_BIRD"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("1"))
}

/// Reports that the test did not run, or fails when it is required to run.
fn not_run(why: &str) {
    assert!(
        !required(),
        "real-BIRD namespace test is required (CALICO_REQUIRE_ROOT_TESTS/CALICO_REQUIRE_BIRD=1) but cannot run: {why}"
    );
    eprintln!("NOTE: real-BIRD namespace test was NOT RUN: {why}");
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Why the test cannot run here, if it cannot.
fn blocker() -> Option<String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Some(format!(
                "not root (uid {uid}); network namespaces need root"
            ));
        }
        None => return Some("cannot read the effective uid".to_owned()),
    }
    for (program, arg) in [("ip", "-V"), ("bird", "--version"), ("birdc", "-h")] {
        if !runs(program, arg) {
            return Some(format!("`{program}` is not installed"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Commands

/// Runs a command; its stdout, or an error naming it with its stderr.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> String {
    run("ip", args).unwrap()
}

/// The PID in a name `cbt-<pid>-…` if that process no longer exists (a crashed earlier run).
fn dead_owner(name: &str) -> Option<u32> {
    let pid = name
        .strip_prefix(PREFIX)?
        .split('-')
        .next()?
        .parse::<u32>()
        .ok()?;
    let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
    (!alive).then_some(pid)
}

/// Removes what a crashed earlier run left: namespaces `cbt-<pid>-…` whose process no longer
/// exists, the BIRDs still running inside them, and their temporary directories.
fn remove_stale() {
    let list = run("ip", &["netns", "list"]).unwrap_or_default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if dead_owner(name).is_none() {
            continue;
        }
        if let Ok(pids) = run("ip", &["netns", "pids", name]) {
            for p in pids.split_whitespace() {
                let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                if comm.trim() == "bird" {
                    let _ = run("kill", &["-9", p]);
                }
            }
        }
        if run("ip", &["netns", "del", name]).is_ok() {
            eprintln!("removed stale namespace {name}");
        }
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead_owner(&name).is_some() && fs::remove_dir_all(e.path()).is_ok() {
                eprintln!("removed stale directory {}", e.path().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The lab: namespaces, links, BIRDs, and their cleanup

struct Bird {
    node: String,
    family: Family,
    sock: PathBuf,
    log: PathBuf,
    child: Child,
}

/// Everything one topology created; dropping it removes all of it.
struct Lab {
    tag: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    birds: Vec<Bird>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for b in &mut self.birds {
            let _ = b.child.kill();
            let _ = b.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Why a lab could not be built.
enum SetupError {
    /// Namespaces cannot be created here (no privilege): the test does not run.
    NotPermitted(String),
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Lab {
            tag: tag.to_owned(),
            dir,
            namespaces: Vec::new(),
            birds: Vec::new(),
        }
    }

    fn ns_name(&self, what: &str) -> String {
        format!("{PREFIX}{}-{}-{what}", std::process::id(), self.tag)
    }

    /// Creates a namespace (recorded for cleanup) with `lo` up.
    fn add_namespace(&mut self, name: &str) -> Result<(), SetupError> {
        match run("ip", &["netns", "add", name]) {
            Ok(_) => {}
            Err(e) if e.contains("Permission denied") || e.contains("Operation not permitted") => {
                return Err(SetupError::NotPermitted(e));
            }
            Err(e) => panic!("{e}"),
        }
        self.namespaces.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Ok(())
    }

    /// The switch namespace with its bridge, then one namespace per node wired to it.
    /// Returns node name → namespace.
    fn wire(&mut self, c: &Cluster) -> Result<BTreeMap<String, String>, SetupError> {
        let sw = self.ns_name("sw");
        self.add_namespace(&sw)?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let mut out = BTreeMap::new();
        for (i, n) in c.nodes.iter().enumerate() {
            let ns = self.ns_name(&n.name);
            self.add_namespace(&ns)?;
            let port = format!("p{i}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &sw,
            ]);
            for fam in Family::BOTH {
                if let Some(cidr) = n.cidr(fam) {
                    let addr = format!("{}/{}", cidr.addr(), cidr.prefix_len());
                    let mut args = vec!["-n", &ns, "addr", "add", &addr, "dev", "eth0"];
                    if fam == Family::V6 {
                        args.push("nodad");
                    }
                    ip(&args);
                }
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &sw, "link", "set", &port, "up"]);
            out.insert(n.name.clone(), ns);
        }
        Ok(out)
    }

    /// Writes the node's generated configuration and starts BIRD in its namespace.
    fn start_bird(&mut self, c: &Cluster, node: &str, ns: &str, family: Family) {
        let conf = render(c, node, family).unwrap();
        let base = self.dir.join(format!("{node}-{}", family.channel()));
        let conf_path = base.with_extension("conf");
        let sock = base.with_extension("ctl");
        let log = base.with_extension("log");
        fs::write(&conf_path, &conf.text).unwrap();
        let log_file = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bird", "-f", "-c"])
            .arg(&conf_path)
            .arg("-s")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        self.birds.push(Bird {
            node: node.to_owned(),
            family,
            sock,
            log,
            child,
        });
    }

    /// Fails with the BIRD's log when a daemon has exited.
    fn assert_alive(&mut self) {
        for b in &mut self.birds {
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!(
                    "BIRD of {} ({}) exited with {status}:\n{}",
                    b.node,
                    b.family.label(),
                    fs::read_to_string(&b.log).unwrap_or_default()
                );
            }
        }
    }
}

fn birdc(sock: &Path, cmd: &[&str]) -> Result<String, String> {
    let sock = sock.to_string_lossy().into_owned();
    let mut args = vec!["-s", sock.as_str()];
    args.extend_from_slice(cmd);
    run("birdc", &args)
}

// ---------------------------------------------------------------------------------------
// Parsing BIRD and iproute2 output

/// Protocol name → whether its state is Established (`show protocols`).
fn established(show_protocols: &str) -> BTreeSet<String> {
    show_protocols
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("BGP") && l.contains("Established"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// One route entry of `show route`: protocol and next hops (`via` addresses).
#[derive(Debug, Default)]
struct Entry {
    protocol: String,
    vias: Vec<String>,
}

/// Prefix → entries, from `birdc show route` text.
fn parse_routes(text: &str) -> BTreeMap<String, Vec<Entry>> {
    let mut out: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        if !line.starts_with(char::is_whitespace) {
            if let Some(p) = trimmed.split_whitespace().next() {
                prefix = p.to_owned();
            }
        }
        if let Some((_, rest)) = trimmed.split_once('[') {
            let protocol = rest.split_whitespace().next().unwrap_or("").to_owned();
            out.entry(prefix.clone()).or_default().push(Entry {
                protocol,
                vias: Vec::new(),
            });
        } else if let Some(rest) = trimmed.strip_prefix("via ") {
            let via = rest.split_whitespace().next().unwrap_or("").to_owned();
            if let Some(e) = out.get_mut(&prefix).and_then(|v| v.last_mut()) {
                e.vias.push(via);
            }
        }
    }
    out
}

/// What a BIRD holds from BGP: prefix → next hops over every BGP path (`unreachable` for a
/// path without one).
fn bgp_routes(text: &str, peer_protocols: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (prefix, entries) in parse_routes(text) {
        for e in entries
            .iter()
            .filter(|e| peer_protocols.contains(&e.protocol))
        {
            let hops = out.entry(prefix.clone()).or_default();
            if e.vias.is_empty() {
                hops.insert("unreachable".to_owned());
            }
            hops.extend(e.vias.iter().cloned());
        }
    }
    out
}

/// `ip -j route show proto bird` → destination → `blackhole` or `via GW dev DEV` set.
fn kernel_routes(json: &str) -> BTreeMap<String, BTreeSet<String>> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in routes {
        let dst = r["dst"].as_str().unwrap_or("?").to_owned();
        let set = out.entry(dst).or_default();
        if r["type"].as_str() == Some("blackhole") {
            set.insert("blackhole".to_owned());
            continue;
        }
        let hops: Vec<&serde_json::Value> = match r["nexthops"].as_array() {
            Some(list) => list.iter().collect(),
            None => vec![&r],
        };
        let metric = r["metric"].as_u64().unwrap_or(0);
        for h in hops {
            set.insert(format!(
                "via {} dev {} metric {metric}",
                h["gateway"].as_str().unwrap_or("?"),
                h["dev"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Predictions

/// What calico-route predicts for one node and family.
struct Expected {
    /// Peer protocols that must be Established.
    protocols: BTreeSet<String>,
    /// BGP routes: block → the next hops of every path the node holds.
    bgp: BTreeMap<String, BTreeSet<String>>,
    /// Kernel routes BIRD installs: destination → {`blackhole` | `via GW dev eth0`, one
    /// entry per next hop of a multipath route}.
    kernel: BTreeMap<String, BTreeSet<String>>,
}

fn predict(c: &Cluster, graph: &SessionGraph, node: &str, family: Family) -> Expected {
    let protocols = graph
        .peerings_of(node)
        .filter(|p| p.family == family)
        .map(|p| p.name.clone())
        .collect();
    let adj = Adjacency::new(c, graph, family);
    let prop = Propagation::new(c, &adj, family);
    let mut bgp: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in c
        .affinities
        .iter()
        .filter(|a| a.is_confirmed() && a.node != node && Family::of(a.block.addr()) == family)
    {
        let paths = prop.paths(node, &a.node, Some(&a.block));
        assert_eq!(
            paths.is_empty(),
            !learners(c, &adj, &a.node, Some(&a.block)).contains(node),
            "paths and learners disagree for {node} from {}",
            a.node
        );
        if !paths.is_empty() {
            bgp.entry(a.block.to_string())
                .or_default()
                .extend(paths.iter().map(|p| p.next_hop.to_string()));
        }
    }
    let plan = plan_node(c, node, &PlanOptions::default()).unwrap();
    let mut kernel: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in plan
        .routes
        .iter()
        .filter(|r| r.owner == Owner::Bird && Family::of(r.route.dst.addr()) == family)
    {
        let entry = kernel.entry(r.route.dst.to_string()).or_default();
        let dev = r.route.dev.as_deref().unwrap_or_default();
        if r.route.is_blackhole() {
            entry.insert("blackhole".to_owned());
        } else if r.nexthops.is_empty() {
            let via = r.route.via.map(|v| v.to_string()).unwrap_or_default();
            entry.insert(format!("via {via} dev {dev} metric {}", r.route.metric));
        } else {
            entry.extend(
                r.nexthops
                    .iter()
                    .map(|v| format!("via {v} dev {dev} metric {}", r.route.metric)),
            );
        }
    }
    Expected {
        protocols,
        bgp,
        kernel,
    }
}

// ---------------------------------------------------------------------------------------
// The test driver

/// Polls `observe` until it equals `expected`, then confirms it still does `hold` later.
/// Returns the last observation on failure.
fn settle<T: PartialEq>(
    deadline: Instant,
    hold: Duration,
    lab: &mut Lab,
    expected: &[T],
    mut observe: impl FnMut(&Lab) -> Vec<T>,
) -> Result<(), Vec<T>> {
    let mut matched_at: Option<Instant> = None;
    loop {
        lab.assert_alive();
        let seen = observe(lab);
        if seen == expected {
            let first = *matched_at.get_or_insert_with(Instant::now);
            if first.elapsed() >= hold {
                return Ok(());
            }
        } else {
            matched_at = None;
            if Instant::now() > deadline {
                return Err(seen);
            }
        }
        sleep(Duration::from_millis(250));
    }
}

/// Builds the topology, runs BIRD everywhere and checks it against the predictions.
fn run_topology(tag: &str, yaml: &str) {
    run_topology_with(tag, yaml, |_, _, _| {});
}

/// [`run_topology`], then `extra` with the cluster, the lab (its BIRDs still running) and
/// node name → namespace, for checks beyond the block routes.
fn run_topology_with(
    tag: &str,
    yaml: &str,
    extra: impl FnOnce(&Cluster, &mut Lab, &BTreeMap<String, String>),
) {
    if let Some(why) = blocker() {
        return not_run(&why);
    }
    remove_stale();
    let start = Instant::now();
    let c = cluster(yaml);
    let graph = SessionGraph::new(&c);
    assert!(graph.one_sided.is_empty(), "{:?}", graph.one_sided);
    assert!(graph.session_count() > 0);
    let mut lab = Lab::new(tag);
    let namespaces = match lab.wire(&c) {
        Ok(m) => m,
        Err(SetupError::NotPermitted(e)) => return not_run(&e),
    };
    let mut runs: Vec<(String, Family, Expected)> = Vec::new();
    for n in &c.nodes {
        for fam in Family::BOTH.into_iter().filter(|f| n.ip(*f).is_some()) {
            lab.start_bird(&c, &n.name, &namespaces[&n.name], fam);
            runs.push((n.name.clone(), fam, predict(&c, &graph, &n.name, fam)));
        }
    }
    let deadline = start + WAIT;

    // 1. Every session of the graph Established.
    let want: Vec<BTreeSet<String>> = runs.iter().map(|r| r.2.protocols.clone()).collect();
    let sessions = settle(deadline, Duration::ZERO, &mut lab, &want, |lab| {
        lab.birds
            .iter()
            .map(|b| {
                let text = birdc(&b.sock, &["show", "protocols"]).unwrap_or_default();
                established(&text)
            })
            .collect()
    });
    if let Err(seen) = sessions {
        let mut report = String::new();
        for ((node, fam, exp), got) in runs.iter().zip(&seen) {
            let missing: Vec<&String> = exp.protocols.difference(got).collect();
            if !missing.is_empty() {
                report += &format!("{node} {}: not Established: {missing:?}\n", fam.label());
            }
        }
        panic!("[{tag}] sessions did not establish within {WAIT:?}:\n{report}");
    }
    let established_at = start.elapsed();

    // 2. BGP routes each BIRD learned = the propagation analysis.
    let want: Vec<_> = runs.iter().map(|r| r.2.bgp.clone()).collect();
    let protocol_sets: Vec<BTreeSet<String>> = runs.iter().map(|r| r.2.protocols.clone()).collect();
    // Only prefixes inside the pools: Service addresses are checked separately.
    let pools: Vec<ipnet::IpNet> = c.pools.iter().map(|p| p.cidr).collect();
    let learned = settle(deadline, SETTLE, &mut lab, &want, |lab| {
        lab.birds
            .iter()
            .zip(&protocol_sets)
            .map(|(b, protos)| {
                let text = birdc(&b.sock, &["show", "route"]).unwrap_or_default();
                let mut routes = bgp_routes(&text, protos);
                routes.retain(|prefix, _| {
                    prefix
                        .parse::<ipnet::IpNet>()
                        .is_ok_and(|n| pools.iter().any(|p| p.contains(&n)))
                });
                routes
            })
            .collect()
    });
    if let Err(seen) = learned {
        let mut report = String::new();
        for ((node, fam, exp), got) in runs.iter().zip(&seen) {
            if &exp.bgp != got {
                report += &format!(
                    "{node} {}:\n  predicted {:?}\n  BIRD has  {:?}\n",
                    fam.label(),
                    exp.bgp,
                    got
                );
            }
        }
        panic!("[{tag}] BGP routes differ from the propagation analysis:\n{report}");
    }

    // 3. Kernel routes BIRD installed = the BIRD-owned routes of the kernel plan.
    let want: Vec<_> = runs.iter().map(|r| r.2.kernel.clone()).collect();
    let keys: Vec<(String, Family)> = runs.iter().map(|r| (r.0.clone(), r.1)).collect();
    let installed = settle(deadline, Duration::from_secs(1), &mut lab, &want, |_| {
        keys.iter()
            .map(|(node, fam)| {
                let v = if *fam == Family::V4 { "-4" } else { "-6" };
                let json = run(
                    "ip",
                    &[
                        "-n",
                        &namespaces[node],
                        "-j",
                        v,
                        "route",
                        "show",
                        "proto",
                        "bird",
                    ],
                )
                .unwrap_or_default();
                kernel_routes(&json)
            })
            .collect()
    });
    if let Err(seen) = installed {
        let mut report = String::new();
        for ((node, fam, exp), got) in runs.iter().zip(&seen) {
            if &exp.kernel != got {
                report += &format!(
                    "{node} {}:\n  planned   {:?}\n  installed {:?}\n",
                    fam.label(),
                    exp.kernel,
                    got
                );
            }
        }
        panic!("[{tag}] kernel routes differ from the plan:\n{report}");
    }

    extra(&c, &mut lab, &namespaces);

    let routes: usize = runs.iter().map(|r| r.2.bgp.len()).sum();
    eprintln!(
        "[{tag}] {} BIRDs ({} nodes), {} sessions Established after {:.1?}; {routes} learned \
         prefixes and the kernel routes of every node match the predictions; {:.1?} in total",
        lab.birds.len(),
        c.nodes.len(),
        graph.session_count(),
        established_at,
        start.elapsed()
    );
    for (node, fam, exp) in &runs {
        eprintln!(
            "[{tag}]   {node} {}: {} sessions, learned {:?}",
            fam.label(),
            exp.protocols.len(),
            exp.bgp.keys().collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Topologies

/// A node at 10.0.1.`i`/24 and fd00:1::`i`/64 with a confirmed block in each family;
/// `bgp_extra` holds further `spec.bgp` lines.
fn lab_node(name: &str, i: u8, labels: &str, bgp_extra: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  bgp:\n    ipv4Address: 10.0.1.{i}/24\n    ipv6Address: fd00:1::{i}/64\n{bgp_extra}\
         ---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {name}-v4\nspec:\n  node: {name}\n  cidr: 10.244.{i}.0/26\n  state: confirmed\n\
         ---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {name}-v6\nspec:\n  node: {name}\n  cidr: fd00:10:0:{i}::/122\n  state: confirmed\n"
    )
}

/// A route reflector with cluster ID `cid`, labelled `rr: <label>`.
fn reflector(name: &str, i: u8, label: &str, cid: &str) -> String {
    lab_node(
        name,
        i,
        &format!("rr: \"{label}\""),
        &format!("    routeReflectorClusterID: {cid}\n"),
    )
}

/// Unencapsulated pools: BIRD owns their routes with the default `programClusterRoutes`.
const POOLS: &str = "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: v4\nspec:\n  cidr: 10.244.0.0/16\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n\
---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: v6\nspec:\n  cidr: fd00:10::/48\n  blockSize: 122\n  ipipMode: Never\n  vxlanMode: Never\n";

/// Mesh off; two reflectors of one cluster ID and three clients (the canonical recipe).
#[test]
fn route_reflectors_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &reflector("rr1", 1, "", "1.1.1.1");
    y += &reflector("rr2", 2, "", "1.1.1.1");
    for i in 3..=5 {
        y += &lab_node(&format!("c{i}"), i, "", "");
    }
    y += &peer("to-rr", "nodeSelector: all()\npeerSelector: has(rr)");
    run_topology("rr", &y);
}

/// The default node-to-node mesh of three nodes.
#[test]
fn full_mesh_with_real_bird() {
    let mut y = String::from(POOLS);
    for i in 1..=3 {
        y += &lab_node(&format!("m{i}"), i, "", "");
    }
    run_topology("mesh", &y);
}

/// Mesh off; reflectors with different cluster IDs (each the other's client); c3 and c4
/// peer with both, c5 with rr1 only: rr2 passes c5's routes on as reflected from a client,
/// and the cluster lists stop them from coming back.
#[test]
fn reflectors_of_two_clusters_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &reflector("rr1", 1, "one", "1.1.1.1");
    y += &reflector("rr2", 2, "two", "2.2.2.2");
    y += &lab_node("c3", 3, "", "");
    y += &lab_node("c4", 4, "", "");
    y += &lab_node("c5", 5, "single: \"\"", "");
    y += &peer(
        "to-both",
        "nodeSelector: \"!has(single)\"\npeerSelector: has(rr)",
    );
    y += &peer(
        "to-one",
        "nodeSelector: has(single)\npeerSelector: rr == \"one\"",
    );
    run_topology("rr2c", &y);
}

/// The mesh with one node in another AS: its sessions are eBGP, and routes it learns from
/// one mesh node come back to the other only if the AS-path check allows (it does not: both
/// are in AS 64512). m3 gets m1's block from m1 directly and from m2 (iBGP-learned, passed
/// on to its eBGP peer with itself as next hop): two eBGP paths of equal AS-path length,
/// which BIRD's kernel protocol merges into one multipath route via m1 and m2.
#[test]
fn mesh_with_an_ebgp_member_with_real_bird() {
    let mut y = String::from(POOLS);
    y += &lab_node("m1", 1, "", "");
    y += &lab_node("m2", 2, "", "");
    y += &lab_node("m3", 3, "", "    asNumber: 65003\n");
    let c = cluster(&y);
    let plan = plan_node(&c, "m3", &PlanOptions::default()).unwrap();
    let text = plan.to_text();
    assert!(
        text.contains("10.244.1.0/26 proto bird metric 1024 nexthop via 10.0.1.1 dev eth0 weight 1 nexthop via 10.0.1.2 dev eth0 weight 1\n"),
        "{text}"
    );
    assert!(
        text.contains("fd00:10:0:2::/122 proto bird metric 1024 nexthop via fd00:1::1 dev eth0 weight 1 nexthop via fd00:1::2 dev eth0 weight 1\n"),
        "{text}"
    );
    // m1 holds m3's block from m3 (eBGP) and from m2 (iBGP, next hop kept): one next hop.
    let m1 = plan_node(&c, "m1", &PlanOptions::default())
        .unwrap()
        .to_text();
    assert!(
        m1.contains("10.244.3.0/26 via 10.0.1.3 dev eth0 proto bird metric 1024\n"),
        "{m1}"
    );
    run_topology("ebgp", &y);
}

/// Mesh off; a and c in AS 65001, b and d in 64512; sessions a–b, b–c (eBGP) and b–d
/// (iBGP): b passes a's routes to d (eBGP-learned → iBGP) but c drops them (its own AS is in
/// the path), and d's routes reach a and c (iBGP-learned → eBGP).
#[test]
fn ebgp_as_path_loop_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &lab_node("a", 1, "", "    asNumber: 65001\n");
    y += &lab_node("b", 2, "", "");
    y += &lab_node("c", 3, "", "    asNumber: 65001\n");
    y += &lab_node("d", 4, "", "");
    for (name, i, asn) in [("a-b", 2, 64512), ("b-c", 3, 65001), ("b-d", 4, 64512)] {
        let local = if name == "a-b" { "a" } else { "b" };
        y += &peer(
            name,
            &format!("node: {local}\npeerIP: 10.0.1.{i}\nasNumber: {asn}"),
        );
        y += &peer(
            &format!("{name}6"),
            &format!("node: {local}\npeerIP: fd00:1::{i}\nasNumber: {asn}"),
        );
    }
    run_topology("aspath", &y);
}

/// Mesh off; reflector rr1 and clients c2–c4 whose sessions (both directions) carry
/// BGPFilter `f`: export rejects c3's block, accepts c2's block tagged 65000:9 (past
/// calico's export policy) and rejects tagged routes learned from peers; import rejects
/// c4's block. So rr1 alone learns c2's block, nobody learns c3's or c4's, everybody
/// learns rr1's; IPv6 (no rules) is reflected as usual.
#[test]
fn bgp_filters_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &reflector("rr1", 1, "", "1.1.1.1");
    for i in 2..=4 {
        y += &lab_node(&format!("c{i}"), i, "", "");
    }
    y += &peer(
        "to-rr",
        "nodeSelector: all()\npeerSelector: has(rr)\nfilters: [f]",
    );
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: f\nspec:\n  exportV4:\n  - {action: Reject, source: RemotePeers, communities: {values: [\"65000:9\"]}}\n  - {action: Accept, matchOperator: Equal, cidr: 10.244.2.0/26, operations: [{addCommunity: {value: \"65000:9\"}}]}\n  - {action: Reject, matchOperator: Equal, cidr: 10.244.3.0/26}\n  importV4:\n  - {action: Reject, matchOperator: Equal, cidr: 10.244.4.0/26}\n";
    let c = cluster(&y);
    let remote_v4 = |node: &str| -> Vec<String> {
        plan_node(&c, node, &PlanOptions::default())
            .unwrap()
            .routes
            .iter()
            .filter(|r| !r.route.is_blackhole() && r.route.dst.addr().is_ipv4())
            .map(|r| r.route.dst.to_string())
            .collect()
    };
    assert_eq!(remote_v4("rr1"), vec!["10.244.2.0/26"]);
    for n in ["c2", "c3", "c4"] {
        assert_eq!(remote_v4(n), vec!["10.244.1.0/26"], "{n}");
    }
    let v6 = plan_node(&c, "c3", &PlanOptions::default())
        .unwrap()
        .to_text();
    for i in [1, 2, 4] {
        assert!(
            v6.contains(&format!("fd00:10:0:{i}::/122 via fd00:1::{i} ")),
            "{v6}"
        );
    }
    run_topology("filter", &y);
}

/// Mesh off; explicit iBGP sessions a–b and b–c only: b, not a reflector, must not pass a's
/// routes to c (the negative case of the propagation rules).
#[test]
fn ibgp_chain_without_reflector_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        y += &lab_node(n, u8::try_from(i + 1).unwrap(), "", "");
    }
    y += &peer("a-b", "node: a\npeerIP: 10.0.1.2\nasNumber: 64512");
    y += &peer("a-b6", "node: a\npeerIP: fd00:1::2\nasNumber: 64512");
    y += &peer("b-c", "node: b\npeerIP: 10.0.1.3\nasNumber: 64512");
    y += &peer("b-c6", "node: b\npeerIP: fd00:1::3\nasNumber: 64512");
    run_topology("chain", &y);
}

// ---------------------------------------------------------------------------------------
// Parser unit tests (no root needed)

#[test]
fn show_route_parser_reads_paths_and_next_hops() {
    let text = "BIRD 2.0.12 ready.\nTable master4:\n10.244.2.0/26        unicast [Node_10_0_1_1 12:00:01.000 from 10.0.1.1] * (100/?) [i]\n\tvia 10.0.1.4 on eth0\n                     unicast [Node_10_0_1_2 12:00:01.000 from 10.0.1.2] (100/?) [i]\n\tvia 10.0.1.4 on eth0\n10.244.3.0/26        blackhole [calico_static 12:00:00.000] * (200)\n10.0.1.0/24          unicast [calico_direct 12:00:00.000] * (240)\n\tdev eth0\n";
    let r = parse_routes(text);
    assert_eq!(r["10.244.2.0/26"].len(), 2);
    assert_eq!(r["10.244.2.0/26"][1].protocol, "Node_10_0_1_2");
    let protos: BTreeSet<String> = ["Node_10_0_1_1".to_owned(), "Node_10_0_1_2".to_owned()].into();
    let bgp = bgp_routes(text, &protos);
    assert_eq!(bgp.len(), 1);
    assert_eq!(
        bgp["10.244.2.0/26"],
        BTreeSet::from(["10.0.1.4".to_owned()])
    );
    let up = established(
        "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\nMesh_10_0_1_2 BGP        ---        up     12:00:00.000  Established   \nMesh_10_0_1_3 BGP        ---        start  12:00:00.000  Active        Socket: Connection refused\n",
    );
    assert_eq!(up, BTreeSet::from(["Mesh_10_0_1_2".to_owned()]));
}

#[test]
fn ip_route_json_parser_reads_blackholes_and_multipath() {
    let json = r#"[{"type":"blackhole","dst":"10.244.1.0/26","protocol":"bird","flags":[]},
        {"dst":"10.244.2.0/26","gateway":"10.0.1.2","dev":"eth0","protocol":"bird","metric":32,"flags":[]},
        {"dst":"10.244.3.0/26","protocol":"bird","flags":[],"nexthops":[{"gateway":"10.0.1.3","dev":"eth0","weight":1,"flags":[]},{"gateway":"10.0.1.4","dev":"eth0","weight":1,"flags":[]}]}]"#;
    let k = kernel_routes(json);
    assert_eq!(k["10.244.1.0/26"], BTreeSet::from(["blackhole".to_owned()]));
    assert_eq!(
        k["10.244.2.0/26"],
        BTreeSet::from(["via 10.0.1.2 dev eth0 metric 32".to_owned()])
    );
    assert_eq!(k["10.244.3.0/26"].len(), 2);
}

// ---------------------------------------------------------------------------------------
// Route priority and Service advertisement

/// `ip -j route show proto bird` → destination → metric, for routes with a next hop.
fn kernel_metrics(json: &str) -> BTreeMap<String, u64> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    routes
        .iter()
        .filter(|r| r["type"].as_str() != Some("blackhole"))
        .map(|r| {
            (
                r["dst"].as_str().unwrap_or("?").to_owned(),
                r["metric"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Waits until `observe` equals `want` for every BIRD of `family`; panics with the last
/// observation otherwise.
fn settle_per_bird<T: PartialEq + std::fmt::Debug>(
    tag: &str,
    what: &str,
    lab: &mut Lab,
    family: Family,
    want: &BTreeMap<String, T>,
    mut observe: impl FnMut(&Bird) -> T,
) {
    let nodes: Vec<String> = lab
        .birds
        .iter()
        .filter(|b| b.family == family)
        .map(|b| b.node.clone())
        .collect();
    let expected: Vec<&T> = nodes.iter().map(|n| &want[n]).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        lab.assert_alive();
        let seen: Vec<T> = lab
            .birds
            .iter()
            .filter(|b| b.family == family)
            .map(&mut observe)
            .collect();
        if seen.iter().zip(&expected).all(|(s, e)| s == *e) {
            sleep(SETTLE);
            let again: Vec<T> = lab
                .birds
                .iter()
                .filter(|b| b.family == family)
                .map(&mut observe)
                .collect();
            if again.iter().zip(&expected).all(|(s, e)| s == *e) {
                return;
            }
        }
        if Instant::now() > deadline {
            let mut report = String::new();
            for ((n, s), e) in nodes.iter().zip(&seen).zip(&expected) {
                if s != *e {
                    report += &format!("{n}:\n  expected {e:?}\n  observed {s:?}\n");
                }
            }
            panic!("[{tag}] {what} {}:\n{report}", family.label());
        }
        sleep(Duration::from_millis(250));
    }
}

/// Mesh off; reflector rr1 and clients c2–c4. rr1's side of each session imports c2's
/// block with `setPriority: 512`; the clients' side has no filter. The priority travels
/// in the local preference: rr1 installs c2's block with metric 512, reflects it with
/// that local preference, and the other clients install it with metric 512 too; every
/// other BGP route gets the normal priority, 1024 (IPv6 included).
#[test]
fn route_priority_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &reflector("rr1", 1, "", "1.1.1.1");
    for i in 2..=4 {
        y += &lab_node(&format!("c{i}"), i, "", "");
    }
    y += &peer(
        "a-reflector-side",
        "node: rr1\npeerSelector: \"!has(rr)\"\nreversePeering: Manual\nfilters: [prio]",
    );
    y += &peer(
        "b-client-side",
        "nodeSelector: \"!has(rr)\"\npeerSelector: has(rr)\nreversePeering: Manual",
    );
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: prio\nspec:\n  importV4:\n  - {action: Accept, matchOperator: Equal, cidr: 10.244.2.0/26, operations: [{setPriority: {value: 512}}]}\n";
    run_topology_with("prio", &y, |c, lab, namespaces| {
        for family in Family::BOTH {
            let mut want: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for n in &c.nodes {
                let routes = want.entry(n.name.clone()).or_default();
                for a in c
                    .affinities
                    .iter()
                    .filter(|a| a.node != n.name && Family::of(a.block.addr()) == family)
                {
                    let metric = if a.block.to_string() == "10.244.2.0/26" {
                        512
                    } else {
                        1024
                    };
                    routes.insert(a.block.to_string(), metric);
                }
            }
            let v = if family == Family::V4 { "-4" } else { "-6" };
            settle_per_bird("prio", "kernel route metrics", lab, family, &want, |b| {
                let json = run(
                    "ip",
                    &[
                        "-n",
                        &namespaces[&b.node],
                        "-j",
                        v,
                        "route",
                        "show",
                        "proto",
                        "bird",
                    ],
                )
                .unwrap_or_default();
                kernel_metrics(&json)
            });
        }
    });
}

/// The default mesh of s1–s3, `serviceClusterIPs` 10.96.0.0/16 and a Service with
/// `externalTrafficPolicy: Local` whose endpoints run on s1 and s3, s3 labelled
/// exclude-from-external-load-balancers. Each BIRD holds over BGP exactly what the other
/// nodes advertise according to calico-route: the range from s1 and s2 (not s3), the
/// Service's /32 from s1 only; no node installs any of it in the kernel (the kernel
/// comparison of every topology already requires that).
#[test]
fn service_advertisement_with_real_bird() {
    let mut y = String::from(POOLS);
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  serviceClusterIPs: [{cidr: 10.96.0.0/16}]\n";
    y += &lab_node("s1", 1, "", "");
    y += &lab_node("s2", 2, "", "");
    y += &lab_node(
        "s3",
        3,
        "node.kubernetes.io/exclude-from-external-load-balancers: \"true\"",
        "",
    );
    y += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  externalTrafficPolicy: Local\n";
    y += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.1.5]\n  nodeName: s1\n- addresses: [10.244.3.5]\n  nodeName: s3\n";
    let c = cluster(&y);
    let s2 = calico_route::advertise::service_advertisement(&c, c.node("s2").unwrap(), Family::V4);
    assert!(s2.service_routes.is_empty());
    let s3 = calico_route::advertise::service_advertisement(&c, c.node("s3").unwrap(), Family::V4);
    assert!(s3.cluster_ranges.is_empty() && s3.service_routes.is_empty());
    run_topology_with("svc", &y, |c, lab, _| {
        let graph = SessionGraph::new(c);
        // Prediction: prefix → the protocols (peers) it is learned over.
        let mut want: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for n in &c.nodes {
            let entry = want.entry(n.name.clone()).or_default();
            for p in graph
                .peerings_of(&n.name)
                .filter(|p| p.family == Family::V4)
            {
                let Some(peer) = p.peer_node.as_deref().and_then(|m| c.node(m)) else {
                    continue;
                };
                let adv = calico_route::advertise::service_advertisement(c, peer, Family::V4);
                for net in adv.cluster_ranges.iter().chain(&adv.service_routes) {
                    entry
                        .entry(net.to_string())
                        .or_default()
                        .insert(p.name.clone());
                }
            }
        }
        assert_eq!(
            want["s2"]["10.96.0.10/32"],
            BTreeSet::from(["Mesh_10_0_1_1".to_owned()])
        );
        assert_eq!(
            want["s1"]["10.96.0.0/16"],
            BTreeSet::from(["Mesh_10_0_1_2".to_owned()])
        );
        let range: ipnet::IpNet = "10.96.0.0/16".parse().unwrap();
        settle_per_bird("svc", "service routes", lab, Family::V4, &want, |b| {
            let text = birdc(&b.sock, &["show", "route"]).unwrap_or_default();
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (prefix, entries) in parse_routes(&text) {
                if !prefix
                    .parse::<ipnet::IpNet>()
                    .is_ok_and(|n| range.contains(&n))
                {
                    continue;
                }
                for e in entries.iter().filter(|e| e.protocol.starts_with("Mesh_")) {
                    out.entry(prefix.clone())
                        .or_default()
                        .insert(e.protocol.clone());
                }
            }
            out
        });
    });
}

/// Mesh off; every node peers with every other through one BGPPeer whose filter rejects
/// a's block on eBGP sessions only (`peerType: eBGP`). a and b are in AS 64512, c in
/// 65003: b learns a's block (iBGP), c learns it from nobody (a's and b's sessions to c
/// are eBGP), and every other block goes everywhere.
#[test]
fn peer_type_filter_with_real_bird() {
    let mut y = bgp_config(false) + POOLS;
    y += &lab_node("a", 1, "", "");
    y += &lab_node("b", 2, "", "");
    y += &lab_node("c", 3, "", "    asNumber: 65003\n");
    y += &peer(
        "all",
        "nodeSelector: all()\npeerSelector: all()\nfilters: [pt]",
    );
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: pt\nspec:\n  exportV4:\n  - {action: Reject, peerType: eBGP, matchOperator: Equal, cidr: 10.244.1.0/26}\n";
    let c = cluster(&y);
    let remote_v4 = |node: &str| -> Vec<String> {
        plan_node(&c, node, &PlanOptions::default())
            .unwrap()
            .routes
            .iter()
            .filter(|r| !r.route.is_blackhole() && r.route.dst.addr().is_ipv4())
            .map(|r| r.route.dst.to_string())
            .collect()
    };
    assert_eq!(remote_v4("b"), ["10.244.1.0/26", "10.244.3.0/26"]);
    assert_eq!(remote_v4("c"), ["10.244.2.0/26"]);
    assert_eq!(remote_v4("a"), ["10.244.2.0/26", "10.244.3.0/26"]);
    run_topology("ptype", &y);
}

/// Mesh off; reflector rr1 (itself excluded from load balancers) and clients c2, c3. A
/// LoadBalancer Service with `externalTrafficPolicy: Local` has its endpoint on c2: c2
/// advertises its /32, rr1 reflects it (its export accepts everything inside the
/// configured LoadBalancer range although it advertises no Service address itself), and c3
/// learns it from rr1; nobody installs it in the kernel.
#[test]
fn service_route_reflection_with_real_bird() {
    let mut y = bgp_config(false).replace(
        "nodeToNodeMeshEnabled: false\n",
        "nodeToNodeMeshEnabled: false\n  serviceLoadBalancerIPs: [{cidr: 192.0.2.0/24}]\n",
    ) + POOLS;
    y += &reflector("rr1", 1, "", "1.1.1.1").replace(
        "labels: {rr: \"\"}",
        "labels: {rr: \"\", node.kubernetes.io/exclude-from-external-load-balancers: \"true\"}",
    );
    y += &lab_node("c2", 2, "", "");
    y += &lab_node("c3", 3, "", "");
    y += &peer("to-rr", "nodeSelector: all()\npeerSelector: has(rr)");
    y += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: shop\nspec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.10\n  externalTrafficPolicy: Local\nstatus:\n  loadBalancer:\n    ingress: [{ip: 192.0.2.7}]\n";
    y += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: lb-1\n  namespace: shop\n  labels: {kubernetes.io/service-name: lb}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.2.5]\n  nodeName: c2\n";
    let c = cluster(&y);
    assert!(c.excluded_from_service_advertisement(c.node("rr1").unwrap()));
    run_topology_with("svcrr", &y, |_, lab, _| {
        let host: ipnet::IpNet = "192.0.2.7/32".parse().unwrap();
        let set = |p: &[&str]| -> BTreeMap<String, BTreeSet<String>> {
            if p.is_empty() {
                return BTreeMap::new();
            }
            BTreeMap::from([(
                host.to_string(),
                p.iter().map(|s| (*s).to_owned()).collect(),
            )])
        };
        let want = BTreeMap::from([
            ("rr1".to_owned(), set(&["Node_10_0_1_2"])),
            ("c2".to_owned(), set(&[])),
            ("c3".to_owned(), set(&["Node_10_0_1_1"])),
        ]);
        settle_per_bird("svcrr", "service routes", lab, Family::V4, &want, |b| {
            let text = birdc(&b.sock, &["show", "route"]).unwrap_or_default();
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (prefix, entries) in parse_routes(&text) {
                if prefix != host.to_string() {
                    continue;
                }
                for e in entries.iter().filter(|e| e.protocol.starts_with("Node_")) {
                    out.entry(prefix.clone())
                        .or_default()
                        .insert(e.protocol.clone());
                }
            }
            out
        });
    });
}
