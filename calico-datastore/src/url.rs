//! Store URLs (`--store`, `CALICO_STORE`): `memory:`, `file:PATH`,
//! `etcd://HOST:PORT[,HOST:PORT...]`.

use std::fmt;
use std::path::PathBuf;

use crate::error::OpenError;
#[cfg(feature = "file")]
use crate::file::FileStore;
use crate::memory::MemoryStore;
use crate::store::Store;

/// The default store URL of the CLI.
pub const DEFAULT_STORE_URL: &str = "file:./calico.db";

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: a process-local store.
    Memory,
    /// `file:PATH` (or `file:///ABSOLUTE/PATH`): the embedded database at `PATH`.
    File(PathBuf),
    /// `etcd://HOST:PORT[,HOST:PORT...]`: the members of an etcd v3 cluster.
    Etcd(Vec<EtcdMember>),
}

/// One etcd member address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdMember {
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    /// Client port.
    pub port: u16,
}

impl EtcdMember {
    /// The member as an `http://` URL.
    pub fn http_url(&self) -> String {
        format!("http://{self}")
    }
}

impl fmt::Display for EtcdMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::File(p) => write!(f, "file:{}", p.display()),
            StoreUrl::Etcd(members) => {
                f.write_str("etcd://")?;
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = OpenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

impl StoreUrl {
    /// Parses a store URL.
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let bad = |reason: &str| OpenError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(bad(if url.is_empty() {
                "the URL is empty"
            } else {
                "no scheme"
            }));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => {
                if rest.is_empty() {
                    Ok(StoreUrl::Memory)
                } else {
                    Err(bad("memory: takes nothing after the colon"))
                }
            }
            "file" => parse_file(rest).map(StoreUrl::File).map_err(|r| bad(&r)),
            "etcd" => parse_etcd(rest).map(StoreUrl::Etcd).map_err(|r| bad(&r)),
            "http" | "https" => Err(bad(
                "name an etcd cluster as etcd://HOST:PORT[,HOST:PORT...]",
            )),
            _ => Err(bad(&format!("unknown scheme {scheme:?}"))),
        }
    }
}

fn parse_file(rest: &str) -> Result<PathBuf, String> {
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            // file://localhost/p and file:///p name the local absolute path /p.
            let after = after.strip_prefix("localhost").unwrap_or(after);
            if !after.starts_with('/') {
                return Err(
                    "file:// URLs must name a local absolute path (file:///PATH); use file:PATH for a relative path"
                        .to_owned(),
                );
            }
            after
        }
        None => rest,
    };
    if path.is_empty() {
        return Err("file: needs a path (file:PATH)".to_owned());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".to_owned());
    }
    Ok(PathBuf::from(path))
}

fn parse_etcd(rest: &str) -> Result<Vec<EtcdMember>, String> {
    let Some(list) = rest.strip_prefix("//") else {
        return Err("etcd URLs start with etcd:// (etcd://HOST:PORT[,HOST:PORT...])".to_owned());
    };
    let list = list.strip_suffix('/').unwrap_or(list);
    if list.is_empty() {
        return Err("no etcd member given".to_owned());
    }
    let mut members = Vec::new();
    for (i, item) in list.split(',').enumerate() {
        let member = parse_member(item).map_err(|r| format!("member {} {item:?}: {r}", i + 1))?;
        if members.contains(&member) {
            return Err(format!("member {} {item:?} is listed twice", i + 1));
        }
        members.push(member);
    }
    Ok(members)
}

pub(crate) fn parse_member(item: &str) -> Result<EtcdMember, String> {
    if item.is_empty() {
        return Err("empty (a stray comma?)".to_owned());
    }
    if item.contains(['/', '?', '#', '@']) {
        return Err("only HOST:PORT is allowed (no path, query or credentials)".to_owned());
    }
    let (host, port) = if let Some(v6) = item.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err("unclosed '[' in an IPv6 address".to_owned());
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err("missing :PORT (etcd's client port is usually 2379)".to_owned());
        };
        (host, port)
    } else {
        let Some((host, port)) = item.rsplit_once(':') else {
            return Err("missing :PORT (etcd's client port is usually 2379)".to_owned());
        };
        if host.contains(':') {
            return Err("write an IPv6 address in brackets: [ADDR]:PORT".to_owned());
        }
        if host.is_empty() {
            return Err("missing host".to_owned());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
        (host, port)
    };
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("{port:?} is not a port number (1-65535)")),
        Ok(p) => p,
    };
    Ok(EtcdMember {
        host: host.to_owned(),
        port,
    })
}

