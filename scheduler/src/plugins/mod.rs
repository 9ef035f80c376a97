//! The in-tree plugins, upstream's default set, and the table that builds
//! them by name for a profile.

use std::sync::Arc;

use serde_json::Value;

use crate::framework::Plugin;

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod volume_binding;

/// How a plugin is built and which extension points it has.
pub struct PluginSpec {
    pub name: &'static str,
    /// Has PreFilter/Filter.
    pub filter: bool,
    /// Has PreScore/Score.
    pub score: bool,
    /// Weight in upstream's default profile; 0 when it does not score by
    /// default.
    pub default_weight: i64,
    /// Builds the plugin from its `pluginConfig` args (`{}` when none).
    pub build: fn(&Value) -> Result<Arc<dyn Plugin>, String>,
}

macro_rules! spec {
    ($name:literal, $ty:path, filter: $f:expr, score: $s:expr, weight: $w:expr) => {
        PluginSpec {
            name: $name,
            filter: $f,
            score: $s,
            default_weight: $w,
            build: |args| <$ty>::new(args).map(|p| Arc::new(p) as Arc<dyn Plugin>),
        }
    };
}

/// Every plugin, in upstream's default Filter order (cheap checks first,
/// cluster-wide ones last).
pub const REGISTRY: &[PluginSpec] = &[
    spec!("NodeUnschedulable", node_unschedulable::NodeUnschedulable, filter: true, score: false, weight: 0),
    spec!("NodeName", node_name::NodeName, filter: true, score: false, weight: 0),
    spec!("TaintToleration", taint_toleration::TaintToleration, filter: true, score: true, weight: 3),
    spec!("NodeAffinity", node_affinity::NodeAffinity, filter: true, score: true, weight: 2),
    spec!("NodePorts", node_ports::NodePorts, filter: true, score: false, weight: 0),
    spec!("NodeResourcesFit", node_resources_fit::NodeResourcesFit, filter: true, score: true, weight: 1),
    spec!("VolumeBinding", volume_binding::VolumeBinding, filter: true, score: false, weight: 0),
    spec!("PodTopologySpread", pod_topology_spread::PodTopologySpread, filter: true, score: true, weight: 2),
    spec!("InterPodAffinity", inter_pod_affinity::InterPodAffinity, filter: true, score: true, weight: 2),
    spec!("NodeResourcesBalancedAllocation", balanced_allocation::BalancedAllocation, filter: false, score: true, weight: 1),
    spec!("ImageLocality", image_locality::ImageLocality, filter: false, score: true, weight: 1),
];

/// The plugin named `name`.
pub fn spec(name: &str) -> Option<&'static PluginSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}
