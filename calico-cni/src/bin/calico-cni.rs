//! The `calico` CNI plugin (`type: calico`).

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--version" || a == "-v")
    {
        println!("{}", calico_cni::version::about("calico-cni"));
        return ExitCode::SUCCESS;
    }
    let mut stdin = Vec::new();
    if std::env::var("CNI_COMMAND").as_deref() != Ok("VERSION") {
        if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
            let err = calico_cni::PluginError::Stdin(e).to_cni(calico_cni::spec::CNI_VERSION);
            println!("{}", serde_json::to_string(&err).unwrap_or_default());
            return ExitCode::FAILURE;
        }
    }
    let out = calico_cni::run::run_calico(
        &calico_cni::kernel::KernelPodNetwork::default(),
        &|k| std::env::var(k).ok(),
        &stdin,
        &calico_cni::run::hostname(),
    );
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    if out.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
