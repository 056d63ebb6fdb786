//! Two versions of a node's table and the one transaction between them, as `nft -f` text.
//!
//! ```text
//! cargo run -p calico-nft --example delta
//! ```

use calico_nft::{
    Chain, Match, PortProto, PortValue, Rule, RuleVerdict, Ruleset, RulesetDelta, Side, Verdict,
};

fn allow_port(port: u16) -> Rule {
    Rule {
        matches: vec![Match::Port {
            proto: PortProto::Tcp,
            side: Side::Dst,
            value: PortValue::Single(port),
            negate: false,
        }],
        verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
        ..Rule::default()
    }
}

fn main() {
    let mut old = Ruleset::default();
    old.chains.insert(
        "pol-i-web".to_owned(),
        Chain {
            base: None,
            rules: vec![allow_port(80)],
        },
    );
    let mut new = old.clone();
    if let Some(chain) = new.chains.get_mut("pol-i-web") {
        chain.rules.push(allow_port(443));
    }
    println!("# the new table\n{}", new.to_nft());
    let delta = RulesetDelta::between(&old, &new);
    println!("# the transaction from the old one\n{}", delta.to_nft());
}
