//! Prints `calico node status` for a BIRD control socket (default
//! `/var/run/calico/bird.ctl`), as calicoctl prints it.
//!
//! ```text
//! cargo run -p calico-node --example node_status -- /var/run/calico/bird.ctl
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use calico_node::protocols::parse_show_protocols;
use calico_node::{BirdControl, NodeStatus};

fn main() -> ExitCode {
    let socket = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("/var/run/calico/bird.ctl"), PathBuf::from);
    let rows = match BirdControl::connect(&socket, Duration::from_secs(5))
        .and_then(|mut c| c.command("show protocols"))
    {
        Ok(reply) => parse_show_protocols(&reply.text()),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", NodeStatus::from_protocols(true, &rows).to_table());
    ExitCode::SUCCESS
}
