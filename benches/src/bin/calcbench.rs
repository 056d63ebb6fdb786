//! The node agent's calculation and kernel writes at scale, in this process (no etcd): the
//! `nodebench` cluster goes through the agent's own [`View`], [`Calculator`] and (with
//! `--kernel`, as root) [`KernelWriter`] programming a network namespace made for the run.
//!
//! Measured, printed as one JSON object:
//! - **cold**: decoding every object into the view, the first calculation, the first apply,
//!   and this process's peak RSS;
//! - **per update**, for the `nodebench` load (pod relabels on other nodes and policy rule
//!   changes, alternating) and separately for **IP-set member changes** alone (a pod on
//!   another node changes its address), and for **pod churn** (a pod created on another
//!   node, then deleted): view + calculation + kernel apply, p50/p99/max.
//!
//! ```text
//! calcbench [--pods 100000] [--policies 2000] [--updates 2000] [--dense] [--kernel]
//! ```

use std::error::Error;
use std::process::Command;
use std::time::Instant;

use calico_benches::node_scale::{NODE, cluster, update};
use calico_benches::{arg, quantiles};
use calico_datastore::KeyValue;
use calico_model::resources::Resource;
use calico_node::{CalcOptions, Calculator, KernelWriter, NftPending, NftUpdate, View};
use serde_json::json;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn kv(r: &Resource, rev: u64) -> Res<KeyValue> {
    Ok(KeyValue {
        key: calico_ipam::resources::key_of(r).into_bytes(),
        value: serde_json::to_vec(r)?,
        create_revision: rev,
        mod_revision: rev,
    })
}

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One put (or, with `delete`, the delete of its key) through the view, the calculation
/// and (when there is one) the kernel; milliseconds.
fn step(
    view: &mut View,
    calc: &mut Calculator,
    kernel: &mut Option<KernelWriter>,
    r: &Resource,
    rev: u64,
) -> Res<f64> {
    change(view, calc, kernel, r, rev, false)
}

fn change(
    view: &mut View,
    calc: &mut Calculator,
    kernel: &mut Option<KernelWriter>,
    r: &Resource,
    rev: u64,
    delete: bool,
) -> Res<f64> {
    let t = Instant::now();
    let ch = if delete {
        view.delete(calico_ipam::resources::key_of(r).as_bytes())
    } else {
        view.put(&kv(r, rev)?)
    };
    calc.change(ch);
    let touched = calc.compute(view);
    let pending = calc.take_nft();
    if let Some(k) = kernel {
        let nft = calc.ruleset().and_then(|rs| match &pending {
            NftPending::Delta(delta) => Some(NftUpdate::Delta { delta, result: rs }),
            NftPending::Whole => Some(NftUpdate::Whole(rs)),
            _ => None,
        });
        let out = calc.outputs();
        k.apply(
            nft,
            touched.routes.then_some(out.routes.as_ref()).flatten(),
            false,
            false,
        )?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

fn run() -> Res<serde_json::Value> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "calcbench [--pods N] [--policies N] [--updates N] [--dense] [--kernel]\n\n\
             The agent's calculation (and with --kernel, as root, its kernel writes into a\n\
             namespace made for the run) for nodebench's cluster, in-process."
        );
        return Ok(json!(null));
    }
    let pods = arg(&args, "--pods", 100_000)?;
    let policies = arg(&args, "--policies", 2_000)?;
    let updates = arg(&args, "--updates", 2_000)?;
    let narrow = !args.iter().any(|a| a == "--dense");
    let with_kernel = args.iter().any(|a| a == "--kernel");

    let objects = cluster(pods, policies, narrow);
    let values: Vec<KeyValue> = objects
        .iter()
        .enumerate()
        .map(|(i, r)| kv(r, i as u64 + 1))
        .collect::<Res<_>>()?;
    let rss_input = calico_benches::rss_kib();

    if !with_kernel {
        return measure(&objects, values, None, policies, updates, narrow, rss_input);
    }
    let name = format!("calico-calcbench-{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &name]).status()?;
    if !ok.success() {
        return Err("ip netns add failed (--kernel needs root)".into());
    }
    let _ns = Ns(name.clone());
    let handle = calico_dataplane::netns::Netns::named(&name)?;
    handle.run(|| {
        let kernel = KernelWriter::open()?;
        measure(
            &objects,
            values,
            Some(kernel),
            policies,
            updates,
            narrow,
            rss_input,
        )
    })?
}

