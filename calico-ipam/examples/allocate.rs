//! Allocates addresses for two pods on a host from an IPPool, then releases one, on an
//! in-memory store (the same code runs on a `file:` database or etcd).
//!
//! ```text
//! cargo run -p calico-ipam --example allocate
//! ```

use std::sync::Arc;

use calico_datastore::{MemoryStore, Store};
use calico_ipam::resources::resource_key;
use calico_ipam::{AutoAssignRequest, Ipam};
use calico_model::resources::ipam::AllowedUse;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store.put(
        resource_key("IPPool", None, "pods").as_bytes(),
        br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"pods"},"spec":{"cidr":"10.244.0.0/22","blockSize":26}}"#,
    )?;
    let ipam = Ipam::new(store.clone());
    for pod in ["web-0", "web-1"] {
        let got = ipam.auto_assign(&AutoAssignRequest {
            num4: 1,
            handle: Some(format!("k8s-pod-network.{pod}")),
            host: "node-a".into(),
            intended_use: AllowedUse::Workload,
            ..Default::default()
        })?;
        for a in &got.v4 {
            println!("{pod}: {}", a.addr());
        }
    }
    let freed = ipam.release_by_handle("k8s-pod-network.web-0")?;
    println!("released {freed:?}");
    let report = calico_ipam::check::check(&ipam)?;
    println!("check: {} finding(s)", report.findings.len());
    Ok(())
}
