#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::url::EtcdMember;

/// Variables and files given by the test.
#[derive(Default)]
struct Fake {
    vars: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
}

impl Fake {
    fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }
    fn file(mut self, p: &str, text: &str) -> Self {
        self.files.insert(PathBuf::from(p), text.to_owned());
        self
    }
}

impl ConfigInputs for Fake {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn cli(
    store: Option<&str>,
    config: Option<&str>,
    inputs: &Fake,
) -> Result<ResolvedDatastore, DatastoreConfigError> {
    let config = config.map(Path::new);
    resolve_datastore(&DatastoreRequest::cli(store, config), inputs)
}

fn etcd(r: &ResolvedDatastore) -> &EtcdConnection {
    match &r.target {
        DatastoreTarget::Etcd(c) => c,
        other => panic!("not etcd: {other:?}"),
    }
}

fn ep(scheme: EtcdScheme, host: &str, port: u16) -> EtcdEndpoint {
    EtcdEndpoint {
        scheme,
        member: EtcdMember {
            host: host.to_owned(),
            port,
        },
    }
}

const FILE: &str = "
apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: etcdv3
  etcdEndpoints: https://10.0.0.1:2379, https://10.0.0.2:2379
  etcdUsername: calico
  etcdPassword: s3cret
  etcdKeyFile: /calico-secrets/etcd-key
  etcdCertFile: /calico-secrets/etcd-cert
  etcdCACertFile: /calico-secrets/etcd-ca
";

#[test]
fn nothing_configured_is_the_embedded_default() {
    let r = cli(None, None, &Fake::default()).unwrap();
    assert_eq!(r.source, DatastoreSource::Default);
    assert_eq!(r.target.to_string(), crate::url::DEFAULT_STORE_URL);
}

#[test]
fn a_config_file_gives_everything_it_names() {
    let fake = Fake::default().file("/c.cfg", FILE);
    let r = cli(None, Some("/c.cfg"), &fake).unwrap();
    assert_eq!(
        r.source,
        DatastoreSource::ConfigFile {
            path: "/c.cfg".into(),
            default: false
        }
    );
    let c = etcd(&r);
    assert_eq!(
        c.endpoints,
        [
            ep(EtcdScheme::Https, "10.0.0.1", 2379),
            ep(EtcdScheme::Https, "10.0.0.2", 2379)
        ]
    );
    assert_eq!(c.tls.ca, Some(Pem::File("/calico-secrets/etcd-ca".into())));
    let id = c.tls.client.as_ref().unwrap();
    assert_eq!(id.cert, Pem::File("/calico-secrets/etcd-cert".into()));
    assert_eq!(id.key, Pem::File("/calico-secrets/etcd-key".into()));
    let creds = c.credentials.as_ref().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("calico", "s3cret")
    );
    // No secret in what is shown.
    assert!(!format!("{c:?}{c}").contains("s3cret"));
    assert_eq!(c.to_string(), "https://10.0.0.1:2379,https://10.0.0.2:2379");
}

#[test]
fn json_files_and_inline_pem_are_read() {
    let json = r#"{"apiVersion":"projectcalico.org/v3","kind":"CalicoAPIConfig","metadata":{},
        "spec":{"etcdEndpoints":"https://e:2379","etcdCACert":"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n",
        "etcdCert":"C","etcdKey":"K"}}"#;
    let fake = Fake::default().file("/j", json);
    let r = cli(None, Some("/j"), &fake).unwrap();
    let c = etcd(&r);
    assert!(matches!(&c.tls.ca, Some(Pem::Inline(t)) if t.contains("BEGIN CERTIFICATE")));
    let id = c.tls.client.as_ref().unwrap();
    assert_eq!(id.key, Pem::Inline("K".into()));
    assert!(
        !format!("{id:?}").contains("\"K\""),
        "inline key printed: {id:?}"
    );
    assert_eq!(c.credentials, None);
}