/// The cold start and the updates (in the namespace when `kernel` is given).
fn measure(
    objects: &[Resource],
    values: Vec<KeyValue>,
    mut kernel: Option<KernelWriter>,
    policies: usize,
    updates: usize,
    narrow: bool,
    rss_input: Option<u64>,
) -> Res<serde_json::Value> {
    let pods = objects
        .iter()
        .filter(|r| matches!(r, Resource::Pod(_)))
        .count();
    let with_kernel = kernel.is_some();
    let t = Instant::now();
    let mut view = View::new();
    let mut calc = Calculator::new(CalcOptions {
        node: NODE.to_owned(),
        parent_iface: "eth0".to_owned(),
        host_mtu: 1500,
        routes: false,
        bgp: false,
    });
    // As the agent takes in its first list: decoded on every core, then one by one.
    for ch in view.put_many(&values) {
        calc.change(ch);
    }
    drop(values);
    let decode_s = t.elapsed().as_secs_f64();
    let rss_view = calico_benches::rss_kib();
    let t = Instant::now();
    calc.compute(&mut view);
    let compute_s = t.elapsed().as_secs_f64();
    let rss_computed = calico_benches::rss_kib();
    let t = Instant::now();
    if let Some(k) = &mut kernel {
        calc.take_nft();
        k.apply(calc.ruleset().map(NftUpdate::Whole), None, false, false)?;
    }
    let apply_s = t.elapsed().as_secs_f64();
    let rss_cold = calico_benches::peak_rss_kib();

    let remote: Vec<&Resource> = objects
        .iter()
        .filter(|r| matches!(r, Resource::Pod(p) if p.spec.node_name != NODE))
        .collect();
    let mut rev = objects.len() as u64 + 1;
    let mut mixed = Vec::with_capacity(updates);
    let t = Instant::now();
    for i in 0..updates {
        let r = update(i, &remote, policies, narrow).ok_or("generated policy does not load")?;
        rev += 1;
        mixed.push(step(&mut view, &mut calc, &mut kernel, &r, rev)?);
    }
    let mixed_s = t.elapsed().as_secs_f64();
    // IP-set member changes: a remote pod that some policy's set holds moves to a new
    // address (its old one leaves the set, the new one joins).
    let mut members = Vec::with_capacity(updates);
    for i in 0..updates {
        let mut r = remote[(i * 7) % remote.len()].clone();
        if let Resource::Pod(p) = &mut r {
            let ip = format!("10.{}.{}.{}", 200 + i / 65536 % 50, i / 256 % 256, i % 256);
            p.status.pod_ip = ip.clone();
            p.status.pod_ips = vec![calico_model::resources::k8s::PodIp { ip }];
        }
        rev += 1;
        members.push(step(&mut view, &mut calc, &mut kernel, &r, rev)?);
    }
    // Pod churn: a pod appears on another node (it joins the sets its labels select), then
    // goes away again.
    let mut churn = Vec::with_capacity(updates);
    for i in 0..updates.div_ceil(2) {
        let mut r = remote[(i * 13) % remote.len()].clone();
        if let Resource::Pod(p) = &mut r {
            p.metadata.name = format!("churn{i}");
            let ip = format!("10.{}.{}.{}", 250 + i / 65536 % 5, i / 256 % 256, i % 256);
            p.status.pod_ip = ip.clone();
            p.status.pod_ips = vec![calico_model::resources::k8s::PodIp { ip }];
        }
        rev += 1;
        churn.push(change(&mut view, &mut calc, &mut kernel, &r, rev, false)?);
        rev += 1;
        churn.push(change(&mut view, &mut calc, &mut kernel, &r, rev, true)?);
    }
    let problems = calc.take_problems();
    Ok(json!({
        "pods": pods, "policies": policies, "selectors": if narrow { "narrow" } else { "dense" },
        "kernel": with_kernel,
        "rss_input_mib": rss_input.map(|k| k / 1024),
        "cold": {
            "decode_s": (decode_s * 1000.0).round() / 1000.0,
            "compute_s": (compute_s * 1000.0).round() / 1000.0,
            "apply_s": (apply_s * 1000.0).round() / 1000.0,
            "peak_rss_mib": rss_cold.map(|k| k / 1024),
            "rss_after_decode_mib": rss_view.map(|k| k / 1024),
            "rss_after_compute_mib": rss_computed.map(|k| k / 1024),
        },
        "mixed_updates": quantiles(mixed),
        "mixed_ms_per_update": (mixed_s * 1e3 / updates.max(1) as f64 * 1000.0).round() / 1000.0,
        "ip_set_member_changes": quantiles(members),
        "pod_churn": quantiles(churn),
        "peak_rss_mib": calico_benches::peak_rss_kib().map(|k| k / 1024),
        "rss_end_mib": calico_benches::rss_kib().map(|k| k / 1024),
        "problems": problems.len(),
    }))
}

fn main() {
    match run() {
        Ok(v) if !v.is_null() => println!("{v}"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("calcbench: {e}");
            std::process::exit(1);
        }
    }
}
