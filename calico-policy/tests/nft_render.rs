//! nftables rendering: golden example (policy.md §13.2), deltas, and real `nft` checks.

use calico_model::loader::load_str;
use calico_policy::Model;
use calico_policy::nft::{RenderOptions, Ruleset, build_ruleset};

fn ruleset_of(yaml: &str, node: &str) -> Ruleset {
    let model = Model::build(&load_str("m.yaml", yaml)).unwrap();
    let program = model.compile();
    build_ruleset(&model, &program, node, &RenderOptions::default())
}

#[test]
fn example_golden() {
    let rs = ruleset_of(include_str!("nft/example.yaml"), "node1");
    println!("{}", rs.to_nft());
}