#[test]
fn precedence_follows_calicoctl() {
    let env = Fake::default()
        .var("ETCD_ENDPOINTS", "http://env:2379")
        .file(DEFAULT_CONFIG_FILE, &FILE.replace("10.0.0.1", "dflt"))
        .file("/x.cfg", &FILE.replace("10.0.0.1", "explicit"))
        .var("CALICO_STORE", "memory:");
    // --store wins over everything.
    let r = cli(Some("file:/s.db"), Some("/x.cfg"), &env).unwrap();
    assert_eq!(r.source, DatastoreSource::Store);
    assert_eq!(r.target, DatastoreTarget::File("/s.db".into()));
    // --config next, alone (the environment is not consulted).
    let r = cli(None, Some("/x.cfg"), &env).unwrap();
    assert!(r.target.to_string().starts_with("https://explicit:2379"));
    // Then CALICO_STORE.
    let r = cli(None, None, &env).unwrap();
    assert_eq!(
        r.source,
        DatastoreSource::StoreVariable("CALICO_STORE".into())
    );
    // Then the default file when it exists.
    let env = Fake {
        vars: env
            .vars
            .into_iter()
            .filter(|(k, _)| k != "CALICO_STORE")
            .collect(),
        ..env
    };
    let r = cli(None, None, &env).unwrap();
    assert_eq!(
        r.source,
        DatastoreSource::ConfigFile {
            path: DEFAULT_CONFIG_FILE.into(),
            default: true
        }
    );
    assert!(r.target.to_string().starts_with("https://dflt:2379"));
    // Then the environment.
    let env = Fake {
        files: HashMap::new(),
        ..env
    };
    let r = cli(None, None, &env).unwrap();
    assert_eq!(
        r.source,
        DatastoreSource::Environment {
            variables: vec!["ETCD_ENDPOINTS".into()]
        }
    );
    assert_eq!(r.target.to_string(), "etcd://env:2379");
}

#[test]
fn an_explicit_config_file_must_exist_the_default_need_not() {
    let e = cli(None, Some("/missing.cfg"), &Fake::default()).unwrap_err();
    assert!(matches!(e, DatastoreConfigError::Read { .. }), "{e}");
    assert!(e.to_string().contains("/missing.cfg"), "{e}");
}

#[test]
fn calico_prefixed_variables_win_even_when_empty() {
    let fake = Fake::default()
        .var("CALICO_ETCD_ENDPOINTS", "https://pref:1")
        .var("ETCD_ENDPOINTS", "https://bare:2")
        .var("ETCD_CA_CERT_FILE", "/bare-ca")
        .var("CALICO_ETCD_USERNAME", "")
        .var("ETCD_USERNAME", "bare-user");
    let r = cli(None, None, &fake).unwrap();
    let c = etcd(&r);
    assert_eq!(c.endpoints, [ep(EtcdScheme::Https, "pref", 1)]);
    assert_eq!(c.tls.ca, Some(Pem::File("/bare-ca".into())));
    // CALICO_ETCD_USERNAME is set (empty): it shadows ETCD_USERNAME, as in calicoctl.
    assert_eq!(c.credentials, None);
    let DatastoreSource::Environment { variables } = &r.source else {
        panic!("{:?}", r.source)
    };
    assert!(
        variables.contains(&"CALICO_ETCD_ENDPOINTS".to_owned()),
        "{variables:?}"
    );
    assert!(
        !variables.contains(&"ETCD_ENDPOINTS".to_owned()),
        "{variables:?}"
    );
}

#[test]
fn environment_without_type_or_endpoints_configures_nothing() {
    let fake = Fake::default()
        .var("ETCD_USERNAME", "u")
        .var("ETCD_CA_CERT_FILE", "/ca");
    assert_eq!(
        cli(None, None, &fake).unwrap().source,
        DatastoreSource::Default
    );
}

fn err_of(fake: &Fake) -> String {
    match cli(None, None, fake) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("resolved {r:?}"),
    }
}

#[test]
fn kubernetes_and_unknown_settings_are_clear_errors() {
    let k = err_of(&Fake::default().var("DATASTORE_TYPE", "kubernetes"));
    assert!(
        k.contains("DATASTORE_TYPE") && k.contains("kubernetes datastore is not supported"),
        "{k}"
    );
    let f = Fake::default().file("/k", "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  kubeconfig: /root/.kube/config\n");
    let e = cli(None, Some("/k"), &f).unwrap_err().to_string();
    assert!(
        e.contains("/k") && e.contains("spec.datastoreType") && e.contains("kubernetes"),
        "{e}"
    );
    let u = err_of(&Fake::default().var("DATASTORE_TYPE", "consul"));
    assert!(u.contains("unknown datastore type"), "{u}");
    let n = err_of(&Fake::default().var("DATASTORE_TYPE", "etcdv3"));
    assert!(
        n.contains("ETCD_ENDPOINTS") && n.contains("needs etcd endpoints"),
        "{n}"
    );
    let s = err_of(
        &Fake::default()
            .var("ETCD_ENDPOINTS", "https://a:1")
            .var("ETCD_DISCOVERY_SRV", "example.com"),
    );
    assert!(s.contains("ETCD_DISCOVERY_SRV"), "{s}");
    let c = err_of(
        &Fake::default()
            .var("ETCD_ENDPOINTS", "https://a:1")
            .var("ETCD_CERT_FILE", "/c"),
    );
    assert!(
        c.contains("ETCD_KEY_FILE") && c.contains("without its key"),
        "{c}"
    );
    let p = err_of(
        &Fake::default()
            .var("ETCD_ENDPOINTS", "https://a:1")
            .var("ETCD_PASSWORD", "x"),
    );
    assert!(
        p.contains("ETCD_PASSWORD") && p.contains("without a user name"),
        "{p}"
    );
    let b = err_of(&Fake::default().var("ETCD_ENDPOINTS", "unix:///run/etcd.sock"));
    assert!(
        b.contains("ETCD_ENDPOINTS") && b.contains("unsupported scheme"),
        "{b}"
    );
    let both = "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: https://a:1\n  etcdKeyFile: /k\n  etcdKey: K\n  etcdCertFile: /c\n";
    let e = cli(None, Some("/b"), &Fake::default().file("/b", both))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.etcdKeyFile or spec.etcdKey, not both"),
        "{e}"
    );
}

