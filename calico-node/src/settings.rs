//! The FelixConfiguration settings the agent honours, and where they come from.
//!
//! Sources, highest priority first (as Felix reads them): the environment
//! (`FELIX_<NAME>`, the field name upper-cased, e.g. `FELIX_HEALTHPORT`, and
//! `FELIX_REPORTINGINTERVALSECS` / `FELIX_REPORTINGTTLSECS` in seconds), the node's own
//! FelixConfiguration `node.<node name>`, then `default`. Settings that other crates act on
//! (interface prefix, VXLAN port and VNI, route protocol, failsafe ports, endpoint-to-host
//! action, …) are typed fields of the resource and reach calico-route and calico-policy
//! directly; this module reads the agent's own timers, ports and switches, and lists every
//! other untyped field once as not honoured.

use std::collections::BTreeSet;
use std::time::Duration;

use calico_model::resources::felix::FelixConfigurationSpec;
use serde_json::Value;

/// The agent's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentSettings {
    /// `reportingInterval` (zero disables status reports).
    pub reporting_interval: Duration,
    /// `reportingTTL`.
    pub reporting_ttl: Duration,
    /// `routeRefreshInterval`: routes, neighbours and FDB read back and repaired.
    pub route_refresh: Duration,
    /// `nftablesRefreshInterval`: the nftables table read back and repaired.
    pub nftables_refresh: Duration,
    /// `interfaceRefreshInterval`: workload interfaces listed again.
    pub interface_refresh: Duration,
    /// `prometheusMetricsEnabled`.
    pub metrics_enabled: bool,
    /// `prometheusMetricsHost` (empty: every address).
    pub metrics_host: String,
    /// `prometheusMetricsPort`.
    pub metrics_port: u16,
    /// `healthEnabled`.
    pub health_enabled: bool,
    /// `healthHost`.
    pub health_host: String,
    /// `healthPort`.
    pub health_port: u16,
    /// `routeSyncDisabled`: no routes, neighbours, FDB or tunnel devices are programmed.
    pub route_sync_disabled: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            reporting_interval: Duration::from_secs(30),
            reporting_ttl: Duration::from_secs(90),
            route_refresh: Duration::from_secs(90),
            nftables_refresh: Duration::from_secs(180),
            interface_refresh: Duration::from_secs(90),
            metrics_enabled: false,
            metrics_host: String::new(),
            metrics_port: 9091,
            health_enabled: true,
            health_host: "localhost".to_owned(),
            health_port: 9099,
            route_sync_disabled: false,
        }
    }
}

/// A setting that could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingProblem {
    /// The value does not parse; the default (or lower-priority source) stays.
    #[error("{source_name}: {field}: {value:?} is not {expected}; using {fallback}")]
    Invalid {
        /// `FelixConfiguration default`, `FelixConfiguration node.x` or `FELIX_X`.
        source_name: String,
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
        /// What is used instead.
        fallback: String,
    },
    /// A field this agent does not act on.
    #[error("{source_name}: {field} is not honoured by this agent")]
    NotHonoured {
        /// Where it was set.
        source_name: String,
        /// The field.
        field: String,
    },
}

/// The untyped fields the agent reads.
const HONOURED: [&str; 12] = [
    "reportingInterval",
    "reportingTTL",
    "nftablesRefreshInterval",
    "interfaceRefreshInterval",
    "prometheusMetricsEnabled",
    "prometheusMetricsHost",
    "prometheusMetricsPort",
    "healthEnabled",
    "healthHost",
    "healthPort",
    "routeSyncDisabled",
    // Typed in the model but read here.
    "routeRefreshInterval",
];

/// Parses a Go duration (`90s`, `1m30s`, `500ms`, `1h`, `0`); a bare number is seconds.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t == "0" {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = t.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

struct Reader<'a> {
    settings: &'a mut AgentSettings,
    problems: &'a mut Vec<SettingProblem>,
    source_name: String,
}

