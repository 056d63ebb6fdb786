//! Refusing a store written in an earlier private layout of this project.
//!
//! Earlier versions kept IPAM state under `ipam/v1/` (and resources under `resources/v3/`)
//! in their own encodings. Those keys are no longer read: a store holding any is refused
//! with an error naming the prefix and a key found, rather than silently ignored (which
//! would hand out addresses the old state says are taken). One keys-only read of at most
//! one key per prefix, through calico-datastore's layout check (which also refuses to open
//! a file database holding such keys).

use calico_datastore::{
    LegacyLayout, ReadOp, ReadResult, Store, StoreError, detect_legacy_layout, legacy_answer,
    legacy_probe,
};

/// Why a layout check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The store holds keys of an old layout.
    #[error(
        "the store holds keys of an old layout that this version no longer reads: found {key:?} under {prefix:?}; remove them (or migrate) before using this store"
    )]
    Old {
        /// The prefix checked.
        prefix: String,
        /// A key found under it.
        key: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The read that finds a key under `prefix` (keys only, at most one).
pub fn old_layout_probe(prefix: &str) -> ReadOp {
    legacy_probe(prefix)
}

/// Checks the answer to [`old_layout_probe`]`(prefix)`.
pub fn old_layout_answer(prefix: &str, result: &ReadResult) -> Result<(), LayoutError> {
    match legacy_answer(prefix, result) {
        Some(LegacyLayout { prefix, key }) => Err(LayoutError::Old { prefix, key }),
        None => Ok(()),
    }
}

/// Fails with [`LayoutError::Old`] when the store holds any key under `prefix` (such as
/// `ipam/v1/` or `resources/v3/`). One round trip.
pub fn refuse_old_layout(store: &dyn Store, prefix: &str) -> Result<(), LayoutError> {
    match detect_legacy_layout(store, &[prefix])? {
        Some(LegacyLayout { prefix, key }) => Err(LayoutError::Old { prefix, key }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_datastore::MemoryStore;

    #[test]
    fn finds_old_keys_and_names_them() {
        let store = MemoryStore::new();
        refuse_old_layout(&store, "ipam/v1/").unwrap();
        store.put(b"ipam/v0", b"x").unwrap();
        store.put(b"ipam/v10", b"x").unwrap();
        refuse_old_layout(&store, "ipam/v1/").unwrap();
        store.put(b"ipam/v1/block/4/0a000000-26", b"{}").unwrap();
        let e = refuse_old_layout(&store, "ipam/v1/").unwrap_err();
        assert!(
            e.to_string().contains("\"ipam/v1/\"")
                && e.to_string().contains("ipam/v1/block/4/0a000000-26"),
            "{e}"
        );
    }
}
