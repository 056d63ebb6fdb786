//! The agent: follows the datastore, programs this node's kernel, keeps BIRD's
//! configuration current, supervises BIRD and reports status, health and metrics.
//!
//! One loop does the datastore work and the kernel work in turn:
//!
//! 1. **Sync.** A [`Syncer`] lists Calico's resources, the Kubernetes objects kept beside
//!    them and the host block affinities, then watches. Each event updates the [`View`] and
//!    goes at once into the [`Calculator`] (the incremental policy compiler takes one
//!    resource change at a time).
//! 2. **Nothing before in-sync.** The kernel is not touched until the first complete list.
//!    The first apply reads the kernel back and sweeps: owned chains, sets, routes,
//!    neighbours, FDB entries and devices an earlier run left and nothing wants are removed.
//! 3. **Batching.** Everything that arrived while an apply ran goes into the next one: the
//!    loop drains the syncer (up to 50 ms of queued events), computes once, applies once. There is no fixed rate limit; an
//!    apply is one nftables transaction plus the netlink delta, so the loop never falls
//!    behind by more than one apply. A failed apply is retried with backoff (1 s doubling to
//!    10 s) while new changes keep being taken in.
//! 4. **Deltas.** After the first apply, kernel writes are deltas against what was applied
//!    last (the nftables table's delta comes from the calculation itself, see
//!    [`Calculator::take_nft`], so a set-member change sends and compares only its
//!    elements); the kernel is read back only on the refresh timers (routes, nftables,
//!    interfaces; FelixConfiguration's `routeRefreshInterval`, `nftablesRefreshInterval`,
//!    `interfaceRefreshInterval`, each jittered by ±10 %), which repair drift.
//! 5. **Interfaces.** Link notifications make a workload interface that appears after its
//!    endpoint get its routes at once.
//! 6. **BIRD.** Once in sync (and when BGP is on), the node's BIRD configuration is rendered,
//!    checked with `bird -p`, installed atomically and loaded with `configure`; a rejected
//!    configuration keeps the old one, is reported in health and retried with backoff
//!    (250 ms doubling to 5 s). BIRD is started with the first configuration, restarted if
//!    it dies and stopped when the agent stops.
//!
//! **Cold start at scale.** With 100,000 pods in the datastore the first list is the bulk of
//! the work, so it is kept lean: the list reads pages of 10,000 keys (etcd counts the rest of
//! the range on every page, so small pages are quadratic); the syncer keeps each key's
//! revisions and a value fingerprint, not the value; values are decoded on every core and
//! into the object alone; the policy compiler takes the objects over from the view, which
//! keeps of an endpoint on another node only what routing needs (see [`View::hand_over`]),
//! while the routing input is read on another core. The log says how long each stage took
//! and the resident memory after it.
//!
//! Stopping (the flag given to [`Agent::run`]) stops BIRD and leaves the kernel as it is,
//! so traffic keeps flowing until the next agent's first apply.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use calico_dataplane::link_monitor::LinkMonitor;
use calico_datastore::{KeyValue, Store, SyncEvent, SyncOptions, SyncStatus, Syncer};

use crate::bird_config::{ConfigError, install_config};
use crate::bird_control::BirdControl;
use crate::bird_process::{BirdPaths, BirdProcess};
use crate::calc::{CalcOptions, Calculator, NftPending};
use crate::endpoint_status::EndpointStatusDir;
use crate::health::{Health, HealthReport};
use crate::http::{HttpServer, serve_health, serve_metrics};
use crate::kernel::{KernelError, KernelWriter, NftUpdate};
use crate::metrics::Metrics;
use crate::node_status_report::NodeStatusReporter;
use crate::protocols::parse_show_protocols;
use crate::settings::{AgentSettings, ReportedOnce};
use crate::status_report::{StatusOptions, StatusReporter};
use crate::view::{PREFIXES, View, ViewChange};

/// This process's resident memory, as the cold-start log lines show it (`RSS 812 MiB`).
fn resident() -> String {
    match crate::memory::kib(None, crate::memory::Memory::Resident) {
        Some(kib) => format!("RSS {} MiB", kib / 1024),
        None => "RSS unknown".to_owned(),
    }
}

