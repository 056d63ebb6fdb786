//! The etcd backend against members that use TLS (client certificates required) and
//! etcd's authentication, started by the tests with their own certificates (`openssl`).
//! Without etcd these tests print that they were NOT run (and fail if
//! `CALICO_REQUIRE_ETCD=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use calico_datastore::conformance;
use calico_datastore::{
    ClientIdentity, EtcdConnection, EtcdCredentials, EtcdTls, Pem, Store, StoreError,
    certificate_validity, parse_endpoints,
};
use calico_datastore_etcd::testkit::{
    CertFiles, EtcdCluster, MemberOptions, ServerTls, TestPki, etcd_or_skip, tls_or_skip,
};
use calico_datastore_etcd::{EtcdOptions, EtcdStore};

/// etcd and openssl, or `None` (the test is reported as not run).
fn tools(test: &str) -> Option<()> {
    tls_or_skip(test).map(drop)
}

const LIMIT: Duration = Duration::from_secs(3);

fn options() -> EtcdOptions {
    EtcdOptions::default().with_time_limit(LIMIT)
}

fn connection(
    server: &EtcdCluster,
    ca: Option<&std::path::Path>,
    client: Option<&CertFiles>,
) -> EtcdConnection {
    EtcdConnection {
        endpoints: parse_endpoints(&server.endpoints()).unwrap(),
        tls: EtcdTls {
            ca: ca.map(|p| Pem::File(p.to_path_buf())),
            client: client.map(|c| ClientIdentity {
                cert: Pem::File(c.cert.clone()),
                key: Pem::File(c.key.clone()),
            }),
        },
        credentials: None,
    }
}

/// A member serving https with `server_cert` and requiring client certificates of `pki`.
fn tls_member(pki: &TestPki, server_cert: &CertFiles) -> EtcdCluster {
    EtcdCluster::start_secure(&MemberOptions {
        tls: Some(ServerTls {
            cert: server_cert.cert.clone(),
            key: server_cert.key.clone(),
            client_ca: Some(pki.ca.clone()),
        }),
        auth_token_ttl: None,
    })
    .unwrap()
}

/// The error of the first request, which must come within the time limit.
fn refused(conn: &EtcdConnection) -> StoreError {
    // (Time limit: the first request must be refused well within it.)
    let store = EtcdStore::connect_to(conn, options()).unwrap();
    let started = Instant::now();
    let err = store.revision().unwrap_err();
    assert!(
        started.elapsed() < LIMIT + Duration::from_secs(1),
        "took {:?}: {err}",
        started.elapsed()
    );
    err
}

fn assert_access(err: &StoreError, endpoint: &str, words: &[&str]) {
    let text = err.to_string();
    eprintln!("refused as expected: {text}");
    assert!(
        matches!(err, StoreError::Access { .. }),
        "not an access error: {err:?}"
    );
    assert!(!err.is_retriable(), "{text}");
    assert!(text.starts_with(&format!("etcd {endpoint}: ")), "{text}");
    for w in words {
        assert!(text.contains(w), "{text:?} lacks {w:?}");
    }
}

#[test]
fn tls_member_with_client_certificates_conforms() {
    if tools("tls_member_with_client_certificates_conforms").is_none() {
        return;
    }
    let pki = TestPki::new("good").unwrap();
    let server_cert = pki.issue("server", 1).unwrap();
    let client = pki.issue("client", 1).unwrap();
    let server = tls_member(&pki, &server_cert);
    assert!(server.endpoints().starts_with("https://127.0.0.1:"));
    let conn = connection(&server, Some(&pki.ca), Some(&client));
    let store = EtcdStore::connect_to(&conn, options()).unwrap();
    assert_eq!(store.url(), server.endpoints());
    conformance::run_all(&store, "/calico/tls/");
    // Inline PEM works as the files do.
    let inline = EtcdConnection {
        tls: EtcdTls {
            ca: Some(Pem::Inline(std::fs::read_to_string(&pki.ca).unwrap())),
            client: Some(ClientIdentity {
                cert: Pem::Inline(std::fs::read_to_string(&client.cert).unwrap()),
                key: Pem::Inline(std::fs::read_to_string(&client.key).unwrap()),
            }),
        },
        ..conn
    };
    let store = EtcdStore::connect_to(&inline, options()).unwrap();
    store.put(b"/calico/tls/inline", b"1").unwrap();
    assert_eq!(
        store.get(b"/calico/tls/inline").unwrap().unwrap().value,
        b"1"
    );
}

