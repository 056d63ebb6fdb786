//! One conformance suite for every backend: the in-memory one, and netlink inside a network
//! namespace this test creates (root only; see `common::can_run`).
//!
//! Steps: program a node's state (VXLAN device with address, neighbour and FDB entries,
//! blackhole/VXLAN/same-subnet/workload routes, workload sysctls) with an unsupported `ipip`
//! device among it; check that everything else landed exactly, that `tunl0` is reported and
//! its route skipped; re-run (no change); leave foreign routes alone while removing stale
//! owned ones; repair drift (deleted route, neighbour, FDB entry, reset sysctl) with exactly
//! the missing operations; recreate the VXLAN device when its VNI changes; delete owned
//! devices no longer desired.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use calico_dataplane::Dataplane;
use calico_dataplane::dataplane::Op;
use calico_dataplane::memory::MemoryDataplane;
use calico_dataplane::reconcile::{diff, reconcile};
use calico_dataplane::state::{
    Address, DesiredState, Device, DeviceKind, FELIX_PROTO, FdbEntry, Mac, Neighbour, Ownership,
    Route, RouteKind, RouteProtocol, RouteScope, Sysctl,
};

fn route(dst: &str) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        kind: RouteKind::Unicast,
        via: None,
        dev: None,
        proto: FELIX_PROTO,
        scope: RouteScope::Universe,
        src: None,
        metric: 0,
        onlink: false,
        mtu: None,
    }
}

const VTEP_MAC: &str = "66:01:02:03:04:05";
const REMOTE_MAC: &str = "66:0a:0b:0c:0d:0e";

fn vxlan(vni: u32) -> Device {
    Device {
        name: "vxlan.calico".into(),
        kind: DeviceKind::Vxlan {
            vni,
            port: 4789,
            local: Some("10.0.0.1".parse().unwrap()),
            parent: Some("eth0".into()),
        },
        mtu: 1450,
        mac: Some(VTEP_MAC.parse().unwrap()),
    }
}

fn desired(with_ipip: bool) -> DesiredState {
    let mut devices = vec![vxlan(4096)];
    let mut routes = vec![
        Route {
            kind: RouteKind::Blackhole,
            ..route("10.244.0.0/26")
        },
        Route {
            via: Some("10.244.1.0".parse().unwrap()),
            dev: Some("vxlan.calico".into()),
            onlink: true,
            mtu: Some(1450),
            ..route("10.244.1.0/26")
        },
        Route {
            via: Some("10.0.0.2".parse().unwrap()),
            dev: Some("eth0".into()),
            onlink: true,
            ..route("10.244.2.0/26")
        },
        Route {
            dev: Some("cali0123456789a".into()),
            proto: RouteProtocol::BOOT,
            scope: RouteScope::Link,
            metric: 1024,
            ..route("10.244.0.5/32")
        },
    ];
    if with_ipip {
        devices.push(Device {
            name: "tunl0".into(),
            kind: DeviceKind::Ipip,
            mtu: 1480,
            mac: None,
        });
        routes.push(Route {
            via: Some("10.0.0.3".parse().unwrap()),
            dev: Some("tunl0".into()),
            onlink: true,
            ..route("10.244.3.0/26")
        });
    }
    DesiredState {
        devices,
        addresses: vec![Address {
            dev: "vxlan.calico".into(),
            addr: "10.244.0.0/32".parse().unwrap(),
        }],
        routes,
        neighbours: vec![
            Neighbour {
                dev: "vxlan.calico".into(),
                ip: "10.244.1.0".parse().unwrap(),
                mac: REMOTE_MAC.parse().unwrap(),
            },
            Neighbour {
                dev: "cali0123456789a".into(),
                ip: "10.244.0.5".parse().unwrap(),
                mac: "aa:bb:cc:00:00:05".parse().unwrap(),
            },
        ],
        fdb: vec![FdbEntry {
            dev: "vxlan.calico".into(),
            mac: REMOTE_MAC.parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
        }],
        sysctls: Sysctl::workload_interface("cali0123456789a"),
        nft: None,
        ownership: Ownership::calico(),
    }
}

fn owned_routes<D: Dataplane>(dp: &mut D, own: &Ownership) -> BTreeSet<Route> {
    dp.observe(&[])
        .unwrap()
        .routes
        .into_iter()
        .filter(|r| own.owns_route(r))
        .collect()
}

