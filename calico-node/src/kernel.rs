//! The agent's kernel writer: nftables and netlink deltas against what it applied last,
//! full read-backs only on the first apply (which also sweeps what an earlier run left)
//! and on the refresh timers.

use calico_dataplane::mirrored::Mirrored;
use calico_dataplane::netlink::{NetlinkDataplane, NetlinkError};
use calico_dataplane::nft::{ApplyError, NftDataplane};
use calico_dataplane::reconcile::{ReconcileError, Report, reconcile};
use calico_dataplane::state::DesiredState;
use calico_policy::nft::{Ruleset, RulesetDelta};

/// Why the kernel could not be read or written at all (single entries that fail are in the
/// [`KernelReport`] instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A netlink socket could not be opened or a dump failed.
    #[error("netlink: {0}")]
    Netlink(#[from] NetlinkError),
    /// The current state could not be read.
    #[error("{0}")]
    Observe(#[from] ReconcileError<NetlinkError>),
    /// The nftables transaction failed (nothing of it was applied).
    #[error("nftables: {0}")]
    Nft(#[from] ApplyError),
    /// The nftables table could not be read back.
    #[error("nftables read-back: {0}")]
    NftRead(#[from] calico_dataplane::nft::ReadError),
}

/// What one apply did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct KernelReport {
    /// Whether it read the kernel back first (the first apply and refreshes).
    pub full: bool,
    /// nf_tables messages sent (0: the table already matched).
    pub nft_messages: usize,
    /// The route/device/neighbour/FDB/sysctl part.
    pub routes: Report,
}

impl KernelReport {
    /// One line per problem (failed or skipped entries, missing device kinds).
    pub fn problems(&self) -> Vec<String> {
        let r = &self.routes;
        let mut out: Vec<String> = r
            .unsupported_devices
            .iter()
            .map(|d| format!("{d}: the kernel lacks this device type"))
            .collect();
        out.extend(r.failed.iter().map(|(op, e)| format!("{op}: {e}")));
        out.extend(r.skipped.iter().map(|op| format!("skipped: {op}")));
        out
    }

    /// Kernel changes made.
    pub fn changes(&self) -> usize {
        self.routes.applied.len() + usize::from(self.nft_messages > 0)
    }
}

/// What the nftables table should become.
#[derive(Debug, Clone, Copy)]
pub enum NftUpdate<'a> {
    /// This table, compared with the last one applied (or with the kernel's after a
    /// refresh).
    Whole(&'a Ruleset),
    /// `delta` turns the last table applied into `result`: only the delta is sent, nothing
    /// is compared. Should it fail, `result` is applied whole.
    Delta {
        /// The changes.
        delta: &'a RulesetDelta,
        /// The table after them.
        result: &'a Ruleset,
    },
}

/// Writes this node's kernel state (see the module documentation).
#[derive(Debug)]
pub struct KernelWriter {
    links: Mirrored<NetlinkDataplane>,
    nft: NftDataplane,
    applied_once: bool,
}

impl KernelWriter {
    /// Opens the netlink sockets in the calling thread's namespace. Nothing is read or
    /// written yet.
    pub fn open() -> Result<KernelWriter, KernelError> {
        Ok(KernelWriter {
            links: Mirrored::new(NetlinkDataplane::current()?),
            nft: NftDataplane::new()?,
            applied_once: false,
        })
    }

    /// Whether the first (sweeping) apply happened.
    pub fn applied_once(&self) -> bool {
        self.applied_once
    }

    /// Lists the links again (after a link notification): new workload interfaces become
    /// known, and entries on vanished ones are forgotten.
    pub fn links_changed(&mut self) -> Result<(), KernelError> {
        let links = self.links.inner().links()?;
        self.links.set_links(links);
        Ok(())
    }

    /// The MTU of `iface`, if it exists.
    pub fn mtu_of(&mut self, iface: &str) -> Option<u32> {
        self.links.inner().link(iface).ok().flatten().map(|l| l.mtu)
    }

    /// Brings the kernel to the table `nft` describes and to `routes`. Policy goes first,
    /// so a workload's route appears only once its rules are in. `refresh_nft` /
    /// `refresh_routes` read that part back from the kernel first and repair any drift (the
    /// first apply does both, which also removes what an earlier run left and is no longer
    /// wanted); a delta is then applied as the whole table it leads to.
    pub fn apply(
        &mut self,
        nft: Option<NftUpdate<'_>>,
        routes: Option<&DesiredState>,
        refresh_nft: bool,
        refresh_routes: bool,
    ) -> Result<KernelReport, KernelError> {
        let first = !self.applied_once;
        let mut report = KernelReport {
            full: first || refresh_nft || refresh_routes,
            ..KernelReport::default()
        };
        if let Some(update) = nft {
            if first || refresh_nft {
                // Plan against what the kernel holds rather than what was applied last.
                self.nft.forget();
            }
            report.nft_messages = match update {
                NftUpdate::Delta { delta, result } if self.nft.last().is_some() => {
                    match self.nft.apply_delta(delta) {
                        Ok(stats) => stats.messages,
                        // Out of step with the kernel: compare the whole table with what
                        // the kernel holds.
                        Err(_) => {
                            self.nft.forget();
                            self.nft.apply_ruleset(result)?.messages
                        }
                    }
                }
                NftUpdate::Delta { result, .. } | NftUpdate::Whole(result) => {
                    self.nft.apply_ruleset(result)?.messages
                }
            };
        }
        if let Some(desired) = routes {
            if first || refresh_routes {
                let paths: Vec<&str> = desired.sysctls.iter().map(|s| s.path.as_str()).collect();
                self.links.resync(&paths)?;
            }
            let mut desired = desired.clone();
            desired.nft = None;
            report.routes = reconcile(&mut self.links, &desired)?;
        }
        self.applied_once = true;
        Ok(report)
    }
}
