//! `routebench`: programming N routes (default 20,000) into a fresh network namespace with
//! calico-dataplane's netlink backend versus `ip -batch`, in the same run.
//!
//! ```text
//! routebench [--routes N] [--rounds R]
//! ```
//!
//! Needs root and iproute2. Creates the namespace `routebench-<pid>` with an uplink `eth0`
//! (veth, 10.0.0.1/16) and deletes it at the end (also on error or panic). Per round, each
//! side starts from an empty route set:
//!
//! - `ip -batch`: `ip -n NS -batch FILE` with N lines `route add DST via 10.0.0.2 dev eth0
//!   proto 80 onlink`, then `ip -batch` with N `route del` lines;
//! - calico-dataplane: `reconcile` of a desired state with the same N routes (observe the
//!   namespace, diff, apply pipelined), then `reconcile` again (must change nothing), then
//!   `reconcile` to an empty desired state (N deletions).
//!
//! Routes are N consecutive /26 blocks of 100.64.0.0/10. Prints JSON with the best and median
//! seconds of each step and the ratio to `ip -batch`.

use std::error::Error;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use calico_dataplane::netlink::NetlinkDataplane;
use calico_dataplane::reconcile::reconcile;
use calico_dataplane::state::{DesiredState, FELIX_PROTO, Ownership, Route, RouteKind, RouteScope};
use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

struct Ns(String);

impl Ns {
    fn ip(&self, args: &[&str]) -> Result<(), Box<dyn Error>> {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "ip -n {} {args:?}: {}",
                self.0,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn blocks(n: u32) -> Vec<Ipv4Net> {
    (0..n)
        .filter_map(|i| {
            let base = u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + i * 64;
            Ipv4Net::new(std::net::Ipv4Addr::from(base), 26).ok()
        })
        .collect()
}

fn desired(nets: &[Ipv4Net]) -> Result<DesiredState, Box<dyn Error>> {
    let via = "10.0.0.2".parse()?;
    Ok(DesiredState {
        routes: nets
            .iter()
            .map(|n| Route {
                dst: IpNet::V4(*n),
                kind: RouteKind::Unicast,
                via: Some(via),
                dev: Some("eth0".into()),
                proto: FELIX_PROTO,
                scope: RouteScope::Universe,
                src: None,
                metric: 0,
                onlink: true,
                mtu: None,
            })
            .collect(),
        ownership: Ownership::calico(),
        ..DesiredState::default()
    })
}

fn stats(v: &mut [f64]) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let best = v.first().copied().unwrap_or(0.0);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    json!({ "best_s": (best * 1e4).round() / 1e4, "median_s": (median * 1e4).round() / 1e4 })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut routes = 20_000u32;
    let mut rounds = 5u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--routes" => routes = args.next().ok_or("--routes N")?.parse()?,
            "--rounds" => rounds = args.next().ok_or("--rounds R")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let ns = Ns(format!("routebench-{}", std::process::id()));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).output();
    let st = Command::new("ip").args(["netns", "add", &ns.0]).status()?;
    if !st.success() {
        return Err("ip netns add failed (root needed)".into());
    }
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    ns.ip(&["link", "set", "eth0p", "up"])?;
    ns.ip(&["addr", "add", "10.0.0.1/16", "dev", "eth0"])?;

    let nets = blocks(routes);
    let dir = std::env::temp_dir().join(format!("routebench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let add_file = dir.join("add.batch");
    let del_file = dir.join("del.batch");
    {
        let mut a = std::io::BufWriter::new(std::fs::File::create(&add_file)?);
        let mut d = std::io::BufWriter::new(std::fs::File::create(&del_file)?);
        for n in &nets {
            writeln!(a, "route add {n} via 10.0.0.2 dev eth0 proto 80 onlink")?;
            writeln!(d, "route del {n} via 10.0.0.2 dev eth0 proto 80 onlink")?;
        }
    }
    let want = desired(&nets)?;
    let empty = DesiredState {
        ownership: Ownership::calico(),
        ..DesiredState::default()
    };
    let mut dp = NetlinkDataplane::named(&ns.0)?;
    let (mut ip_add, mut ip_del, mut our_add, mut our_noop, mut our_del) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let add = add_file.to_string_lossy().into_owned();
        let t = Instant::now();
        ns.ip(&["-batch", &add])?;
        ip_add.push(t.elapsed().as_secs_f64());
        let del = del_file.to_string_lossy().into_owned();
        let t = Instant::now();
        ns.ip(&["-batch", &del])?;
        ip_del.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let r = reconcile(&mut dp, &want)?;
        our_add.push(t.elapsed().as_secs_f64());
        if !r.is_complete() || r.applied.len() != nets.len() {
            return Err(format!(
                "add: applied {} of {}, failures {:?}",
                r.applied.len(),
                nets.len(),
                r.failed.first()
            )
            .into());
        }
        let t = Instant::now();
        let r = reconcile(&mut dp, &want)?;
        our_noop.push(t.elapsed().as_secs_f64());
        if !r.applied.is_empty() {
            return Err(format!("second reconcile applied {} changes", r.applied.len()).into());
        }
        let t = Instant::now();
        let r = reconcile(&mut dp, &empty)?;
        our_del.push(t.elapsed().as_secs_f64());
        if !r.is_complete() || r.applied.len() != nets.len() {
            return Err(format!("delete: applied {} of {}", r.applied.len(), nets.len()).into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = best(&our_add) / best(&ip_add);
    let out = json!({
        "routes": routes,
        "rounds": rounds,
        "ip_batch_add": stats(&mut ip_add),
        "ip_batch_del": stats(&mut ip_del),
        "dataplane_reconcile_add": stats(&mut our_add),
        "dataplane_reconcile_noop": stats(&mut our_noop),
        "dataplane_reconcile_del": stats(&mut our_del),
        "add_ratio_vs_ip_batch": (ratio * 100.0).round() / 100.0,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
