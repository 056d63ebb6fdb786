//! The plugins as a container runtime calls them, in network namespaces.
//!
//! Each test makes a "node" namespace (the plugins run in it through `ip netns exec`, so the
//! host veths, host routes and sysctls are the node's, never the root namespace's) and pod
//! namespaces made by `ip netns add`, passed as `CNI_NETNS=/var/run/netns/NAME`. Every
//! namespace is deleted on drop, panics included; namespaces of killed earlier runs are
//! swept first.
//!
//! For the etcd store, etcd (started by the testkit) listens on the root namespace's
//! loopback, which a node namespace cannot reach: `CNI_PATH` then starts with a wrapper
//! `calico-ipam` that runs the real one in the test process's network namespace (`nsenter
//! --net`); it only talks to etcd on loopback.
//!
//! Not root: the tests say on stderr that they did NOT run and pass, unless
//! `CALICO_REQUIRE_ROOT_TESTS=1`.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use calico_datastore_etcd::testkit::{EtcdCluster, etcd_or_skip};
use common::*;
use serde_json::{Value, json};

/// A node namespace with forwarding on (Felix's job on a real node) and, like a real node,
/// an uplink with a default route (`up0`, 192.168.200.2/24, to a namespace holding
/// 192.168.200.1): proxy ARP answers for 169.254.1.1 only when the node has a route to it
/// through another interface.
struct Node {
    ns: Netns,
    _upstream: Netns,
    links: Vec<String>,
    routes: Vec<Value>,
}

impl std::ops::Deref for Node {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

fn node(tag: &str) -> Node {
    let ns = Netns::new(tag);
    let upstream = Netns::new(&format!("{tag}-up"));
    ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    upstream.exec(&[
        "ip", "link", "add", "down0", "type", "veth", "peer", "name", "up0", "netns", &ns.name,
    ]);
    upstream.exec(&["ip", "addr", "add", "192.168.200.1/24", "dev", "down0"]);
    upstream.exec(&["ip", "link", "set", "down0", "up"]);
    ns.exec(&["ip", "addr", "add", "192.168.200.2/24", "dev", "up0"]);
    ns.exec(&["ip", "link", "set", "up0", "up"]);
    ns.exec(&["ip", "route", "add", "default", "via", "192.168.200.1"]);
    let links = ns.links();
    let routes = ns.routes(&[]);
    Node {
        ns,
        _upstream: upstream,
        links,
        routes,
    }
}

fn file_store(s: &Scratch, cidr: &str) -> String {
    let url = format!("file:{}", s.0.join("calico.db").display());
    add_pool(&*open(&url), "default-ipv4-ippool", cidr, 26);
    url
}

fn ip_of(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_owned()
}

/// Everything ADD must build for one pod, checked in the kernel.
fn assert_pod_network(node: &Netns, pod: &Netns, result: &Value, ns: &str, name: &str) {
    let host = calico_model::derived::interface_name("cali", ns, name);
    let ip = ip_of(result);
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], host.as_str());
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(
        result["interfaces"][1]["sandbox"],
        pod.path().display().to_string()
    );
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .ends_with("/32")
    );
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}])
    );
    // Host side: the link, its MAC in the result, proxy ARP, the /32 route.
    let link: Value =
        serde_json::from_str(&node.exec(&["ip", "-j", "link", "show", "dev", &host])).unwrap();
    assert_eq!(link[0]["address"], result["interfaces"][0]["mac"]);
    assert_eq!(link[0]["operstate"], "UP");
    assert_eq!(node.sysctl(&format!("net.ipv4.conf.{host}.proxy_arp")), "1");
    assert_eq!(
        node.sysctl(&format!("net.ipv4.neigh.{host}.proxy_delay")),
        "0"
    );
    let routes = node.routes(&["dev", &host]);
    assert!(
        routes.iter().any(|r| r["dst"] == ip.as_str()),
        "no /32 route to {ip} via {host}: {routes:?}"
    );
    // Container side: address, MTU, default route via 169.254.1.1 on-link.
    let addr: Value =
        serde_json::from_str(&pod.exec(&["ip", "-j", "addr", "show", "dev", "eth0"])).unwrap();
    assert_eq!(addr[0]["mtu"], 1450);
    assert_eq!(addr[0]["address"], result["interfaces"][1]["mac"]);
    let infos = addr[0]["addr_info"].as_array().unwrap();
    assert!(
        infos
            .iter()
            .any(|i| i["local"] == ip.as_str() && i["prefixlen"] == 32),
        "{infos:?}"
    );
    let default = pod.routes(&["default"]);
    assert_eq!(default.len(), 1, "{default:?}");
    assert_eq!(default[0]["gateway"], "169.254.1.1");
    assert_eq!(default[0]["dev"], "eth0");
    assert!(
        default[0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "onlink"),
        "{default:?}"
    );
}