/// Keys per range read of a list. etcd counts the rest of the range on every page, so
/// small pages make a list of 100,000 keys quadratic; Calico itself lists a prefix in one
/// read. 10,000 Calico objects are about 15 MB.
const LIST_PAGE: usize = 10_000;

/// Health component names.
const STARTUP: &str = "startup";
const SYNC: &str = "sync";
const DATAPLANE: &str = "dataplane";
const BIRD: &str = "bird";

/// How the agent runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentConfig {
    /// This node's name (the Node resource's).
    pub node: String,
    /// The pid file, BIRD's control socket and log, and the endpoint status files.
    pub state_dir: PathBuf,
    /// BIRD's configuration file.
    pub bird_config: PathBuf,
    /// The `bird` program.
    pub bird_binary: PathBuf,
    /// Run BIRD and render its configuration (off: policy-only mode, e.g. beside flannel).
    pub bgp: bool,
    /// Program the kernel (off: follow the datastore and report only, for scale tests).
    pub dataplane: bool,
    /// The interface holding the node's address (VXLAN's parent).
    pub parent_iface: String,
    /// Health port instead of FelixConfiguration's (`Some(0)`: any free port).
    pub health_port: Option<u16>,
    /// Metrics port instead of FelixConfiguration's.
    pub metrics_port: Option<u16>,
    /// Write the pid file (what `calico node status` looks at).
    pub pid_file: bool,
}

impl AgentConfig {
    /// Defaults for `node`: state in `/var/run/calico`, BIRD's configuration in
    /// `/etc/calico/bird.cfg`, BGP and the dataplane on, parent interface `eth0`.
    pub fn new(node: &str) -> AgentConfig {
        AgentConfig {
            node: node.to_owned(),
            state_dir: PathBuf::from("/var/run/calico"),
            bird_config: PathBuf::from("/etc/calico/bird.cfg"),
            bird_binary: PathBuf::from("bird"),
            bgp: true,
            dataplane: true,
            parent_iface: "eth0".to_owned(),
            health_port: None,
            metrics_port: None,
            pid_file: true,
        }
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The state directory could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel could not be opened.
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
}

/// What the agent says about itself while it runs (lines for its log).
pub type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// The node agent.
pub struct Agent {
    store: Arc<dyn Store>,
    config: AgentConfig,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    log: Logger,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("store", &self.store.url())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// ±10 % of `d`, from a cheap per-process sequence (no need for a random generator).
fn jittered(d: Duration, seq: &mut u64) -> Duration {
    *seq = seq
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let frac = ((*seq >> 33) % 2001) as f64 / 10_000.0 - 0.1;
    d.mul_f64(1.0 + frac)
}

struct Timers {
    routes: Instant,
    nft: Instant,
    interfaces: Instant,
    seq: u64,
}

impl Timers {
    fn new(s: &AgentSettings, now: Instant) -> Timers {
        let mut t = Timers {
            routes: now,
            nft: now,
            interfaces: now,
            seq: u64::from(std::process::id()),
        };
        t.reset(s, now);
        t
    }

    fn reset(&mut self, s: &AgentSettings, now: Instant) {
        self.routes = now + jittered(s.route_refresh, &mut self.seq);
        self.nft = now + jittered(s.nftables_refresh, &mut self.seq);
        self.interfaces = now + jittered(s.interface_refresh, &mut self.seq);
    }
}

/// BIRD's part of the loop.
struct BirdState {
    process: Option<BirdProcess>,
    paths: BirdPaths,
    installed: Option<String>,
    pending: Option<String>,
    retry_at: Instant,
    backoff: Duration,
    last_error: Option<String>,
    next_check: Instant,
    started: Instant,
}

impl Agent {
    /// An agent for `config.node` on `store`.
    pub fn new(store: Arc<dyn Store>, config: AgentConfig) -> Agent {
        Agent {
            store,
            config,
            health: Arc::new(Health::new()),
            metrics: Arc::new(Metrics::new()),
            log: Arc::new(|line: &str| eprintln!("{line}")),
        }
    }

    /// Sends the agent's log lines to `log` instead of standard error.
    pub fn with_logger(mut self, log: Logger) -> Agent {
        self.log = log;
        self
    }

    /// The health components (shared with the health server).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// The metrics (shared with the metrics server).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn log(&self, line: &str) {
        (self.log)(&format!("calico-node[{}]: {line}", self.config.node));
    }

