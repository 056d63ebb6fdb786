//! Order-preserving work on every core for large inputs: decoding, validating and deriving
//! 100,000 objects is embarrassingly parallel, and a node agent's cold start waits for it.
//!
//! Plain scoped threads (no pool, no async runtime); small inputs stay on the calling
//! thread.
//!
//! ```
//! let squares = calico_model::parallel::map(&[1u32, 2, 3], |x| x * x);
//! assert_eq!(squares, [1, 4, 9]);
//! ```

/// Below this many items the work stays on the calling thread.
pub const MIN_PARALLEL: usize = 2048;

/// `items.iter().map(f).collect()`, on up to [`threads`] threads for large inputs; the
/// results keep the items' order.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n = threads();
    if n < 2 || items.len() < MIN_PARALLEL {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(n);
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for p in parts {
            match p.join() {
                Ok(v) => out.extend(v),
                // `f` panicked: so does the caller, as it would have without threads.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// How many threads [`map`] uses: the available cores, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_inputs_keep_their_order() {
        let items: Vec<u64> = (0..(MIN_PARALLEL as u64 * 3 + 7)).collect();
        let out = map(&items, |x| x * 2 + 1);
        assert_eq!(out.len(), items.len());
        assert!(out.iter().enumerate().all(|(i, v)| *v == i as u64 * 2 + 1));
    }

    #[test]
    fn small_inputs_and_empty_ones() {
        assert_eq!(map(&[] as &[u8], |x| *x), Vec::<u8>::new());
        assert_eq!(map(&["a", "bc"], |s| s.len()), [1, 2]);
    }
}
