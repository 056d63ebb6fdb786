//! Health: each part of the agent (start-up, the datastore sync, the dataplane loop, BIRD)
//! registers as a component and reports whether it is live and ready. A component that
//! has a timeout and has not reported within it counts as neither. The agent answers
//! `/liveness` and `/readiness` from [`Health::summary`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use calico_node::{Health, HealthReport};
//!
//! let health = Health::new();
//! health.register("sync", Some(Duration::from_secs(30)));
//! assert!(!health.summary(Instant::now()).ready, "not reported yet");
//! health.report("sync", HealthReport::ok());
//! assert!(health.summary(Instant::now()).ready);
//! ```

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a component last said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// It works (a dead component makes the agent not live: it should be restarted).
    pub live: bool,
    /// It does its job (a component that is not ready makes the agent not ready).
    pub ready: bool,
    /// Free text shown in the table (why it is not ready, for example).
    pub detail: String,
}

impl HealthReport {
    /// Live and ready, nothing to say.
    pub fn ok() -> Self {
        HealthReport {
            live: true,
            ready: true,
            detail: String::new(),
        }
    }

    /// Live but not ready, with the reason.
    pub fn not_ready(detail: impl Into<String>) -> Self {
        HealthReport {
            live: true,
            ready: false,
            detail: detail.into(),
        }
    }

    /// Neither live nor ready, with the reason.
    pub fn failed(detail: impl Into<String>) -> Self {
        HealthReport {
            live: false,
            ready: false,
            detail: detail.into(),
        }
    }
}

#[derive(Debug)]
struct Component {
    timeout: Option<Duration>,
    last: Option<(Instant, HealthReport)>,
}

/// The components and their last reports. Shared between threads (`Arc<Health>`).
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Component>>,
}

/// One component's line of the health table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentHealth {
    /// Its name.
    pub name: String,
    /// Its timeout (`None`: reports never go stale).
    pub timeout: Option<Duration>,
    /// Whether it counts as live now.
    pub live: bool,
    /// Whether it counts as ready now.
    pub ready: bool,
    /// What the table says about it.
    pub detail: String,
}

/// The health of the agent at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSummary {
    /// Every component is live.
    pub live: bool,
    /// Every component is ready.
    pub ready: bool,
    /// The components, by name.
    pub components: Vec<ComponentHealth>,
}

impl Health {
    /// No components yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Component>> {
        // Reports are whole values replaced under the lock: a panic elsewhere cannot leave
        // one half-written.
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a component that must report at least every `timeout` (or keeps its last
    /// report and updates the timeout if it exists).
    pub fn register(&self, name: &str, timeout: Option<Duration>) {
        self.lock()
            .entry(name.to_owned())
            .and_modify(|c| c.timeout = timeout)
            .or_insert(Component {
                timeout,
                last: None,
            });
    }

    /// Records a component's report (registering it without a timeout if needed).
    pub fn report(&self, name: &str, report: HealthReport) {
        let now = Instant::now();
        self.lock()
            .entry(name.to_owned())
            .or_insert(Component {
                timeout: None,
                last: None,
            })
            .last = Some((now, report));
    }

    /// The health at `now`: a component that never reported, or whose last report is
    /// older than its timeout, is neither live nor ready.
    pub fn summary(&self, now: Instant) -> HealthSummary {
        let components: Vec<ComponentHealth> = self
            .lock()
            .iter()
            .map(|(name, c)| {
                let (live, ready, detail) = match &c.last {
                    None => (false, false, "not reported yet".to_owned()),
                    Some((at, _))
                        if c.timeout
                            .is_some_and(|t| now.saturating_duration_since(*at) > t) =>
                    {
                        (
                            false,
                            false,
                            format!("no report for {:.0?}", now.saturating_duration_since(*at)),
                        )
                    }
                    Some((_, r)) => (r.live, r.ready, r.detail.clone()),
                };
                ComponentHealth {
                    name: name.clone(),
                    timeout: c.timeout,
                    live,
                    ready,
                    detail,
                }
            })
            .collect();
        HealthSummary {
            live: components.iter().all(|c| c.live),
            ready: components.iter().all(|c| c.ready),
            components,
        }
    }
}

impl HealthSummary {
    /// The table `/liveness` and `/readiness` answer with.
    pub fn to_table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .components
            .iter()
            .map(|c| {
                [
                    c.name.clone(),
                    c.timeout
                        .map_or_else(|| "-".to_owned(), |t| format!("{}s", t.as_secs())),
                    if c.live {
                        "reporting live"
                    } else {
                        "reporting non-live"
                    }
                    .to_owned(),
                    if c.ready {
                        "reporting ready"
                    } else {
                        "reporting non-ready"
                    }
                    .to_owned(),
                    c.detail.clone(),
                ]
            })
            .collect();
        let cells: Vec<[&str; 5]> = rows
            .iter()
            .map(|r| r.each_ref().map(String::as_str))
            .collect();
        crate::table::render(
            ["COMPONENT", "TIMEOUT", "LIVENESS", "READINESS", "DETAIL"],
            &cells,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_silent_components_fail() {
        let h = Health::new();
        let t0 = Instant::now();
        assert!(
            h.summary(t0).live && h.summary(t0).ready,
            "nothing registered"
        );
        h.register("sync", Some(Duration::from_secs(30)));
        h.register("bird", None);
        let s = h.summary(t0);
        assert!(!s.live && !s.ready);
        assert_eq!(s.components[0].detail, "not reported yet");
        h.report("sync", HealthReport::ok());
        h.report("bird", HealthReport::not_ready("no Established peer"));
        let s = h.summary(Instant::now());
        assert!(s.live && !s.ready, "{s:?}");
        h.report("bird", HealthReport::ok());
        assert!(h.summary(Instant::now()).ready);
        // 31 s later the sync component is late; bird (no timeout) is not.
        let later = Instant::now() + Duration::from_secs(31);
        let s = h.summary(later);
        assert!(!s.live && !s.ready);
        let sync = s
            .components
            .iter()
            .find(|c| c.name == "sync")
            .expect("sync");
        assert!(sync.detail.starts_with("no report for"), "{}", sync.detail);
        assert!(
            s.components
                .iter()
                .find(|c| c.name == "bird")
                .is_some_and(|c| c.ready)
        );
        h.report("sync", HealthReport::failed("apply stuck"));
        let s = h.summary(Instant::now());
        assert!(!s.live);
    }

    #[test]
    fn the_table_lists_every_component() {
        let h = Health::new();
        h.register("dataplane", Some(Duration::from_secs(90)));
        h.report("dataplane", HealthReport::not_ready("first apply pending"));
        h.report("startup", HealthReport::ok());
        let t = h.summary(Instant::now()).to_table();
        assert!(
            t.contains("| COMPONENT | TIMEOUT |    LIVENESS    |"),
            "{t}"
        );
        assert!(
            t.contains("| dataplane | 90s     | reporting live | reporting non-ready | first apply pending |"),
            "{t}"
        );
        assert!(
            t.contains("| startup   | -       | reporting live | reporting ready     |"),
            "{t}"
        );
    }
}