#[test]
fn tls_failures_are_reported_at_once_with_their_cause() {
    if tools("tls_failures_are_reported_at_once_with_their_cause").is_none() {
        return;
    }
    let pki = TestPki::new("good").unwrap();
    let other = TestPki::new("other").unwrap();
    let server_cert = pki.issue("server", 1).unwrap();
    let client = pki.issue("client", 1).unwrap();
    let expired_client = pki.issue("expired-client", -1).unwrap();
    let foreign_client = other.issue("foreign-client", 1).unwrap();
    let server = tls_member(&pki, &server_cert);
    let ep = server.endpoints();

    // The CA does not sign the member's certificate.
    let e = refused(&connection(&server, Some(&other.ca), Some(&client)));
    assert_access(
        &e,
        &ep,
        &["TLS handshake failed", "not signed by the configured CA"],
    );
    // No client certificate.
    let e = refused(&connection(&server, Some(&pki.ca), None));
    assert_access(
        &e,
        &ep,
        &[
            "TLS handshake failed",
            "requires a client certificate and none is configured",
        ],
    );
    // A client certificate from another CA.
    let e = refused(&connection(&server, Some(&pki.ca), Some(&foreign_client)));
    assert_access(
        &e,
        &ep,
        &["TLS handshake failed", "rejected our client certificate"],
    );
    // An expired client certificate (the member's alert does not say why; the validity
    // read from our own certificate does).
    let e = refused(&connection(&server, Some(&pki.ca), Some(&expired_client)));
    assert_access(
        &e,
        &ep,
        &[
            "TLS handshake failed: certificate expired",
            "our client certificate, which expired at",
        ],
    );
    // The validity decoder reads what openssl wrote.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let valid = certificate_validity(&std::fs::read(&client.cert).unwrap()).unwrap();
    assert!(valid.not_before.unix_seconds() <= now + 60 && now < valid.not_after.unix_seconds());
    assert!(valid.not_after.unix_seconds() - now > 86_000);
    let old = certificate_validity(&std::fs::read(&expired_client.cert).unwrap()).unwrap();
    assert!(old.not_after.unix_seconds() < now);
    // Plain http to a TLS member fails too (not as an access error: no handshake at all),
    // within the limit.
    let plain = EtcdConnection {
        endpoints: parse_endpoints(&ep.replace("https://", "http://")).unwrap(),
        ..connection(&server, None, None)
    };
    let store = EtcdStore::connect_to(&plain, options()).unwrap();
    let started = Instant::now();
    assert!(store.revision().is_err());
    assert!(started.elapsed() < LIMIT + Duration::from_secs(1));
}

#[test]
fn an_expired_member_certificate_is_named() {
    if tools("an_expired_member_certificate_is_named").is_none() {
        return;
    }
    let pki = TestPki::new("good").unwrap();
    let server_cert = pki.issue("expired-server", -1).unwrap();
    let client = pki.issue("client", 1).unwrap();
    let server = tls_member(&pki, &server_cert);
    let e = refused(&connection(&server, Some(&pki.ca), Some(&client)));
    assert_access(
        &e,
        &server.endpoints(),
        &["TLS handshake failed: certificate expired"],
    );
}

#[test]
fn missing_certificate_files_fail_when_opening() {
    let conn = EtcdConnection {
        endpoints: parse_endpoints("https://127.0.0.1:1").unwrap(),
        tls: EtcdTls {
            ca: Some(Pem::File("/nonexistent/etcd-ca".into())),
            client: None,
        },
        credentials: None,
    };
    let e = EtcdStore::connect_to(&conn, options())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/etcd-ca"), "{e}");
}

fn auth_member(ttl: Option<u32>) -> EtcdCluster {
    let server = EtcdCluster::start_secure(&MemberOptions {
        tls: None,
        auth_token_ttl: ttl,
    })
    .unwrap();
    server
        .enable_auth("root-pw", &[("calico", "calico-pw", "/calico/")])
        .unwrap();
    server
}

fn with_user(server: &EtcdCluster, user: &str, password: &str) -> EtcdConnection {
    EtcdConnection {
        credentials: Some(EtcdCredentials {
            username: user.into(),
            password: password.into(),
        }),
        ..connection(server, None, None)
    }
}

