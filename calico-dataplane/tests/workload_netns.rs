//! Pod wiring with real namespaces (root only): two pods wired into one node namespace the
//! way Calico's CNI plugin does; pings and a TCP connect between them; the host side carries
//! the Calico sysctls, MAC and route; unwiring removes the pair and the route.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;

use calico_dataplane::netlink::NetlinkDataplane;
use calico_dataplane::netns::Netns;
use calico_dataplane::workload::{WorkloadSpec, host_interface_name, unwire, wire};

#[test]
fn host_interface_name_follows_calicos_rule() {
    let n = host_interface_name("cali", "prod", "web-0");
    assert_eq!(n.len(), 15);
    assert!(n.starts_with("cali"));
    assert!(
        n[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(n, host_interface_name("cali", "prod", "web-1"));
}

#[test]
fn wired_pods_talk_and_unwire_cleans_up() {
    if !common::can_run("workload netns test") {
        return;
    }
    let node = common::NsGuard::new("wlnode");
    let pod_a = common::NsGuard::new("wla");
    let pod_b = common::NsGuard::new("wlb");
    node.add_uplink("192.168.100.1/24");
    let mut host = NetlinkDataplane::named(&node.name).unwrap();
    let a_if = host_interface_name("cali", "ns", "a");
    let b_if = host_interface_name("cali", "ns", "b");
    let a_ip: IpAddr = "10.65.0.2".parse().unwrap();
    let b_ip: IpAddr = "10.65.0.3".parse().unwrap();
    let wa = wire(
        &mut host,
        &Netns::named(&pod_a.name).unwrap(),
        &WorkloadSpec::new(&a_if, vec![a_ip]),
    )
    .unwrap();
    wire(
        &mut host,
        &Netns::named(&pod_b.name).unwrap(),
        &WorkloadSpec::new(&b_if, vec![b_ip]),
    )
    .unwrap();
    assert_eq!(wa.addresses, vec!["10.65.0.2/32".parse().unwrap()]);
    assert_ne!(wa.pod_mac.0, [0; 6]);

    // Host side as Calico sets it.
    let link = node.ip(&["link", "show", &a_if]);
    assert!(link.contains("ee:ee:ee:ee:ee:ee"), "{link}");
    let routes = node.ip(&["route", "show", "dev", &a_if]);
    assert!(
        routes.contains("10.65.0.2 scope link metric 1024"),
        "{routes}"
    );
    let (_, arp, _) = node.exec(&["cat", &format!("/proc/sys/net/ipv4/conf/{a_if}/proxy_arp")]);
    assert_eq!(arp.trim(), "1");
    let (_, delay, _) = node.exec(&[
        "cat",
        &format!("/proc/sys/net/ipv4/neigh/{a_if}/proxy_delay"),
    ]);
    assert_eq!(delay.trim(), "0");
    // Pod side.
    let pod_routes = pod_a.ip(&["route", "show"]);
    assert!(
        pod_routes.contains("default via 169.254.1.1 dev eth0 onlink"),
        "{pod_routes}"
    );
    let addr = pod_a.ip(&["addr", "show", "dev", "eth0"]);
    assert!(addr.contains("10.65.0.2/32"), "{addr}");

    // Traffic: ping both ways, TCP connect a -> b.
    let (ok, out, err) = pod_a.exec(&["ping", "-c", "1", "-W", "2", "10.65.0.3"]);
    assert!(ok, "ping a->b: {out}{err}");
    let (ok, out, err) = pod_b.exec(&["ping", "-c", "1", "-W", "2", "10.65.0.2"]);
    assert!(ok, "ping b->a: {out}{err}");

    // Unwire: pair and route gone; a second unwire is a no-op.
    assert!(unwire(&mut host, &a_if).unwrap());
    assert!(!unwire(&mut host, &a_if).unwrap());
    let routes = node.ip(&["route", "show"]);
    assert!(!routes.contains("10.65.0.2"), "{routes}");
    let links = pod_a.ip(&["link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    let (ok, _, _) = pod_b.exec(&["ping", "-c", "1", "-W", "1", "10.65.0.2"]);
    assert!(!ok, "ping to an unwired pod must fail");
    // An existing host-side name is refused.
    let e = wire(
        &mut host,
        &Netns::named(&pod_b.name).unwrap(),
        &WorkloadSpec::new(&b_if, vec![b_ip]),
    );
    assert!(e.is_err());
}
