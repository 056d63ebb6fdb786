//! The calico-ipam plugin against an etcd member that serves TLS and requires client
//! certificates, configured with Calico's network-config keys (`etcd_endpoints`,
//! `etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file`). Without etcd this prints that
//! it was NOT run (and fails if `CALICO_REQUIRE_ETCD=1`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use calico_datastore::{ClientIdentity, EtcdConnection, EtcdTls, Pem, Store, parse_endpoints};
use calico_datastore_etcd::testkit::{EtcdCluster, MemberOptions, ServerTls, TestPki, tls_or_skip};
use calico_datastore_etcd::{EtcdOptions, EtcdStore};
use common::*;
use serde_json::json;

#[test]
fn ipam_plugin_on_a_tls_member() {
    if tls_or_skip("ipam_plugin_on_a_tls_member").is_none() {
        return;
    }
    let pki = TestPki::new("cni").unwrap();
    let other = TestPki::new("other").unwrap();
    let server_cert = pki.issue("server", 1).unwrap();
    let client = pki.issue("client", 1).unwrap();
    let server = EtcdCluster::start_secure(&MemberOptions {
        tls: Some(ServerTls {
            cert: server_cert.cert.clone(),
            key: server_cert.key.clone(),
            client_ca: Some(pki.ca.clone()),
        }),
        auth_token_ttl: None,
    })
    .unwrap();
    let ep = server.endpoints();
    let conn = EtcdConnection {
        endpoints: parse_endpoints(&ep).unwrap(),
        tls: EtcdTls {
            ca: Some(Pem::File(pki.ca.clone())),
            client: Some(ClientIdentity {
                cert: Pem::File(client.cert.clone()),
                key: Pem::File(client.key.clone()),
            }),
        },
        credentials: None,
    };
    let store: Arc<dyn Store> =
        Arc::new(EtcdStore::connect_to(&conn, EtcdOptions::default()).unwrap());
    add_pool(&*store, "p", "10.78.0.0/24", 26);

    let conf = |ca: &std::path::Path| {
        json!({
            "cniVersion": "1.0.0", "name": "net1", "type": "ptp",
            "ipam": {"type": "calico-ipam"}, "nodename": "node-1",
            "datastore_type": "etcdv3", "etcd_endpoints": ep,
            "etcd_ca_cert_file": ca, "etcd_cert_file": client.cert, "etcd_key_file": client.key,
        })
    };
    let att = Attachment {
        container_id: "c1".into(),
        netns: Some("/var/run/netns/does-not-matter".into()),
        ifname: "eth0".into(),
        args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".into(),
    };
    let path = default_cni_path();
    let r = invoke(None, &calico_ipam(), "ADD", &att, &path, &conf(&pki.ca)).ok();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_owned();
    assert!(addr.starts_with("10.78.0."), "{addr}");

    // A CA that does not sign the member: an error naming the member and the cause.
    let bad = invoke(None, &calico_ipam(), "ADD", &att, &path, &conf(&other.ca));
    assert!(!bad.success);
    let msg = bad.json()["msg"].as_str().unwrap_or_default().to_owned();
    assert!(
        msg.contains(&format!("etcd {ep}: TLS handshake failed")),
        "{msg}"
    );

    invoke(None, &calico_ipam(), "DEL", &att, &path, &conf(&pki.ca)).ok();
    assert_ipam_clean(store);
}