    /// Runs until `stop` is set.
    pub fn run(&self, stop: &AtomicBool) -> Result<(), AgentError> {
        let cfg = &self.config;
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| AgentError::Io { path, source }
        };
        std::fs::create_dir_all(&cfg.state_dir).map_err(io(&cfg.state_dir))?;
        let pid_path = cfg.state_dir.join("calico-node.pid");
        if cfg.pid_file {
            std::fs::write(&pid_path, format!("{}\n", std::process::id()))
                .map_err(io(&pid_path))?;
        }
        let result = self.run_loop(stop);
        if cfg.pid_file {
            let _ = std::fs::remove_file(&pid_path);
        }
        result
    }

    fn run_loop(&self, stop: &AtomicBool) -> Result<(), AgentError> {
        let cfg = &self.config;
        let started = Instant::now();
        let health = &self.health;
        health.register(STARTUP, None);
        health.register(SYNC, Some(Duration::from_secs(30)));
        if cfg.dataplane {
            health.register(DATAPLANE, Some(Duration::from_secs(90)));
        }
        if cfg.bgp {
            health.register(BIRD, Some(Duration::from_secs(30)));
        }
        health.report(
            STARTUP,
            HealthReport::not_ready("waiting for the datastore"),
        );

        let mut syncer = Syncer::new(
            self.store.clone(),
            PREFIXES.iter().map(|p| p.as_bytes().to_vec()).collect(),
            SyncOptions {
                page_size: LIST_PAGE,
                ..SyncOptions::default()
            },
        );
        let mut view = View::new();
        let mut host_mtu = 1500;
        let mut kernel = match cfg.dataplane {
            true => {
                let mut k = KernelWriter::open()?;
                if let Some(mtu) = k.mtu_of(&cfg.parent_iface) {
                    host_mtu = mtu;
                }
                Some(k)
            }
            false => None,
        };
        let mut calc = Calculator::new(CalcOptions {
            node: cfg.node.clone(),
            parent_iface: cfg.parent_iface.clone(),
            host_mtu,
            routes: cfg.dataplane,
            bgp: cfg.bgp,
        });
        let links_dirty = Arc::new(AtomicBool::new(false));
        let monitor_stop = Arc::new(AtomicBool::new(false));
        let monitor = match cfg.dataplane {
            true => Some(self.start_link_monitor(links_dirty.clone(), monitor_stop.clone())),
            false => None,
        };
        let mut status_dir = EndpointStatusDir::new(&cfg.state_dir.join("endpoint-status"));
        let mut bird = BirdState {
            process: None,
            paths: BirdPaths {
                binary: cfg.bird_binary.clone(),
                config: cfg.bird_config.clone(),
                socket: cfg.state_dir.join("bird.ctl"),
                log: Some(cfg.state_dir.join("bird.log")),
            },
            installed: None,
            pending: None,
            retry_at: started,
            backoff: Duration::from_millis(250),
            last_error: None,
            next_check: started,
            started,
        };

        let mut settings = AgentSettings::default();
        let mut reported = ReportedOnce::default();
        let mut settings_dirty = true;
        let mut in_sync = false;
        let mut servers: Vec<HttpServer> = Vec::new();
        let mut served: Option<(Option<SocketAddr>, Option<SocketAddr>)> = None;
        let mut reporter: Option<(StatusOptions, StatusReporter)> = None;
        let mut timers = Timers::new(&settings, started);
        let mut apply_retry: Option<(Instant, Duration)> = None;
        let mut last_apply_ok = false;
        let mut first_apply_done = false;
        let mut sync_error: Option<String> = None;
        let mut last_error_log: Option<Instant> = None;
        let mut node_status = NodeStatusReporter::new(&cfg.node);
        let mut next_node_status = started;

        while !stop.load(Ordering::Relaxed) {
            let mut events = syncer.poll(Duration::from_millis(20));
            let batch_start = Instant::now();
            // Batching: take in everything already queued (up to 50 ms worth) before
            // computing, so a burst costs one calculation and one apply.
            while !events.is_empty() && batch_start.elapsed() < Duration::from_millis(50) {
                let more = syncer.poll(Duration::ZERO);
                if more.is_empty() {
                    break;
                }
                events.extend(more);
            }
            let mut changed = 0usize;
            // Runs of puts (a list above all) are decoded on every core at once.
            let mut puts: Vec<KeyValue> = Vec::new();
            let mut events = events.into_iter().peekable();
            while let Some(ev) = events.next() {
                match ev {
                    SyncEvent::Put { kv } => {
                        puts.push(kv);
                        if matches!(events.peek(), Some(SyncEvent::Put { .. })) {
                            continue;
                        }
                        for ch in view.put_many(&std::mem::take(&mut puts)) {
                            changed += self.take_change(&mut calc, ch, &mut settings_dirty);
                        }
                    }
                    SyncEvent::Delete { prev } => {
                        let ch = view.delete(&prev.key);
                        changed += self.take_change(&mut calc, ch, &mut settings_dirty);
                    }
                    SyncEvent::Status(s) => {
                        self.metrics.set_sync_status(s);
                        if s == SyncStatus::InSync {
                            let st = syncer.stats();
                            if !in_sync {
                                self.log(&format!(
                                    "in sync with {} at revision {}: {} key(s) listed in {:.2} s, decoded in {:.2} s ({:.2} s after start, {})",
                                    self.store.url(),
                                    st.revision,
                                    syncer.len(),
                                    batch_start.duration_since(started).as_secs_f64(),
                                    batch_start.elapsed().as_secs_f64(),
                                    started.elapsed().as_secs_f64(),
                                    resident()
                                ));
                            } else {
                                // Deletes were synthesised by diffing the new list with the
                                // view; nothing else changed in the kernel.
                                self.log(&format!(
                                    "in sync again at revision {} after a re-list ({} list(s), {} after compaction)",
                                    st.revision, st.lists, st.compactions
                                ));
                            }
                            in_sync = true;
                            sync_error = None;
                        }
                    }
                    SyncEvent::Error(e) => {
                        let text = e.to_string();
                        // The first failure, then at most one line every 10 s.
                        if sync_error.is_none()
                            || last_error_log
                                .is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10))
                        {
                            self.log(&format!("datastore: {text} (retrying with backoff)"));
                            last_error_log = Some(Instant::now());
                        }
                        sync_error = Some(text);
                    }
                    _ => {}
                }
            }
            for (key, reason) in view.take_new_undecodable() {
                self.log(&format!("{key}: left out: {reason}"));
            }
            let now = Instant::now();
            let sync_ready = syncer.status() == SyncStatus::InSync && sync_error.is_none();
            health.report(
                SYNC,
                match (&sync_error, sync_ready) {
                    (Some(e), _) => HealthReport::not_ready(e.clone()),
                    (None, true) => HealthReport::ok(),
                    (None, false) => HealthReport::not_ready(format!("{:?}", syncer.status())),
                },
            );
            if !in_sync {
                continue;
            }

