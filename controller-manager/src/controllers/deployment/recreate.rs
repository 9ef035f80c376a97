//! The Recreate strategy (upstream's `recreate.go`): scale every old
//! ReplicaSet to zero, wait until none of their pods is running, and only
//! then create and scale up the new one, so old and new never overlap.

use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;

use super::context::Ctx;
use super::spec;
use crate::controllers::replicaset::pods::controller_of;

/// Scales old ReplicaSets to zero; returns whether any changed.
pub async fn scale_down_old(ctx: &mut Ctx) -> Result<bool> {
    let mut scaled = false;
    for i in ctx.old() {
        if spec::rs_replicas(&ctx.rss[i]) > 0 {
            scaled |= ctx.scale(i, 0).await?;
        }
    }
    Ok(scaled)
}

/// Some old ReplicaSet still reports pods, or one of its pods (from the
/// cache, terminating ones included) has not finished.
pub fn old_pods_running(ctx: &Ctx, pods: &[Arc<Pod>]) -> bool {
    let old = ctx.old();
    if old.iter().any(|&i| spec::rs_actual(&ctx.rss[i]) > 0) {
        return true;
    }
    let uids: Vec<&str> = old
        .iter()
        .filter_map(|&i| ctx.rss[i].metadata.uid.as_deref())
        .collect();
    pods.iter().any(|p| {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()))
            && !matches!(phase, Some("Succeeded" | "Failed"))
    })
}

/// Scales the new ReplicaSet to `replicas`.
pub async fn scale_up_new(ctx: &mut Ctx) -> Result<bool> {
    match ctx.new {
        Some(i) => {
            let want = spec::replicas(&ctx.d);
            ctx.scale(i, want).await
        }
        None => Ok(false),
    }
}
