//! Parses a CNI network configuration the way the `calico` and `calico-ipam` plugins do and
//! prints what they would use: the node, the datastore (with where its TLS material comes
//! from, never a secret) and the IPAM settings. Nothing is opened or changed; no root needed.
//!
//! `cargo run -p calico-cni --example resolve_config [CONFIG.json]`: without an argument an
//! example configuration is used. The datastore environment variables the plugins read
//! (`ETCD_ENDPOINTS`, `DATASTORE_TYPE`, ...) are taken from this process's environment.

use std::error::Error;

use calico_cni::config::NetConf;
use calico_datastore::DatastoreTarget;

const EXAMPLE: &str = r#"{
    "cniVersion": "1.0.0",
    "name": "k8s-pod-network",
    "type": "calico",
    "mtu": 1450,
    "etcd_endpoints": "https://10.0.0.10:2379,https://10.0.0.11:2379",
    "etcd_ca_cert_file": "/etc/calico/pki/ca.pem",
    "ipam": {
        "type": "calico-ipam",
        "ipv4_pools": ["10.244.0.0/16"],
        "assign_ipv6": "true"
    }
}"#;

fn main() -> Result<(), Box<dyn Error>> {
    let bytes = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => EXAMPLE.as_bytes().to_vec(),
    };
    let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "node-1".to_owned());
    let conf = NetConf::parse_with_env(&bytes, &hostname, &|k| std::env::var(k).ok())?;

    println!("network   {} (CNI {})", conf.name, conf.cni_version);
    println!("plugin    {}, pod MTU {}", conf.plugin_type, conf.mtu);
    println!("node      {}", conf.nodename);
    println!("datastore {}", conf.store_url);
    match &conf.datastore {
        DatastoreTarget::Etcd(etcd) => {
            for e in &etcd.endpoints {
                println!("  member  {e}");
            }
            if let Some(ca) = &etcd.tls.ca {
                println!("  CA      {ca}");
            }
            println!("  client certificate: {}", etcd.tls.client.is_some());
            println!("  credentials: {}", etcd.credentials.is_some());
        }
        DatastoreTarget::File(path) => println!("  file    {}", path.display()),
        DatastoreTarget::Memory => println!("  in-process memory store"),
    }
    let ipam = &conf.ipam;
    println!("ipam      {}", ipam.plugin_type);
    println!(
        "  IPv4 {} from {:?}",
        if ipam.assign_ipv4 { "on" } else { "off" },
        ipam.ipv4_pools
    );
    println!(
        "  IPv6 {} from {:?}",
        if ipam.assign_ipv6 { "on" } else { "off" },
        ipam.ipv6_pools
    );
    if let Some(gw) = ipam.gateway {
        println!("  gateway {gw}");
    }
    Ok(())
}
