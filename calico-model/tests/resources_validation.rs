//! Validation rules: for every rule `validation` checks (per-object rules of every kind,
//! shared value types and the cross-object checks), a manifest that must fail
//! with exactly the expected problem line(s), and a near miss that must pass.

use calico_model::loader::load_str;
use calico_model::validation::validate;

/// Validates `yaml` (as file `t.yaml`) and returns the problem lines.
fn problems(yaml: &str) -> Vec<String> {
    let mut set = load_str("t.yaml", yaml);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "load errors: {errors:?}\n{yaml}");
    set.apply_defaults();
    validate(&set).iter().map(ToString::to_string).collect()
}

fn calico(kind: &str, ns: Option<&str>, name: &str, spec: &str) -> String {
    let ns = ns.map(|n| format!(", namespace: {n}")).unwrap_or_default();
    format!(
        "apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: '{name}'{ns}}}\nspec: {spec}\n"
    )
}

fn prefix(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("t.yaml:0 {kind}/{ns}/{name}: "),
        None => format!("t.yaml:0 {kind}/{name}: "),
    }
}

/// A cluster-scoped Calico object must produce exactly `lines` (each `path: message`).
fn fails(kind: &str, name: &str, spec: &str, lines: &[&str]) {
    fails_in(kind, None, name, spec, lines);
}

fn fails_in(kind: &str, ns: Option<&str>, name: &str, spec: &str, lines: &[&str]) {
    let yaml = calico(kind, ns, name, spec);
    let p = prefix(kind, ns, name);
    let expected: Vec<String> = lines.iter().map(|l| format!("{p}{l}")).collect();
    assert_eq!(problems(&yaml), expected, "\n{yaml}");
}

fn passes(kind: &str, name: &str, spec: &str) {
    passes_in(kind, None, name, spec);
}

fn passes_in(kind: &str, ns: Option<&str>, name: &str, spec: &str) {
    let yaml = calico(kind, ns, name, spec);
    assert_eq!(problems(&yaml), Vec::<String>::new(), "\n{yaml}");
}

fn gnp_fails(spec: &str, lines: &[&str]) {
    fails("GlobalNetworkPolicy", "p", spec, lines);
}

fn gnp_passes(spec: &str) {
    passes("GlobalNetworkPolicy", "p", spec);
}

fn np_fails(spec: &str, lines: &[&str]) {
    fails_in("NetworkPolicy", Some("default"), "p", spec, lines);
}

fn np_passes(spec: &str) {
    passes_in("NetworkPolicy", Some("default"), "p", spec);
}

// ---------------------------------------------------------------------------------------------
// Names, labels, annotations
// ---------------------------------------------------------------------------------------------

#[test]
fn resource_names() {
    fails(
        "GlobalNetworkSet",
        "Bad_Name",
        "{}",
        &[
            "metadata.name: invalid name \"Bad_Name\": must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)",
        ],
    );
    passes("GlobalNetworkSet", "good.name-1", "{}");
    let long = format!("{}.{}", "a".repeat(200), "b".repeat(60));
    assert_eq!(
        problems(&calico("GlobalNetworkSet", None, &long, "{}")).len(),
        1
    );
    fails(
        "GlobalNetworkSet",
        "",
        "{}",
        &["metadata.name: name is required"],
    );
}

#[test]
fn policy_names() {
    fails_in(
        "NetworkPolicy",
        Some("default"),
        "a.b.c",
        "{}",
        &[
            "metadata.name: invalid name \"a.b.c\": must be a DNS label, label.label, or knp.default.<subdomain> / ossg.default.<subdomain>, at most 253 characters",
        ],
    );
    passes_in("NetworkPolicy", Some("default"), "tier.pol", "{}");
    passes_in("NetworkPolicy", Some("default"), "knp.default.a.b.c", "{}");
    fails(
        "GlobalNetworkPolicy",
        "a.b.c",
        "{}",
        &[
            "metadata.name: invalid name \"a.b.c\": must be a DNS label optionally preceded by one \"label.\", at most 253 characters",
        ],
    );
    passes("GlobalNetworkPolicy", "a.b", "{}");
}

#[test]
fn tier_and_namespace_names() {
    let label_msg = "must be a DNS label (at most 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit; no dots)";
    fails(
        "Tier",
        "a.b",
        "{}",
        &[&format!("metadata.name: invalid name \"a.b\": {label_msg}")],
    );
    let long = "t".repeat(64);
    fails(
        "Tier",
        &long,
        "{}",
        &[&format!(
            "metadata.name: invalid name \"{long}\": {label_msg}"
        )],
    );
    passes("Tier", "security", "{}");
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n";
    assert_eq!(
        problems(yaml),
        [format!(
            "t.yaml:0 Namespace/a.b: metadata.name: invalid name \"a.b\": {label_msg}"
        )]
    );
    assert!(problems("apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-1}\n").is_empty());
    fails_in(
        "NetworkSet",
        Some("Bad"),
        "s",
        "{}",
        &[
            "metadata.namespace: invalid namespace \"Bad\": must be a DNS label (at most 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit)",
        ],
    );
}

#[test]
fn labels_and_annotations() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  labels: {'bad key': x, ok: 'bad value', fine: '', app.kubernetes.io/name: web-1}\n  annotations: {'/x': y}\n";
    assert_eq!(
        problems(yaml),
        [
            "t.yaml:0 GlobalNetworkSet/s: metadata.labels[bad key]: invalid label key \"bad key\": must be an optional DNS-subdomain prefix and '/', then at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            "t.yaml:0 GlobalNetworkSet/s: metadata.labels[ok]: invalid label value \"bad value\": must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            "t.yaml:0 GlobalNetworkSet/s: metadata.annotations[/x]: invalid annotation key \"/x\": must be a qualified name",
        ]
    );
    let big = "x".repeat(256 * 1024);
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  annotations: {{a: '{big}'}}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "t.yaml:0 GlobalNetworkSet/s: metadata.annotations: annotations total 262145 bytes; at most 262144 are allowed"
        ]
    );
    let ok = format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  annotations: {{a: '{}'}}\n",
        "x".repeat(1000)
    );
    assert!(problems(&ok).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Shared value types (decode errors)
// ---------------------------------------------------------------------------------------------

#[test]
fn protocol_values() {
    gnp_fails(
        "{ingress: [{action: Allow, protocol: tcp}]}",
        &[
            "spec.ingress[0].protocol: invalid protocol \"tcp\": expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite (case-sensitive) or a number 1-255",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: 0}]}",
        &["spec.ingress[0].protocol: invalid protocol number 0: must be 1-255"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: 256}]}",
        &["spec.ingress[0].protocol: invalid protocol number 256: must be 1-255"],
    );
    gnp_passes("{ingress: [{action: Allow, protocol: '6', destination: {ports: [80]}}]}");
    gnp_passes("{ingress: [{action: Allow, protocol: UDPLite}]}");
}

