//! Prints the BGP sessions of a cluster and one node's BIRD 2 configuration.
//!
//! ```text
//! cargo run -p calico-route --example bird_config -- examples/cluster node-1
//! ```

use std::process::ExitCode;

use calico_model::loader::load_paths;
use calico_route::Family;
use calico_route::bird::render;
use calico_route::graph::SessionGraph;
use calico_route::input::Cluster;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "examples/cluster".to_owned());
    let node = args.next().unwrap_or_else(|| "node-1".to_owned());
    let mut set = match load_paths(&[path.as_str()]) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    set.apply_defaults();
    let cluster = Cluster::from_resources(set.resources());
    let graph = SessionGraph::new(&cluster);
    println!("# {} BGP sessions in the cluster", graph.session_count());
    match render(&cluster, &node, Family::V4) {
        Ok(config) => {
            print!("{}", config.text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{node}: {e}");
            ExitCode::from(2)
        }
    }
}
