//! Who programs cluster routes: the dataplane (Felix) or BIRD, per pool
//! encapsulation, from the two `programClusterRoutes` settings ([`ClusterRouteOwners`]).
//!
//! This is a cluster setting about *which component* writes a pool type's routes. It is not
//! calico-dataplane's `state::Ownership`, which lists the kernel objects (route protocols,
//! devices, interface prefixes) one dataplane treats as its own.

use calico_model::resources::bgp::ProgramClusterRoutes;
use serde::Serialize;

use crate::input::{Cluster, PoolEncap};

/// The component that programs a pool type's cluster routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// The dataplane (Felix, `calico dataplane`), protocol 80.
    Dataplane,
    /// BIRD, protocol `bird`.
    Bird,
}

/// A problem with the ownership setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum OwnershipProblem {
    /// Both components claim the pool type: they fight over its routes.
    BothOwn {
        /// Pool type.
        encap: PoolEncap,
    },
    /// Neither claims it: its remote blocks get no routes.
    NoneOwns {
        /// Pool type.
        encap: PoolEncap,
    },
    /// BIRD is given IPIP routes, which BIRD 2 cannot program (rendered as a reject).
    IpipToBird,
}

/// The route-ownership setting: Felix's and BIRD's `programClusterRoutes`, which say who
/// programs the cluster routes of each pool type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClusterRouteOwners {
    /// FelixConfiguration `programClusterRoutes` (default EnabledIPIPOnly).
    pub felix: ProgramClusterRoutes,
    /// BGPConfiguration `programClusterRoutes` (default EnabledNoEncapOnly).
    pub bird: ProgramClusterRoutes,
}

fn claims(setting: ProgramClusterRoutes, encap: PoolEncap) -> bool {
    use ProgramClusterRoutes as P;
    match encap {
        PoolEncap::Vxlan => false,
        PoolEncap::Ipip => matches!(setting, P::Enabled | P::EnabledIPIPOnly),
        PoolEncap::None => matches!(setting, P::Enabled | P::EnabledNoEncapOnly),
    }
}

impl ClusterRouteOwners {
    /// This release's defaults: Felix `EnabledIPIPOnly`, BGP `EnabledNoEncapOnly`.
    pub const DEFAULT: ClusterRouteOwners = ClusterRouteOwners {
        felix: ProgramClusterRoutes::EnabledIPIPOnly,
        bird: ProgramClusterRoutes::EnabledNoEncapOnly,
    };

    /// Whether the dataplane claims the pool type (VXLAN: always).
    pub fn dataplane_claims(&self, encap: PoolEncap) -> bool {
        encap == PoolEncap::Vxlan || claims(self.felix, encap)
    }

    /// Whether BIRD claims the pool type (never VXLAN).
    pub fn bird_claims(&self, encap: PoolEncap) -> bool {
        claims(self.bird, encap)
    }

    /// The component whose routes the node ends up with: the dataplane when it claims the
    /// type (it replaces BIRD's routes atomically); else BIRD, except for IPIP, which BIRD 2
    /// cannot program; else none.
    pub fn owner(&self, encap: PoolEncap) -> Option<Owner> {
        if self.dataplane_claims(encap) {
            Some(Owner::Dataplane)
        } else if self.bird_claims(encap) && encap != PoolEncap::Ipip {
            Some(Owner::Bird)
        } else {
            None
        }
    }

    /// Every problem: a pool type with two owners or none, and IPIP given to BIRD.
    pub fn problems(&self) -> Vec<OwnershipProblem> {
        let mut out = Vec::new();
        for encap in [PoolEncap::Ipip, PoolEncap::None] {
            match (self.dataplane_claims(encap), self.bird_claims(encap)) {
                (true, true) => out.push(OwnershipProblem::BothOwn { encap }),
                (false, false) => out.push(OwnershipProblem::NoneOwns { encap }),
                _ => {}
            }
        }
        if self.bird_claims(PoolEncap::Ipip) {
            out.push(OwnershipProblem::IpipToBird);
        }
        out
    }
}

/// The route-ownership setting in force on a node.
pub fn cluster_route_owners(cluster: &Cluster, node: &str) -> ClusterRouteOwners {
    ClusterRouteOwners {
        felix: cluster.felix_for(node).program_cluster_routes,
        bird: cluster.bird_program_cluster_routes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProgramClusterRoutes as P;

    #[test]
    fn default_pair_has_one_owner_each() {
        let o = ClusterRouteOwners::DEFAULT;
        assert!(o.problems().is_empty());
        assert_eq!(o.owner(PoolEncap::Vxlan), Some(Owner::Dataplane));
        assert_eq!(o.owner(PoolEncap::Ipip), Some(Owner::Dataplane));
        assert_eq!(o.owner(PoolEncap::None), Some(Owner::Bird));
    }

    #[test]
    fn every_complementary_pair_is_clean_except_ipip_to_bird() {
        for felix in [
            P::Enabled,
            P::Disabled,
            P::EnabledIPIPOnly,
            P::EnabledNoEncapOnly,
        ] {
            let o = ClusterRouteOwners {
                felix,
                bird: felix.complement(),
            };
            let p = o.problems();
            let ipip_to_bird = matches!(felix, P::Disabled | P::EnabledNoEncapOnly);
            assert_eq!(
                p.contains(&OwnershipProblem::IpipToBird),
                ipip_to_bird,
                "{felix:?}"
            );
            assert!(
                !p.iter().any(|x| matches!(
                    x,
                    OwnershipProblem::BothOwn { .. } | OwnershipProblem::NoneOwns { .. }
                )),
                "{felix:?}"
            );
        }
    }

    #[test]
    fn non_complementary_pairs_are_reported() {
        let both = ClusterRouteOwners {
            felix: P::Enabled,
            bird: P::Enabled,
        };
        assert!(both.problems().contains(&OwnershipProblem::BothOwn {
            encap: PoolEncap::None
        }));
        assert_eq!(both.owner(PoolEncap::None), Some(Owner::Dataplane));
        let neither = ClusterRouteOwners {
            felix: P::Disabled,
            bird: P::Disabled,
        };
        assert!(neither.problems().contains(&OwnershipProblem::NoneOwns {
            encap: PoolEncap::Ipip
        }));
        assert_eq!(neither.owner(PoolEncap::None), None);
        // Classic: IPIP to BIRD, which BIRD 2 cannot do → nobody programs IPIP here.
        let classic = ClusterRouteOwners {
            felix: P::Disabled,
            bird: P::Enabled,
        };
        assert_eq!(classic.owner(PoolEncap::Ipip), None);
        assert_eq!(classic.owner(PoolEncap::None), Some(Owner::Bird));
    }
}