#[test]
fn port_values() {
    gnp_fails(
        "{ingress: [{action: Allow, protocol: TCP, destination: {ports: [0]}}]}",
        &["spec.ingress[0].destination.ports[0]: invalid port 0: must be 1-65535"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: TCP, destination: {ports: ['90:80']}}]}",
        &[
            "spec.ingress[0].destination.ports[0]: invalid port range \"90:80\": the first port must not exceed the second",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: TCP, destination: {ports: ['http:80']}}]}",
        &[
            "spec.ingress[0].destination.ports[0]: invalid port range \"http:80\": \"http\" is not a port number",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: TCP, destination: {notPorts: ['a--b']}}]}",
        &[
            "spec.ingress[0].destination.notPorts[0]: invalid port \"a--b\": expected a number 1-65535, a range \"N:M\" or a port name (at most 15 characters of a-z, 0-9 and '-', with at least one letter)",
        ],
    );
    gnp_passes(
        "{ingress: [{action: Allow, protocol: TCP, destination: {ports: ['8000:8080', http, '443']}}]}",
    );
}

#[test]
fn as_numbers_and_durations() {
    fails(
        "BGPPeer",
        "p",
        "{peerIP: 10.0.0.1, asNumber: '65536.1'}",
        &[
            "spec.asNumber: invalid AS number \"65536.1\": expected a 32-bit number or A.B with 16-bit parts",
        ],
    );
    passes(
        "BGPPeer",
        "p",
        "{peerIP: 10.0.0.1, asNumber: '1.10', keepaliveTime: 1m30s}",
    );
    fails(
        "BGPPeer",
        "p",
        "{peerIP: 10.0.0.1, keepaliveTime: 30x}",
        &["spec.keepaliveTime: invalid duration \"30x\" (examples: 90s, 1m30s)"],
    );
}

#[test]
fn selector_fields() {
    let long = format!("a in {{{}}}", vec!["'x'"; 300].join(","));
    gnp_fails(
        &format!("{{selector: \"{long}\"}}"),
        &[&format!(
            "spec.selector: selector is {} characters long; at most 1024 are allowed",
            long.len()
        )],
    );
    let r = problems(&calico(
        "GlobalNetworkPolicy",
        None,
        "p",
        "{selector: 'a ==='}",
    ));
    assert_eq!(r.len(), 1);
    assert!(
        r[0].starts_with("t.yaml:0 GlobalNetworkPolicy/p: spec.selector: invalid selector"),
        "{r:?}"
    );
    gnp_passes("{selector: \"a == 'b' && has(c)\"}");
    // BGPPeer selectors: syntax only; global() allowed.
    passes(
        "BGPPeer",
        "p",
        "{nodeSelector: 'global()', peerSelector: 'all()'}",
    );
}

// ---------------------------------------------------------------------------------------------
// Rule
// ---------------------------------------------------------------------------------------------

#[test]
fn rule_action() {
    gnp_fails(
        "{ingress: [{protocol: TCP}]}",
        &["spec.ingress[0]: missing field `action`"],
    );
    gnp_fails(
        "{ingress: [{action: allow}]}",
        &[
            "spec.ingress[0].action: unknown variant `allow`, expected one of `Allow`, `Deny`, `Log`, `Pass`",
        ],
    );
    gnp_passes("{ingress: [{action: Allow}, {action: Deny}, {action: Log}, {action: Pass}]}");
}

#[test]
fn rule_ip_version_and_icmp() {
    gnp_fails(
        "{ingress: [{action: Allow, ipVersion: 5}]}",
        &["spec.ingress[0].ipVersion: ipVersion must be 4 or 6"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, ipVersion: 6, protocol: ICMP}]}",
        &["spec.ingress[0].protocol: ICMP requires ipVersion 4"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, ipVersion: 4, notProtocol: 58}]}",
        &["spec.ingress[0].notProtocol: 58 requires ipVersion 6"],
    );
    gnp_passes("{ingress: [{action: Allow, ipVersion: 4, protocol: ICMP}]}");
    gnp_fails(
        "{ingress: [{action: Allow, protocol: ICMP, icmp: {type: 255}}]}",
        &["spec.ingress[0].icmp.type: ICMP type must be 0-254"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: ICMP, notICMP: {code: 1}}]}",
        &["spec.ingress[0].notICMP.code: ICMP code requires a type"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: TCP, icmp: {type: 8}}]}",
        &["spec.ingress[0]: icmp requires protocol ICMP, ICMPv6, 1 or 58"],
    );
    gnp_passes("{ingress: [{action: Allow, protocol: ICMPv6, icmp: {type: 128, code: 0}}]}");
    gnp_passes("{ingress: [{action: Allow, protocol: 1, notICMP: {type: 8}}]}");
}