/// Nothing of any pod remains on the node or in `pods`.
fn assert_no_leftovers(node: &Node, pods: &[&Netns]) {
    assert_eq!(node.links(), node.links, "links left on the node");
    assert_eq!(node.routes(&[]), node.routes, "routes left on the node");
    for p in pods {
        assert_eq!(p.links(), ["lo"], "links left in {}", p.name);
    }
}

#[test]
fn two_pods_reach_each_other() {
    if !root_or_skip("two_pods_reach_each_other") {
        return;
    }
    let s = Scratch::new("two");
    let url = file_store(&s, "10.60.0.0/16");
    let node = node("two-node");
    let (a, b) = (Netns::new("two-a"), Netns::new("two-b"));
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att_a = Attachment::pod("aaaa0000000000000001", &a, "default", "pod-a");
    let att_b = Attachment::pod("bbbb0000000000000002", &b, "default", "pod-b");
    let ra = chain.add(&att_a).unwrap_or_else(|e| panic!("{e:?}"));
    let rb = chain.add(&att_b).unwrap_or_else(|e| panic!("{e:?}"));
    assert_pod_network(&node, &a, &ra, "default", "pod-a");
    assert_pod_network(&node, &b, &rb, "default", "pod-b");
    assert_ne!(ip_of(&ra), ip_of(&rb));
    // The first packet goes through at once (proxy_delay=0): one echo, a short deadline.
    let started = Instant::now();
    a.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&rb)]);
    b.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&ra)]);
    eprintln!("two pods: first pings both ways in {:?}", started.elapsed());
    // CHECK passes on both.
    chain.check(&att_a, &ra).unwrap_or_else(|e| panic!("{e:?}"));
    chain.check(&att_b, &rb).unwrap_or_else(|e| panic!("{e:?}"));
    // DEL twice each.
    for (att, r) in [(&att_a, &ra), (&att_b, &rb)] {
        chain.del(att, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
        chain.del(att, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert_no_leftovers(&node, &[&a, &b]);
    assert_ipam_clean(open(&url));
}

#[test]
fn del_succeeds_when_things_are_gone() {
    if !root_or_skip("del_succeeds_when_things_are_gone") {
        return;
    }
    let s = Scratch::new("gone");
    let url = file_store(&s, "10.61.0.0/16");
    let node = node("gone-node");
    let pod = Netns::new("gone-pod");
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    // Never added: DEL succeeds.
    let never = Attachment::pod("never00000000000001", &pod, "default", "never");
    chain.del(&never, None).unwrap_or_else(|e| panic!("{e:?}"));
    // Added, then the namespace is deleted (the container is gone), then DEL without
    // CNI_NETNS, as runtimes do, twice.
    let mut att = Attachment::pod("gone00000000000001", &pod, "default", "gone");
    let r = chain.add(&att).unwrap_or_else(|e| panic!("{e:?}"));
    drop(pod);
    att.netns = None;
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_no_leftovers(&node, &[]);
    assert_ipam_clean(open(&url));
}

#[test]
fn failing_add_leaves_nothing_behind() {
    if !root_or_skip("failing_add_leaves_nothing_behind") {
        return;
    }
    let s = Scratch::new("fail");
    let url = file_store(&s, "10.62.0.0/16");
    let node = node("fail-node");
    let pod = Netns::new("fail-pod");
    // The container already has an eth0 (a veth pair made inside the pod namespace).
    pod.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att = Attachment::pod("fail00000000000001", &pod, "default", "fail");
    let err = chain.add(&att).unwrap_err();
    assert_eq!(err.code(), 101, "{}", err.stdout);
    assert_no_leftovers(&node, &[]);
    let mut links = pod.links();
    links.sort();
    assert_eq!(
        links,
        ["eth0", "lo", "other0"],
        "the pod's own links are untouched"
    );
    assert_ipam_clean(open(&url));

    // An exhausted pool: a /30 of one block holds four pods; the fifth fails cleanly.
    let s2 = Scratch::new("fail2");
    let url2 = format!("file:{}", s2.0.join("calico.db").display());
    add_pool(&*open(&url2), "tiny", "10.63.0.0/30", 30);
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url2, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let pods: Vec<Netns> = (0..5).map(|i| Netns::new(&format!("fail-p{i}"))).collect();
    let atts: Vec<Attachment> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| Attachment::pod(&format!("tiny{i:016}"), p, "default", &format!("t{i}")))
        .collect();
    let results: Vec<Value> = atts[..4]
        .iter()
        .map(|a| chain.add(a).unwrap_or_else(|e| panic!("{e:?}")))
        .collect();
    let err = chain.add(&atts[4]).unwrap_err();
    assert_eq!(err.code(), 100, "{}", err.stdout);
    assert_eq!(pods[4].links(), ["lo"]);
    assert_eq!(
        node.links().len(),
        6,
        "lo, up0 and four host veths: {:?}",
        node.links()
    );
    for (a, r) in atts[..4].iter().zip(&results) {
        chain.del(a, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    let refs: Vec<&Netns> = pods.iter().collect();
    assert_no_leftovers(&node, &refs);
    assert_ipam_clean(open(&url2));
}

#[test]
fn check_detects_a_deleted_route() {
    if !root_or_skip("check_detects_a_deleted_route") {
        return;
    }
    let s = Scratch::new("check");
    let url = file_store(&s, "10.64.0.0/16");
    let node = node("check-node");
    let pod = Netns::new("check-pod");
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att = Attachment::pod("check0000000000001", &pod, "default", "chk");
    let r = chain.add(&att).unwrap_or_else(|e| panic!("{e:?}"));
    chain.check(&att, &r).unwrap_or_else(|e| panic!("{e:?}"));
    let host = calico_model::derived::interface_name("cali", "default", "chk");
    let ip = ip_of(&r);
    // The host's /32 route.
    node.exec(&["ip", "route", "del", &format!("{ip}/32"), "dev", &host]);
    let err = chain.check(&att, &r).unwrap_err();
    assert_eq!(err.code(), 102, "{}", err.stdout);
    assert!(err.stdout.contains(&ip), "{}", err.stdout);
    node.exec(&["ip", "route", "add", &format!("{ip}/32"), "dev", &host]);
    chain.check(&att, &r).unwrap_or_else(|e| panic!("{e:?}"));
    // The container's default route.
    pod.exec(&["ip", "route", "del", "default"]);
    assert_eq!(chain.check(&att, &r).unwrap_err().code(), 102);
    // The allocation (released behind the plugin's back).
    pod.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
        "onlink",
    ]);
    chain.check(&att, &r).unwrap_or_else(|e| panic!("{e:?}"));
    calico_ipam::Ipam::new(open(&url))
        .release_by_handle("k8s-pod-network.check0000000000001")
        .unwrap();
    assert_eq!(chain.check(&att, &r).unwrap_err().code(), 102);
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_no_leftovers(&node, &[&pod]);
    assert_ipam_clean(open(&url));
}

/// A python3 TCP server in `ns` answering "pong" once per connection; killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &Netns, port: u16) -> Server {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen(8)\nwhile True:\n c,_=s.accept()\n c.sendall(b'pong')\n c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", &code])
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tcp_get(ns: &Netns, ip: &str, port: u16) -> Option<String> {
    let code = format!(
        "import socket\ns=socket.create_connection(('{ip}',{port}),timeout=2)\nprint(s.recv(16).decode())\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &code])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn chained_with_portmap_tuning_and_bandwidth() {
    if !root_or_skip("chained_with_portmap_tuning_and_bandwidth") {
        return;
    }
    if Command::new("python3").arg("-V").output().is_err() {
        assert!(
            !required(),
            "python3 is needed for the portmap traffic test"
        );
        eprintln!("NOTE: chained portmap test NOT RUN: python3 missing");
        return;
    }
    let s = Scratch::new("chain");
    let url = file_store(&s, "10.65.0.0/16");
    let node = node("chain-node");
    let pod = Netns::new("chain-pod");
    let client = Netns::new("chain-client");
    // The client reaches the node over a veth: 192.168.77.1 (client) - 192.168.77.2 (node).
    client.exec(&[
        "ip", "link", "add", "c0", "type", "veth", "peer", "name", "n0", "netns", &node.name,
    ]);
    client.exec(&["ip", "addr", "add", "192.168.77.1/24", "dev", "c0"]);
    client.exec(&["ip", "link", "set", "c0", "up"]);
    node.exec(&["ip", "addr", "add", "192.168.77.2/24", "dev", "n0"]);
    node.exec(&["ip", "link", "set", "n0", "up"]);
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(
            &url,
            &[
                json!({"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}),
                json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}}),
                json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
            ],
        ),
        cni_path: default_cni_path(),
        runtime_config: json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 100_000_000, "ingressBurst": 10_000_000}
        }),
    };
    let att = Attachment::pod("chain000000000001", &pod, "default", "web");
    let r = chain
        .add(&att)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", e.stderr));
    // Our result went through the chain: the final result still carries it.
    assert_pod_network(&node, &pod, &r, "default", "web");
    // tuning ran in the pod, bandwidth shaped the host side.
    assert_eq!(pod.sysctl("net.ipv4.conf.eth0.accept_local"), "1");
    let host = calico_model::derived::interface_name("cali", "default", "web");
    let qdisc = node.exec(&["tc", "qdisc", "show", "dev", &host]);
    assert!(qdisc.contains("tbf"), "{qdisc}");
    // portmap: the client reaches the pod's port 80 at the node's port 8080.
    let _server = Server::start(&pod, 80);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        got = tcp_get(&client, "192.168.77.2", 8080);
        if got.is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_eq!(got.as_deref(), Some("pong"), "no answer through portmap");
    // portmap 1.1.1's CHECK looks for IPv6 rules of an IPv4-only container and fails
    // (containernetworking/plugins#819, fixed later); the rest of the chain is checked.
    chain
        .check_skipping(&att, &r, &["portmap"])
        .unwrap_or_else(|e| panic!("{e:?}"));
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(tcp_get(&client, "192.168.77.2", 8080).is_none());
    let nat = node.exec(&["iptables-save", "-t", "nat"]);
    assert!(!nat.contains("dport 8080"), "portmap rules left: {nat}");
    let mut links = node.links();
    links.sort();
    assert_eq!(links, ["lo", "n0", "up0"]);
    assert_eq!(pod.links(), ["lo"]);
    assert_ipam_clean(open(&url));
}

