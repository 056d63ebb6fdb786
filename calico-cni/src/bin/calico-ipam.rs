//! The `calico-ipam` CNI plugin.

fn main() -> std::process::ExitCode {
    calico_cni::run::plugin_main("calico-ipam", calico_cni::run::run_ipam)
}
