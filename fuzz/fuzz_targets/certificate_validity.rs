//! The validity decoder of PEM certificates never panics, on PEM text or on any DER body
//! wrapped as PEM, and what it returns is a calendar time.
#![no_main]

use base64::Engine as _;
use calico_datastore::{CertTime, certificate_validity};
use libfuzzer_sys::fuzz_target;

fn check(t: &CertTime) {
    assert!(
        (1..=12).contains(&t.month) && (1..=31).contains(&t.day),
        "{t:?}"
    );
    assert!(t.hour < 24 && t.minute < 60 && t.second <= 60, "{t:?}");
    let _ = t.unix_seconds();
}

fuzz_target!(|data: &[u8]| {
    let wrapped = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    for text in [data, wrapped.as_bytes()] {
        if let Some(v) = certificate_validity(text) {
            check(&v.not_before);
            check(&v.not_after);
        }
    }
});