            if settings_dirty {
                settings_dirty = false;
                let (default, own) = view.felix_configs(&cfg.node);
                let (s, problems) =
                    AgentSettings::resolve(default, own.map(|o| (cfg.node.as_str(), o)), |k| {
                        std::env::var(k).ok()
                    });
                for p in reported.fresh(&problems) {
                    self.log(&p.to_string());
                }
                if s != settings {
                    timers.reset(&s, now);
                }
                settings = s;
                self.start_servers(&settings, &mut servers, &mut served);
                let opts = StatusOptions {
                    interval: settings.reporting_interval,
                    ttl: settings.reporting_ttl,
                    ..StatusOptions::default()
                };
                if reporter.as_ref().is_none_or(|(o, _)| *o != opts) {
                    let r =
                        StatusReporter::new(self.store.clone(), &cfg.node, opts.clone(), started);
                    reporter = Some((opts, r));
                }
            }

            // Kernel.
            let refresh_routes = now >= timers.routes;
            let refresh_nft = now >= timers.nft;
            let refresh_ifaces = now >= timers.interfaces;
            let links = links_dirty.swap(false, Ordering::Relaxed) || refresh_ifaces;
            let retry_due = apply_retry.is_some_and(|(at, _)| now >= at);
            let must_apply = !first_apply_done
                || calc.dirty()
                || links
                || refresh_routes
                || refresh_nft
                || retry_due;
            let waiting_retry = apply_retry.is_some() && !retry_due && changed == 0;
            if must_apply && !waiting_retry {
                if calc.dirty() {
                    let t = Instant::now();
                    calc.compute(&mut view);
                    if !first_apply_done {
                        self.log(&format!(
                            "first calculation: {:.2} s ({:.2} s after start, {})",
                            t.elapsed().as_secs_f64(),
                            started.elapsed().as_secs_f64(),
                            resident()
                        ));
                    }
                    self.metrics
                        .calc_graph_update_time
                        .observe(t.duration_since(batch_start).as_secs_f64());
                    for p in calc.take_problems() {
                        self.log(&p.to_string());
                    }
                    if let Some(m) = calc.model() {
                        self.metrics.num_policies.set(m.policies().len() as i64);
                        self.metrics
                            .num_workload_endpoints
                            .set(m.workload_endpoint_count() as i64);
                    }
                }
                if let Some(k) = kernel.as_mut() {
                    if links
                        && k.applied_once()
                        && let Err(e) = k.links_changed()
                    {
                        self.log(&format!("listing links: {e}"));
                    }
                    // The table's delta since the last apply, unless the last apply failed
                    // (then the whole table is compared with the kernel's).
                    let pending = calc.take_nft();
                    let out = calc.outputs();
                    let nft = calc.ruleset().and_then(|rs| match &pending {
                        _ if !last_apply_ok || !k.applied_once() => Some(NftUpdate::Whole(rs)),
                        NftPending::Delta(delta) => Some(NftUpdate::Delta { delta, result: rs }),
                        NftPending::Whole => Some(NftUpdate::Whole(rs)),
                        _ if refresh_nft => Some(NftUpdate::Whole(rs)),
                        _ => None,
                    });
                    let t = Instant::now();
                    let routes = (!settings.route_sync_disabled)
                        .then_some(out.routes.as_ref())
                        .flatten();
                    match k.apply(nft, routes, refresh_nft, refresh_routes) {
                        Ok(report) => {
                            self.metrics.apply_time.observe(t.elapsed().as_secs_f64());
                            let problems = report.problems();
                            if !first_apply_done {
                                self.log(&format!(
                                    "first apply (sweep): {} route change(s), {} nftables message(s) in {:.1} ms ({:.2} s after start, {})",
                                    report.routes.applied.len(),
                                    report.nft_messages,
                                    t.elapsed().as_secs_f64() * 1e3,
                                    started.elapsed().as_secs_f64(),
                                    resident()
                                ));
                            }
                            for p in &problems {
                                self.log(p);
                            }
                            first_apply_done = true;
                            apply_retry = None;
                            last_apply_ok = true;
                            self.metrics
                                .applied_revision
                                .set(i64::try_from(syncer.stats().revision).unwrap_or(i64::MAX));
                            let missing = &report.routes.missing_interfaces;
                            let programmed = out
                                .workloads
                                .values()
                                .filter(|w| !missing.contains(&w.iface));
                            if let Err(e) = status_dir.update(programmed) {
                                self.log(&format!(
                                    "endpoint status files in {}: {e}",
                                    status_dir.dir().display()
                                ));
                            }
                            health.report(
                                DATAPLANE,
                                match problems.first() {
                                    None => HealthReport::ok(),
                                    Some(p) => HealthReport {
                                        detail: format!(
                                            "{} problem(s), first: {p}",
                                            problems.len()
                                        ),
                                        ..HealthReport::ok()
                                    },
                                },
                            );
                        }
                        Err(e) => {
                            self.metrics.dataplane_failures.inc();
                            last_apply_ok = false;
                            let backoff = apply_retry.map_or(Duration::from_secs(1), |(_, b)| {
                                (b * 2).min(Duration::from_secs(10))
                            });
                            apply_retry = Some((now + backoff, backoff));
                            self.log(&format!("apply failed (retry in {backoff:?}): {e}"));
                            health.report(
                                DATAPLANE,
                                HealthReport {
                                    detail: format!("last apply failed: {e}"),
                                    ..HealthReport::not_ready("apply failed")
                                },
                            );
                        }
                    }
                } else {
                    calc.take_nft();
                    first_apply_done = true;
                    last_apply_ok = true;
                    self.metrics
                        .applied_revision
                        .set(i64::try_from(syncer.stats().revision).unwrap_or(i64::MAX));
                }
                if refresh_routes || refresh_nft || refresh_ifaces {
                    let n = Instant::now();
                    if refresh_routes {
                        timers.routes = n + jittered(settings.route_refresh, &mut timers.seq);
                    }
                    if refresh_nft {
                        timers.nft = n + jittered(settings.nftables_refresh, &mut timers.seq);
                    }
                    if refresh_ifaces {
                        timers.interfaces =
                            n + jittered(settings.interface_refresh, &mut timers.seq);
                    }
                }
            } else if kernel.is_some() && last_apply_ok {
                // Still alive: the loop turns even when nothing changes.
                health.report(DATAPLANE, HealthReport::ok());
            }
            if first_apply_done && last_apply_ok {
                health.report(STARTUP, HealthReport::ok());
                // Changes that needed no kernel write (other nodes' workloads, policies no
                // local endpoint uses) still count as applied: the kernel is current.
                if !calc.dirty() && apply_retry.is_none() {
                    self.metrics
                        .applied_revision
                        .set(i64::try_from(syncer.stats().revision).unwrap_or(i64::MAX));
                }
            }

