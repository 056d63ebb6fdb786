//! Compiled selectors: allocation-free evaluation against interned label sets.
//!
//! [`CompiledSelector::compile`] turns a selector tree ([`Node`]) into a small *branch
//! program*: a flat array of label tests, each with a jump target for "true" and one for
//! "false". Boolean structure disappears into the jump targets, the classic short-circuit
//! code-generation scheme:
//!
//! - `And[a, b, …]`: each operand's "true" exit enters the next operand, every "false" exit
//!   goes to the `And`'s false target; `Or` is the mirror image.
//! - `Not e` compiles `e` with its two targets swapped, so it costs nothing. `k != v` is
//!   `!(k == v)` and `k not in S` is `!(k in S)`, which is exactly Calico's evaluation: both are
//!   true when `k` is absent.
//! - `all()` and `global()` compile to no test at all (a jump straight to the true target);
//!   `k in {}` to a jump to the false target; `k in {v}` to `k == v`; `contains`,
//!   `starts with` and `ends with` with an empty string to `has(k)`.
//!
//! Every test first looks the key up in the label set and fails when it is absent; `==` and
//! `in` compare interned value ids (sets are sorted ids), the string tests look at the value
//! text through the [`Interner`]. Jumps only go forward, so evaluation is a single loop with
//! no recursion, no stack and no allocation, and evaluates operands left to right with
//! short-circuiting, as the tree evaluator does. Tests have no side effects, so removing tests
//! that can never run (after a constant-false operand, say) changes no result.
//!
//! ```
//! use calico_model::labels::{Interner, LabelSet};
//! use calico_model::selector::Selector;
//! use calico_model::selector::compiled::CompiledSelector;
//! # fn main() -> Result<(), calico_model::selector::SelectorError> {
//! let mut interner = Interner::new();
//! let selector = Selector::parse("app in {'web', 'api'} && !has(canary)")?;
//! let compiled = CompiledSelector::compile(selector.root(), &mut interner);
//! let pod = LabelSet::from_pairs([("app", "web"), ("tier", "fe")], &mut interner);
//! assert!(compiled.matches(&pod, &interner));
//! # Ok(())
//! # }
//! ```

use super::{Node, Text};
use crate::labels::{ABSENT, Interner, KeyId, LabelSet, Remap, ValueId};

/// Jump target meaning "the selector matches".
pub(crate) const ACCEPT: u32 = u32::MAX;
/// Jump target meaning "the selector does not match".
pub(crate) const REJECT: u32 = u32::MAX - 1;

/// Sets with at most this many members are searched linearly.
const LINEAR_SET_MAX: usize = 8;

/// What one instruction checks about the value of its key (the key being present is
/// always required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Test {
    /// Present (any value).
    Has,
    /// Value equals this id.
    Eq(ValueId),
    /// Value is one of `sets[start..end]` (sorted ids, at least two).
    In {
        /// First member in `CompiledSelector::sets`.
        start: u32,
        /// One past the last member.
        end: u32,
    },
    /// Value contains `needles[i]` (non-empty).
    Contains(u32),
    /// Value starts with `needles[i]` (non-empty).
    StartsWith(u32),
    /// Value ends with `needles[i]` (non-empty).
    EndsWith(u32),
}

/// One test of the branch program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Instr {
    /// The label tested.
    pub(crate) key: KeyId,
    /// What is tested.
    pub(crate) test: Test,
    /// Next instruction when the test passes, or [`ACCEPT`] / [`REJECT`].
    pub(crate) on_true: u32,
    /// Next instruction when the test fails (key absent included), or [`ACCEPT`] /
    /// [`REJECT`].
    pub(crate) on_false: u32,
}

/// A selector compiled for fast, allocation-free evaluation against [`LabelSet`]s.
///
/// Evaluation gives exactly the result of [`Selector::matches`](crate::selector::Selector::matches) for every label set built with the
/// same [`Interner`] that compiled the selector. Two selectors compiled from equal trees with
/// the same interner compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledSelector {
    /// The tests; every jump target is greater than the instruction's own index.
    instrs: Box<[Instr]>,
    /// First instruction, or [`ACCEPT`] / [`REJECT`] for a constant selector.
    entry: u32,
    /// Members of all `in` sets, each set sorted and de-duplicated.
    sets: Box<[ValueId]>,
    /// Operands of the string tests.
    needles: Box<[Box<str>]>,
}

