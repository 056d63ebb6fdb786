//! The policy compiler at scale: a generated cluster of 10,000 pods in 100
//! namespaces with 2,000 policies (Kubernetes, Calico namespaced in two tiers, global).
//! Times loading, the model build, the full compile and the incremental compiler's set-up,
//! with the resident memory after each; then 200 updates of one policy (alternating
//! selectors and rules) and 200 pod additions/removals through
//! [`calico_policy::incremental::Compiler`], against a full rebuild + diff of the same change
//! in the same run. Prints JSON.
//!
//! ```text
//! compilebench [--pods N] [--namespaces N] [--policies N] [--updates N]
//! ```

use std::error::Error;
use std::time::Instant;

use calico_benches::arg;
use calico_benches::policy_scale::{
    PolicyScale, calico_policy_json, object, pod_json, policy_cluster,
};
use calico_benches::{peak_rss_kib, rss_kib};
use calico_policy::Model;
use calico_policy::incremental::{Change, Compiler, ObjectKey, UpdatePath};
use serde_json::json;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// This thread's CPU time in milliseconds (steadier than wall time on a loaded machine).
fn cpu_ms() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6)
        .unwrap_or(f64::NAN)
}

fn stats(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    json!({"n": v.len(), "median_ms": at(0.5), "p90_ms": at(0.9), "max_ms": v.last()})
}

fn run() -> Result<serde_json::Value, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("compilebench [--pods N] [--namespaces N] [--policies N] [--updates N]");
        return Ok(json!(null));
    }
    let scale = PolicyScale {
        pods: arg(&args, "--pods", 10_000)?,
        namespaces: arg(&args, "--namespaces", 100)?,
        policies: arg(&args, "--policies", 2_000)?,
    };
    let updates = arg(&args, "--updates", 200)?;

    let t = Instant::now();
    let set = policy_cluster(scale);
    if !set.errors.is_empty() {
        return Err(format!("generated cluster: {} load errors", set.errors.len()).into());
    }
    let load_ms = ms(t);
    let rss_loaded = rss_kib();

    let t = Instant::now();
    let model = Model::build(&set).map_err(|e| e.to_string())?;
    let build_ms = ms(t);
    let t = Instant::now();
    let program = model.compile();
    let compile_ms = ms(t);
    let rss_compiled = rss_kib();
    let rules: usize = program.policies.values().map(|p| p.rules.len()).sum();
    let summary = json!({
        "endpoints": model.endpoints().len(),
        "policies": model.policies().len(),
        "policy_programs": program.policies.len(),
        "rules": rules,
        "sets": program.sets.len(),
    });
    drop(program);
    drop(model);

    let t = Instant::now();
    let mut compiler = Compiler::new(&set).map_err(|e| e.to_string())?;
    let compiler_ms = ms(t);
    let rss_compiler = rss_kib();

    // One Calico policy changed back and forth (selector, ports and nets change).
    let target = 3; // a Calico NetworkPolicy (i % 5 >= 2, i % 3 != 2)
    let mut policy_times = Vec::with_capacity(updates);
    let mut policy_cpu = Vec::with_capacity(updates);
    let mut touched = 0usize;
    for k in 0..updates {
        let o = object(&calico_policy_json(target, scale.namespaces, 1 + k % 2))
            .ok_or("policy JSON did not load")?;
        let t = Instant::now();
        let c = cpu_ms();
        let u = compiler.apply(Change::Upsert(Box::new(o)))?;
        policy_cpu.push(cpu_ms() - c);
        policy_times.push(ms(t));
        if u.path != UpdatePath::Incremental {
            return Err("a policy update was not incremental".into());
        }
        touched += u.changes.endpoints_changed.len();
    }
    // Pods added and removed.
    let mut pod_times = Vec::with_capacity(updates);
    for k in 0..updates {
        // Even steps add a new pod, odd steps remove it again.
        let i = scale.pods + k / 2;
        let o = object(&pod_json(i, scale.namespaces, k % 200)).ok_or("pod JSON")?;
        let t = Instant::now();
        let u = if k % 2 == 0 {
            compiler.apply(Change::Upsert(Box::new(o)))?
        } else {
            compiler.apply(Change::Delete(ObjectKey::of(&o.resource)))?
        };
        pod_times.push(ms(t));
        if u.path != UpdatePath::Incremental {
            return Err("a pod update was not incremental".into());
        }
    }
    // The same policy change the non-incremental way: rebuild, compile, diff.
    let mut full_times = Vec::new();
    let mut objects = compiler.objects().to_vec();
    let mut old = Model::build(&set).map_err(|e| e.to_string())?.compile();
    let pos = objects
        .iter()
        .position(|o| o.resource.name() == format!("default.c{target}"))
        .ok_or("target policy missing")?;
    for k in 0..5 {
        let o = object(&calico_policy_json(target, scale.namespaces, 1 + k % 2)).ok_or("json")?;
        objects[pos] = o;
        let mut s = calico_model::loader::LoadedSet::new();
        s.objects = objects.clone();
        let t = Instant::now();
        let m = Model::build(&s).map_err(|e| e.to_string())?;
        let p = m.compile();
        let changes = old.changes(&p);
        full_times.push(ms(t));
        std::hint::black_box(changes);
        old = p;
    }
    Ok(json!({
        "scale": {"pods": scale.pods, "namespaces": scale.namespaces, "policies": scale.policies},
        "compiled": summary,
        "load_ms": load_ms,
        "model_build_ms": build_ms,
        "compile_ms": compile_ms,
        "incremental_setup_ms": compiler_ms,
        "rss_kib": {"after_load": rss_loaded, "after_compile": rss_compiled, "with_compiler": rss_compiler, "peak": peak_rss_kib()},
        "policy_update": stats(policy_times),
        "policy_update_cpu": stats(policy_cpu),
        "endpoint_programs_touched_per_policy_update": touched as f64 / updates.max(1) as f64,
        "pod_update": stats(pod_times),
        "full_rebuild_and_diff": stats(full_times),
    }))
}

fn main() {
    match run() {
        Ok(serde_json::Value::Null) => {}
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(e) => {
            eprintln!("compilebench: {e}");
            std::process::exit(1);
        }
    }
}
