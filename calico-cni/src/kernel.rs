//! The kernel [`PodNetwork`](crate::plugin::PodNetwork): placeholder until calico-dataplane's
//! `workload` module lands.

use std::path::Path;

use crate::plugin::{PodLinks, PodNetwork, PodSpec};

/// The kernel pod network.
#[derive(Debug, Default)]
pub struct KernelPodNetwork {}

/// Why a kernel operation failed.
#[derive(Debug, thiserror::Error)]
#[error("kernel pod network: {0}")]
pub struct KernelError(String);

impl PodNetwork for KernelPodNetwork {
    type Error = KernelError;
    fn netns_exists(&self, netns: &Path) -> bool {
        netns.exists()
    }
    fn create(&self, _spec: &PodSpec<'_>) -> Result<PodLinks, KernelError> {
        Err(KernelError("not yet available".into()))
    }
    fn remove(&self, _: &str, _: Option<&Path>, _: &str) -> Result<(), KernelError> {
        Ok(())
    }
    fn check(&self, _spec: &PodSpec<'_>) -> Result<(), KernelError> {
        Err(KernelError("not yet available".into()))
    }
}
