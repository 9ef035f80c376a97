//! The RollingUpdate strategy (upstream's `rolling.go`): grow the new
//! ReplicaSet while the total stays within `replicas + maxSurge`, shrink
//! old ones while available pods stay at least `replicas -
//! maxUnavailable`, unhealthy old pods first.

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::context::Ctx;
use super::spec;

/// Upstream's `NewRSNewReplicas` for a rolling Deployment: the new
/// ReplicaSet's next size given `current` pods (all ReplicaSets' specs).
pub fn new_rs_replicas(d: &Deployment, current: i32, new_spec: i32) -> i32 {
    let desired = spec::replicas(d);
    let max_total = desired + spec::max_surge(d);
    if current >= max_total {
        return new_spec;
    }
    new_spec + (max_total - current).min(desired - new_spec).max(0)
}

/// One step of the rollout; returns whether anything was scaled.
pub async fn step(ctx: &mut Ctx) -> Result<bool> {
    if reconcile_new(ctx).await? {
        return Ok(true);
    }
    reconcile_old(ctx).await
}

async fn reconcile_new(ctx: &mut Ctx) -> Result<bool> {
    let Some(i) = ctx.new else {
        return Ok(false);
    };
    let desired = spec::replicas(&ctx.d);
    let new_spec = spec::rs_replicas(&ctx.rss[i]);
    if new_spec == desired {
        return Ok(false);
    }
    if new_spec > desired {
        return ctx.scale(i, desired).await;
    }
    let current = ctx.sum(&ctx.all(), spec::rs_replicas);
    let to = new_rs_replicas(&ctx.d, current, new_spec);
    ctx.scale(i, to).await
}

async fn reconcile_old(ctx: &mut Ctx) -> Result<bool> {
    let old = ctx.old();
    if ctx.sum(&old, spec::rs_replicas) == 0 {
        return Ok(false);
    }
    let all_pods = ctx.sum(&ctx.all(), spec::rs_replicas);
    let min_available = spec::replicas(&ctx.d) - spec::max_unavailable(&ctx.d);
    let new_unavailable = ctx
        .new_rs()
        .map(|rs| spec::rs_replicas(rs) - spec::rs_available(rs))
        .unwrap_or(0);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let cleaned = cleanup_unhealthy(ctx, &old, max_scaled_down).await?;
    let scaled = scale_down_old(ctx, &old).await?;
    Ok(cleaned + scaled > 0)
}

/// Scales old ReplicaSets down by their unavailable pods, oldest first,
/// at most `max` in all: they do not count toward availability anyway.
async fn cleanup_unhealthy(ctx: &mut Ctx, old: &[usize], max: i32) -> Result<i32> {
    let mut total = 0;
    for &i in old {
        if total >= max {
            break;
        }
        let (want, available) = (
            spec::rs_replicas(&ctx.rss[i]),
            spec::rs_available(&ctx.rss[i]),
        );
        // A status still counting pods above the new size (not yet
        // deleted) leaves nothing unhealthy to remove: never scale up here.
        if want == 0 || available >= want {
            continue;
        }
        let down = (max - total).min(want - available);
        ctx.scale(i, want - down).await?;
        total += down;
    }
    Ok(total)
}

/// How many old pods may go now: the available pods above `replicas -
/// maxUnavailable`. A ReplicaSet just scaled down still reports the pods it
/// is deleting as available until it sees them go; counting them would
/// spend the same unavailability twice and take the rollout below
/// `maxUnavailable`, so each counts at most the pods it keeps.
fn scale_down_budget(d: &Deployment, rss: &[ReplicaSet]) -> i32 {
    let min_available = spec::replicas(d) - spec::max_unavailable(d);
    let available: i32 = rss
        .iter()
        .map(|rs| spec::rs_available(rs).min(spec::rs_replicas(rs)))
        .sum();
    (available - min_available).max(0)
}

/// Scales old ReplicaSets down, oldest first, as far as the available
/// pods above `replicas - maxUnavailable` allow.
async fn scale_down_old(ctx: &mut Ctx, old: &[usize]) -> Result<i32> {
    let budget = scale_down_budget(&ctx.d, &ctx.rss);
    if budget == 0 {
        return Ok(0);
    }
    let mut total = 0;
    for &i in old {
        if total >= budget {
            break;
        }
        let want = spec::rs_replicas(&ctx.rss[i]);
        if want == 0 {
            continue;
        }
        let down = want.min(budget - total);
        ctx.scale(i, want - down).await?;
        total += down;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_new_replica_set_grows_only_into_the_surge() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 4,
                "selector": {},
                "template": {},
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            },
        }))
        .unwrap();
        assert_eq!(new_rs_replicas(&d, 4, 0), 1);
        assert_eq!(new_rs_replicas(&d, 5, 1), 1);
        assert_eq!(new_rs_replicas(&d, 4, 1), 2);
        assert_eq!(new_rs_replicas(&d, 0, 0), 4);
    }

    #[test]
    fn pods_an_old_replica_set_is_deleting_do_not_pay_for_more_scale_down() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 4, "selector": {}, "template": {},
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}},
        }))
        .unwrap();
        let rs = |replicas: i32, available: i32| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": "rs"},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": available, "availableReplicas": available},
            }))
            .unwrap()
        };
        // The old set was scaled 3 -> 2 and still reports 3 available; the
        // new one has 2 of 3 available: only one old pod may go (upstream's
        // sum, 3 + 2 - 3, would let both go and leave 2 < 3 available).
        assert_eq!(scale_down_budget(&d, &[rs(2, 3), rs(3, 2)]), 1);
        assert_eq!(scale_down_budget(&d, &[rs(1, 1), rs(3, 3)]), 1);
        assert_eq!(scale_down_budget(&d, &[rs(2, 2), rs(3, 1)]), 0);
    }
}