impl Reader<'_> {
    fn set(&mut self, field: &'static str, raw: &str) {
        let s = &mut *self.settings;
        let (ok, expected, fallback) = match field {
            "reportingInterval"
            | "reportingTTL"
            | "routeRefreshInterval"
            | "nftablesRefreshInterval"
            | "interfaceRefreshInterval" => {
                let target = match field {
                    "reportingInterval" => &mut s.reporting_interval,
                    "reportingTTL" => &mut s.reporting_ttl,
                    "routeRefreshInterval" => &mut s.route_refresh,
                    "nftablesRefreshInterval" => &mut s.nftables_refresh,
                    _ => &mut s.interface_refresh,
                };
                let fb = format!("{target:?}");
                let parsed = parse_go_duration(raw);
                (
                    parsed.map(|d| *target = d).is_some(),
                    "a duration such as 90s",
                    fb,
                )
            }
            "prometheusMetricsEnabled" | "healthEnabled" | "routeSyncDisabled" => {
                let target = match field {
                    "prometheusMetricsEnabled" => &mut s.metrics_enabled,
                    "healthEnabled" => &mut s.health_enabled,
                    _ => &mut s.route_sync_disabled,
                };
                let fb = target.to_string();
                (
                    parse_bool(raw).map(|b| *target = b).is_some(),
                    "true or false",
                    fb,
                )
            }
            "prometheusMetricsPort" | "healthPort" => {
                let target = if field == "healthPort" {
                    &mut s.health_port
                } else {
                    &mut s.metrics_port
                };
                let fb = target.to_string();
                (
                    raw.trim().parse::<u16>().map(|p| *target = p).is_ok(),
                    "a port number",
                    fb,
                )
            }
            "prometheusMetricsHost" | "healthHost" => {
                let target = if field == "healthHost" {
                    &mut s.health_host
                } else {
                    &mut s.metrics_host
                };
                *target = raw.trim().to_owned();
                (true, "", String::new())
            }
            _ => (true, "", String::new()),
        };
        if !ok {
            self.problems.push(SettingProblem::Invalid {
                source_name: self.source_name.clone(),
                field,
                value: raw.to_owned(),
                expected,
                fallback,
            });
        }
    }

    fn spec(&mut self, spec: &FelixConfigurationSpec) {
        if let Some(r) = &spec.route_refresh_interval {
            self.set("routeRefreshInterval", r);
        }
        for (k, v) in &spec.other {
            match HONOURED.iter().find(|h| *h == k) {
                Some(field) => self.set(field, &as_text(v)),
                None => self.problems.push(SettingProblem::NotHonoured {
                    source_name: self.source_name.clone(),
                    field: k.clone(),
                }),
            }
        }
    }
}

impl AgentSettings {
    /// The settings from FelixConfiguration `default`, then `node.<name>`, then the
    /// environment (`env` looks a variable up; pass `|k| std::env::var(k).ok()`).
    /// Returns what could not be used beside them.
    pub fn resolve(
        default: Option<&FelixConfigurationSpec>,
        node: Option<(&str, &FelixConfigurationSpec)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> (AgentSettings, Vec<SettingProblem>) {
        let mut settings = AgentSettings::default();
        let mut problems = Vec::new();
        if let Some(spec) = default {
            Reader {
                settings: &mut settings,
                problems: &mut problems,
                source_name: "FelixConfiguration default".to_owned(),
            }
            .spec(spec);
        }
        if let Some((name, spec)) = node {
            Reader {
                settings: &mut settings,
                problems: &mut problems,
                source_name: format!("FelixConfiguration node.{name}"),
            }
            .spec(spec);
        }
        for field in HONOURED {
            // Felix's environment names the two reporting settings in seconds.
            let var = match field {
                "reportingInterval" => "FELIX_REPORTINGINTERVALSECS".to_owned(),
                "reportingTTL" => "FELIX_REPORTINGTTLSECS".to_owned(),
                f => format!("FELIX_{}", f.to_ascii_uppercase()),
            };
            if let Some(v) = env(&var) {
                Reader {
                    settings: &mut settings,
                    problems: &mut problems,
                    source_name: var,
                }
                .set(field, &v);
            }
        }
        (settings, problems)
    }
}

/// Remembers which problems were already reported, so each is reported once.
#[derive(Debug, Default)]
pub struct ReportedOnce {
    seen: BTreeSet<String>,
}

impl ReportedOnce {
    /// The problems not reported before (and remembers them).
    pub fn fresh<'a>(&mut self, problems: &'a [SettingProblem]) -> Vec<&'a SettingProblem> {
        problems
            .iter()
            .filter(|p| self.seen.insert(p.to_string()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(v: Value) -> FelixConfigurationSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("ten seconds"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn node_overrides_default_and_environment_overrides_both() {
        let d = spec(serde_json::json!({
            "reportingInterval": "5s",
            "routeRefreshInterval": "10s",
            "nftablesRefreshInterval": "10s",
            "prometheusMetricsEnabled": true,
            "healthPort": 9199,
            "bpfEnabled": false,
        }));
        let n = spec(serde_json::json!({"reportingInterval": "7s", "healthPort": "x"}));
        let env = |k: &str| (k == "FELIX_PROMETHEUSMETRICSPORT").then(|| "9191".to_owned());
        let (s, problems) = AgentSettings::resolve(Some(&d), Some(("n1", &n)), env);
        assert_eq!(s.reporting_interval, Duration::from_secs(7));
        assert_eq!(s.route_refresh, Duration::from_secs(10));
        assert_eq!(s.nftables_refresh, Duration::from_secs(10));
        assert_eq!(s.interface_refresh, Duration::from_secs(90));
        assert!(s.metrics_enabled);
        assert_eq!(s.metrics_port, 9191);
        assert_eq!(s.health_port, 9199);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "FelixConfiguration default: bpfEnabled is not honoured by this agent".to_owned(),
                "FelixConfiguration node.n1: healthPort: \"x\" is not a port number; using 9199"
                    .to_owned(),
            ]
        );
        let mut once = ReportedOnce::default();
        assert_eq!(once.fresh(&problems).len(), 2);
        assert!(once.fresh(&problems).is_empty());
    }
}
