//! Recognising a database written in an older key layout of these tools.
//!
//! Earlier versions kept resources under `resources/v3/` and IPAM state under `ipam/v1/`, at
//! the root of the key space. The current layout is Calico's own (everything under
//! `/calico/`), so an old database is not silently reinterpreted: opening a `file:` store
//! that still holds keys of an old layout fails with [`OpenError::LegacyLayout`] naming the
//! prefix found. Only file databases are checked: an etcd store may be shared with other
//! programs, and a user whose etcd role covers only `/calico/` must be able to use it, so
//! nothing outside `/calico/` is ever read there.

use crate::error::{OpenError, StoreError};
use crate::store::Store;
use crate::types::{ReadOp, ReadResult};

/// Key prefixes of the layouts earlier versions of these tools wrote, which the current
/// version refuses to open (see [`detect_legacy_layout`]).
pub const LEGACY_PREFIXES: &[&str] = &["resources/v3/", "ipam/v1/"];

/// A key of an older layout found in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyLayout {
    /// The prefix (one of those asked about).
    pub prefix: String,
    /// The first key found under it.
    pub key: String,
}

/// The read that finds a key under `prefix` (keys only, at most one), for callers that fold
/// the check into a read batch of their own; [`legacy_answer`] reads its result.
pub fn legacy_probe(prefix: &str) -> ReadOp {
    let start = prefix.as_bytes().to_vec();
    let end = crate::types::prefix_end(&start);
    ReadOp::keys(start, end, 1)
}

/// The key [`legacy_probe`]`(prefix)` found, if any.
pub fn legacy_answer(prefix: &str, result: &ReadResult) -> Option<LegacyLayout> {
    match result {
        ReadResult::Range(r) => r.kvs.first().map(|kv| LegacyLayout {
            prefix: prefix.to_owned(),
            key: String::from_utf8_lossy(&kv.key).into_owned(),
        }),
        ReadResult::Get(_) => None,
    }
}

/// Looks for keys under any of `prefixes` (one read batch, at most one key per prefix):
/// the first prefix, in the order given, that holds a key, with that key.
pub fn detect_legacy_layout(
    store: &dyn Store,
    prefixes: &[&str],
) -> Result<Option<LegacyLayout>, StoreError> {
    if prefixes.is_empty() {
        return Ok(None);
    }
    let reads: Vec<ReadOp> = prefixes.iter().map(|p| legacy_probe(p)).collect();
    let resp = store.read(&reads)?;
    Ok(prefixes
        .iter()
        .zip(&resp.results)
        .find_map(|(prefix, result)| legacy_answer(prefix, result)))
}

/// Refuses a store holding keys of an older layout ([`LEGACY_PREFIXES`]):
/// [`OpenError::LegacyLayout`] naming the prefix and a key found.
pub fn refuse_legacy_layout(store: &dyn Store) -> Result<(), OpenError> {
    let found = detect_legacy_layout(store, LEGACY_PREFIXES).map_err(|e| OpenError::Backend {
        url: store.url().to_owned(),
        reason: format!("checking the key layout: {e}"),
    })?;
    match found {
        Some(LegacyLayout { prefix, key }) => Err(OpenError::LegacyLayout {
            url: store.url().to_owned(),
            prefix,
            key,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn finds_the_first_prefix_holding_a_key() {
        let s = MemoryStore::new();
        assert_eq!(detect_legacy_layout(&s, &["a/", "b/"]).unwrap(), None);
        s.put(b"/calico/resources/v3/projectcalico.org/ippools/p", b"{}")
            .unwrap();
        assert_eq!(detect_legacy_layout(&s, &["a/", "b/"]).unwrap(), None);
        s.put(b"b/x", b"1").unwrap();
        s.put(b"b/y", b"1").unwrap();
        // `a` is a prefix of no key; `ab` is not under `a/`.
        s.put(b"ab", b"1").unwrap();
        assert_eq!(
            detect_legacy_layout(&s, &["a/", "b/"]).unwrap(),
            Some(LegacyLayout {
                prefix: "b/".into(),
                key: "b/x".into()
            })
        );
        s.put(b"a/z", b"1").unwrap();
        assert_eq!(
            detect_legacy_layout(&s, &["a/", "b/"])
                .unwrap()
                .map(|l| l.prefix),
            Some("a/".into())
        );
        assert_eq!(detect_legacy_layout(&s, &[]).unwrap(), None);
    }

    #[test]
    fn refusal_names_the_prefix() {
        let s = MemoryStore::new();
        refuse_legacy_layout(&s).unwrap();
        s.put(b"resources/v3/IPPool/p", b"{}").unwrap();
        let e = refuse_legacy_layout(&s).unwrap_err().to_string();
        assert!(e.contains("resources/v3/"), "{e}");
        assert!(e.contains("resources/v3/IPPool/p"), "{e}");
    }
}

#[cfg(all(test, feature = "file"))]
mod file_tests {
    #[test]
    fn a_file_database_in_the_old_layout_is_refused() {
        let dir = std::env::temp_dir().join(format!("calico-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let url = format!("file:{}", path.display());
        {
            let s = crate::FileStore::open(&path).unwrap();
            crate::Store::put(
                &s,
                b"/calico/resources/v3/projectcalico.org/ippools/p",
                b"{}",
            )
            .unwrap();
        }
        crate::open_store(&url).unwrap();
        {
            let s = crate::FileStore::open(&path).unwrap();
            crate::Store::put(&s, b"resources/v3/IPPool/p", b"{}").unwrap();
        }
        let e = crate::open_store(&url)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("\"resources/v3/\""), "{e}");
        if std::env::var_os("KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
