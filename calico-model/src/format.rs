//! String-format predicates shared by decoding ([`resources::values`](crate::resources::values))
//! and [`validation`](crate::validation): Kubernetes' name, label and port-name formats and
//! the other textual formats of the resource model.
//!
//! This module depends on nothing else in the crate. It is also reachable as
//! [`validation::format`](crate::validation::format).

/// Whether `s` is a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label_unbounded)
}

fn is_dns_label_unbounded(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a Calico NetworkPolicy / StagedNetworkPolicy name: one DNS label, `label.label`,
/// or `knp.default.<subdomain>` / `ossg.default.<subdomain>`; at most 253 characters.
pub fn is_namespaced_policy_name(s: &str) -> bool {
    if s.len() > 253 {
        return false;
    }
    for prefix in ["knp.default.", "ossg.default."] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return is_dns_subdomain(rest);
        }
    }
    is_one_or_two_labels(s)
}

/// Whether `s` is a GlobalNetworkPolicy / StagedGlobalNetworkPolicy name: an optional `label.`
/// then a label; at most 253 characters.
pub fn is_global_policy_name(s: &str) -> bool {
    s.len() <= 253 && is_one_or_two_labels(s)
}

fn is_one_or_two_labels(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| is_dns_label_unbounded(p))
}

/// Whether `s` matches the label-name pattern `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
/// and is at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether `s` is a Kubernetes qualified name (a label or annotation key): an optional
/// DNS-subdomain prefix (≤ 253) and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// Whether `s` is a valid label value: empty, or a label name of at most 63 characters.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// Whether `s` is a valid Kubernetes port name: at most 15 characters of `[a-z0-9-]`, at least
/// one letter, no leading, trailing or doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// Whether `s` is an interface name: `^[a-zA-Z0-9_.-]{1,15}$`.
pub fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `s` is an interface pattern: `^[a-zA-Z0-9_.*-]{1,15}$`.
pub fn is_interface_pattern(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'*'))
}

/// Whether `s` is a MAC address (six or eight hex octets separated by `:` or `-`, or dotted
/// groups of four hex digits, as Go's `net.ParseMAC` accepts).
pub fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| hex(p, 2)) {
            return true;
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    matches!(parts.len(), 3 | 4 | 10) && parts.iter().all(|p| hex(p, 4))
}

/// Whether `s` is a Kubernetes duration: `^([0-9]+(\.[0-9]+)?(ms|s|m|h))*$` with at least one
/// component (a lone `0` is also accepted).
pub fn is_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac {
                return false;
            }
        }
        if b[i..].starts_with(b"ms") {
            i += 2;
        } else if i < b.len() && matches!(b[i], b's' | b'm' | b'h') {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Whether `s` is a container ID: `^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`.
pub fn is_container_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a BGP community value: `aa:nn` (16-bit parts) or `aa:nn:mm` (32-bit parts).
pub fn is_community_value(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let digits = |p: &str| !p.is_empty() && p.len() <= 10 && p.bytes().all(|c| c.is_ascii_digit());
    match parts.len() {
        2 => parts.iter().all(|p| digits(p) && p.parse::<u16>().is_ok()),
        3 => parts.iter().all(|p| digits(p) && p.parse::<u32>().is_ok()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("A"));
        assert!(is_namespaced_policy_name("tier.pol"));
        assert!(!is_namespaced_policy_name("a.b.c"));
        assert!(is_namespaced_policy_name("knp.default.a.b.c"));
        assert!(is_global_policy_name("a.b"));
        assert!(!is_global_policy_name("a.b.c"));
    }

    #[test]
    fn labels() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("A_b.c"));
        assert!(!is_qualified_name("/a"));
        assert!(!is_qualified_name("a/"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name("_a"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }

    #[test]
    fn misc() {
        assert!(is_port_name("http-2"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("a--b"));
        assert!(!is_port_name("Http"));
        assert!(is_interface_name("eth0.100"));
        assert!(!is_interface_name("a-very-long-interface"));
        assert!(is_mac("aa:bb:cc:dd:ee:ff"));
        assert!(!is_mac("aa:bb:cc:dd:ee"));
        assert!(is_duration("1m30s"));
        assert!(is_duration("1.5h"));
        assert!(!is_duration("1x"));
        assert!(!is_duration("s"));
        assert!(is_community_value("65000:100"));
        assert!(!is_community_value("65536:1"));
        assert!(is_community_value("65536:1:2"));
        assert!(!is_community_value("1:2:3:4"));
    }
}