#[test]
fn rule_http() {
    let methods: Vec<String> = (0..21).map(|i| format!("M{i}")).collect();
    gnp_fails(
        &format!(
            "{{ingress: [{{action: Allow, http: {{methods: [{}]}}}}]}}",
            methods.join(",")
        ),
        &["spec.ingress[0].http.methods: at most 20 methods are allowed"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, http: {methods: [GET, GET]}}]}",
        &["spec.ingress[0].http.methods[1]: duplicate method \"GET\""],
    );
    gnp_fails(
        "{ingress: [{action: Allow, http: {paths: [{exact: /a, prefix: /b}, {}, {exact: a}, {prefix: '/a?b'}]}}]}",
        &[
            "spec.ingress[0].http.paths[0]: exactly one of exact and prefix must be set",
            "spec.ingress[0].http.paths[1]: exactly one of exact and prefix must be set",
            "spec.ingress[0].http.paths[2].exact: path must start with '/'",
            "spec.ingress[0].http.paths[3].prefix: path must not contain '?', '#' or spaces",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Deny, protocol: UDP, http: {methods: [GET]}}]}",
        &[
            "spec.ingress[0]: an http match requires action Allow",
            "spec.ingress[0]: an http match requires protocol TCP (or no protocol)",
        ],
    );
    gnp_fails(
        "{egress: [{action: Allow, http: {methods: [GET]}}]}",
        &["spec.egress[0].http: an http match is not allowed in egress rules"],
    );
    gnp_passes(
        "{ingress: [{action: Allow, protocol: TCP, http: {methods: [GET, PUT], paths: [{exact: /a}, {prefix: /b/}]}}]}",
    );
}

#[test]
fn rule_metadata_annotations() {
    gnp_fails(
        "{ingress: [{action: Allow, metadata: {annotations: {'bad key': x}}}]}",
        &[
            "spec.ingress[0].metadata.annotations[bad key]: invalid annotation key \"bad key\": must be a qualified name",
        ],
    );
    gnp_passes(
        "{ingress: [{action: Allow, metadata: {annotations: {reason: anything goes here}}}]}",
    );
}

#[test]
fn rule_ports_need_protocol() {
    gnp_fails(
        "{ingress: [{action: Allow, source: {notPorts: [http, 80]}, destination: {ports: ['1:2']}}]}",
        &[
            "spec.ingress[0]: source.notPorts[1]: numeric port 80 requires protocol TCP, UDP or SCTP; without a protocol only named ports are allowed",
            "spec.ingress[0]: destination.ports[0]: numeric port 1:2 requires protocol TCP, UDP or SCTP; without a protocol only named ports are allowed",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: ICMP, destination: {ports: [http]}}]}",
        &["spec.ingress[0]: protocol ICMP does not support ports: destination.ports must be empty"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, protocol: UDPLite, source: {notPorts: [53]}}]}",
        &[
            "spec.ingress[0]: protocol UDPLite does not support ports: source.notPorts must be empty",
        ],
    );
    gnp_passes("{ingress: [{action: Allow, destination: {ports: [http, metrics]}}]}");
    gnp_passes("{ingress: [{action: Allow, protocol: SCTP, destination: {ports: [9, http]}}]}");
}

#[test]
fn rule_nets() {
    gnp_fails(
        "{ingress: [{action: Allow, source: {nets: [10.0.0.1, 10.0.0.1/8]}}]}",
        &[
            "spec.ingress[0].source.nets[0]: 10.0.0.1 must be a CIDR with a prefix length (addr/len)",
            "spec.ingress[0].source.nets[1]: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {notNets: ['fd00::/8']}}]}",
        &[
            "spec.ingress[0]: a rule may not mix IPv4 and IPv6 in its source and destination nets and notNets",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, destination: {notNets: ['0:0::0/0']}}]}",
        &["spec.ingress[0].destination.notNets[0]: notNets may not be a catch-all (/0)"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}]}",
        &["spec.ingress[0]: source.nets[0] is IPv4 but ipVersion is 6"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, source: {nets: [10.0.0.0/33]}}]}",
        &["spec.ingress[0].source.nets[0]: invalid CIDR \"10.0.0.0/33\": bad prefix length"],
    );
    gnp_passes(
        "{ingress: [{action: Allow, ipVersion: 4, source: {nets: [10.0.0.0/8], notNets: [10.1.0.0/16]}, destination: {nets: [0.0.0.0/0]}}]}",
    );
}

#[test]
fn rule_services() {
    gnp_fails(
        "{egress: [{action: Allow, source: {services: {name: api, namespace: b}}}]}",
        &[
            "spec.egress[0].source.services: services may only be used in an ingress source or an egress destination",
        ],
    );
    np_fails(
        "{ingress: [{action: Allow, destination: {services: {name: api}}}]}",
        &[
            "spec.ingress[0].destination.services: services may only be used in an ingress source or an egress destination",
        ],
    );
    gnp_fails(
        "{ingress: [{action: Allow, source: {services: {name: api}}}]}",
        &[
            "spec.ingress[0].source.services.namespace: services.namespace is required in a GlobalNetworkPolicy",
        ],
    );
    np_fails(
        "{ingress: [{action: Allow, source: {selector: a == 'b', services: {name: ''}}}]}",
        &[
            "spec.ingress[0].source.services.name: service name is required",
            "spec.ingress[0].source: services cannot be combined with selector",
        ],
    );
    np_fails(
        "{egress: [{action: Allow, protocol: TCP, destination: {ports: [80], services: {name: api}}}]}",
        &["spec.egress[0].destination: destination services cannot be combined with ports"],
    );
    np_passes(
        "{ingress: [{action: Allow, source: {services: {name: api}}}], egress: [{action: Allow, destination: {services: {name: db, namespace: data}}}]}",
    );
}

// ---------------------------------------------------------------------------------------------
// EntityRule
// ---------------------------------------------------------------------------------------------

#[test]
fn entity_limits() {
    let nets: Vec<String> = (0..257)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    gnp_fails(
        &format!(
            "{{ingress: [{{action: Allow, source: {{nets: [{}]}}}}]}}",
            nets.join(",")
        ),
        &["spec.ingress[0].source.nets: 257 entries; at most 256 are allowed"],
    );
    let ports: Vec<String> = (1..=51).map(|i| i.to_string()).collect();
    gnp_fails(
        &format!(
            "{{ingress: [{{action: Allow, protocol: TCP, destination: {{ports: [{}]}}}}]}}",
            ports.join(",")
        ),
        &["spec.ingress[0].destination.ports: 51 entries; at most 50 are allowed"],
    );
    let ports: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    gnp_passes(&format!(
        "{{ingress: [{{action: Allow, protocol: TCP, destination: {{ports: [{}]}}}}]}}",
        ports.join(",")
    ));
}

