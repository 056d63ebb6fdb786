//! Felix's status reports: while the agent runs, it writes
//! `/calico/felix/v2/<region>/host/<node>/status` (attached to a lease, so the key goes
//! away when the agent stops reporting) and `…/last_reported_status` (kept), both
//! `{"time":"<RFC 3339 UTC>","uptime":<seconds>,"first_update":<bool>}`.
//!
//! Felix grants a new lease for every write; we keep one lease alive and grant a new one
//! only when it is gone (the agent was cut off for longer than the time to live).
//! `first_update` stays true until the first write that succeeded.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calico_datastore::{LeaseId, Store, StoreError};
use calico_model::gotime::format_rfc3339;

/// When and how the agent reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusOptions {
    /// Between reports (`reportingIntervalSecs`; zero disables reporting).
    pub interval: Duration,
    /// The status key's time to live (`reportingTTLSecs`).
    pub ttl: Duration,
    /// Before the first report.
    pub initial_delay: Duration,
    /// The region segment of the keys (`no-region` unless the agent is given one).
    pub region: String,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            interval: Duration::from_secs(30),
            ttl: Duration::from_secs(90),
            initial_delay: Duration::from_secs(10),
            region: "no-region".to_owned(),
        }
    }
}

/// Writes the status keys on schedule.
pub struct StatusReporter {
    store: Arc<dyn Store>,
    status_key: String,
    last_key: String,
    options: StatusOptions,
    started: Instant,
    next: Instant,
    lease: Option<LeaseId>,
    first_update: bool,
}

impl std::fmt::Debug for StatusReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusReporter")
            .field("store", &self.store.url())
            .field("status_key", &self.status_key)
            .field("lease", &self.lease)
            .field("first_update", &self.first_update)
            .finish_non_exhaustive()
    }
}

/// A float as Go's `encoding/json` writes it: the shortest text that reads back to the same
/// value, in exponent form (`1e-07`, `1e+21`) outside `[1e-6, 1e21)`.
pub fn go_json_float(f: f64) -> String {
    let a = f.abs();
    if a == 0.0 || (1e-6..1e21).contains(&a) {
        return format!("{f}");
    }
    let text = format!("{f:e}");
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

/// The status value.
pub fn status_value(time: SystemTime, uptime: Duration, first_update: bool) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let time = format_rfc3339(secs).unwrap_or_default();
    format!(
        r#"{{"time":"{time}","uptime":{},"first_update":{first_update}}}"#,
        go_json_float(uptime.as_secs_f64())
    )
}

impl StatusReporter {
    /// A reporter for `node`, started at `now`.
    pub fn new(store: Arc<dyn Store>, node: &str, options: StatusOptions, now: Instant) -> Self {
        let base = format!("/calico/felix/v2/{}/host/{node}", options.region);
        StatusReporter {
            store,
            status_key: format!("{base}/status"),
            last_key: format!("{base}/last_reported_status"),
            next: now + options.initial_delay,
            options,
            started: now,
            lease: None,
            first_update: true,
        }
    }

    /// The key with the time to live.
    pub fn status_key(&self) -> &str {
        &self.status_key
    }

    /// The key without one.
    pub fn last_reported_key(&self) -> &str {
        &self.last_key
    }

    /// When the next report is due (`None`: reporting is off).
    pub fn next_due(&self) -> Option<Instant> {
        (!self.options.interval.is_zero()).then_some(self.next)
    }

    /// Writes the report if it is due at `now` (`wall` is the time written); whether it
    /// wrote. A failed write is retried at the next interval.
    pub fn tick(&mut self, now: Instant, wall: SystemTime) -> Result<bool, StoreError> {
        if self.options.interval.is_zero() || now < self.next {
            return Ok(false);
        }
        self.next = now + self.options.interval;
        let value = status_value(wall, now.duration_since(self.started), self.first_update);
        let lease = self.live_lease()?;
        self.store
            .put_with_lease(self.status_key.as_bytes(), value.as_bytes(), lease)?;
        self.store.put(self.last_key.as_bytes(), value.as_bytes())?;
        self.first_update = false;
        Ok(true)
    }

    /// The kept-alive lease, or a new one when there is none or it expired.
    fn live_lease(&mut self) -> Result<LeaseId, StoreError> {
        if let Some(lease) = self.lease {
            match self.store.keep_alive(lease) {
                Ok(_) => return Ok(lease),
                Err(StoreError::LeaseNotFound { .. }) => self.lease = None,
                Err(e) => return Err(e),
            }
        }
        let lease = self.store.grant_lease(self.options.ttl)?;
        self.lease = Some(lease);
        Ok(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, want) in [
            (0.0, "0"),
            (10.0, "10"),
            (12.5, "12.5"),
            (0.1, "0.1"),
            (1234567.891, "1234567.891"),
            (1e-7, "1e-07"),
            (2.5e-10, "2.5e-10"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(go_json_float(f), want, "{f}");
        }
    }

    #[test]
    fn the_value_has_felixs_fields_in_order() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_641_200);
        assert_eq!(
            status_value(t, Duration::from_millis(10_250), true),
            r#"{"time":"2026-12-07T11:00:00Z","uptime":10.25,"first_update":true}"#
        );
    }
}
