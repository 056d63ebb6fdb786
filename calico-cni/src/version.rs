//! Build information.

/// This crate's version.
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `--version` / `-v` text of the binaries (`CNI_COMMAND=VERSION` prints the CNI
/// specification's JSON answer instead).
pub fn about(binary: &str) -> String {
    format!(
        "{binary} {PLUGIN_VERSION}; CNI protocol versions: {}",
        crate::spec::SUPPORTED_VERSIONS.join(", ")
    )
}
