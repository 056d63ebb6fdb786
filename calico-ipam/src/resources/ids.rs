//! The values a create fills in: a random v4 UUID, a random cluster GUID and a creation
//! time in Go's RFC 3339 form (UTC, whole seconds).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 128 random bits from the standard library's per-process random hash keys (no extra
/// dependency; unique identifiers, not secrets).
pub fn random_u128() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let a = RandomState::new().hash_one((n, nanos, 1u8));
    let b = RandomState::new().hash_one((n, nanos, 2u8));
    (u128::from(a) << 64) | u128::from(b)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A version-4 UUID in its 36-character dashed lower-case form.
pub fn uuid_v4(bits: u128) -> String {
    let b = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A cluster GUID: 32 lower-case hex digits.
pub fn cluster_guid(bits: u128) -> String {
    format!("{bits:032x}")
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (Go's RFC 3339 in UTC; the
/// epoch for a time RFC 3339 cannot write).
pub fn rfc3339(secs: i64) -> String {
    calico_model::gotime::format_rfc3339(secs).unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_gos_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_787_217_151), "2026-08-20T09:12:31Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn uuids_are_version_4() {
        for bits in [0, u128::MAX, random_u128(), random_u128()] {
            let u = uuid_v4(bits);
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4", "{u}");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
            assert!(
                u.chars()
                    .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(random_u128(), random_u128());
        let g = cluster_guid(random_u128());
        assert_eq!(g.len(), 32);
    }
}
