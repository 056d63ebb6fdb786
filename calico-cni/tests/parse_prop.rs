//! The plugins' input parsers are total: any stdin bytes, any CNI_ARGS string, any environment
//! and any prevResult JSON give a value or an error, never a panic; and a configuration that
//! parses names what it was given.

use calico_cni::config::NetConf;
use calico_cni::spec::{CniEnv, CniResult, parse_args, parse_version};
use proptest::prelude::*;

fn conf_json() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["1.0.0", "0.4.0", "0.3.1", "0.2.0", "", "x"]),
        "[a-z0-9-]{0,12}",
        prop::option::of(0u32..20000),
        prop::sample::select(vec![
            "",
            r#","datastore":"file:/tmp/x.db""#,
            r#","etcd_endpoints":"http://127.0.0.1:2379,http://[::1]:2379""#,
            r#","datastore":"etcd://a:1,b:2""#,
            r#","datastore":"bogus:""#,
            r#","datastore_type":"kubernetes""#,
        ]),
        prop::sample::select(vec![
            r#"{"type":"calico-ipam"}"#,
            r#"{"type":"host-local","subnet":"10.0.0.0/24"}"#,
            r#"{"type":"calico-ipam","ipv4_pools":["10.0.0.0/16"],"assign_ipv6":"true"}"#,
            r#"{}"#,
            r#"[]"#,
        ]),
    )
        .prop_map(|(v, name, mtu, store, ipam)| {
            let mtu = mtu.map(|m| format!(r#","mtu":{m}"#)).unwrap_or_default();
            format!(
                r#"{{"cniVersion":"{v}","name":"{name}","type":"calico"{mtu}{store},"ipam":{ipam}}}"#
            )
        })
}

proptest! {
    #[test]
    fn netconf_parse_is_total(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = NetConf::parse(&bytes, "node-1");
    }

    #[test]
    fn netconf_parses_what_it_was_given(json in conf_json()) {
        if let Ok(conf) = NetConf::parse(json.as_bytes(), "Node-1") {
            prop_assert!(!conf.name.is_empty());
            let name = format!(r#""name":"{}""#, conf.name);
            let version = format!(r#""cniVersion":"{}""#, conf.cni_version);
            prop_assert!(json.contains(&name), "{} not in {}", name, json);
            prop_assert!(json.contains(&version), "{} not in {}", version, json);
            prop_assert_eq!(conf.nodename.as_str(), "node-1");
        }
    }

    #[test]
    fn cni_args_and_versions_are_total(s in ".{0,200}") {
        if let Ok(pairs) = parse_args(&s) {
            for (k, _) in &pairs {
                prop_assert!(s.contains(k.as_str()));
            }
        }
        let _ = parse_version(&s);
    }

    #[test]
    fn environment_is_total(
        command in prop::option::of(prop::sample::select(vec!["ADD", "DEL", "CHECK", "VERSION", "GC", ""])),
        id in prop::option::of(".{0,40}"),
        netns in prop::option::of(".{0,40}"),
        ifname in prop::option::of(".{0,20}"),
        args in prop::option::of(".{0,80}"),
    ) {
        let get = |k: &str| match k {
            "CNI_COMMAND" => command.map(str::to_owned),
            "CNI_CONTAINERID" => id.clone(),
            "CNI_NETNS" => netns.clone(),
            "CNI_IFNAME" => ifname.clone(),
            "CNI_ARGS" => args.clone(),
            "CNI_PATH" => Some("/usr/lib/cni".to_owned()),
            _ => None,
        };
        let _ = CniEnv::from_lookup(get);
    }

    #[test]
    fn prev_result_is_total(s in ".{0,300}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            let _ = CniResult::from_json(&v);
        }
    }
}

#[test]
fn generated_shape_parses() {
    let json = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"calico","mtu":1410,"datastore":"file:/tmp/x.db","ipam":{"type":"calico-ipam"}}"#;
    let conf = NetConf::parse(json.as_bytes(), "Node-1").expect("parses");
    assert_eq!(conf.name, "k8s-pod-network");
    assert_eq!(conf.nodename, "node-1");
    assert_eq!(conf.store_url, "file:/tmp/x.db");
}