/// Opens the store a URL names, for the backends of this crate (`memory:` and `file:`).
///
/// `etcd://` URLs are parsed but answered with [`OpenError::BackendNotCompiled`]: the etcd
/// backend (and its async runtime) lives in the `calico-datastore-etcd` crate, whose
/// `open_store` accepts every URL.
pub fn open_store(url: &str) -> Result<Box<dyn Store>, OpenError> {
    match StoreUrl::parse(url)? {
        StoreUrl::Etcd(_) => Err(OpenError::BackendNotCompiled {
            url: url.to_owned(),
            backend: "etcd",
            krate: "calico-datastore-etcd",
        }),
        other => open_local(&other),
    }
}

/// Opens a parsed `memory:` or `file:` URL; `etcd://` gives
/// [`OpenError::BackendNotCompiled`], and `file:` without this crate's `file` feature
/// [`OpenError::FeatureDisabled`]. A file database holding keys of an older layout of
/// these tools is refused with [`OpenError::LegacyLayout`].
pub fn open_local(url: &StoreUrl) -> Result<Box<dyn Store>, OpenError> {
    match url {
        StoreUrl::Memory => Ok(Box::new(MemoryStore::new())),
        #[cfg(feature = "file")]
        StoreUrl::File(path) => {
            let store = FileStore::open(path)?;
            crate::legacy::refuse_legacy_layout(&store)?;
            Ok(Box::new(store))
        }
        #[cfg(not(feature = "file"))]
        StoreUrl::File(_) => Err(OpenError::FeatureDisabled {
            url: url.to_string(),
            backend: "file",
            feature: "file",
        }),
        StoreUrl::Etcd(_) => Err(OpenError::BackendNotCompiled {
            url: url.to_string(),
            backend: "etcd",
            krate: "calico-datastore-etcd",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match StoreUrl::parse(url) {
            Err(e) => e.to_string(),
            Ok(u) => panic!("{url:?} parsed as {u:?}"),
        }
    }

    #[test]
    fn parses_good_urls() {
        assert_eq!(StoreUrl::parse("memory:").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("file:./calico.db").unwrap(),
            StoreUrl::File("./calico.db".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///var/lib/c.db").unwrap(),
            StoreUrl::File("/var/lib/c.db".into())
        );
        assert_eq!(
            StoreUrl::parse("file://localhost/x").unwrap(),
            StoreUrl::File("/x".into())
        );
        let e = StoreUrl::parse("etcd://127.0.0.1:2379,etcd-2:2380,[::1]:2381/").unwrap();
        assert_eq!(
            e,
            StoreUrl::Etcd(vec![
                EtcdMember {
                    host: "127.0.0.1".into(),
                    port: 2379
                },
                EtcdMember {
                    host: "etcd-2".into(),
                    port: 2380
                },
                EtcdMember {
                    host: "::1".into(),
                    port: 2381
                },
            ])
        );
        assert_eq!(
            e.to_string(),
            "etcd://127.0.0.1:2379,etcd-2:2380,[::1]:2381"
        );
        assert_eq!(
            DEFAULT_STORE_URL.parse::<StoreUrl>().unwrap().to_string(),
            DEFAULT_STORE_URL
        );
    }

    #[test]
    fn rejects_bad_urls_with_reasons() {
        assert!(err("").contains("empty"));
        assert!(err("calico.db").contains("no scheme"));
        assert!(err("memory:x").contains("nothing after"));
        assert!(err("file:").contains("needs a path"));
        assert!(err("file://host/x").contains("local absolute path"));
        assert!(err("redis://x:1").contains("unknown scheme"));
        assert!(err("http://127.0.0.1:2379").contains("etcd://"));
        assert!(err("etcd:127.0.0.1:2379").contains("etcd://"));
        assert!(err("etcd://").contains("no etcd member"));
        assert!(err("etcd://a:1,,b:2").contains("member 2"));
        assert!(err("etcd://host").contains("missing :PORT"));
        assert!(err("etcd://host:0").contains("not a port"));
        assert!(err("etcd://host:99999").contains("not a port"));
        assert!(err("etcd://::1:2379").contains("brackets"));
        assert!(err("etcd://[::1:2379").contains("unclosed"));
        assert!(err("etcd://[zz]:1").contains("not an IPv6"));
        assert!(err("etcd://a:1/path").contains("no path"));
        assert!(err("etcd://u@a:1").contains("credentials"));
        assert!(err("etcd://a:1,a:1").contains("twice"));
        assert!(err("etcd://a b:1").contains("not a host"));
    }

    #[test]
    fn etcd_needs_the_etcd_crate() {
        let Err(e) = open_store("etcd://127.0.0.1:2379") else {
            panic!("opened etcd without the backend");
        };
        assert!(matches!(e, OpenError::BackendNotCompiled { .. }));
        assert!(e.to_string().contains("calico-datastore-etcd"), "{e}");
    }
}
