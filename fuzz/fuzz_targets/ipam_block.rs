//! Fuzz target for the stored form of an IPAM block (calico-ipam `block_wire`): runs,
//! bare-handle attributes with a shared prefix, sequence ages, and the plain form.
//!
//! For any input: decoding never panics nor expands a run beyond its bound; a block that
//! decodes encodes to a value that decodes to the same block, and encoding is a fixed
//! point (the same bytes the second time).
#![no_main]

use calico_ipam::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = serde_json::from_slice::<Block>(data) else {
        return;
    };
    let text = serde_json::to_vec(&block).expect("a block encodes");
    let back: Block = serde_json::from_slice(&text).expect("an encoded block decodes");
    assert_eq!(back, block, "round trip");
    assert_eq!(
        serde_json::to_vec(&back).expect("a block encodes"),
        text,
        "encoding is a fixed point"
    );
});