#[test]
fn calico_ipam_under_ptp() {
    if !root_or_skip("calico_ipam_under_ptp") {
        return;
    }
    let s = Scratch::new("ptp");
    let url = file_store(&s, "10.66.0.0/16");
    let node = node("ptp-node");
    let pod = Netns::new("ptp-pod");
    let chain = Chain {
        node: &node,
        conflist: json!({"cniVersion": "1.0.0", "name": "ptpnet", "plugins": [{
            "type": "ptp", "ipMasq": false,
            "ipam": {"type": "calico-ipam", "gateway": "169.254.1.1"},
            "nodename": "node-1", "datastore": url
        }]}),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att = Attachment::pod("ptp00000000000001", &pod, "default", "p");
    let r = chain.add(&att).unwrap_or_else(|e| panic!("{e:?}"));
    let ip = ip_of(&r);
    assert!(ip.starts_with("10.66."), "{r}");
    node.exec(&["ping", "-c", "1", "-W", "2", &ip]);
    chain.check(&att, &r).unwrap_or_else(|e| panic!("{e:?}"));
    chain
        .del(&att, Some(&r))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(pod.links(), ["lo"]);
    assert_ipam_clean(open(&url));
}

/// 100 ADD/DEL cycles in one pod namespace (a new container each time), with a second pod
/// running throughout; afterwards no address, interface or route is left.
fn hundred_cycles(url: &str, cni_path: String, tag: &str) {
    let node = node(&format!("{tag}-node"));
    let pod = Netns::new(&format!("{tag}-pod"));
    let steady = Netns::new(&format!("{tag}-steady"));
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(url, &[]),
        cni_path,
        runtime_config: json!({}),
    };
    let steady_att = Attachment::pod("steady000000000001", &steady, "default", "steady");
    let rs = chain.add(&steady_att).unwrap_or_else(|e| panic!("{e:?}"));
    let started = Instant::now();
    let (mut in_add, mut in_del) = (Duration::ZERO, Duration::ZERO);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..100 {
        let att = Attachment::pod(&format!("cycle{i:013}"), &pod, "default", &format!("c{i}"));
        let t = Instant::now();
        let r = chain
            .add(&att)
            .unwrap_or_else(|e| panic!("cycle {i}: {e:?}"));
        in_add += t.elapsed();
        seen.insert(ip_of(&r));
        if i % 25 == 0 {
            assert_pod_network(&node, &pod, &r, "default", &format!("c{i}"));
            pod.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&rs)]);
        }
        let t = Instant::now();
        chain
            .del(&att, Some(&r))
            .unwrap_or_else(|e| panic!("cycle {i}: {e:?}"));
        in_del += t.elapsed();
        assert_eq!(pod.links(), ["lo"], "cycle {i}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{tag}: 100 ADD/DEL cycles in {elapsed:?} ({:?} per cycle; ADD {:?}, DEL {:?} each, \
         the rest is the test's `ip` checks), {} distinct addresses",
        elapsed / 100,
        in_add / 100,
        in_del / 100,
        seen.len()
    );
    chain
        .del(&steady_att, Some(&rs))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_no_leftovers(&node, &[&pod, &steady]);
    assert_ipam_clean(open(url));
}

