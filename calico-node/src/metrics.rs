//! The agent's Prometheus metrics, under Felix's names where Felix has the metric.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `felix_int_dataplane_apply_time_seconds` | histogram | time of each kernel apply (Felix exports a summary; the client library we use has no summary type, and a histogram aggregates across nodes) |
//! | `felix_int_dataplane_failures_total` | counter | kernel applies that failed |
//! | `felix_resync_state` | gauge | datastore sync state: 0 wait-for-ready, 1 resync, 2 in-sync (Felix's values) |
//! | `felix_cluster_num_policies` | gauge | policies in the cluster |
//! | `felix_cluster_num_workload_endpoints` | gauge | workload endpoints in the cluster |
//! | `felix_calc_graph_update_time_seconds` | histogram | time to process one batch of datastore updates |
//! | `calico_node_applied_revision` | gauge | datastore revision last applied to the kernel |

use calico_datastore::SyncStatus;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The name of the applied-revision gauge.
const APPLIED_REVISION: &str = "calico_node_applied_revision";

/// The metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Kernel apply durations, seconds.
    pub apply_time: Histogram,
    /// Failed kernel applies.
    pub dataplane_failures: Counter,
    /// The sync state (see [`Metrics::set_sync_status`]).
    pub resync_state: Gauge,
    /// Policies in the cluster.
    pub num_policies: Gauge,
    /// Workload endpoints in the cluster.
    pub num_workload_endpoints: Gauge,
    /// Update-batch processing durations, seconds.
    pub calc_graph_update_time: Histogram,
    /// The datastore revision last applied to the kernel.
    pub applied_revision: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // 100 µs to about 100 s.
        let buckets = || exponential_buckets(0.0001, 2.0, 20);
        let apply_time = Histogram::new(buckets());
        let calc_graph_update_time = Histogram::new(buckets());
        let m = Metrics {
            apply_time: apply_time.clone(),
            dataplane_failures: Counter::default(),
            resync_state: Gauge::default(),
            num_policies: Gauge::default(),
            num_workload_endpoints: Gauge::default(),
            calc_graph_update_time: calc_graph_update_time.clone(),
            applied_revision: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register_with_unit(
            "felix_int_dataplane_apply_time",
            "Time taken to apply a batch of changes to the kernel",
            Unit::Seconds,
            apply_time,
        );
        registry.register(
            "felix_int_dataplane_failures",
            "Number of kernel applies that failed",
            m.dataplane_failures.clone(),
        );
        registry.register(
            "felix_resync_state",
            "Datastore sync state: 0 wait-for-ready, 1 resync, 2 in-sync",
            m.resync_state.clone(),
        );
        registry.register(
            "felix_cluster_num_policies",
            "Number of policies in the cluster",
            m.num_policies.clone(),
        );
        registry.register(
            "felix_cluster_num_workload_endpoints",
            "Number of workload endpoints in the cluster",
            m.num_workload_endpoints.clone(),
        );
        registry.register_with_unit(
            "felix_calc_graph_update_time",
            "Time taken to process one batch of datastore updates",
            Unit::Seconds,
            calc_graph_update_time,
        );
        registry.register(
            APPLIED_REVISION,
            "Datastore revision last applied to the kernel",
            m.applied_revision.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records the sync status (Felix's numbering).
    pub fn set_sync_status(&self, status: SyncStatus) {
        self.resync_state.set(match status {
            SyncStatus::WaitForReady => 0,
            SyncStatus::Resync => 1,
            _ => 2,
        });
    }

    /// The applied revision in an exposition text scraped from an agent (for tools that
    /// wait until every agent applied a write); `None` when the text has none.
    pub fn applied_revision_in(text: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(APPLIED_REVISION)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felix_names_and_values_appear() {
        let m = Metrics::new();
        m.apply_time.observe(0.003);
        m.dataplane_failures.inc();
        m.set_sync_status(SyncStatus::InSync);
        m.num_policies.set(2000);
        m.applied_revision.set(42);
        let text = m.encode();
        for needle in [
            "# TYPE felix_int_dataplane_apply_time_seconds histogram",
            "felix_int_dataplane_apply_time_seconds_count 1",
            "felix_int_dataplane_failures_total 1",
            "felix_resync_state 2",
            "felix_cluster_num_policies 2000",
            "felix_cluster_num_workload_endpoints 0",
            "# TYPE felix_calc_graph_update_time_seconds histogram",
            "calico_node_applied_revision 42",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(Metrics::applied_revision_in(&text), Some(42));
        assert_eq!(Metrics::applied_revision_in("felix_resync_state 2\n"), None);
        m.set_sync_status(SyncStatus::Resync);
        assert!(m.encode().contains("felix_resync_state 1"));
    }
}
