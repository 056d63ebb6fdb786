//! The health and metrics endpoints over real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use calico_node::{Health, HealthReport, Metrics, serve_health, serve_metrics};

/// GETs `path`: the status code and the body.
fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

#[test]
fn health_answers_204_200_and_503_with_the_table() {
    let health = Arc::new(Health::new());
    let mut server = serve_health("127.0.0.1:0".parse().unwrap(), health.clone()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "GET", "/liveness").0, 204, "nothing registered");
    health.register("sync", Some(Duration::from_secs(30)));
    let (code, _, body) = get(addr, "GET", "/readiness");
    assert_eq!(code, 503);
    assert!(
        body.contains(
            "| sync      | 30s     | reporting non-live | reporting non-ready | not reported yet |"
        ),
        "{body}"
    );
    health.report("sync", HealthReport::not_ready("listing"));
    assert_eq!(get(addr, "GET", "/liveness").0, 200);
    assert_eq!(get(addr, "GET", "/readiness").0, 503);
    health.report("sync", HealthReport::ok());
    let (code, head, body) = get(addr, "GET", "/readiness");
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert!(body.contains("reporting ready"), "{body}");
    let (code, _, body) = get(addr, "HEAD", "/readiness");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(get(addr, "GET", "/nope").0, 404);
    assert_eq!(get(addr, "POST", "/liveness").0, 405);
    server.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "stopped servers do not accept"
    );
}

#[test]
fn metrics_are_served_in_the_exposition_format() {
    let metrics = Arc::new(Metrics::new());
    metrics.num_workload_endpoints.set(100);
    let server = serve_metrics("127.0.0.1:0".parse().unwrap(), metrics.clone()).unwrap();
    let (code, head, body) = get(server.local_addr(), "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(head.contains("openmetrics-text"), "{head}");
    assert!(
        body.contains("felix_cluster_num_workload_endpoints 100"),
        "{body}"
    );
    metrics.dataplane_failures.inc();
    let (_, _, body) = get(server.local_addr(), "GET", "/metrics");
    assert!(
        body.contains("felix_int_dataplane_failures_total 1"),
        "{body}"
    );
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let first = serve_metrics("127.0.0.1:0".parse().unwrap(), Arc::new(Metrics::new())).unwrap();
    let e = serve_metrics(first.local_addr(), Arc::new(Metrics::new())).unwrap_err();
    assert!(
        e.to_string().contains(&first.local_addr().to_string()),
        "{e}"
    );
}