#[test]
fn entity_selectors_and_global() {
    gnp_fails(
        "{ingress: [{action: Allow, source: {selector: 'global()'}}]}",
        &["spec.ingress[0].source.selector: global() is not allowed in this field"],
    );
    gnp_fails(
        "{ingress: [{action: Allow, source: {namespaceSelector: \"global() && a == 'b'\"}}]}",
        &[
            "spec.ingress[0].source.namespaceSelector: global() may only be used on its own as the entire selector in this field",
        ],
    );
    gnp_passes(
        "{ingress: [{action: Allow, source: {namespaceSelector: 'global( )', notSelector: 'global() || a == \"x\"'}}]}",
    );
    gnp_fails(
        "{ingress: [{action: Allow, source: {serviceAccounts: {names: [a, a, B]}}}]}",
        &[
            "spec.ingress[0].source.serviceAccounts.names[1]: duplicate service account name \"a\"",
            "spec.ingress[0].source.serviceAccounts.names[2]: invalid service account name \"B\"",
        ],
    );
    gnp_passes(
        "{ingress: [{action: Allow, source: {serviceAccounts: {names: [a, b], selector: 'x == \"y\"'}}}]}",
    );
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy / GlobalNetworkPolicy
// ---------------------------------------------------------------------------------------------

#[test]
fn policy_fields() {
    gnp_fails(
        "{types: [Ingress, Egress, Ingress]}",
        &[
            "spec.types: types must have 1 or 2 entries",
            "spec.types[2]: duplicate type Ingress",
        ],
    );
    np_fails(
        "{performanceHints: [AssumeNeededOnEveryNode, AssumeNeededOnEveryNode]}",
        &["spec.performanceHints[1]: duplicate performance hint AssumeNeededOnEveryNode"],
    );
    np_fails(
        "{serviceAccountSelector: 'global()'}",
        &["spec.serviceAccountSelector: global() is not allowed in this field"],
    );
    gnp_fails(
        "{namespaceSelector: \"a == 'global('\"}",
        &["spec.namespaceSelector: global() is not allowed in this field"],
    );
    np_fails(
        "{tier: Bad.Tier}",
        &[
            "spec.tier: invalid tier name \"Bad.Tier\": must be a DNS label (at most 63 characters, no dots)",
        ],
    );
    let rules = vec!["{action: Allow}"; 1025].join(",");
    np_fails(
        &format!("{{ingress: [{rules}]}}"),
        &["spec.ingress: 1025 rules; at most 1024 are allowed"],
    );
    np_passes("{order: 10.5, selector: all(), types: [Egress, Ingress]}");
}

#[test]
fn gnp_host_flags() {
    gnp_fails(
        "{doNotTrack: true, preDNAT: true, applyOnForward: true}",
        &["spec: preDNAT and doNotTrack cannot both be true"],
    );
    gnp_fails(
        "{preDNAT: true}",
        &["spec: preDNAT requires applyOnForward: true"],
    );
    gnp_fails(
        "{doNotTrack: true}",
        &["spec: doNotTrack requires applyOnForward: true"],
    );
    gnp_fails(
        "{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}",
        &["spec: a preDNAT policy cannot have egress rules or the Egress type"],
    );
    gnp_passes("{preDNAT: true, applyOnForward: true, ingress: [{action: Deny}]}");
    gnp_passes("{doNotTrack: true, applyOnForward: true, egress: [{action: Allow}]}");
}

// ---------------------------------------------------------------------------------------------
// Tier, staged policies, Profile
// ---------------------------------------------------------------------------------------------

#[test]
fn builtin_tiers() {
    fails(
        "Tier",
        "kube-admin",
        "{order: 5, defaultAction: Deny}",
        &[
            "spec.order: built-in tier kube-admin must have order 1000",
            "spec.defaultAction: built-in tier kube-admin must have defaultAction Pass",
        ],
    );
    passes("Tier", "kube-admin", "{order: 1000, defaultAction: Pass}");
    passes("Tier", "default", "{}");
    fails(
        "Tier",
        "t",
        "{defaultAction: Allow}",
        &["spec.defaultAction: unknown variant `Allow`, expected `Deny` or `Pass`"],
    );
}

#[test]
fn staged_policies() {
    fails(
        "StagedGlobalNetworkPolicy",
        "p",
        "{stagedAction: Delete, selector: all(), preDNAT: true}",
        &[
            "spec.selector: must be empty when stagedAction is Delete (only tier may be set)",
            "spec.preDNAT: must be empty when stagedAction is Delete (only tier may be set)",
        ],
    );
    passes(
        "StagedGlobalNetworkPolicy",
        "p",
        "{stagedAction: Delete, tier: default}",
    );
    fails_in(
        "StagedNetworkPolicy",
        Some("default"),
        "p",
        "{stagedAction: Set, ingress: [{action: Allow, ipVersion: 7}]}",
        &["spec.ingress[0].ipVersion: ipVersion must be 4 or 6"],
    );
    passes_in(
        "StagedNetworkPolicy",
        Some("default"),
        "p",
        "{ingress: [{action: Allow}]}",
    );
}

#[test]
fn profiles() {
    fails(
        "Profile",
        "p",
        "{labelsToApply: {a: 'b c'}, egress: [{action: Allow, protocol: TCP, destination: {ports: [0]}}]}",
        &["spec.egress[0].destination.ports[0]: invalid port 0: must be 1-65535"],
    );
    fails(
        "Profile",
        "p",
        "{labelsToApply: {a: 'b c'}}",
        &[
            "spec.labelsToApply[a]: invalid label value \"b c\": must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        ],
    );
    passes(
        "Profile",
        "p",
        "{labelsToApply: {a: b}, ingress: [{action: Allow}]}",
    );
}

// ---------------------------------------------------------------------------------------------
// Endpoints, network sets, IPAM
// ---------------------------------------------------------------------------------------------

#[test]
fn network_sets() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: s, namespace: a, labels: {projectcalico.org/namespace: a}}\nspec: {nets: [10.0.0.0/8, 10.0.0.0/8, 10.1.2.3/16]}\n";
    assert_eq!(
        problems(yaml),
        [
            "t.yaml:0 NetworkSet/a/s: metadata.labels[projectcalico.org/namespace]: the label projectcalico.org/namespace is reserved and may not be set",
            "t.yaml:0 NetworkSet/a/s: spec.nets[1]: duplicate entry 10.0.0.0/8",
        ]
    );
    passes(
        "GlobalNetworkSet",
        "g",
        "{nets: [10.1.2.3/16, '2001:db8::1', 10.0.0.1]}",
    );
}