#[test]
fn a_user_limited_to_the_calico_prefix_can_use_the_store() {
    if etcd_or_skip("a_user_limited_to_the_calico_prefix_can_use_the_store").is_none() {
        return;
    }
    let server = auth_member(None);
    let store =
        EtcdStore::connect_to(&with_user(&server, "calico", "calico-pw"), options()).unwrap();
    // The whole suite except `check_range` and `check_range_compares`, which read past
    // their prefix on purpose (to the end of the keyspace): this user may not. (Both run
    // against members without authentication in etcd.rs.)
    let p = "/calico/auth/";
    conformance::check_empty(&store, &format!("{p}empty/"));
    conformance::check_crud(&store, &format!("{p}crud/"));
    conformance::check_revisions(&store, &format!("{p}rev/"));
    conformance::check_txn_all_or_nothing(&store, &format!("{p}txn/"));
    conformance::check_read_batch(&store, &format!("{p}batch/"));
    conformance::check_delete(&store, &format!("{p}del/"));
    conformance::check_values(&store, &format!("{p}val/"));
    conformance::check_limits(&store, &format!("{p}lim/"));
    conformance::check_read_batch_consistency(&store, &format!("{p}cons/"), 100);
    conformance::check_concurrent_increments(&store, &format!("{p}inc/"), 4, 25);
    // Outside its prefix the user is refused, at once and by name.
    let e = store.put(b"/other/x", b"1").unwrap_err();
    assert_access(
        &e,
        &server.endpoints(),
        &["permission denied", "\"calico\""],
    );
    // root sees everything.
    let root = EtcdStore::connect_to(&with_user(&server, "root", "root-pw"), options()).unwrap();
    root.put(b"/other/x", b"1").unwrap();
    assert!(root.get(b"/calico/auth/crud/a").is_ok());
}

#[test]
fn wrong_or_missing_credentials_are_refused() {
    if etcd_or_skip("wrong_or_missing_credentials_are_refused").is_none() {
        return;
    }
    let server = auth_member(None);
    let ep = server.endpoints();
    let e = refused(&with_user(&server, "calico", "wrong"));
    assert_access(
        &e,
        &ep,
        &[
            "authentication failed",
            "wrong user name or password",
            "\"calico\"",
        ],
    );
    let e = refused(&with_user(&server, "nobody", "x"));
    assert_access(&e, &ep, &["authentication failed"]);
    // Without credentials a read is refused (etcd needs a user once auth is on).
    let store = EtcdStore::connect_to(&connection(&server, None, None), options()).unwrap();
    let e = store.get(b"/calico/x").unwrap_err();
    assert_access(&e, &ep, &[]);
}

#[test]
fn tls_with_credentials_and_fail_over() {
    if tools("tls_with_credentials_and_fail_over").is_none() {
        return;
    }
    // Three TLS members requiring client certificates, with authentication on: the usual
    // production set-up. The store keeps working when the member it uses dies.
    let pki = TestPki::new("good").unwrap();
    let server_cert = pki.issue("server", 1).unwrap();
    let client = pki.issue("client", 1).unwrap();
    let mut cluster = EtcdCluster::start_with(
        3,
        &MemberOptions {
            tls: Some(ServerTls {
                cert: server_cert.cert.clone(),
                key: server_cert.key.clone(),
                client_ca: Some(pki.ca.clone()),
            }),
            auth_token_ttl: None,
        },
    )
    .unwrap();
    cluster
        .enable_auth("root-pw", &[("calico", "calico-pw", "/calico/")])
        .unwrap();
    let conn = EtcdConnection {
        credentials: Some(EtcdCredentials {
            username: "calico".into(),
            password: "calico-pw".into(),
        }),
        ..connection(&cluster, Some(&pki.ca), Some(&client))
    };
    let store = EtcdStore::connect_to(&conn, EtcdOptions::default()).unwrap();
    let r1 = store.create(b"/calico/fo/a", b"1").unwrap();
    let first = store.current_endpoint().to_owned();
    let used = (0..cluster.len())
        .find(|&i| first.ends_with(&format!(":{}", cluster.client_port(i))))
        .unwrap();
    cluster.kill(used);
    // Another member (a token of its own, over TLS) answers.
    let kv = store.get(b"/calico/fo/a").unwrap();
    assert_eq!(kv.unwrap().mod_revision, r1);
    assert_ne!(store.current_endpoint(), first);
    let e = store.put(b"/other", b"x").unwrap_err();
    assert!(matches!(e, StoreError::Access { .. }), "{e}");
}

#[test]
fn expired_tokens_are_renewed() {
    if etcd_or_skip("expired_tokens_are_renewed").is_none() {
        return;
    }
    // Tokens live one second: the second request finds its token expired; the client
    // authenticates again and repeats the request.
    let server = auth_member(Some(1));
    let store =
        EtcdStore::connect_to(&with_user(&server, "calico", "calico-pw"), options()).unwrap();
    let r1 = store.create(b"/calico/ttl/a", b"1").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let r2 = store.update(b"/calico/ttl/a", b"2", r1).unwrap();
    assert!(r2 > r1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(store.get(b"/calico/ttl/a").unwrap().unwrap().value, b"2");
}
