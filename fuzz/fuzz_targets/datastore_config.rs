//! Datastore configuration: a `CalicoAPIConfig` file and the calicoctl environment never make
//! the resolver panic; resolved credentials print without their password, and its etcd endpoints print as
//! URLs that parse back to themselves.
#![no_main]

use std::collections::HashMap;
use std::io;
use std::path::Path;

use calico_datastore::{
    ConfigInputs, DatastoreRequest, DatastoreTarget, parse_endpoints, resolve_datastore,
};
use libfuzzer_sys::fuzz_target;

struct Inputs {
    vars: HashMap<String, String>,
    file: String,
}

impl ConfigInputs for Inputs {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn read_file(&self, _: &Path) -> io::Result<String> {
        Ok(self.file.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Before the first NUL: the config file; after it, NAME=VALUE lines of the environment.
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let vars = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let inputs = Inputs {
        vars,
        file: file.to_owned(),
    };
    let _ = parse_endpoints(file);
    for config in [Some(Path::new("/f.cfg")), None] {
        let request = DatastoreRequest {
            default_config_file: None,
            ..DatastoreRequest::cli(None, config)
        };
        let Ok(resolved) = resolve_datastore(&request, &inputs) else {
            continue;
        };
        let _ = resolved.target.to_string();
        if let DatastoreTarget::Etcd(c) = &resolved.target {
            if let Some(creds) = &c.credentials {
                let shown = format!("{creds:?}");
                assert!(shown.contains("<redacted>"), "{shown}");
                assert!(
                    !shown.contains(&format!("{:?}", creds.password))
                        || creds.username.contains(&creds.password),
                    "{shown}"
                );
            }
            let urls: Vec<String> = c.endpoints.iter().map(ToString::to_string).collect();
            assert_eq!(
                parse_endpoints(&urls.join(",")).expect("printed endpoints parse"),
                c.endpoints
            );
        }
    }
});