#[test]
fn host_endpoints() {
    fails(
        "HostEndpoint",
        "h",
        "{profiles: [Bad], ports: [{name: Web, protocol: ICMP, port: 0}]}",
        &[
            "spec.node: node is required",
            "spec: interfaceName or expectedIPs is required",
            "spec.profiles[0]: invalid profile name \"Bad\": must be a DNS-1123 subdomain",
            "spec.ports[0].name: invalid port name \"Web\"",
            "spec.ports[0].protocol: protocol ICMP does not support ports (use TCP, UDP or SCTP)",
            "spec.ports[0].port: port must be 1-65535",
        ],
    );
    fails(
        "HostEndpoint",
        "h",
        "{node: n, interfaceName: this-is-too-long0}",
        &[
            "spec.interfaceName: invalid interface name \"this-is-too-long0\": must be '*' or 1-15 characters of letters, digits, '_', '.' and '-'",
        ],
    );
    passes("HostEndpoint", "h", "{node: n, interfaceName: '*'}");
    passes(
        "HostEndpoint",
        "h",
        "{node: n, expectedIPs: [10.0.0.1, 'fd00::1'], ports: [{name: a, protocol: UDP, port: 53}, {name: a, protocol: TCP, port: 53}]}",
    );
}

#[test]
fn workload_endpoints() {
    let ns = Some("default");
    fails_in(
        "WorkloadEndpoint",
        ns,
        "w",
        "{containerID: -x, ipNetworks: [10.0.0.0/24], ipNATs: [{internalIP: 10.9.9.9, externalIP: 'fd00::1'}], ipv4Gateway: 'fd00::1', mac: zz, ports: [{protocol: TCP, port: 80}]}",
        &[
            "spec.node: node is required",
            "spec.containerID: invalid container ID \"-x\"",
            "spec.ipNetworks[0]: 10.0.0.0/24 must be a single address (/32 or /128)",
            "spec.ipNATs[0]: internalIP and externalIP must be of the same IP family",
            "spec.ipNATs[0].internalIP: 10.9.9.9 is not in any of ipNetworks",
            "spec.ipv4Gateway: must be an IPv4 address",
            "spec.interfaceName: interfaceName is required",
            "spec.mac: invalid MAC address \"zz\"",
            "spec.ports[0].name: name is required when hostPort is not set",
        ],
    );
    let good = "{orchestrator: k8s, node: node-1, pod: web-7f, endpoint: eth0, interfaceName: cali0123456789a, ipNetworks: [10.0.0.1/32], ipNATs: [{internalIP: 10.0.0.1, externalIP: 1.2.3.4}], ports: [{protocol: TCP, port: 80, hostPort: 8080}], mac: 'aa:bb:cc:dd:ee:ff'}";
    passes_in("WorkloadEndpoint", ns, "node--1-k8s-web--7f-eth0", good);
    fails_in(
        "WorkloadEndpoint",
        ns,
        "node-1-k8s-web-7f-eth0",
        good,
        &[
            "metadata.name: name must be \"node--1-k8s-web--7f-eth0\" (node, orchestrator, pod and endpoint with each '-' doubled, joined by '-')",
        ],
    );
}

#[test]
fn ip_pools() {
    fails(
        "IPPool",
        "p",
        "{cidr: 169.254.1.0/24}",
        &["spec.cidr: 169.254.1.0/24 overlaps the link-local range 169.254.0.0/16"],
    );
    fails(
        "IPPool",
        "p",
        "{cidr: 10.0.0.1/16, blockSize: 19}",
        &[
            "spec.cidr: 10.0.0.1/16 has host bits set (did you mean 10.0.0.0/16?)",
            "spec.blockSize: blockSize 19 is out of range 20-32 for an IPv4 pool",
        ],
    );
    fails(
        "IPPool",
        "p",
        "{cidr: 10.0.0.0/27}",
        &["spec: the pool prefix length /27 is longer than blockSize 26"],
    );
    passes("IPPool", "p", "{cidr: 10.0.0.0/27, disabled: true}");
    fails(
        "IPPool",
        "p",
        "{cidr: 'fd00::/64', ipipMode: Always, vxlanMode: CrossSubnet, blockSize: 115}",
        &[
            "spec.blockSize: blockSize 115 is out of range 116-128 for an IPv6 pool",
            "spec.ipipMode: IPIP is not supported on IPv6 pools",
            "spec: ipipMode and vxlanMode cannot both be enabled",
        ],
    );
    fails(
        "IPPool",
        "p",
        "{cidr: 10.0.0.0/16, nodeSelector: 'global()', namespaceSelector: 'a == \"b\"'}",
        &[
            "spec.nodeSelector: global() is not allowed in this field",
            "spec: a pool with the Tunnel use must have an empty namespaceSelector",
        ],
    );
    fails(
        "IPPool",
        "p",
        "{cidr: 10.0.0.0/16, allowedUses: [LoadBalancer, Workload, Workload], vxlanMode: Always, disableBGPExport: true, nodeSelector: 'a == \"b\"'}",
        &[
            "spec.allowedUses[2]: duplicate use Workload",
            "spec.allowedUses: LoadBalancer cannot be combined with other uses",
            "spec: a LoadBalancer pool cannot use IPIP or VXLAN",
            "spec: a LoadBalancer pool cannot set disableBGPExport",
            "spec: a LoadBalancer pool must have nodeSelector all()",
        ],
    );
    fails(
        "IPPool",
        "p",
        "{cidr: 10.0.0.0/16, ipipMode: always}",
        &[
            "spec.ipipMode: unknown variant `always`, expected one of `Never`, `Always`, `CrossSubnet`",
        ],
    );
    fails(
        "IPPool",
        "p",
        "{blockSize: 26}",
        &["spec: missing field `cidr`"],
    );
    passes(
        "IPPool",
        "p",
        "{cidr: 192.168.0.0/24, allowedUses: [LoadBalancer], blockSize: 28}",
    );
    passes(
        "IPPool",
        "p",
        "{cidr: 10.0.0.0/16, allowedUses: [Workload], namespaceSelector: 'a == \"b\"', ipipMode: CrossSubnet}",
    );
}