/// Converts a length to `u32`. Programs and their tables are bounded by the size of the tree
/// they come from, which cannot reach 2^32 nodes in addressable memory; saturating keeps the
/// conversion total (a saturated index is out of range and simply fails its test).
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Byte-slice equality without a `memcmp` call: label values and selector operands are a
/// few bytes long, where the call costs more than the comparison.
#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Substring search tuned for label values (short haystacks, short needles): the generic
/// two-way searcher's set-up costs more than a naive scan at these sizes.
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    match n {
        [] => true,
        [byte] => h.contains(byte),
        [first, rest @ ..] if h.len() <= 64 => h
            .iter()
            .enumerate()
            .take((h.len() + 1).saturating_sub(n.len()))
            .any(|(i, b)| {
                b == first && h.get(i + 1..i + n.len()).is_some_and(|w| bytes_eq(w, rest))
            }),
        _ => haystack.contains(needle),
    }
}

/// `haystack` starts with `needle`.
fn starts_with(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    h.get(..n.len()).is_some_and(|p| bytes_eq(p, n))
}

/// `haystack` ends with `needle`.
fn ends_with(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    h.len()
        .checked_sub(n.len())
        .and_then(|at| h.get(at..))
        .is_some_and(|s| bytes_eq(s, n))
}

/// Builder state: instructions are generated last operand first, so every jump target is
/// known when an instruction is emitted; [`Builder::finish`] then reverses the order.
struct Builder<'i> {
    interner: &'i mut Interner,
    instrs: Vec<Instr>,
    sets: Vec<ValueId>,
    needles: Vec<Box<str>>,
}

