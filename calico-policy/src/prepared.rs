//! Per-endpoint preparation for the connlist (a speed-up of [`Model::direction_conns`] with
//! the same result, checked by the connlist-vs-check property test): for one endpoint and
//! direction, only the rules whose own side matches the endpoint are kept, and each rule's
//! connection set is computed once unless it depends on the peer (named ports on the peer
//! side).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use calico_model::resources::policy::{Action, TierAction};

use crate::addr::Family;
use crate::conn::ConnSet;
use crate::eval::PeerSpec;
use crate::model::{Direction, Model};
use crate::rules::CRule;

struct PRule<'m> {
    rule: &'m CRule,
    /// The rule's connections when the peer side matches, if independent of the peer.
    fixed: Option<ConnSet>,
}

enum Block<'m> {
    /// A tier (`pass_on`: its default action is Pass) or a profile (`pass_on` = true).
    Rules {
        pass_on: bool,
        rules: Vec<PRule<'m>>,
    },
    /// A missing profile: everything remaining is dropped.
    Drop,
}

/// One endpoint and direction, prepared.
pub(crate) struct Prepared<'m> {
    dir: Direction,
    me: PeerSpec,
    blocks: Vec<Block<'m>>,
    /// Results by signature (which rules' peer side the peer matches): peers with the same
    /// signature get the same connections.
    memo: RefCell<SigMemo>,
    /// Scratch buffer for signatures.
    scratch: RefCell<Vec<u64>>,
    /// Whether some rule depends on the peer beyond its signature (named ports on the peer).
    peer_dependent: bool,
}

const FAMILY: Family = Family::V4;

/// Connections by signature.
type SigMemo = HashMap<Box<[u64]>, Rc<ConnSet>, BuildHasherDefault<SigHasher>>;

/// A fast multiply-rotate hasher for signatures (bit words computed locally, not input
/// controlled by an adversary); the default SipHash dominated the connlist's lookups.
#[derive(Default)]
pub(crate) struct SigHasher(u64);

impl SigHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for SigHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