#[test]
fn reservations_affinities_ipam_config() {
    fails(
        "IPReservation",
        "r",
        "{reservedCIDRs: [10.0.0.0/33]}",
        &["spec.reservedCIDRs[0]: invalid CIDR \"10.0.0.0/33\": bad prefix length"],
    );
    fails(
        "IPReservation",
        "r",
        "{reservedCIDRs: [10.0.0.1, 10.0.0.1]}",
        &["spec.reservedCIDRs[1]: duplicate entry 10.0.0.1"],
    );
    passes(
        "IPReservation",
        "r",
        "{reservedCIDRs: [10.0.0.1/24, 'fd00::1']}",
    );
    fails(
        "BlockAffinity",
        "b",
        "{node: n, cidr: 10.0.0.1/26, deleted: true}",
        &[
            "spec.cidr: 10.0.0.1/26 has host bits set (did you mean 10.0.0.0/26?)",
            "spec.deleted: deleted must not be true",
        ],
    );
    fails(
        "BlockAffinity",
        "b",
        "{node: n, cidr: 10.0.0.0/26, state: done}",
        &[
            "spec.state: unknown variant `done`, expected one of ``, `confirmed`, `pending`, `pendingDeletion`",
        ],
    );
    passes(
        "BlockAffinity",
        "b",
        "{node: n, cidr: 10.0.0.0/26, state: pendingDeletion, type: virtual}",
    );
    fails(
        "IPAMConfiguration",
        "x",
        "{autoAllocateBlocks: false, maxBlocksPerHost: 2000000, ipCooldownSeconds: 1201}",
        &[
            "metadata.name: the IPAM configuration must be named default",
            "spec.maxBlocksPerHost: must be 0-1000000",
            "spec.ipCooldownSeconds: must be 0-1200",
            "spec: autoAllocateBlocks: false requires strictAffinity: true",
            "spec: maxBlocksPerHost > 0 requires strictAffinity: true",
        ],
    );
    passes(
        "IPAMConfiguration",
        "default",
        "{strictAffinity: true, autoAllocateBlocks: false, maxBlocksPerHost: 10}",
    );
}

// ---------------------------------------------------------------------------------------------
// Node and BGP, Felix
// ---------------------------------------------------------------------------------------------

#[test]
fn nodes() {
    fails(
        "Node",
        "n",
        "{bgp: {}}",
        &["spec.bgp: bgp must not be empty when present"],
    );
    fails(
        "Node",
        "n",
        "{bgp: {ipv4Address: 'fd00::1/64', ipv6Address: 10.0.0.1, ipv4IPIPTunnelAddr: 'fd00::2', routeReflectorClusterID: abc}, ipv4VXLANTunnelAddr: 'fd00::3', vxlanTunnelMACAddr: 'aa:bb', wireguard: {interfaceIPv6Address: 10.0.0.9}, addresses: [{address: 10.0.0.1/24}]}",
        &[
            "spec.bgp.ipv4Address: fd00::1/64 is not an IPv4 address",
            "spec.bgp.ipv6Address: 10.0.0.1 is not an IPv6 address",
            "spec.bgp.ipv4IPIPTunnelAddr: fd00::2 is not an IPv4 address",
            "spec.bgp.routeReflectorClusterID: invalid cluster ID \"abc\": must be in IPv4 dotted form",
            "spec.ipv4VXLANTunnelAddr: fd00::3 is not an IPv4 address",
            "spec.vxlanTunnelMACAddr: invalid MAC address \"aa:bb\"",
            "spec.wireguard.interfaceIPv6Address: 10.0.0.9 is not an IPv6 address",
            "spec.addresses[0].address: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)",
        ],
    );
    passes(
        "Node",
        "n",
        "{bgp: {ipv4Address: 10.0.0.5/24, asNumber: '1.1', routeReflectorClusterID: 224.0.0.1}, addresses: [{address: 10.0.0.5, type: InternalIP}]}",
    );
}

#[test]
fn bgp_configurations() {
    fails(
        "BGPConfiguration",
        "default",
        "{logSeverityScreen: verbose, listenPort: 0, nodeToNodeMeshEnabled: false, nodeMeshMaxRestartTime: 2m, ignoredInterfaces: ['*'], ipv4NormalRoutePriority: 1024, ipv6NormalRoutePriority: 0, localWorkloadPeeringIPV4: 'fd00::1'}",
        &[
            "spec.logSeverityScreen: invalid log level \"verbose\": must be Trace, Debug, Info, Warning, Error or Fatal",
            "spec.listenPort: listenPort must be 1-65535",
            "spec: nodeMeshPassword and nodeMeshMaxRestartTime require the node-to-node mesh to be enabled",
            "spec.ignoredInterfaces[0]: invalid interface pattern \"*\"",
            "spec.localWorkloadPeeringIPV4: fd00::1 is not an IPv4 address",
            "spec.ipv6NormalRoutePriority: priority must be 1-2147483646",
            "spec.ipv6NormalRoutePriority: 0 differs from the FelixConfiguration value 1024",
        ],
    );
    fails(
        "BGPConfiguration",
        "default",
        "{communities: [{name: a, value: '65536:1'}, {name: '', value: '1:2:3'}, {name: unused, value: '1:1'}], prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [a, nope, '1:2']}]}",
        &[
            "spec.communities[0].value: invalid community value \"65536:1\": must be aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)",
            "spec.communities[1].name: name is required",
            "spec.prefixAdvertisements[0].communities[1]: \"nope\" is neither a community defined in spec.communities nor a community value",
            "spec.communities[2]: community \"unused\" is not used by any prefixAdvertisement",
        ],
    );
    fails(
        "BGPConfiguration",
        "node.n1",
        "{asNumber: 65000, listenPort: 1790, logSeverityScreen: debug}",
        &[
            "spec.asNumber: a per-node BGPConfiguration may set only listenPort, logSeverityScreen and prefixAdvertisements",
        ],
    );
    passes(
        "BGPConfiguration",
        "default",
        "{logSeverityScreen: warning, nodeMeshPassword: {secretKeyRef: {name: s, key: k}}, communities: [{name: c, value: '1:2'}], prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [c]}]}",
    );
}