impl Builder<'_> {
    fn leaf(&mut self, label: &str, test: Test, on_true: u32, on_false: u32) -> u32 {
        let key = self.interner.intern_key(label);
        let at = to_u32(self.instrs.len());
        self.instrs.push(Instr {
            key,
            test,
            on_true,
            on_false,
        });
        at
    }

    fn string_test(
        &mut self,
        label: &str,
        value: &str,
        make: fn(u32) -> Test,
        t: u32,
        f: u32,
    ) -> u32 {
        if value.is_empty() {
            // `""` is a substring, prefix and suffix of every value: the test is presence.
            return self.leaf(label, Test::Has, t, f);
        }
        let at = to_u32(self.needles.len());
        self.needles.push(value.into());
        self.leaf(label, make(at), t, f)
    }

    /// Emits `label in values`, jumping to `t` when it holds and `f` otherwise.
    fn set_test(&mut self, label: &str, values: &[Text], t: u32, f: u32) -> u32 {
        let mut ids: Vec<ValueId> = values
            .iter()
            .map(|v| self.interner.intern_value(v))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        match ids.as_slice() {
            [] => f,
            [one] => self.leaf(label, Test::Eq(*one), t, f),
            _ => {
                let start = to_u32(self.sets.len());
                self.sets.extend_from_slice(&ids);
                let end = to_u32(self.sets.len());
                self.leaf(label, Test::In { start, end }, t, f)
            }
        }
    }

    /// Emits `node` so that it continues at `t` when true and `f` when false; returns its
    /// entry point (an instruction, or `t`/`f` when the node is constant).
    fn emit(&mut self, node: &Node, t: u32, f: u32) -> u32 {
        match node {
            Node::Eq { label, value } => {
                let v = self.interner.intern_value(value);
                self.leaf(label, Test::Eq(v), t, f)
            }
            Node::Ne { label, value } => {
                let v = self.interner.intern_value(value);
                self.leaf(label, Test::Eq(v), f, t)
            }
            Node::In { label, values } => self.set_test(label, values, t, f),
            Node::NotIn { label, values } => self.set_test(label, values, f, t),
            Node::Has { label } => self.leaf(label, Test::Has, t, f),
            Node::Contains { label, value } => self.string_test(label, value, Test::Contains, t, f),
            Node::StartsWith { label, value } => {
                self.string_test(label, value, Test::StartsWith, t, f)
            }
            Node::EndsWith { label, value } => self.string_test(label, value, Test::EndsWith, t, f),
            Node::All | Node::Global => t,
            Node::Not(inner) => self.emit(inner, f, t),
            Node::And(operands) => operands
                .iter()
                .rev()
                .fold(t, |next, operand| self.emit(operand, next, f)),
            Node::Or(operands) => operands
                .iter()
                .rev()
                .fold(f, |next, operand| self.emit(operand, t, next)),
        }
    }

    /// Reverses the program into execution order and drops unreachable instructions.
    fn finish(self, entry: u32) -> CompiledSelector {
        let n = self.instrs.len();
        let flip = |target: u32| {
            if target >= REJECT {
                target
            } else {
                to_u32(n - 1 - target as usize)
            }
        };
        let mut instrs: Vec<Instr> = self
            .instrs
            .into_iter()
            .rev()
            .map(|ins| Instr {
                on_true: flip(ins.on_true),
                on_false: flip(ins.on_false),
                ..ins
            })
            .collect();
        let entry = flip(entry);

        // Forward jumps only: one pass in order finds every reachable instruction.
        let mut reachable = vec![false; n];
        if let Some(r) = reachable.get_mut(entry as usize) {
            *r = true;
        }
        for i in 0..n {
            if reachable[i] {
                let ins = instrs[i];
                for target in [ins.on_true, ins.on_false] {
                    if let Some(r) = reachable.get_mut(target as usize) {
                        *r = true;
                    }
                }
            }
        }
        let mut renumber = vec![REJECT; n];
        let mut next = 0u32;
        for (i, slot) in renumber.iter_mut().enumerate() {
            if reachable[i] {
                *slot = next;
                next += 1;
            }
        }
        let remap = |target: u32| renumber.get(target as usize).copied().unwrap_or(target);
        let mut kept = 0;
        for i in 0..n {
            if reachable[i] {
                let ins = instrs[i];
                instrs[kept] = Instr {
                    on_true: remap(ins.on_true),
                    on_false: remap(ins.on_false),
                    ..ins
                };
                kept += 1;
            }
        }
        instrs.truncate(kept);

        CompiledSelector {
            instrs: instrs.into_boxed_slice(),
            entry: remap(entry),
            sets: self.sets.into_boxed_slice(),
            needles: self.needles.into_boxed_slice(),
        }
    }
}

impl CompiledSelector {
    /// Compiles `node`, interning its labels and values in `interner`.
    ///
    /// Label sets evaluated against the result must be built with the same interner.
    /// Compilation recurses once per tree level, like building and dropping the tree does.
    pub fn compile(node: &Node, interner: &mut Interner) -> Self {
        let mut b = Builder {
            interner,
            instrs: Vec::new(),
            sets: Vec::new(),
            needles: Vec::new(),
        };
        let entry = b.emit(node, ACCEPT, REJECT);
        b.finish(entry)
    }

    /// Whether the selector matches `labels` (see [evaluation](crate::selector#evaluation)). Never allocates.
    ///
    /// `interner` must be the one that compiled this selector and built `labels`; it is
    /// consulted only for `contains`, `starts with` and `ends with`.
    #[inline]
    pub fn matches(&self, labels: &LabelSet, interner: &Interner) -> bool {
        let mut pc = self.entry;
        while let Some(ins) = self.instrs.get(pc as usize) {
            pc = if self.hit(ins, labels, interner) {
                ins.on_true
            } else {
                ins.on_false
            };
        }
        pc == ACCEPT
    }

    /// Whether instruction `ins` passes for `labels`. `==`, `in` (short sets) and `has`
    /// are decided without branching on the data.
    #[inline]
    fn hit(&self, ins: &Instr, labels: &LabelSet, interner: &Interner) -> bool {
        let raw = labels.raw_value(ins.key);
        match ins.test {
            Test::Eq(want) => raw == want.as_u32(),
            Test::Has => raw != ABSENT,
            // No member is ABSENT, so an absent key never matches.
            Test::In { start, end } => self.in_set(start, end, raw),
            test => self.string_test(test, raw, interner),
        }
    }