            if cfg.bgp {
                if let Some(text) = &calc.outputs().bird
                    && bird.installed.as_ref() != Some(text)
                    && bird.pending.as_ref() != Some(text)
                {
                    bird.pending = Some(text.clone());
                    bird.backoff = Duration::from_millis(250);
                    bird.retry_at = now;
                }
                self.bird_turn(&mut bird, now);
            }

            if let Some((_, r)) = reporter.as_mut()
                && let Err(e) = r.tick(now, SystemTime::now())
            {
                self.log(&format!("status report: {e}"));
            }
            if now >= next_node_status {
                next_node_status = now + Duration::from_secs(1);
                if let Err(e) = node_status.tick(
                    &*self.store,
                    view.node_statuses().values(),
                    &bird.paths.socket,
                    now,
                ) {
                    self.log(&format!("CalicoNodeStatus: {e}"));
                }
            }
        }

        monitor_stop.store(true, Ordering::Relaxed);
        if let Some(h) = monitor {
            let _ = h.join();
        }
        if let Some(mut p) = bird.process.take()
            && let Err(e) = p.stop()
        {
            self.log(&e.to_string());
        }
        for mut s in servers {
            s.stop();
        }
        self.log("stopped; the kernel stays programmed");
        Ok(())
    }

    fn take_change(
        &self,
        calc: &mut Calculator,
        ch: ViewChange,
        settings_dirty: &mut bool,
    ) -> usize {
        if let ViewChange::Object { old, new } = &ch {
            let felix = |o: &Option<Arc<calico_model::loader::LoadedObject>>| {
                o.as_ref().is_some_and(|o| {
                    o.resource.kind() == calico_model::resources::Kind::FelixConfiguration
                })
            };
            if felix(old) || felix(new) {
                *settings_dirty = true;
            }
        }
        match ch {
            ViewChange::Nothing => 0,
            other => {
                calc.change(other);
                1
            }
        }
    }

    fn start_link_monitor(
        &self,
        dirty: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let log = self.log.clone();
        let node = self.config.node.clone();
        std::thread::spawn(move || {
            let mut m = match LinkMonitor::open() {
                Ok(m) => m,
                Err(e) => {
                    log(&format!(
                        "calico-node[{node}]: no link notifications ({e}); interfaces are found at the refresh"
                    ));
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                match m.wait(Duration::from_millis(200)) {
                    Ok(true) => dirty.store(true, Ordering::Relaxed),
                    Ok(false) => {}
                    Err(e) => {
                        log(&format!("calico-node[{node}]: link notifications: {e}"));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
    }

    fn start_servers(
        &self,
        s: &AgentSettings,
        servers: &mut Vec<HttpServer>,
        served: &mut Option<(Option<SocketAddr>, Option<SocketAddr>)>,
    ) {
        let resolve = |host: &str, port: u16| -> Option<SocketAddr> {
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            (host, port).to_socket_addrs().ok()?.next()
        };
        let health = s
            .health_enabled
            .then(|| {
                resolve(
                    &s.health_host,
                    self.config.health_port.unwrap_or(s.health_port),
                )
            })
            .flatten();
        let metrics = s
            .metrics_enabled
            .then(|| {
                resolve(
                    &s.metrics_host,
                    self.config.metrics_port.unwrap_or(s.metrics_port),
                )
            })
            .flatten();
        if served.as_ref() == Some(&(health, metrics)) {
            return;
        }
        for mut old in servers.drain(..) {
            old.stop();
        }
        if let Some(addr) = health {
            match serve_health(addr, self.health.clone()) {
                Ok(srv) => {
                    self.log(&format!("health on http://{}", srv.local_addr()));
                    servers.push(srv);
                }
                Err(e) => self.log(&format!("health: {e}")),
            }
        }
        if let Some(addr) = metrics {
            match serve_metrics(addr, self.metrics.clone()) {
                Ok(srv) => {
                    self.log(&format!("metrics on http://{}/metrics", srv.local_addr()));
                    servers.push(srv);
                }
                Err(e) => self.log(&format!("metrics: {e}")),
            }
        }
        *served = Some((health, metrics));
    }

    fn bird_turn(&self, b: &mut BirdState, now: Instant) {
        if let Some(text) = b.pending.clone()
            && now >= b.retry_at
        {
            let socket = b.process.as_ref().map(|_| b.paths.socket.clone());
            match install_config(&b.paths.binary, &b.paths.config, &text, socket.as_deref()) {
                Ok(outcome) => {
                    self.log(&format!("BIRD configuration: {outcome:?}"));
                    b.installed = Some(text);
                    b.pending = None;
                    b.last_error = None;
                }
                Err(e) => {
                    let rejected = matches!(e, ConfigError::Rejected { .. });
                    if b.last_error.as_deref() != Some(&e.to_string()) {
                        self.log(&format!("BIRD configuration: {e} (retrying with backoff)"));
                    }
                    b.last_error = Some(e.to_string());
                    b.retry_at = now + b.backoff;
                    b.backoff = (b.backoff * 2).min(Duration::from_secs(5));
                    if !rejected && matches!(e, ConfigError::Reload { .. }) {
                        // Installed, not reloaded: BIRD reads it when it (re)starts.
                        b.installed = Some(text);
                        b.pending = None;
                    }
                }
            }
        }
        if now < b.next_check {
            return;
        }
        b.next_check = now + Duration::from_secs(1);
        if b.installed.is_none() {
            self.health
                .report(BIRD, HealthReport::not_ready("no configuration yet"));
            return;
        }
        match b.process.as_mut() {
            None => match BirdProcess::start(b.paths.clone()) {
                Ok(p) => {
                    self.log(&format!("BIRD started (pid {:?})", p.pid()));
                    b.process = Some(p);
                    b.started = now;
                }
                Err(e) => {
                    self.log(&format!("BIRD: {e}"));
                    self.health
                        .report(BIRD, HealthReport::failed(e.to_string()));
                    return;
                }
            },
            Some(p) => match p.ensure_running() {
                Ok(true) => self.log("BIRD had exited; restarted"),
                Ok(false) => {}
                Err(e) => {
                    self.health
                        .report(BIRD, HealthReport::failed(e.to_string()));
                    return;
                }
            },
        }
        let report = match BirdControl::connect(&b.paths.socket, Duration::from_secs(2))
            .and_then(|mut c| c.command("show protocols"))
        {
            Err(e) => HealthReport::failed(format!("control socket: {e}")),
            Ok(reply) => {
                let rows = parse_show_protocols(&reply.text());
                let peers: Vec<_> = rows
                    .iter()
                    .filter(|r| crate::protocols::parse_peer_name(&r.name).is_some())
                    .collect();
                let up = peers
                    .iter()
                    .filter(|r| r.info.starts_with("Established"))
                    .count();
                let early = now.duration_since(b.started) < Duration::from_secs(30);
                let ready = peers.is_empty() || if early { up == peers.len() } else { up > 0 };
                let detail = format!("{up} of {} BGP peer(s) Established", peers.len());
                let mut r = if ready {
                    HealthReport {
                        detail,
                        ..HealthReport::ok()
                    }
                } else {
                    HealthReport::not_ready(detail)
                };
                if let Some(e) = &b.last_error {
                    r.detail = format!("{}; {e}", r.detail);
                }
                r
            }
        };
        self.health.report(BIRD, report);
    }
}
