//! The difference between two rulesets as one ordered transaction, and a
//! model-level applier that enforces the kernel's ordering constraints.

use std::collections::{BTreeMap, BTreeSet};

use crate::ruleset::{Chain, Op, Rule, Ruleset, RulesetDelta, Set, SetElement, Verdict};
use crate::ruleset::{ChainFill, VerdictMap};

/// Why a delta could not be applied to a ruleset (the kernel would reject the transaction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// An object was created that already exists.
    #[error("{kind} {name} already exists")]
    Exists {
        /// `set`, `map` or `chain`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An object used or changed does not exist.
    #[error("{kind} {name} does not exist")]
    Missing {
        /// `set`, `map` or `chain`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An object was deleted while a rule or map element still refers to it.
    #[error("{kind} {name} is still referenced")]
    InUse {
        /// `set`, `map` or `chain`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A set element was added twice or removed while absent.
    #[error("element {element} of set {set}: {problem}")]
    Element {
        /// Set or map name.
        set: String,
        /// The element, as nft text.
        element: String,
        /// `already present` or `absent`.
        problem: &'static str,
    },
}

/// Drops from `list`'s entry for `set` the elements of `els` it holds; returns the rest.
fn cancel(
    list: &mut Vec<(String, Vec<SetElement>)>,
    set: &str,
    els: Vec<SetElement>,
) -> Vec<SetElement> {
    let Some(at) = list.iter().position(|(n, _)| n == set) else {
        return els;
    };
    let v = &mut list[at].1;
    let rest = els
        .into_iter()
        .filter(|e| match v.iter().position(|x| x == e) {
            Some(i) => {
                v.swap_remove(i);
                false
            }
            None => true,
        })
        .collect();
    if v.is_empty() {
        list.remove(at);
    }
    rest
}

fn push_elements(list: &mut Vec<(String, Vec<SetElement>)>, set: &str, els: Vec<SetElement>) {
    if els.is_empty() {
        return;
    }
    match list.iter_mut().find(|(n, _)| n == set) {
        Some((_, v)) => v.extend(els),
        None => list.push((set.to_owned(), els)),
    }
}

fn sorted_diff<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
    a.difference(b).cloned().collect()
}

impl RulesetDelta {
    /// The changes that turn `old` into `new`. Identical rulesets give an empty delta; a
    /// changed chain is flushed and refilled, a changed set gets only its element changes.
    pub fn between(old: &Ruleset, new: &Ruleset) -> RulesetDelta {
        let mut d = RulesetDelta::default();
        let replaced: BTreeSet<&String> = new
            .sets
            .iter()
            .filter(|(n, s)| {
                old.sets
                    .get(*n)
                    .is_some_and(|o| o.key != s.key || o.interval != s.interval)
            })
            .map(|(n, _)| n)
            .collect();
        let base_changed: BTreeSet<&String> = new
            .chains
            .iter()
            .filter(|(n, c)| old.chains.get(*n).is_some_and(|o| o.base != c.base))
            .map(|(n, _)| n)
            .collect();
        let pre_flush: BTreeSet<&String> = old
            .chains
            .iter()
            .filter(|(n, c)| {
                !base_changed.contains(n)
                    && c.rules.iter().any(|r| {
                        r.referenced_sets()
                            .any(|s| replaced.iter().any(|x| *x == s))
                            || r.target()
                                .is_some_and(|t| base_changed.iter().any(|x| *x == t))
                    })
            })
            .map(|(n, _)| n)
            .collect();
        d.pre_flush_chains = pre_flush.iter().map(|s| (*s).clone()).collect();
        d.pre_delete_chains = base_changed.iter().map(|s| (*s).clone()).collect();
        d.pre_delete_sets = replaced.iter().map(|s| (*s).clone()).collect();

        // Sets.
        for (name, s) in &new.sets {
            match old.sets.get(name) {
                Some(o) if !replaced.contains(name) => {
                    if o.elements == s.elements {
                        continue;
                    }
                    let removed = sorted_diff(&o.elements, &s.elements);
                    let added = sorted_diff(&s.elements, &o.elements);
                    if !removed.is_empty() {
                        d.remove_elements.push((name.clone(), removed));
                    }
                    if !added.is_empty() {
                        d.add_elements.push((name.clone(), added));
                    }
                }
                _ => {
                    d.create_sets.push((name.clone(), s.key, s.interval));
                    if !s.elements.is_empty() {
                        d.add_elements
                            .push((name.clone(), s.elements.iter().cloned().collect()));
                    }
                }
            }
        }
        d.delete_sets = old
            .sets
            .keys()
            .filter(|n| !new.sets.contains_key(*n))
            .cloned()
            .collect();

        // Maps.
        let empty = VerdictMap::default();
        for (name, m) in &new.maps {
            let o = match old.maps.get(name) {
                Some(o) => o,
                None => {
                    d.create_maps.push(name.clone());
                    &empty
                }
            };
            let removed: Vec<String> = o
                .elements
                .iter()
                .filter(|(k, v)| m.elements.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            let added: Vec<(String, Verdict)> = m
                .elements
                .iter()
                .filter(|(k, v)| o.elements.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !removed.is_empty() {
                d.map_remove.push((name.clone(), removed));
            }
            if !added.is_empty() {
                d.map_add.push((name.clone(), added));
            }
        }
        d.delete_maps = old
            .maps
            .keys()
            .filter(|n| !new.maps.contains_key(*n))
            .cloned()
            .collect();

        // Chains.
        for (name, c) in &new.chains {
            let recreated = base_changed.contains(name);
            match old.chains.get(name) {
                Some(o) if !recreated => {
                    let flushed = pre_flush.contains(name);
                    if flushed {
                        if !c.rules.is_empty() {
                            d.fill_chains.push(ChainFill {
                                chain: name.clone(),
                                flush: false,
                                rules: c.rules.clone(),
                            });
                        }
                    } else if o.rules != c.rules {
                        d.fill_chains.push(ChainFill {
                            chain: name.clone(),
                            flush: true,
                            rules: c.rules.clone(),
                        });
                    }
                }
                _ => {
                    d.create_chains.push((name.clone(), c.base));
                    if !c.rules.is_empty() {
                        d.fill_chains.push(ChainFill {
                            chain: name.clone(),
                            flush: false,
                            rules: c.rules.clone(),
                        });
                    }
                }
            }
        }
        d.delete_chains = old
            .chains
            .keys()
            .filter(|n| !new.chains.contains_key(*n))
            .cloned()
            .collect();
        d
    }

    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == RulesetDelta::default()
    }

    /// Whether the delta only removes and adds elements of sets.
    pub fn only_elements(&self) -> bool {
        let RulesetDelta {
            remove_elements,
            add_elements,
            ..
        } = self;
        RulesetDelta {
            remove_elements: remove_elements.clone(),
            add_elements: add_elements.clone(),
            ..RulesetDelta::default()
        } == *self
    }

    /// Adds element changes of set `set` that follow this delta: `removed` elements the set
    /// holds after this delta, then `added` ones it does not. An element this delta adds and
    /// the change removes (or the reverse) is no change at all and leaves both lists.
    pub fn change_elements(&mut self, set: &str, removed: Vec<SetElement>, added: Vec<SetElement>) {
        let removed = cancel(&mut self.add_elements, set, removed);
        push_elements(&mut self.remove_elements, set, removed);
        let added = cancel(&mut self.remove_elements, set, added);
        push_elements(&mut self.add_elements, set, added);
    }

    /// Appends an element-only delta that follows this one (see
    /// [`RulesetDelta::change_elements`]).
    pub fn then_elements(&mut self, later: RulesetDelta) {
        let mut adds: BTreeMap<String, Vec<SetElement>> = later.add_elements.into_iter().collect();
        for (set, removed) in later.remove_elements {
            let added = adds.remove(&set).unwrap_or_default();
            self.change_elements(&set, removed, added);
        }
        for (set, added) in adds {
            self.change_elements(&set, Vec::new(), added);
        }
    }

    /// The operations in application order: pre-phase flushes and deletes, create sets and
    /// maps and chains, remove then add set elements, flush and refill chains, update map
    /// elements, flush then delete chains, delete sets and maps. Empty when the delta is empty;
    /// otherwise [`Op::AddTable`] comes first.
    pub fn ops(&self) -> Vec<Op<'_>> {
        let mut ops = Vec::new();
        if self.is_empty() {
            return ops;
        }
        ops.push(Op::AddTable);
        for c in &self.pre_flush_chains {
            ops.push(Op::FlushChain { chain: c });
        }
        for c in &self.pre_delete_chains {
            ops.push(Op::FlushChain { chain: c });
        }
        for c in &self.pre_delete_chains {
            ops.push(Op::DeleteChain { chain: c });
        }
        for s in &self.pre_delete_sets {
            ops.push(Op::DeleteSet { name: s });
        }
        for (name, key, interval) in &self.create_sets {
            ops.push(Op::AddSet {
                name,
                key: *key,
                interval: *interval,
            });
        }
        for name in &self.create_maps {
            ops.push(Op::AddMap { name });
        }
        for (name, base) in &self.create_chains {
            ops.push(Op::AddChain { name, base: *base });
        }
        for (set, elements) in &self.remove_elements {
            ops.push(Op::DeleteElements { set, elements });
        }
        for (set, elements) in &self.add_elements {
            ops.push(Op::AddElements { set, elements });
        }
        for f in &self.fill_chains {
            if f.flush {
                ops.push(Op::FlushChain { chain: &f.chain });
            }
            for rule in &f.rules {
                ops.push(Op::AddRule {
                    chain: &f.chain,
                    rule,
                });
            }
        }
        for (map, keys) in &self.map_remove {
            ops.push(Op::DeleteMapElements { map, keys });
        }
        for (map, elements) in &self.map_add {
            ops.push(Op::AddMapElements { map, elements });
        }
        for c in &self.delete_chains {
            ops.push(Op::FlushChain { chain: c });
        }
        for c in &self.delete_chains {
            ops.push(Op::DeleteChain { chain: c });
        }
        for s in &self.delete_sets {
            ops.push(Op::DeleteSet { name: s });
        }
        for m in &self.delete_maps {
            ops.push(Op::DeleteMap { name: m });
        }
        ops
    }

    /// Applies the operations of [`RulesetDelta::ops`] to `old`, one by one, with the checks
    /// the kernel makes (objects exist before use, no deletion while referenced, no duplicate
    /// creation or element). Costs a scan of the ruleset per deletion: meant for tests.
    pub fn apply(&self, old: &Ruleset) -> Result<Ruleset, ApplyError> {
        let mut rs = old.clone();
        for op in self.ops() {
            apply_op(&mut rs, &op)?;
        }
        Ok(rs)
    }
}

fn chain_referenced(rs: &Ruleset, name: &str) -> bool {
    rs.chains
        .values()
        .any(|c| c.rules.iter().any(|r| r.target() == Some(name)))
        || rs
            .maps
            .values()
            .any(|m| m.elements.values().any(|v| v.target() == Some(name)))
}

fn set_referenced(rs: &Ruleset, name: &str) -> bool {
    rs.chains.values().any(|c| {
        c.rules
            .iter()
            .any(|r| r.referenced_sets().any(|s| s == name))
    })
}

fn check_rule(rs: &Ruleset, rule: &Rule) -> Result<(), ApplyError> {
    for s in rule.referenced_sets() {
        if !rs.sets.contains_key(s) && !rs.maps.contains_key(s) {
            return Err(ApplyError::Missing {
                kind: "set",
                name: s.to_owned(),
            });
        }
    }
    if let Some(t) = rule.target() {
        if !rs.chains.contains_key(t) {
            return Err(ApplyError::Missing {
                kind: "chain",
                name: t.to_owned(),
            });
        }
    }
    Ok(())
}

fn set_mut<'a>(rs: &'a mut Ruleset, name: &str) -> Result<&'a mut Set, ApplyError> {
    rs.sets.get_mut(name).ok_or_else(|| ApplyError::Missing {
        kind: "set",
        name: name.to_owned(),
    })
}

