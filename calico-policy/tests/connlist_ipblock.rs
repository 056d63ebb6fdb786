//! External address ranges of the connlist: a Kubernetes ipBlock stands for its CIDR minus
//! the union of its excepts, so excepts that touch or overlap cut the space only where the
//! union begins and ends; Calico `nets`/`notNets` CIDRs each cut the space themselves.

use calico_model::loader::load_str;
use calico_policy::{Format, Model};

fn source_ranges(ingress_peer: &str) -> Vec<String> {
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: ns, labels: {{app: a}}}}
status: {{podIP: 10.9.0.1}}
---
# An unprotected pod: every source range gets a line toward it.
apiVersion: v1
kind: Pod
metadata: {{name: b, namespace: other}}
status: {{podIP: 10.9.0.2}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p, namespace: ns}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress]
  ingress:
  - from: [{ingress_peer}]
"#
    );
    let set = load_str("m.yaml", &text);
    let model = Model::build(&set).expect("valid manifests");
    let list = model.connlist().expect("no fatal problem");
    let txt = list.render(Format::Txt);
    let mut out: Vec<String> = txt
        .lines()
        .filter_map(|l| l.split_once("[External] => other/b[Pod]"))
        .map(|(range, _)| range.to_owned())
        .collect();
    out.dedup();
    out
}

#[test]
fn adjacent_excepts_make_one_range() {
    let got =
        source_ranges("{ipBlock: {cidr: 0.0.0.0/0, except: [192.168.0.0/17, 192.168.128.0/17]}}");
    assert_eq!(
        got,
        [
            "0.0.0.0-192.167.255.255",
            "192.168.0.0-192.168.255.255",
            "192.169.0.0-255.255.255.255"
        ]
    );
}

#[test]
fn overlapping_and_nested_excepts_make_one_range() {
    for excepts in [
        "[10.0.0.0/8, 10.1.0.0/16]",
        "[10.1.0.0/16, 10.0.0.0/8]",
        "[10.0.0.0/9, 10.128.0.0/9, 10.64.0.0/10]",
        "[10.0.0.0/8, 10.0.0.0/8]",
    ] {
        let got = source_ranges(&format!(
            "{{ipBlock: {{cidr: 0.0.0.0/0, except: {excepts}}}}}"
        ));
        assert_eq!(
            got,
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255"
            ],
            "except {excepts}"
        );
    }
}

#[test]
fn separate_excepts_still_cut_separately() {
    let got = source_ranges("{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.3.0.0/16]}}");
    assert_eq!(
        got,
        [
            "0.0.0.0-9.255.255.255",
            "10.0.0.0-10.0.255.255",
            "10.1.0.0-10.1.255.255",
            "10.2.0.0-10.2.255.255",
            "10.3.0.0-10.3.255.255",
            "10.4.0.0-10.255.255.255",
            "11.0.0.0-255.255.255.255"
        ]
    );
}
