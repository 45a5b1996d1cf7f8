//! The in-tree plugins, one file each as in Kubernetes'
//! `pkg/scheduler/framework/plugins`. [`Profile::default`](super::Profile)
//! wires them in Kubernetes' default order and weights.

pub mod balanced_allocation;
pub mod controller_spread;
pub mod node_affinity;
pub mod node_name;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod taint_toleration;

#[cfg(test)]
pub(crate) mod test_util;

pub use balanced_allocation::BalancedAllocation;
pub use controller_spread::ControllerSpread;
pub use node_affinity::NodeAffinity;
pub use node_name::NodeName;
pub use node_resources_fit::NodeResourcesFit;
pub use node_unschedulable::NodeUnschedulable;
pub use taint_toleration::TaintToleration;