fn chain_mut<'a>(rs: &'a mut Ruleset, name: &str) -> Result<&'a mut Chain, ApplyError> {
    rs.chains.get_mut(name).ok_or_else(|| ApplyError::Missing {
        kind: "chain",
        name: name.to_owned(),
    })
}

fn map_mut<'a>(rs: &'a mut Ruleset, name: &str) -> Result<&'a mut VerdictMap, ApplyError> {
    rs.maps.get_mut(name).ok_or_else(|| ApplyError::Missing {
        kind: "map",
        name: name.to_owned(),
    })
}

fn element_error(set: &str, e: &SetElement, problem: &'static str) -> ApplyError {
    ApplyError::Element {
        set: set.to_owned(),
        element: crate::text::element_text(e),
        problem,
    }
}

fn apply_op(rs: &mut Ruleset, op: &Op<'_>) -> Result<(), ApplyError> {
    match op {
        Op::AddTable => {}
        Op::AddSet {
            name,
            key,
            interval,
        } => {
            if rs.sets.contains_key(*name) || rs.maps.contains_key(*name) {
                return Err(ApplyError::Exists {
                    kind: "set",
                    name: (*name).to_owned(),
                });
            }
            rs.sets.insert(
                (*name).to_owned(),
                Set {
                    key: *key,
                    interval: *interval,
                    elements: BTreeSet::new(),
                },
            );
        }
        Op::AddMap { name } => {
            if rs.sets.contains_key(*name) || rs.maps.contains_key(*name) {
                return Err(ApplyError::Exists {
                    kind: "map",
                    name: (*name).to_owned(),
                });
            }
            rs.maps.insert((*name).to_owned(), VerdictMap::default());
        }
        Op::AddChain { name, base } => {
            if rs.chains.contains_key(*name) {
                return Err(ApplyError::Exists {
                    kind: "chain",
                    name: (*name).to_owned(),
                });
            }
            rs.chains.insert(
                (*name).to_owned(),
                Chain {
                    base: *base,
                    rules: Vec::new(),
                },
            );
        }
        Op::DeleteElements { set, elements } => {
            let s = set_mut(rs, set)?;
            for e in *elements {
                if !s.elements.remove(e) {
                    return Err(element_error(set, e, "absent"));
                }
            }
        }
        Op::AddElements { set, elements } => {
            let s = set_mut(rs, set)?;
            for e in *elements {
                if !s.elements.insert(e.clone()) {
                    return Err(element_error(set, e, "already present"));
                }
            }
        }
        Op::FlushChain { chain } => chain_mut(rs, chain)?.rules.clear(),
        Op::AddRule { chain, rule } => {
            check_rule(rs, rule)?;
            chain_mut(rs, chain)?.rules.push((*rule).clone());
        }
        Op::DeleteMapElements { map, keys } => {
            let m = map_mut(rs, map)?;
            for k in *keys {
                if m.elements.remove(k).is_none() {
                    return Err(element_error(map, &SetElement::Ifname(k.clone()), "absent"));
                }
            }
        }
        Op::AddMapElements { map, elements } => {
            for (_, v) in *elements {
                if let Some(t) = v.target() {
                    if !rs.chains.contains_key(t) {
                        return Err(ApplyError::Missing {
                            kind: "chain",
                            name: t.to_owned(),
                        });
                    }
                }
            }
            let m = map_mut(rs, map)?;
            for (k, v) in *elements {
                if m.elements.insert(k.clone(), v.clone()).is_some() {
                    return Err(element_error(
                        map,
                        &SetElement::Ifname(k.clone()),
                        "already present",
                    ));
                }
            }
        }
        Op::DeleteChain { chain } => {
            if chain_referenced(rs, chain) {
                return Err(ApplyError::InUse {
                    kind: "chain",
                    name: (*chain).to_owned(),
                });
            }
            if rs.chains.remove(*chain).is_none() {
                return Err(ApplyError::Missing {
                    kind: "chain",
                    name: (*chain).to_owned(),
                });
            }
        }
        Op::DeleteSet { name } => {
            if set_referenced(rs, name) {
                return Err(ApplyError::InUse {
                    kind: "set",
                    name: (*name).to_owned(),
                });
            }
            if rs.sets.remove(*name).is_none() {
                return Err(ApplyError::Missing {
                    kind: "set",
                    name: (*name).to_owned(),
                });
            }
        }
        Op::DeleteMap { name } => {
            if set_referenced(rs, name) {
                return Err(ApplyError::InUse {
                    kind: "map",
                    name: (*name).to_owned(),
                });
            }
            if rs.maps.remove(*name).is_none() {
                return Err(ApplyError::Missing {
                    kind: "map",
                    name: (*name).to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Chains reachable from base chains (and verdict-map elements used by them), by name.
pub fn reachable_chains(rs: &Ruleset) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<&str> = rs
        .chains
        .iter()
        .filter(|(_, c)| c.base.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let maps: BTreeMap<&str, &VerdictMap> = rs.maps.iter().map(|(k, v)| (k.as_str(), v)).collect();
    while let Some(n) = stack.pop() {
        if !seen.insert(n.to_owned()) {
            continue;
        }
        let Some(c) = rs.chains.get(n) else { continue };
        for r in &c.rules {
            if let Some(t) = r.target() {
                stack.push(t);
            }
            for s in r.referenced_sets() {
                if let Some(m) = maps.get(s) {
                    stack.extend(m.elements.values().filter_map(Verdict::target));
                }
            }
        }
    }
    seen
}

impl Ruleset {
    /// How many rules (and verdict-map rules) refer to each named set or map, by name.
    pub fn set_references(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self.chains.values() {
            for r in &c.rules {
                for s in r.referenced_sets() {
                    *m.entry(s.to_owned()).or_insert(0) += 1;
                }
            }
        }
        m
    }

    /// The names of the sets (and maps) some rule refers to: [`Ruleset::set_references`]
    /// without the counts, borrowed (no allocation per reference).
    pub fn referenced_set_names(&self) -> std::collections::HashSet<&str> {
        self.chains
            .values()
            .flat_map(|c| c.rules.iter())
            .flat_map(|r| r.referenced_sets())
            .collect()
    }
}
