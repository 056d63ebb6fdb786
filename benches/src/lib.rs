//! Benchmarks and comparison harnesses for the calico-* crates.
//!
//! - [`workload`]: an in-process port of the selector workload generator;
//! - [`input`]: reading a workload directory written by `benches/scripts/gen_selector_workload.py`;
//! - [`fnv1a64`]: the hash `selbench` reports so implementations can be compared;
//! - [`route_scale`]: synthetic large clusters for the routing benchmarks;
//! - [`policy_scale`]: synthetic large clusters for the policy compiler benchmarks;
//! - [`node_scale`]: the node agent's scale workload (`nodebench`, `calcbench`).

pub mod input;
pub mod node_scale;
pub mod policy_scale;
pub mod workload;

/// The value of option `name` (`--pods 100`) in `args`, or `default` when absent; an error
/// naming the option when its value is missing or not a number.
pub fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        }
        None => Ok(default),
    }
}

/// The `calico` program a harness runs: `--calico PATH`, else `calico` beside the running
/// executable (where `cargo build --release -p calico-cli` puts it); an error when it is not
/// a file.
pub fn calico_binary(args: &[String]) -> Result<std::path::PathBuf, String> {
    let path = match args.iter().position(|a| a == "--calico") {
        Some(i) => std::path::PathBuf::from(args.get(i + 1).ok_or("--calico needs a path")?),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))?
            .with_file_name("calico"),
    };
    if !path.is_file() {
        return Err(format!(
            "{} not found (build calico-cli or pass --calico)",
            path.display()
        ));
    }
    Ok(path)
}

/// Peak resident set size of this process in KiB (`VmHWM` of /proc/self/status).
pub fn peak_rss_kib() -> Option<u64> {
    calico_node::memory::kib(None, calico_node::memory::Memory::PeakResident)
}

/// Current resident set size of this process in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    calico_node::memory::kib(None, calico_node::memory::Memory::Resident)
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The `per_selector_hash` of `selbench`: FNV-1a over each count in ASCII decimal followed by
/// a comma, in order.
pub fn per_selector_hash(counts: &[usize]) -> u64 {
    let mut text = String::with_capacity(counts.len() * 5);
    for c in counts {
        text.push_str(&c.to_string());
        text.push(',');
    }
    fnv1a64(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(per_selector_hash(&[1, 22]), fnv1a64(b"1,22,"));
    }
}

pub mod route_scale;

/// `n`, `p50_ms`, `p90_ms`, `p99_ms` and `max_ms` of durations in milliseconds (rounded to
/// microseconds), as the harnesses print them.
pub fn quantiles(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .map(|x| (x * 1000.0).round() / 1000.0)
    };
    serde_json::json!({"n": v.len(), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)})
}
