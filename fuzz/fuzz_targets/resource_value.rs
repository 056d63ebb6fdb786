//! Fuzz target for stored resource values (calico-ipam `resources`): the first byte picks a
//! resource type, the rest is the value stored under a key of that type.
//!
//! For any input: decoding never panics; a value that decodes re-encodes (Go-style) to
//! bytes that decode to the same value and the same object; and writing the decoded
//! object back over the stored value (a read–modify–write) never panics.
#![no_main]

use calico_datastore::{MemoryStore, Store};
use calico_ipam::resources::layout::TYPES;
use calico_ipam::resources::{Resources, codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, value)) = data.split_first() else {
        return;
    };
    let ty = &TYPES[usize::from(*first) % TYPES.len()];
    let key = ty.key(Some("ns"), "name");
    let Ok(stored) = codec::decode(key.as_bytes(), value, 7) else {
        return;
    };
    let bytes = codec::encode(&stored.raw);
    let again = codec::decode(key.as_bytes(), &bytes, 7).expect("a re-encoded value decodes");
    // Compared through the encoder: Go writes an integral float as an integer.
    assert_eq!(
        codec::encode(&again.value),
        codec::encode(&stored.value),
        "re-encoding keeps the value"
    );
    assert_eq!(again.object, stored.object, "re-encoding keeps the object");
    let Some(object) = &stored.object else {
        return;
    };
    let store = MemoryStore::new();
    store.put(key.as_bytes(), value).expect("memory put");
    let _ = Resources::new(&store).apply(object);
});