#[test]
fn hundred_cycles_file_store() {
    if !root_or_skip("hundred_cycles_file_store") {
        return;
    }
    let s = Scratch::new("cyc");
    let url = file_store(&s, "10.67.0.0/16");
    hundred_cycles(&url, default_cni_path(), "cyc");
}

#[test]
fn hundred_cycles_etcd_store() {
    if !root_or_skip("hundred_cycles_etcd_store") {
        return;
    }
    if etcd_or_skip("hundred_cycles_etcd_store").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let url = server.url();
    add_pool(&*open(&url), "default-ipv4-ippool", "10.68.0.0/16", 26);
    // The IPAM plugin runs in this process's network namespace to reach etcd on loopback.
    let s = Scratch::new("etcdwrap");
    let wrapper = s.0.join("calico-ipam");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec nsenter --net=/proc/{}/ns/net {} \"$@\"\n",
            std::process::id(),
            calico_ipam().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cni_path = format!("{}:{}", s.0.display(), default_cni_path());
    hundred_cycles(&url, cni_path, "etcd");
}

#[test]
fn dual_stack_pods() {
    if !root_or_skip("dual_stack_pods") {
        return;
    }
    let s = Scratch::new("dual");
    let url = file_store(&s, "10.69.0.0/16");
    add_pool(&*open(&url), "default-ipv6-ippool", "fd00:69::/48", 122);
    let node = node("dual-node");
    node.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let (a, b) = (Netns::new("dual-a"), Netns::new("dual-b"));
    let mut conflist = calico_conflist(&url, &[]);
    conflist["plugins"][0]["ipam"]["assign_ipv6"] = "true".into();
    let chain = Chain {
        node: &node,
        conflist,
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att_a = Attachment::pod("duala000000000001", &a, "default", "dual-a");
    let att_b = Attachment::pod("dualb000000000001", &b, "default", "dual-b");
    let ra = chain.add(&att_a).unwrap_or_else(|e| panic!("{e:?}"));
    let rb = chain.add(&att_b).unwrap_or_else(|e| panic!("{e:?}"));
    for r in [&ra, &rb] {
        let ips = r["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 2, "{r}");
        assert!(ips[0]["address"].as_str().unwrap().ends_with("/32"));
        let v6 = ips[1]["address"].as_str().unwrap();
        assert!(v6.starts_with("fd00:69:") && v6.ends_with("/128"), "{v6}");
        assert_eq!(
            r["routes"],
            json!([
                {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}
            ])
        );
    }
    let v6_of = |r: &Value| {
        r["ips"][1]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let out = a.exec(&["ip", "-6", "-j", "route", "show", "default"]);
    let default6: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(default6[0]["gateway"], "fe80::ecee:eeff:feee:eeee", "{out}");
    // IPv6 needs DAD on the pod side to finish before the address is usable.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok = false;
    while !ok && Instant::now() < deadline {
        ok = a.try_exec(&["ping", "-6", "-c", "1", "-W", "1", &v6_of(&rb)]);
    }
    assert!(ok, "no IPv6 ping from a to b");
    b.exec(&["ping", "-6", "-c", "1", "-W", "1", &v6_of(&ra)]);
    a.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&rb)]);
    chain.check(&att_a, &ra).unwrap_or_else(|e| panic!("{e:?}"));
    for (att, r) in [(&att_a, &ra), (&att_b, &rb)] {
        chain.del(att, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert_no_leftovers(&node, &[&a, &b]);
    assert_ipam_clean(open(&url));
}

/// Runtimes set up several pods at once: parallel ADDs get distinct addresses, parallel DELs
/// leave nothing.
#[test]
fn parallel_adds_and_dels() {
    if !root_or_skip("parallel_adds_and_dels") {
        return;
    }
    let s = Scratch::new("par");
    let url = file_store(&s, "10.70.0.0/16");
    let node = node("par-node");
    let pods: Vec<Netns> = (0..8).map(|i| Netns::new(&format!("par-{i}"))).collect();
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let atts: Vec<Attachment> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| Attachment::pod(&format!("par{i:014}"), p, "default", &format!("par-{i}")))
        .collect();
    let results: Vec<Value> = std::thread::scope(|sc| {
        let hs: Vec<_> = atts
            .iter()
            .map(|a| sc.spawn(|| chain.add(a).unwrap_or_else(|e| panic!("{e:?}"))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: std::collections::BTreeSet<String> = results.iter().map(ip_of).collect();
    assert_eq!(ips.len(), 8, "{ips:?}");
    for ((p, r), i) in pods.iter().zip(&results).zip(0..) {
        assert_pod_network(&node, p, r, "default", &format!("par-{i}"));
    }
    pods[0].exec(&["ping", "-c", "1", "-W", "1", &ip_of(&results[7])]);
    std::thread::scope(|sc| {
        for (a, r) in atts.iter().zip(&results) {
            sc.spawn(|| chain.del(a, Some(r)).unwrap_or_else(|e| panic!("{e:?}")));
        }
    });
    let refs: Vec<&Netns> = pods.iter().collect();
    assert_no_leftovers(&node, &refs);
    assert_ipam_clean(open(&url));
}

/// The calico plugin delegates to whatever IPAM plugin the configuration names: here the
/// reference host-local (its state in a scratch directory), whose /24 and gateway the
/// calico plugin programs as Calico does (/32, default via 169.254.1.1).
#[test]
fn calico_with_host_local_ipam() {
    if !root_or_skip("calico_with_host_local_ipam") {
        return;
    }
    let s = Scratch::new("hostlocal");
    let node = node("hl-node");
    let (a, b) = (Netns::new("hl-a"), Netns::new("hl-b"));
    let mut conflist = calico_conflist("memory:", &[]);
    conflist["plugins"][0]["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{"subnet": "10.71.0.0/24", "gateway": "10.71.0.1"}]],
        "dataDir": s.0.join("host-local").display().to_string()
    });
    let chain = Chain {
        node: &node,
        conflist,
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att_a = Attachment::pod("hla00000000000001", &a, "default", "hl-a");
    let att_b = Attachment::pod("hlb00000000000001", &b, "default", "hl-b");
    let ra = chain.add(&att_a).unwrap_or_else(|e| panic!("{e:?}"));
    let rb = chain.add(&att_b).unwrap_or_else(|e| panic!("{e:?}"));
    assert_pod_network(&node, &a, &ra, "default", "hl-a");
    assert_eq!(ip_of(&ra), "10.71.0.2");
    a.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&rb)]);
    chain.check(&att_a, &ra).unwrap_or_else(|e| panic!("{e:?}"));
    for (att, r) in [(&att_a, &ra), (&att_b, &rb)] {
        chain.del(att, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert_no_leftovers(&node, &[&a, &b]);
    // host-local released both addresses: no reservation file is left.
    let dir = s.0.join("host-local").join("k8s-pod-network");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(left.is_empty(), "host-local still holds {left:?}");
}

/// A pod's sandbox is replaced before the runtime deletes the old one (kubelet restarts a
/// sandbox; both use the pod's host veth name): ADD of the new sandbox replaces the stale
/// veth, and the late DEL of the old sandbox (with its cached result) releases the old
/// address but leaves the new sandbox's network alone.
#[test]
fn stale_del_leaves_the_newer_sandbox_alone() {
    if !root_or_skip("stale_del_leaves_the_newer_sandbox_alone") {
        return;
    }
    let s = Scratch::new("stale");
    let url = file_store(&s, "10.72.0.0/16");
    let node = node("stale-node");
    let (old, new, peer) = (
        Netns::new("stale-old"),
        Netns::new("stale-new"),
        Netns::new("stale-peer"),
    );
    let chain = Chain {
        node: &node,
        conflist: calico_conflist(&url, &[]),
        cni_path: default_cni_path(),
        runtime_config: json!({}),
    };
    let att_peer = Attachment::pod("peer0000000000001", &peer, "default", "peer");
    let rp = chain.add(&att_peer).unwrap_or_else(|e| panic!("{e:?}"));
    let att_old = Attachment::pod("old00000000000001", &old, "default", "web");
    let r_old = chain.add(&att_old).unwrap_or_else(|e| panic!("{e:?}"));
    let att_new = Attachment::pod("new00000000000001", &new, "default", "web");
    let r_new = chain.add(&att_new).unwrap_or_else(|e| panic!("{e:?}"));
    assert_ne!(ip_of(&r_old), ip_of(&r_new));
    assert_eq!(old.links(), ["lo"], "the stale veth went with the new ADD");
    // The late DEL of the old sandbox.
    chain
        .del(&att_old, Some(&r_old))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_pod_network(&node, &new, &r_new, "default", "web");
    new.exec(&["ping", "-c", "1", "-W", "1", &ip_of(&rp)]);
    chain
        .check(&att_new, &r_new)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ipam = calico_ipam::Ipam::new(open(&url));
    assert!(
        ipam.ips_by_handle("k8s-pod-network.old00000000000001")
            .is_err()
    );
    for (a, r) in [(&att_new, &r_new), (&att_peer, &rp)] {
        chain.del(a, Some(r)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert_no_leftovers(&node, &[&old, &new, &peer]);
    assert_ipam_clean(open(&url));
}