#[test]
fn config_files_are_parsed_strictly() {
    let bad = |text: &str| {
        cli(None, Some("/f"), &Fake::default().file("/f", text))
            .unwrap_err()
            .to_string()
    };
    let e = bad(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoint: http://a:1\n",
    );
    assert!(e.contains("spec") && e.contains("etcdEndpoint"), "{e}");
    let e = bad("apiVersion: projectcalico.org/v3\nkind: Node\nspec: {}\n");
    assert!(e.contains("kind: expected CalicoAPIConfig"), "{e}");
    let e = bad("apiVersion: v1\nkind: CalicoAPIConfig\n");
    assert!(e.contains("apiVersion"), "{e}");
    let e = bad(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: [a]\n",
    );
    assert!(e.contains("spec.etcdEndpoints"), "{e}");
    let e = bad("{{{");
    assert!(e.starts_with("config file /f:"), "{e}");
}

#[test]
fn bad_store_urls_name_their_origin() {
    let e = cli(Some("nope"), None, &Fake::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--store:"), "{e}");
    let e = cli(None, None, &Fake::default().var("CALICO_STORE", "ftp:x"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("$CALICO_STORE:"), "{e}");
}

#[test]
fn endpoint_lists() {
    assert_eq!(
        parse_endpoints("http://a:1,https://b:2/, c:3 ,d, https://[::1]:4,[fe80::1]").unwrap(),
        [
            ep(EtcdScheme::Http, "a", 1),
            ep(EtcdScheme::Https, "b", 2),
            ep(EtcdScheme::Http, "c", 3),
            ep(EtcdScheme::Http, "d", 2379),
            ep(EtcdScheme::Https, "::1", 4),
            ep(EtcdScheme::Http, "fe80::1", 2379),
        ]
    );
    for bad in [
        "",
        " , ",
        "https://a:1,https://a:1",
        "http://a:0",
        "http://a:1/x",
        "ftp://a:1",
        "http://::1:2",
    ] {
        assert!(parse_endpoints(bad).is_err(), "{bad:?} accepted");
    }
}

proptest! {
    /// Endpoints printed as URLs parse back to themselves.
    #[test]
    fn endpoint_urls_round_trip(
        list in proptest::collection::vec(
            (any::<bool>(), "[a-z][a-z0-9-]{0,10}(\\.[a-z]{1,5})?", 1u16..),
            1..5,
        )
    ) {
        let mut eps: Vec<EtcdEndpoint> = Vec::new();
        for (tls, host, port) in list {
            let e = ep(if tls { EtcdScheme::Https } else { EtcdScheme::Http }, &host, port);
            if !eps.contains(&e) {
                eps.push(e);
            }
        }
        let text = eps.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        prop_assert_eq!(parse_endpoints(&text).unwrap(), eps);
    }

    /// No input makes the file parser or the resolution panic.
    #[test]
    fn arbitrary_files_never_panic(text in "\\PC{0,200}") {
        let fake = Fake::default().file("/f", &text);
        let _ = cli(None, Some("/f"), &fake);
    }

    /// Arbitrary environment values give a target or an error naming a variable.
    #[test]
    fn arbitrary_environment_never_panics(
        endpoints in "\\PC{0,40}",
        ty in prop_oneof![Just(String::new()), Just("etcdv3".to_owned()), "\\PC{0,8}"],
    ) {
        let fake = Fake::default().var("ETCD_ENDPOINTS", &endpoints).var("DATASTORE_TYPE", &ty);
        match cli(None, None, &fake) {
            Ok(_) => {}
            Err(e) => {
                let t = e.to_string();
                prop_assert!(t.contains("ETCD_ENDPOINTS") || t.contains("DATASTORE_TYPE"), "{}", t);
            }
        }
    }
}
