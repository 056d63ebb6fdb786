//! Exponential backoff with full jitter, seeded for replay.

use std::time::Duration;

/// Backoff parameters: before retry `k` (k ≥ 1) wait a uniformly random duration in
/// `[0, min(cap, base·2^(k−1))]`, for at most `max_retries` retries and until `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first retry's upper bound.
    pub base: Duration,
    /// The largest upper bound.
    pub cap: Duration,
    /// The most retries (`u32::MAX`: only the deadline bounds them).
    pub max_retries: u32,
    /// The total time after which no retry starts.
    pub deadline: Duration,
}

impl BackoffPolicy {
    /// The policy of the IPAM retries and of the etcd backend: base 2 ms, cap 250 ms, at most 20
    /// retries, 30 s deadline.
    pub const DEFAULT: BackoffPolicy = BackoffPolicy {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(250),
        max_retries: 20,
        deadline: Duration::from_secs(30),
    };

    /// The upper bound of the wait before retry `k` (k ≥ 1): `min(cap, base·2^(k−1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(40);
        let factor = 1u64 << shift;
        let nanos = u64::try_from(self.base.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.cap)
    }
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A backoff sequence: [`Backoff::next_delay`] gives the wait before each retry.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    retries: u32,
    rng: u64,
}

impl Backoff {
    /// A sequence under `policy` whose jitter is drawn from a generator seeded with `seed`
    /// (equal seeds give equal sequences).
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            retries: 0,
            rng: seed,
        }
    }

    /// The number of retries granted so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The wait before the next retry, or `None` when `max_retries` are used up or the retry
    /// would start after the deadline, given the time `elapsed` since the first attempt.
    pub fn next_delay(&mut self, elapsed: Duration) -> Option<Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        let retry = self.retries + 1;
        let ceiling = self.policy.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let draw = splitmix64(&mut self.rng);
        let wait = Duration::from_nanos(if nanos == u64::MAX {
            draw
        } else {
            draw % (nanos + 1)
        });
        if elapsed.saturating_add(wait) >= self.policy.deadline {
            return None;
        }
        self.retries = retry;
        Some(wait)
    }
}

/// splitmix64: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = BackoffPolicy::DEFAULT;
        let ms = |k| p.ceiling(k).as_millis();
        assert_eq!(
            (1..=9).map(ms).collect::<Vec<_>>(),
            [2, 4, 8, 16, 32, 64, 128, 250, 250]
        );
        assert_eq!(p.ceiling(1000), Duration::from_millis(250));
    }

    #[test]
    fn delays_are_jittered_within_bounds_and_replayable() {
        let p = BackoffPolicy::DEFAULT;
        let mut a = Backoff::new(p, 7);
        let mut b = Backoff::new(p, 7);
        let mut c = Backoff::new(p, 8);
        let mut da = Vec::new();
        for k in 1..=20 {
            let d = a.next_delay(Duration::ZERO).unwrap();
            assert!(d <= p.ceiling(k), "retry {k}: {d:?}");
            assert_eq!(Some(d), b.next_delay(Duration::ZERO));
            da.push(d);
        }
        let dc: Vec<_> = (0..20)
            .map(|_| c.next_delay(Duration::ZERO).unwrap())
            .collect();
        assert_ne!(da, dc, "different seeds should give different jitter");
        assert_eq!(a.next_delay(Duration::ZERO), None, "21st retry allowed");
        assert_eq!(a.retries(), 20);
        // Full jitter: the waits are spread, not all at the ceiling.
        assert!(da.iter().skip(8).any(|d| *d < Duration::from_millis(200)));
    }

    #[test]
    fn deadline_stops_retries() {
        let mut b = Backoff::new(BackoffPolicy::DEFAULT, 1);
        assert_eq!(b.next_delay(Duration::from_secs(30)), None);
        assert_eq!(b.retries(), 0);
    }
}