fn check_state<D: Dataplane>(dp: &mut D, want: &DesiredState) {
    let paths: Vec<&str> = want.sysctls.iter().map(|s| s.path.as_str()).collect();
    let o = dp.observe(&paths).unwrap();
    let wanted_routes: BTreeSet<Route> = want
        .routes
        .iter()
        .filter(|r| r.dev.as_deref() != Some("tunl0"))
        .cloned()
        .collect();
    let have: BTreeSet<Route> = o
        .routes
        .iter()
        .filter(|r| want.ownership.owns_route(r))
        .cloned()
        .collect();
    assert_eq!(
        have, wanted_routes,
        "owned routes differ from the desired ones"
    );
    let l = o.link("vxlan.calico").expect("vxlan.calico exists");
    assert_eq!(l.kind.as_deref(), Some("vxlan"));
    assert_eq!(l.mtu, 1450);
    assert!(l.up);
    assert_eq!(l.mac, Some(VTEP_MAC.parse::<Mac>().unwrap()));
    if let DeviceKind::Vxlan { vni, .. } = &want.devices[0].kind {
        assert_eq!(l.details.vni, Some(*vni));
    }
    assert_eq!(l.details.port, Some(4789));
    assert_eq!(l.details.learning, Some(false));
    for a in &want.addresses {
        assert!(o.addresses.contains(a), "missing address {a:?}");
    }
    for n in &want.neighbours {
        assert!(o.neighbours.contains(n), "missing neighbour {n:?}");
    }
    for f in &want.fdb {
        assert!(o.fdb.contains(f), "missing fdb {f:?}: {:?}", o.fdb);
    }
    for s in &want.sysctls {
        assert_eq!(o.sysctls.get(&s.path), Some(&s.value), "sysctl {}", s.path);
    }
    assert!(o.link("tunl0").is_none());
}

const EXAMPLE: &str = include_str!("../../calico-policy/tests/nft/example.yaml");

fn ruleset() -> calico_policy::nft::Ruleset {
    let model =
        calico_policy::Model::build(&calico_model::loader::load_str("m.yaml", EXAMPLE)).unwrap();
    let program = model.compile();
    calico_policy::nft::build_ruleset(
        &model,
        &program,
        "node1",
        &calico_policy::nft::RenderOptions::default(),
    )
}

/// The nftables table: programmed with the rest, idempotent, repaired after a flush
/// (`flush` empties the backend's table), dry-run reports without changing.
fn nft_steps<D: Dataplane>(dp: &mut D, base: &DesiredState, flush: impl Fn(&mut D)) {
    let mut want = base.clone();
    want.nft = Some(ruleset());
    assert!(!want.nft.as_ref().unwrap().chains.is_empty());
    let dry = calico_dataplane::reconcile::plan(dp, &want).unwrap();
    assert!(!dry.nft.is_empty() && dry.ops.is_empty(), "{dry:?}");
    let report = reconcile(dp, &want).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(!report.nft_changes.is_empty());
    assert!(report.applied.is_empty());
    let again = reconcile(dp, &want).unwrap();
    assert!(!again.changed(), "{again:?}");
    flush(dp);
    let dry = calico_dataplane::reconcile::plan(dp, &want).unwrap();
    assert!(!dry.nft.is_empty(), "drift seen after a flush");
    let repaired = reconcile(dp, &want).unwrap();
    assert!(
        repaired.is_complete() && !repaired.nft_changes.is_empty(),
        "{repaired:?}"
    );
    assert!(!reconcile(dp, &want).unwrap().changed());
}