impl Model {
    fn prepare_rules<'m>(
        &'m self,
        rules: impl Iterator<Item = &'m CRule>,
        dir: Direction,
        me: &PeerSpec,
    ) -> Vec<PRule<'m>> {
        rules
            .filter(|r| {
                r.exists_in(FAMILY) && r.icmp.is_none() && r.not_icmp.is_none() && {
                    let own = match dir {
                        Direction::Ingress => &r.dst,
                        Direction::Egress => &r.src,
                    };
                    self.entity_matches(own, me, FAMILY)
                }
            })
            .map(|r| {
                let peer_ports = dir == Direction::Egress
                    && (!r.dst.named.is_empty() || !r.dst.not_named.is_empty());
                // With the peer side assumed matching, the connections only depend on the
                // destination's named ports; for ingress the destination is `me`.
                let fixed = (!peer_ports).then(|| self.rule_conns_unchecked(r, me));
                PRule { rule: r, fixed }
            })
            .filter(|p| p.fixed.as_ref().is_none_or(|c| !c.is_empty()))
            .collect()
    }

    /// Prepares `endpoint` (matched by selectors only) for `dir`.
    pub(crate) fn prepare(&self, endpoint: usize, dir: Direction) -> Prepared<'_> {
        let me = PeerSpec::Endpoint {
            index: endpoint,
            addr: None,
        };
        let mut blocks = Vec::new();
        let applying = self.applying(endpoint, dir);
        let mut i = 0;
        while i < applying.len() {
            let tier = self.policies.tier_of(applying[i]);
            let start = i;
            while i < applying.len() && self.policies.tier_of(applying[i]) == tier {
                i += 1;
            }
            let rules = applying[start..i]
                .iter()
                .flat_map(|&pi| self.policies[pi].rules[dir].iter());
            blocks.push(Block::Rules {
                pass_on: self
                    .policies
                    .tiers()
                    .get(tier)
                    .is_some_and(|t| t.default_action == TierAction::Pass),
                rules: self.prepare_rules(rules, dir, &me),
            });
        }
        for p in self.endpoints.profiles(endpoint) {
            match p {
                None => {
                    blocks.push(Block::Drop);
                    break;
                }
                Some(p) => {
                    let rules = match dir {
                        Direction::Ingress => &p.ingress,
                        Direction::Egress => &p.egress,
                    };
                    blocks.push(Block::Rules {
                        pass_on: true,
                        rules: self.prepare_rules(rules.iter(), dir, &me),
                    });
                }
            }
        }
        let peer_dependent = blocks.iter().any(|b| match b {
            Block::Rules { rules, .. } => rules.iter().any(|r| r.fixed.is_none()),
            Block::Drop => false,
        });
        Prepared {
            dir,
            me,
            blocks,
            memo: RefCell::new(HashMap::default()),
            scratch: RefCell::new(Vec::new()),
            peer_dependent,
        }
    }

    fn peer_side_matches(&self, dir: Direction, r: &CRule, other: &PeerSpec) -> bool {
        let peer_side = match dir {
            Direction::Ingress => &r.src,
            Direction::Egress => &r.dst,
        };
        self.entity_matches(peer_side, other, FAMILY)
    }

    /// [`Model::prepared_conns`], memoised by the peer's signature.
    pub(crate) fn prepared_conns_memo(
        &self,
        prepared: &Prepared<'_>,
        other: &PeerSpec,
    ) -> Rc<ConnSet> {
        if prepared.peer_dependent {
            return Rc::new(self.prepared_conns(prepared, other));
        }
        let mut sig = prepared.scratch.borrow_mut();
        sig.clear();
        let mut i = 0;
        for b in &prepared.blocks {
            if let Block::Rules { rules, .. } = b {
                for r in rules {
                    if i % 64 == 0 {
                        sig.push(0);
                    }
                    if self.peer_side_matches(prepared.dir, r.rule, other) {
                        if let Some(w) = sig.last_mut() {
                            *w |= 1 << (i % 64);
                        }
                    }
                    i += 1;
                }
            }
        }
        if let Some(c) = prepared.memo.borrow().get(&sig[..]) {
            return Rc::clone(c);
        }
        let c = Rc::new(self.prepared_conns(prepared, other));
        prepared
            .memo
            .borrow_mut()
            .insert(sig.clone().into_boxed_slice(), Rc::clone(&c));
        c
    }

    /// The connections `prepared` allows with `other` (same result as
    /// [`Model::direction_conns`] for an endpoint matched by selectors only, IPv4).
    pub(crate) fn prepared_conns(&self, prepared: &Prepared<'_>, other: &PeerSpec) -> ConnSet {
        let dir = prepared.dir;
        let mut remaining = ConnSet::all();
        let mut allowed = ConnSet::empty();
        for block in &prepared.blocks {
            if remaining.is_empty() {
                break;
            }
            let (pass_on, rules) = match block {
                Block::Drop => return allowed,
                Block::Rules { pass_on, rules } => (*pass_on, rules),
            };
            let mut passed = ConnSet::empty();
            for p in rules {
                if remaining.is_empty() {
                    break;
                }
                let r = p.rule;
                let m = match &p.fixed {
                    Some(c) => {
                        if !self.peer_side_matches(dir, r, other) {
                            continue;
                        }
                        c.intersect(&remaining)
                    }
                    None => {
                        let (src, dst) = match dir {
                            Direction::Ingress => (other, &prepared.me),
                            Direction::Egress => (&prepared.me, other),
                        };
                        self.rule_conns(r, src, dst, FAMILY).intersect(&remaining)
                    }
                };
                if m.is_empty() {
                    continue;
                }
                match r.action {
                    Action::Allow => {
                        allowed = allowed.union(&m);
                        remaining = remaining.minus(&m);
                    }
                    Action::Deny => remaining = remaining.minus(&m),
                    Action::Pass => {
                        passed = passed.union(&m);
                        remaining = remaining.minus(&m);
                    }
                    Action::Log => {}
                }
            }
            remaining = if pass_on {
                passed.union(&remaining)
            } else {
                passed
            };
        }
        allowed
    }
}
