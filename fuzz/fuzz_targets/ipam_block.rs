//! Fuzz target for the stored form of an IPAM block: Calico's `AllocationBlock` JSON as
//! calico-ipam reads and writes it.
//!
//! For any input: decoding never panics; a block that decodes encodes to a value that
//! decodes to the same block, and encoding is a fixed point (the same bytes the second
//! time); the invariant checker and the allocator's block methods never panic on it,
//! whatever it holds.
#![no_main]

use std::collections::BTreeMap;

use calico_ipam::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = Block::from_json(data) else {
        return;
    };
    let text = block.to_json();
    let back = Block::from_json(&text).expect("an encoded block decodes");
    assert_eq!(back, block, "round trip");
    assert_eq!(back.to_json(), text, "encoding is a fixed point");
    if let Some(v) = block.broken_invariant() {
        assert!(block.violations(0).contains(&v), "the first broken invariant is listed");
    }
    let mut t = block.clone();
    t.gc(u64::MAX, 0);
    t.take(8, Some("h"), &BTreeMap::new(), &[]);
    let _ = (t.is_empty(), t.handle_counts(), t.live().count());
    t.rebuild();
});
