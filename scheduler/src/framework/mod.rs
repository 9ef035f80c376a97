//! The scheduling framework: what a plugin sees ([`types`], [`snapshot`]),
//! what it answers ([`status`]), the per-cycle scratch space
//! ([`cycle_state`]) and the plugin interface ([`plugin`]), as upstream's
//! `pkg/scheduler/framework`.

pub mod cycle_state;
pub mod plugin;
pub mod resources;
pub mod snapshot;
pub mod spreading;
pub mod status;
#[cfg(test)]
pub mod testing;
pub mod types;

pub use cycle_state::CycleState;
pub use plugin::Plugin;
pub use resources::Resources;
pub use snapshot::Snapshot;
pub use status::Status;
pub use types::{AffinityTerm, NodeInfo, PodInfo, WeightedAffinityTerm};

/// The highest score a plugin gives a node (upstream's `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// Scales raw scores so the highest becomes [`MAX_NODE_SCORE`]; with
/// `reverse`, the lowest raw score gets the most (upstream's
/// `DefaultNormalizeScore`).
pub fn default_normalize_score(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    for s in scores.iter_mut() {
        if max == 0 {
            if reverse {
                *s = MAX_NODE_SCORE;
            }
            continue;
        }
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}