fn suite<D: Dataplane>(dp: &mut D, flush: impl Fn(&mut D)) {
    // 1. First apply, with an ipip device the kernel lacks.
    let want = desired(true);
    let report = reconcile(dp, &want).unwrap();
    assert!(report.failed.is_empty(), "failures: {:?}", report.failed);
    assert_eq!(report.unsupported_devices, vec!["tunl0".to_owned()]);
    assert!(!report.is_complete());
    assert!(
        report
            .skipped
            .iter()
            .any(|o| matches!(o, Op::ReplaceRoute(r) if r.dev.as_deref() == Some("tunl0"))),
        "the tunl0 route is skipped: {:?}",
        report.skipped
    );
    check_state(dp, &want);

    // 2. Without ipip: complete; twice in a row changes nothing.
    let want = desired(false);
    let report = reconcile(dp, &want).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(report.applied.is_empty(), "{:?}", report.applied);
    let again = reconcile(dp, &want).unwrap();
    assert!(again.applied.is_empty() && again.is_complete());

    // 3. Foreign routes stay, stale owned routes go.
    let foreign = Route {
        via: Some("10.0.0.2".parse().unwrap()),
        dev: Some("eth0".into()),
        proto: RouteProtocol::STATIC,
        ..route("192.168.50.0/24")
    };
    let stale = Route {
        kind: RouteKind::Blackhole,
        ..route("10.99.0.0/24")
    };
    for r in dp.apply(&[
        Op::ReplaceRoute(foreign.clone()),
        Op::ReplaceRoute(stale.clone()),
    ]) {
        r.unwrap();
    }
    let report = reconcile(dp, &want).unwrap();
    assert_eq!(report.applied, vec![Op::DelRoute(stale)]);
    let all = dp.observe(&[]).unwrap().routes;
    assert!(all.contains(&foreign), "foreign route kept");
    assert!(report.is_complete());

    // 4. Drift is repaired with exactly the missing pieces.
    let gone = want.routes[1].clone();
    let reset = Sysctl::new("net/ipv4/conf/cali0123456789a/proxy_arp", "0");
    for r in dp.apply(&[
        Op::DelRoute(gone.clone()),
        Op::DelNeighbour(want.neighbours[0].clone()),
        Op::DelFdb(want.fdb[0].clone()),
        Op::SetSysctl(reset),
    ]) {
        r.unwrap();
    }
    let report = reconcile(dp, &want).unwrap();
    let applied: BTreeSet<String> = report.applied.iter().map(ToString::to_string).collect();
    let expected: BTreeSet<String> = [
        Op::ReplaceRoute(gone),
        Op::ReplaceNeighbour(want.neighbours[0].clone()),
        Op::ReplaceFdb(want.fdb[0].clone()),
        Op::SetSysctl(Sysctl::new("net/ipv4/conf/cali0123456789a/proxy_arp", "1")),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(applied, expected);
    check_state(dp, &want);
    assert!(reconcile(dp, &want).unwrap().applied.is_empty());

    // 5. A changed VNI recreates the device and restores everything on it.
    let mut want2 = want.clone();
    want2.devices[0] = vxlan(4097);
    let report = reconcile(dp, &want2).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(
        report
            .applied
            .contains(&Op::DeleteDevice("vxlan.calico".into()))
    );
    check_state(dp, &want2);
    assert!(reconcile(dp, &want2).unwrap().applied.is_empty());

    // 6. A removed route is deleted; a device no longer desired is deleted.
    let mut want3 = want2.clone();
    let removed = want3.routes.remove(2);
    let report = reconcile(dp, &want3).unwrap();
    assert_eq!(report.applied, vec![Op::DelRoute(removed)]);
    let mut want4 = want3.clone();
    want4.devices.clear();
    want4.addresses.clear();
    want4.neighbours.retain(|n| n.dev != "vxlan.calico");
    want4.fdb.clear();
    want4
        .routes
        .retain(|r| r.dev.as_deref() != Some("vxlan.calico"));
    let report = reconcile(dp, &want4).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report.applied,
        vec![Op::DeleteDevice("vxlan.calico".into())]
    );
    let o = dp.observe(&[]).unwrap();
    assert!(o.link("vxlan.calico").is_none());
    let own = owned_routes(dp, &want4.ownership);
    assert_eq!(own, want4.routes.iter().cloned().collect());
    assert!(diff(&want4, &dp.observe(&[]).unwrap()).sysctl_free_is_empty());

    nft_steps(dp, &want4, flush);
}

trait EmptyExceptSysctls {
    fn sysctl_free_is_empty(&self) -> bool;
}

impl EmptyExceptSysctls for calico_dataplane::Changes {
    fn sysctl_free_is_empty(&self) -> bool {
        // `observe(&[])` reads no sysctls, so only sysctl writes may be planned.
        self.ops.iter().all(|o| matches!(o, Op::SetSysctl(_)))
    }
}

#[test]
fn memory_backend_conforms() {
    let mut dp = MemoryDataplane::without_ipip();
    dp.add_link("eth0", Some("veth"));
    dp.add_link("cali0123456789a", Some("veth"));
    for r in dp.apply(&[Op::AddAddress(Address {
        dev: "eth0".into(),
        addr: "10.0.0.1/24".parse().unwrap(),
    })]) {
        r.unwrap();
    }
    suite(&mut dp, |dp| {
        dp.nft = Some(calico_policy::nft::Ruleset::default())
    });
}

#[test]
fn netlink_backend_conforms() {
    if !common::can_run("netlink conformance") {
        return;
    }
    let ns = common::NsGuard::new("conf");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&[
        "link",
        "add",
        "cali0123456789a",
        "type",
        "veth",
        "peer",
        "name",
        "calip",
    ]);
    for l in ["eth0", "eth0p", "cali0123456789a", "calip"] {
        ns.ip(&["link", "set", l, "up"]);
    }
    ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "eth0"]);
    // Another table, which must survive untouched.
    let (ok, _, err) = ns.exec(&["nft", "add", "table", "ip", "other"]);
    assert!(ok, "{err}");
    let mut dp = calico_dataplane::netlink::NetlinkDataplane::named(&ns.name).unwrap();
    let name = ns.name.clone();
    suite(&mut dp, move |_| {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &name, "nft", "flush", "table", "inet", "calico",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    let (ok, tables, _) = ns.exec(&["nft", "list", "tables"]);
    assert!(
        ok && tables.contains("table ip other") && tables.contains("table inet calico"),
        "{tables}"
    );
    // The kernel agrees with what the backend read: `ip route` shows the device routes.
    let text = ns.ip(&["route", "show", "proto", "80"]);
    assert!(text.contains("10.244.0.0/26"), "{text}");
}