#[test]
fn bgp_peers() {
    fails(
        "BGPPeer",
        "p",
        "{node: n, nodeSelector: all(), peerIP: '10.0.0.1:0', peerSelector: all(), asNumber: 1}",
        &[
            "spec: node and nodeSelector cannot both be set",
            "spec.peerIP: invalid peerIP \"10.0.0.1:0\": expected IP, IPv4:port or [IPv6]:port (port 1-65535)",
            "spec: peerIP and peerSelector cannot both be set",
            "spec: asNumber must be empty when peerSelector is set",
        ],
    );
    fails(
        "BGPPeer",
        "p",
        "{localWorkloadSelector: all(), peerIP: 10.0.0.1, keepOriginalNextHop: true, nextHopMode: Self, reachableBy: 'fd00::1'}",
        &[
            "spec: localWorkloadSelector requires asNumber",
            "spec: localWorkloadSelector cannot be combined with peerIP or peerSelector",
            "spec: keepOriginalNextHop and nextHopMode cannot both be set",
            "spec.reachableBy: reachableBy must be of the same IP family as peerIP",
        ],
    );
    fails(
        "BGPPeer",
        "p",
        "{reachableBy: 10.0.0.1}",
        &["spec.reachableBy: reachableBy requires peerIP"],
    );
    passes(
        "BGPPeer",
        "p",
        "{peerIP: '[fd00::1]:1179', asNumber: 65000, reachableBy: 'fd00::254', nextHopMode: Keep}",
    );
    passes(
        "BGPPeer",
        "p",
        "{localWorkloadSelector: app == 'bgp', asNumber: 65000}",
    );
}

#[test]
fn bgp_filters() {
    fails(
        "BGPFilter",
        "f",
        "{exportV4: [{action: Reject, cidr: 'fd00::/64', prefixLength: {min: 33}, interface: 'a b', communities: {values: ['1:1', '2:2']}, priority: 0, operations: [{}]}], importV6: [{action: Accept, prefixLength: {max: 129}}]}",
        &[
            "spec.exportV4[0].cidr: fd00::/64 is not an IPv4 address",
            "spec.exportV4[0]: cidr and matchOperator must be set together",
            "spec.exportV4[0].prefixLength.min: prefix length must be 0-32",
            "spec.exportV4[0].interface: invalid interface pattern \"a b\"",
            "spec.exportV4[0].communities.values: exactly one community value is required",
            "spec.exportV4[0].priority: priority must be 1-2147483646",
            "spec.exportV4[0]: operations are only allowed with action Accept",
            "spec.exportV4[0].operations[0]: exactly one of addCommunity, prependASPath and setPriority must be set",
            "spec.importV6[0].prefixLength.max: prefix length must be 0-128",
            "spec.importV6[0]: prefixLength requires cidr",
        ],
    );
    passes(
        "BGPFilter",
        "f",
        "{exportV4: [{action: Accept, cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 16, max: 24}, interface: 'eth*', operations: [{addCommunity: {value: '1:2'}}, {prependASPath: {prefix: [65000]}}, {setPriority: {value: 10}}]}]}",
    );
}

#[test]
fn felix_configurations() {
    fails(
        "FelixConfiguration",
        "default",
        "{nodeSelector: all(), externalNodesList: ['fd00::/64', 10.0.0.0/8], routeTableRanges: [{min: 0, max: 254}], routeTableRange: {min: 1, max: 2}, defaultEndpointToHostAction: Allow, failsafeInboundHostPorts: [{protocol: icmp, port: 1}], ipv4ElevatedRoutePriority: 0, routeRefreshInterval: 5 minutes}",
        &[
            "spec.nodeSelector: nodeSelector is not allowed on the default and node.<name> FelixConfigurations",
            "spec.externalNodesList[0]: \"fd00::/64\" is not an IPv4 CIDR",
            "spec.routeRefreshInterval: invalid duration \"5 minutes\" (examples: 90s, 1m30s)",
            "spec: routeTableRanges and the deprecated routeTableRange cannot both be set",
            "spec.routeTableRanges[0]: min must be at least 1",
            "spec.routeTableRanges[0]: tables 253-255 are reserved",
            "spec.ipv4ElevatedRoutePriority: priority must be 1-2147483646",
            "spec.defaultEndpointToHostAction: invalid action \"Allow\": must be Drop, Accept or Return",
            "spec.failsafeInboundHostPorts[0].protocol: invalid protocol \"icmp\": must be TCP, UDP or SCTP",
        ],
    );
    fails(
        "FelixConfiguration",
        "custom",
        "{}",
        &[
            "spec.nodeSelector: a FelixConfiguration not named default or node.<name> requires a nodeSelector",
        ],
    );
    passes(
        "FelixConfiguration",
        "custom",
        "{nodeSelector: \"role == 'edge'\", bpfEnabled: false}",
    );
    passes(
        "FelixConfiguration",
        "node.n1",
        "{defaultEndpointToHostAction: return, routeTableRanges: [{min: 1, max: 250}, {min: 256, max: 1000}]}",
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects
// ---------------------------------------------------------------------------------------------

fn k8s(api: &str, kind: &str, name: &str, body: &str) -> String {
    format!(
        "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: '{name}', namespace: ns}}\n{body}\n"
    )
}

#[test]
fn kubernetes_workloads() {
    let yaml = k8s(
        "apps/v1",
        "Deployment",
        "Web",
        "spec: {replicas: -1, template: {metadata: {labels: {a: 'x y'}}, spec: {containers: [{name: c, ports: [{containerPort: 0, name: Http}, {containerPort: 80, name: web}, {containerPort: 81, name: web}]}]}}}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "t.yaml:0 Deployment/ns/Web: metadata.name: invalid name \"Web\": must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)",
            "t.yaml:0 Deployment/ns/Web: spec.replicas: replicas must not be negative",
            "t.yaml:0 Deployment/ns/Web: spec.template.metadata.labels[a]: invalid label value \"x y\": must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            "t.yaml:0 Deployment/ns/Web: spec.template.spec.containers[0].ports[0].containerPort: containerPort must be 1-65535",
            "t.yaml:0 Deployment/ns/Web: spec.template.spec.containers[0].ports[0].name: invalid port name \"Http\": at most 15 characters of a-z, 0-9 and '-', with a letter, no leading, trailing or doubled '-'",
            "t.yaml:0 Deployment/ns/Web: spec.template.spec.containers[0].ports[2].name: duplicate port name \"web\" in the pod",
        ]
    );
    let yaml = k8s(
        "batch/v1",
        "CronJob",
        "c",
        "spec: {jobTemplate: {spec: {parallelism: -2}}}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "t.yaml:0 CronJob/ns/c: spec.jobTemplate.spec.parallelism: parallelism must not be negative"
        ]
    );
    let yaml = k8s(
        "v1",
        "Pod",
        "p",
        "spec: {containers: [{ports: [{containerPort: 80, protocol: ICMP}]}]}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "t.yaml:0 Pod/ns/p: spec.containers[0].ports[0].protocol: unknown variant `ICMP`, expected one of `TCP`, `UDP`, `SCTP`"
        ]
    );
    let ok = k8s(
        "v1",
        "Pod",
        "p",
        "spec: {containers: [{ports: [{containerPort: 80, name: http}]}], initContainers: [{ports: [{containerPort: 81, name: init, protocol: SCTP}]}], unknownField: 1}\nstatus: {phase: Running}",
    );
    assert!(problems(&ok).is_empty());
    assert!(problems(&k8s("apps/v1", "StatefulSet", "s", "spec: {replicas: 0}")).is_empty());
}

