//! ImageLocality: prefers nodes that already hold the pod's images, so the
//! pod starts without a long pull; images present on most nodes count
//! less, so one node does not attract every pod. As upstream's plugin.

use serde_json::Value;

use crate::framework::types::normalize_image_name;
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status};

/// Cycle-state key for the pod's images and their spread.
const PRE_SCORE_KEY: &str = "PreScoreImageLocality";

const MB: i64 = 1024 * 1024;
/// Image bytes below which a node gets no credit (upstream's
/// `minThreshold`).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Image bytes per container at which a node gets full credit (upstream's
/// `maxContainerThreshold`).
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// What Score needs from the cluster, gathered once per pod.
#[derive(Clone, Debug, Default)]
struct PreScoreState {
    /// Each container's normalised image with the number of nodes that
    /// have it (a container per entry, repeats included).
    images: Vec<(String, usize)>,
    /// Nodes in the cluster.
    total_nodes: usize,
}

/// Scores nodes by the size of the pod's images they already have.
pub struct ImageLocality;

impl ImageLocality {
    /// Builds the plugin; it takes no args.
    pub fn new(_args: &Value) -> Result<Self, String> {
        Ok(ImageLocality)
    }
}

/// Upstream's `calculatePriority`: maps the summed image bytes onto
/// 0..=MAX_NODE_SCORE between the thresholds.
fn priority(sum: i64, containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD.saturating_mul(containers as i64);
    if max <= MIN_THRESHOLD {
        return 0;
    }
    let clamped = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        let images = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .map(|c| {
                let name = normalize_image_name(c.image.as_deref().unwrap_or_default());
                let nodes = snapshot.image_nodes.get(&name).copied().unwrap_or(0);
                (name, nodes)
            })
            .collect();
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                images,
                total_nodes: snapshot.nodes.len(),
            },
        );
        Status::Success
    }

    /// Each image the node has counts its size times the fraction of
    /// nodes that have it; 0 when PreScore did not run.
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return 0;
        };
        if s.total_nodes == 0 {
            return 0;
        }
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|(name, nodes)| {
                let size = *node.images.get(name)?;
                let spread = *nodes as f64 / s.total_nodes as f64;
                Some((size as f64 * spread) as i64)
            })
            .sum();
        priority(sum, s.images.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use serde_json::json;

    fn pod(images: &[&str]) -> PodInfo {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
            .collect();
        testing::pod(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": containers},
        }))
    }

    fn node(name: &str, images: Value) -> NodeInfo {
        testing::node(
            json!({"metadata": {"name": name}, "status": {"images": images}}),
            vec![],
        )
    }

    use testing::snapshot;

    fn scores(p: &PodInfo, snap: &Snapshot) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = snap.nodes.iter().collect();
        testing::scores(&ImageLocality, p, &refs, snap, false).expect("scored")
    }

    #[test]
    fn node_with_the_image_scores_higher() {
        let snap = snapshot(vec![
            node(
                "has",
                json!([{"names": ["docker.io/library/nginx:latest"], "sizeBytes": 300 * MB}]),
            ),
            node("lacks", json!([])),
        ]);
        // 300MB on 1 of 2 nodes → 150MB: 100 * (150 - 23) / (1000 - 23) = 12.
        assert_eq!(scores(&pod(&["nginx"]), &snap), vec![12, 0]);
    }

    #[test]
    fn images_everywhere_count_in_full_images_somewhere_are_spread() {
        let img = json!([{"names": ["registry.example/app:v1"], "sizeBytes": 300 * MB}]);
        let snap = snapshot(vec![node("a", img.clone()), node("b", img)]);
        // On every node: 300MB counts fully → 100 * 277 / 977 = 28.
        assert_eq!(
            scores(&pod(&["registry.example/app:v1"]), &snap),
            vec![28, 28]
        );
    }

    #[test]
    fn small_images_and_many_containers_scale_down() {
        let snap = snapshot(vec![node(
            "n",
            json!([
                {"names": ["tiny:1"], "sizeBytes": 10 * MB},
                {"names": ["huge:1"], "sizeBytes": 2000 * MB}
            ]),
        )]);
        assert_eq!(scores(&pod(&["tiny:1"]), &snap), vec![0]);
        assert_eq!(scores(&pod(&["huge:1"]), &snap), vec![100]);
        // Two containers raise the ceiling to 2000MB: (2000 - 23) / (2000 - 23).
        assert_eq!(scores(&pod(&["huge:1", "absent:1"]), &snap), vec![100]);
        // Three: 100 * (2000 - 23) / (3000 - 23) = 66.
        assert_eq!(
            scores(&pod(&["huge:1", "absent:1", "absent:2"]), &snap),
            vec![66]
        );
    }
}