    /// Whether `raw` is a member of the set `sets[start..end]`.
    #[inline]
    fn in_set(&self, start: u32, end: u32, raw: u32) -> bool {
        let set = self.set(start, end);
        if set.len() <= LINEAR_SET_MAX {
            // Branch-free scan of a short set.
            set.iter()
                .fold(false, |found, m| found | (m.as_u32() == raw))
        } else {
            set.binary_search(&ValueId::from_raw(raw)).is_ok()
        }
    }

    /// The string tests, out of line: they are rarer and need more registers.
    #[inline(never)]
    fn string_test(&self, test: Test, raw: u32, interner: &Interner) -> bool {
        raw != ABSENT && self.test(test, ValueId::from_raw(raw), interner)
    }

    /// Applies `test` to a present label whose value is `value`.
    #[inline]
    pub(crate) fn test(&self, test: Test, value: ValueId, interner: &Interner) -> bool {
        match test {
            Test::Has => true,
            Test::Eq(want) => value == want,
            Test::In { start, end } => self.in_set(start, end, value.as_u32()),
            Test::Contains(i) => self
                .needle(i)
                .is_some_and(|n| contains(interner.value(value), n)),
            Test::StartsWith(i) => self
                .needle(i)
                .is_some_and(|n| starts_with(interner.value(value), n)),
            Test::EndsWith(i) => self
                .needle(i)
                .is_some_and(|n| ends_with(interner.value(value), n)),
        }
    }

    fn needle(&self, i: u32) -> Option<&str> {
        self.needles.get(i as usize).map(|s| &**s)
    }

    /// `Some(result)` when the selector's result does not depend on the labels (`all()`,
    /// `!all()`, `k in {}`, …), `None` otherwise.
    pub fn constant(&self) -> Option<bool> {
        match self.entry {
            ACCEPT => Some(true),
            REJECT => Some(false),
            _ => None,
        }
    }

    /// Number of label tests in the program (0 for a constant selector).
    pub fn test_count(&self) -> usize {
        self.instrs.len()
    }

    /// The distinct label keys the selector reads, sorted. Its result depends on the values
    /// of these keys only.
    pub fn keys(&self) -> Vec<KeyId> {
        let mut keys: Vec<KeyId> = self.instrs.iter().map(|i| i.key).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The same program with its ids translated by `remap` (for interner compaction).
    pub(crate) fn remap(&self, remap: &mut Remap<'_>) -> CompiledSelector {
        let mut sets: Vec<ValueId> = self.sets.iter().map(|&v| remap.value(v)).collect();
        let instrs = self
            .instrs
            .iter()
            .map(|ins| {
                let test = match ins.test {
                    Test::Eq(v) => Test::Eq(remap.value(v)),
                    Test::In { start, end } => {
                        // Membership uses sorted ids: re-sort each set under the new ids.
                        if let Some(set) = sets.get_mut(start as usize..end as usize) {
                            set.sort_unstable();
                        }
                        ins.test
                    }
                    other => other,
                };
                Instr {
                    key: remap.key(ins.key),
                    test,
                    ..*ins
                }
            })
            .collect();
        CompiledSelector {
            instrs,
            entry: self.entry,
            sets: sets.into_boxed_slice(),
            needles: self.needles.clone(),
        }
    }

    /// The instructions, in execution order (every jump goes forward).
    pub(crate) fn instrs(&self) -> &[Instr] {
        &self.instrs
    }

    /// The first instruction, or [`ACCEPT`] / [`REJECT`].
    pub(crate) fn entry(&self) -> u32 {
        self.entry
    }

    /// The members of an `In` test.
    pub(crate) fn set(&self, start: u32, end: u32) -> &[ValueId] {
        self.sets.get(start as usize..end as usize).unwrap_or(&[])
    }
}

#[cfg(test)]
#[path = "compiled_tests.rs"]
mod tests;
