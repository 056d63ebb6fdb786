//! The `calico` CNI plugin (`type: calico`).

use calico_cni::kernel::KernelPodNetwork;
use calico_cni::run::{plugin_main, run_calico};

fn main() -> std::process::ExitCode {
    plugin_main("calico-cni", |env, stdin, host| {
        run_calico(&KernelPodNetwork::default(), env, stdin, host)
    })
}
