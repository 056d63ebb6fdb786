//! The plugins' protocol without root: VERSION, error objects and codes, the calico-ipam
//! plugin's ADD/CHECK/DEL on a file store, and the calico plugin's rollback over a fake
//! pod network.

#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use calico_cni::config::NetConf;
use calico_cni::plugin::{self, PodLinks, PodNetwork, PodSpec, Teardown};
use calico_cni::spec::CniEnv;
use calico_ipam::Ipam;
use common::*;
use serde_json::{Value, json};

fn att(id: &str) -> Attachment {
    Attachment {
        container_id: id.to_owned(),
        netns: Some("/var/run/netns/does-not-matter".into()),
        ifname: "eth0".to_owned(),
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".to_owned(),
    }
}

fn ipam_conf(url: &str, version: &str) -> Value {
    json!({
        "cniVersion": version, "name": "net1", "type": "ptp",
        "ipam": {"type": "calico-ipam", "nodename": "ignored"},
        "nodename": "node-1", "datastore": url, "log_level": "info"
    })
}

#[test]
fn version_answers() {
    for exe in [calico_cni(), calico_ipam()] {
        let inv = invoke(
            None,
            &exe,
            "VERSION",
            &att("x"),
            "",
            &json!({"cniVersion": "1.0.0"}),
        );
        let v = inv.ok();
        assert_eq!(v["cniVersion"], "1.0.0");
        let versions: Vec<&str> = v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(versions, ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
    }
}

#[test]
fn error_objects_carry_the_specs_codes() {
    let s = Scratch::new("codes");
    let url = format!("file:{}", s.0.join("s.db").display());
    let path = default_cni_path();
    for exe in [calico_cni(), calico_ipam()] {
        // Missing CNI_CONTAINERID: 4.
        let mut a = att("x");
        a.container_id.clear();
        let inv = invoke(None, &exe, "ADD", &a, &path, &ipam_conf(&url, "1.0.0"));
        assert_eq!(inv.code(), 4, "{}", inv.stdout);
        assert_eq!(inv.json()["cniVersion"], "1.0.0");
        assert!(
            inv.json()["msg"]
                .as_str()
                .unwrap()
                .contains("CNI_CONTAINERID")
        );
        // Unknown command: 4.
        assert_eq!(
            invoke(None, &exe, "FROB", &att("x"), &path, &json!({})).code(),
            4
        );
        // Not JSON: 6.
        assert_eq!(
            invoke(None, &exe, "ADD", &att("x"), &path, &json!("{")).code(),
            6
        );
        // Unsupported version: 1.
        assert_eq!(
            invoke(
                None,
                &exe,
                "ADD",
                &att("x"),
                &path,
                &ipam_conf(&url, "2.0.0")
            )
            .code(),
            1
        );
        // CHECK with a 0.3.1 configuration: 1.
        assert_eq!(
            invoke(
                None,
                &exe,
                "CHECK",
                &att("x"),
                &path,
                &ipam_conf(&url, "0.3.1")
            )
            .code(),
            1
        );
        // A malformed datastore URL: 7.
        assert_eq!(
            invoke(
                None,
                &exe,
                "ADD",
                &att("x"),
                &path,
                &ipam_conf("ftp://x", "1.0.0")
            )
            .code(),
            7
        );
        // An unsupported datastore type: 2.
        let mut c = ipam_conf(&url, "1.0.0");
        c["datastore"] = Value::Null;
        c["datastore_type"] = "kubernetes".into();
        assert_eq!(invoke(None, &exe, "ADD", &att("x"), &path, &c).code(), 2);
    }
    // No pool: the IPAM plugin-specific code, and its error reaches the runtime through the
    // calico plugin unchanged (the netns check comes first there, so use calico-ipam).
    let inv = invoke(
        None,
        &calico_ipam(),
        "ADD",
        &att("x"),
        &path,
        &ipam_conf(&url, "1.0.0"),
    );
    assert_eq!(inv.code(), 100, "{}", inv.stdout);
    // The calico plugin on a netns that does not exist: 3.
    let mut c = ipam_conf(&url, "1.0.0");
    c["type"] = "calico".into();
    let inv = invoke(None, &calico_cni(), "ADD", &att("x"), &path, &c);
    assert_eq!(inv.code(), 3, "{}", inv.stdout);
}

#[test]
fn ipam_plugin_add_check_del() {
    let s = Scratch::new("ipam");
    let url = format!("file:{}", s.0.join("s.db").display());
    add_pool(&*open(&url), "p", "10.77.0.0/24", 26);
    let path = default_cni_path();
    let conf = ipam_conf(&url, "1.0.0");
    let inv = invoke(None, &calico_ipam(), "ADD", &att("c1"), &path, &conf);
    let r = inv.ok();
    assert_eq!(r["cniVersion"], "1.0.0");
    // log_level info: one line per invocation on stderr, none on stdout but the result.
    assert!(
        inv.stderr
            .contains("calico-ipam: ADD container c1 (eth0): ok"),
        "{}",
        inv.stderr
    );
    let addr = r["ips"][0]["address"].as_str().unwrap().to_owned();
    // The block's prefix length, as Calico's plugin reports it.
    assert!(
        addr.starts_with("10.77.0.") && addr.ends_with("/26"),
        "{addr}"
    );
    assert!(r["ips"][0].get("version").is_none());
    // The handle and attributes are Calico's.
    let ipam = Ipam::new(open(&url));
    let ip: std::net::IpAddr = addr.trim_end_matches("/26").parse().unwrap();
    let attrs = ipam.get_attributes(ip).unwrap();
    assert_eq!(attrs.handle.as_deref(), Some("net1.c1"));
    assert_eq!(attrs.owner["pod"], "web-0");
    assert_eq!(attrs.owner["namespace"], "default");
    assert_eq!(attrs.owner["node"], "node-1");
    assert!(
        attrs.owner["timestamp"].ends_with(" +0000 UTC"),
        "{attrs:?}"
    );
    // A repeated ADD returns the same address instead of leaking another.
    let again = invoke(None, &calico_ipam(), "ADD", &att("c1"), &path, &conf).ok();
    assert_eq!(again["ips"], r["ips"]);
    // A second container gets another address.
    let r2 = invoke(None, &calico_ipam(), "ADD", &att("c2"), &path, &conf).ok();
    assert_ne!(r2["ips"][0]["address"], r["ips"][0]["address"]);
    // CHECK with prevResult.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.clone();
    invoke(None, &calico_ipam(), "CHECK", &att("c1"), &path, &with_prev).ok();
    // CHECK against another container's result fails; without prevResult: 7.
    let mut wrong = conf.clone();
    wrong["prevResult"] = r2.clone();
    assert_eq!(
        invoke(None, &calico_ipam(), "CHECK", &att("c1"), &path, &wrong).code(),
        102
    );
    assert_eq!(
        invoke(None, &calico_ipam(), "CHECK", &att("c1"), &path, &conf).code(),
        7
    );
    // 0.4.0 results carry the address family.
    let mut old = conf.clone();
    old["cniVersion"] = "0.4.0".into();
    let r3 = invoke(None, &calico_ipam(), "ADD", &att("c3"), &path, &old).ok();
    assert_eq!(r3["ips"][0]["version"], "4");
    // DEL releases, twice is fine, and without CNI_NETNS too.
    for id in ["c1", "c2", "c3", "c1"] {
        let mut a = att(id);
        a.netns = None;
        invoke(None, &calico_ipam(), "DEL", &a, &path, &conf).ok();
    }
    assert!(ipam.get_attributes(ip).is_err());
    assert_ipam_clean(open(&url));
}

#[test]
fn ipam_plugin_exhausted_pool_leaves_nothing() {
    let s = Scratch::new("exhaust");
    let url = format!("file:{}", s.0.join("s.db").display());
    add_pool(&*open(&url), "tiny", "10.78.0.0/30", 30);
    let path = default_cni_path();
    let mut conf = ipam_conf(&url, "1.0.0");
    // Dual stack on a v4-only store: the v4 address is assigned first, then v6 fails; the v4
    // address must go back.
    conf["ipam"]["assign_ipv6"] = "true".into();
    let inv = invoke(None, &calico_ipam(), "ADD", &att("d1"), &path, &conf);
    assert_eq!(inv.code(), 100, "{}", inv.stdout);
    assert_ipam_clean(open(&url));
    conf["ipam"]["assign_ipv6"] = "false".into();
    for i in 0..4 {
        invoke(
            None,
            &calico_ipam(),
            "ADD",
            &att(&format!("e{i}")),
            &path,
            &conf,
        )
        .ok();
    }
    let inv = invoke(None, &calico_ipam(), "ADD", &att("e4"), &path, &conf);
    assert_eq!(inv.code(), 100, "{}", inv.stdout);
    let ipam = Ipam::new(open(&url));
    assert!(ipam.ips_by_handle("net1.e4").is_err());
    for i in 0..4 {
        invoke(
            None,
            &calico_ipam(),
            "DEL",
            &att(&format!("e{i}")),
            &path,
            &conf,
        )
        .ok();
    }
    assert_ipam_clean(open(&url));
}

/// A pod network that records calls and fails `create` on demand.
#[derive(Default)]
struct Fake {
    fail_create: bool,
    links: RefCell<HashMap<String, Vec<String>>>,
    calls: RefCell<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("fake failure: {0}")]
struct FakeError(String);

impl PodNetwork for Fake {
    type Error = FakeError;
    fn netns_exists(&self, _: &Path) -> bool {
        true
    }
    fn create(&self, spec: &PodSpec<'_>) -> Result<PodLinks, FakeError> {
        self.calls
            .borrow_mut()
            .push(format!("create {}", spec.host_ifname));
        let addrs = spec.addresses.iter().map(ToString::to_string).collect();
        self.links
            .borrow_mut()
            .insert(spec.host_ifname.to_owned(), addrs);
        if self.fail_create {
            return Err(FakeError("container interface exists".into()));
        }
        Ok(PodLinks {
            host_mac: "ee:ee:ee:ee:ee:ee".into(),
            container_mac: "02:00:00:00:00:01".into(),
        })
    }
    fn remove(&self, t: &Teardown<'_>) -> Result<(), FakeError> {
        let host = t.host_ifname;
        self.calls.borrow_mut().push(format!("remove {host}"));
        self.links.borrow_mut().remove(host);
        Ok(())
    }
    fn check(&self, spec: &PodSpec<'_>) -> Result<(), FakeError> {
        let links = self.links.borrow();
        let have = links
            .get(spec.host_ifname)
            .ok_or_else(|| FakeError(format!("{} missing", spec.host_ifname)))?;
        let want: Vec<String> = spec.addresses.iter().map(ToString::to_string).collect();
        if *have == want {
            Ok(())
        } else {
            Err(FakeError(format!("{have:?} != {want:?}")))
        }
    }
}

fn env_for(cmd: &str, id: &str) -> CniEnv {
    let path = default_cni_path();
    let vars: HashMap<&str, String> = [
        ("CNI_COMMAND", cmd.to_owned()),
        ("CNI_CONTAINERID", id.to_owned()),
        ("CNI_NETNS", "/var/run/netns/fake".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", path),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p".to_owned()),
    ]
    .into_iter()
    .collect();
    CniEnv::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

#[test]
fn calico_plugin_orchestration_and_rollback() {
    let s = Scratch::new("fake");
    let url = format!("file:{}", s.0.join("s.db").display());
    add_pool(&*open(&url), "p", "10.79.0.0/24", 26);
    let mut c = ipam_conf(&url, "1.0.0");
    c["type"] = "calico".into();
    let bytes = c.to_string().into_bytes();
    let conf = NetConf::parse(&bytes, "h").unwrap();
    let host = calico_model::derived::interface_name("cali", "ns", "p");

    // Success: result per the spec.
    let ok = Fake::default();
    let r = plugin::add(&ok, &env_for("ADD", "good"), &conf, &bytes).unwrap();
    let j = r.to_json();
    assert_eq!(j["interfaces"][0]["name"], host.as_str());
    assert_eq!(j["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert!(j["interfaces"][0].get("sandbox").is_none());
    assert_eq!(j["interfaces"][1]["name"], "eth0");
    assert_eq!(j["interfaces"][1]["sandbox"], "/var/run/netns/fake");
    assert_eq!(j["ips"][0]["interface"], 1);
    assert_eq!(
        j["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}])
    );
    // CHECK with the result as prevResult passes, then fails when the link goes.
    let mut with_prev = c.clone();
    with_prev["prevResult"] = j.clone();
    let pb = with_prev.to_string().into_bytes();
    let pconf = NetConf::parse(&pb, "h").unwrap();
    plugin::check(&ok, &env_for("CHECK", "good"), &pconf, &pb).unwrap();
    ok.links.borrow_mut().clear();
    let e = plugin::check(&ok, &env_for("CHECK", "good"), &pconf, &pb).unwrap_err();
    assert_eq!(e.code().code(), 102, "{e}");
    plugin::del(&ok, &env_for("DEL", "good"), &conf, &bytes).unwrap();
    plugin::del(&ok, &env_for("DEL", "good"), &conf, &bytes).unwrap();

    // Failure: the host side is removed and the address released.
    let bad = Fake {
        fail_create: true,
        ..Fake::default()
    };
    let e = plugin::add(&bad, &env_for("ADD", "bad"), &conf, &bytes).unwrap_err();
    assert_eq!(e.code().code(), 101, "{e}");
    assert!(bad.links.borrow().is_empty());
    assert_eq!(
        *bad.calls.borrow(),
        [
            format!("remove {host}"),
            format!("create {host}"),
            format!("remove {host}")
        ]
    );
    assert_ipam_clean(open(&url));
}