#[test]
fn kubernetes_network_policies() {
    let yaml = k8s(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "np",
        "spec: {podSelector: {matchExpressions: [{key: a, operator: In}, {key: b, operator: Exists, values: [x]}]}, policyTypes: [Ingress, Ingress], ingress: [{from: [{}, {ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16, 10.0.0.0/8, bad]}, podSelector: {}}], ports: [{port: 0}, {port: Web}, {endPort: 90}, {port: 100, endPort: 90}]}], egress: [{to: [{ipBlock: {cidr: 10.0.0.1}}]}]}",
    );
    let p = "t.yaml:0 NetworkPolicy/ns/np: ";
    let expected: Vec<String> = [
        "spec.podSelector.matchExpressions[0].values: operator In requires at least one value",
        "spec.podSelector.matchExpressions[1].values: operator Exists takes no values",
        "spec.policyTypes[1]: duplicate policy type Ingress",
        "spec.ingress[0].from[0]: a peer needs at least one of podSelector, namespaceSelector and ipBlock",
        "spec.ingress[0].from[1]: ipBlock cannot be combined with podSelector or namespaceSelector",
        "spec.ingress[0].from[1].ipBlock.except[0]: 11.0.0.0/16 must be strictly inside 10.0.0.0/8",
        "spec.ingress[0].from[1].ipBlock.except[1]: 10.0.0.0/8 must be strictly inside 10.0.0.0/8",
        "spec.ingress[0].from[1].ipBlock.except[2]: invalid CIDR \"bad\"",
        "spec.ingress[0].ports[0].port: port must be 1-65535",
        "spec.ingress[0].ports[1].port: invalid port name \"Web\"",
        "spec.ingress[0].ports[2].endPort: endPort requires a numeric port",
        "spec.ingress[0].ports[3].endPort: endPort must be between port and 65535",
        "spec.egress[0].to[0].ipBlock.cidr: invalid CIDR \"10.0.0.1\"",
    ]
    .iter()
    .map(|l| format!("{p}{l}"))
    .collect();
    assert_eq!(problems(&yaml), expected);
    let yaml = k8s(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "np",
        "spec: {ingress: [{ports: [{protocol: ICMP}]}]}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "t.yaml:0 NetworkPolicy/ns/np: spec.ingress[0].ports[0].protocol: unknown variant `ICMP`, expected one of `TCP`, `UDP`, `SCTP`"
        ]
    );
    let ok = k8s(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "np",
        "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/8, except: [10.1.0.0/16]}}, {namespaceSelector: {}, podSelector: {matchLabels: {a: b}}}], ports: [{port: 80, endPort: 90}, {port: http, protocol: UDP}, {protocol: SCTP}]}], egress: []}",
    );
    assert!(problems(&ok).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Cross-object checks
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicates() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: default}\n";
    assert_eq!(
        problems(yaml),
        [
            "t.yaml:1 Namespace/a: metadata.name: duplicate Namespace \"a\": already defined at t.yaml:0",
            "t.yaml:4 NetworkPolicy/default/p: metadata.name: duplicate NetworkPolicy \"p\": already defined at t.yaml:2",
        ]
    );
}

#[test]
fn tiers_must_exist() {
    let yaml = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a.p}\nspec: {tier: a}\n---\napiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: p}\nspec: {tier: b}\n---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: b}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: q}\nspec: {tier: kube-baseline}\n";
    assert_eq!(
        problems(yaml),
        ["t.yaml:0 GlobalNetworkPolicy/a.p: spec.tier: tier \"a\" does not exist"]
    );
}

#[test]
fn pools_filters_nodes_routes() {
    let yaml = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a}
spec: {cidr: 10.0.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: b}
spec: {cidr: 10.0.128.0/24}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: c}
spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: p}
spec: {peerIP: 10.0.0.1, asNumber: 1, filters: [f1, f2]}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f1}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.0.0.5/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n2}
spec: {bgp: {ipv4Address: 10.0.0.5/16, ipv6Address: 'fd00::5/64'}}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {programClusterRoutes: Enabled}
";
    assert_eq!(
        problems(yaml),
        [
            "t.yaml:1 IPPool/b: spec.cidr: 10.0.128.0/24 overlaps IPPool \"a\" (10.0.0.0/16)",
            "t.yaml:3 BGPPeer/p: spec.filters[1]: BGPFilter \"f2\" does not exist",
            "t.yaml:6 Node/n2: spec.bgp.ipv4Address: BGP address 10.0.0.5 is already used by Node \"n1\"",
            "t.yaml:7 BGPConfiguration/default: spec.programClusterRoutes: BGP programClusterRoutes Enabled does not complement FelixConfiguration programClusterRoutes EnabledIPIPOnly (expected EnabledNoEncapOnly)",
        ]
    );
    let ok = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {programClusterRoutes: Enabled}\n---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {programClusterRoutes: Disabled}\n";
    assert!(problems(ok).is_empty());
}
