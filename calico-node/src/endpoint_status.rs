//! Endpoint status files: while a local workload's policy is programmed, a small JSON file
//! for it exists under `<state dir>/endpoint-status/`, named after its host-side interface
//! (`cali…`, unique on the node and known to the CNI plugin before the agent sees the
//! endpoint). A CNI plugin can wait for the file before it reports the pod as ready; the file
//! goes away when the endpoint does.
//!
//! Content: `{"ifaceName":"cali…","workload":"<namespace>/<pod>","status":"up",
//! "addresses":["10.244.1.5"]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One programmed workload endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Host-side interface.
    pub iface: String,
    /// `namespace/name`.
    pub workload: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

impl EndpointStatus {
    fn json(&self) -> String {
        serde_json::json!({
            "ifaceName": self.iface,
            "workload": self.workload,
            "status": "up",
            "addresses": self.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// Keeps the directory's files equal to the programmed endpoints.
#[derive(Debug)]
pub struct EndpointStatusDir {
    dir: PathBuf,
    written: BTreeMap<String, String>,
    swept: bool,
}

impl EndpointStatusDir {
    /// The files under `dir` (created when first written).
    pub fn new(dir: &Path) -> EndpointStatusDir {
        EndpointStatusDir {
            dir: dir.to_path_buf(),
            written: BTreeMap::new(),
            swept: false,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the files of `programmed` that changed and removes the others (the first call
    /// also removes files an earlier run left).
    pub fn update<'a>(
        &mut self,
        programmed: impl IntoIterator<Item = &'a EndpointStatus>,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if !self.swept {
            for e in std::fs::read_dir(&self.dir)?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
            self.swept = true;
        }
        let mut keep = BTreeSet::new();
        for ep in programmed {
            keep.insert(ep.iface.clone());
            let text = ep.json();
            if self.written.get(&ep.iface) == Some(&text) {
                continue;
            }
            let path = self.dir.join(&ep.iface);
            let tmp = self.dir.join(format!(".{}.tmp", ep.iface));
            std::fs::write(&tmp, &text)?;
            std::fs::rename(&tmp, &path)?;
            self.written.insert(ep.iface.clone(), text);
        }
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            match std::fs::remove_file(self.dir.join(&k)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.written.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_the_programmed_endpoints() {
        let dir = std::env::temp_dir().join(format!("calico-ep-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("calistale"), "{}").unwrap();
        let mut d = EndpointStatusDir::new(&dir);
        let a = EndpointStatus {
            iface: "cali1".into(),
            workload: "ns/a".into(),
            addresses: vec!["10.0.0.1".parse().unwrap()],
        };
        d.update([&a]).unwrap();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["cali1".to_owned()]);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cali1")).unwrap()).unwrap();
        assert_eq!(v["workload"], "ns/a");
        assert_eq!(v["addresses"][0], "10.0.0.1");
        d.update([]).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
