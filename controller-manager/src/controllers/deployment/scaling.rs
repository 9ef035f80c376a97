//! Scaling without rolling (upstream's `sync`/`scale`): when only
//! `replicas` changed, or while paused, the one active ReplicaSet takes
//! the new size, and mid-rollout the change is shared between the
//! ReplicaSets in proportion to their sizes (proportional scaling), so
//! the ratio of old to new pods stays where the rollout had got to.

use std::collections::HashMap;

use anyhow::Result;

use super::annotations::{self, DESIRED_REPLICAS, MAX_REPLICAS};
use super::context::{Ctx, created};
use super::spec;

/// Some active ReplicaSet was sized for a different `replicas`
/// (upstream's `isScalingEvent`).
pub fn is_scaling_event(ctx: &Ctx) -> bool {
    let desired = i64::from(spec::replicas(&ctx.d));
    ctx.rss.iter().any(|rs| {
        spec::rs_replicas(rs) > 0
            && annotations::annotation(rs, DESIRED_REPLICAS).is_some_and(|a| a != desired)
    })
}

/// Upstream's `scale`.
pub async fn scale(ctx: &mut Ctx) -> Result<()> {
    let desired = spec::replicas(&ctx.d);
    let active: Vec<usize> = ctx
        .all()
        .into_iter()
        .filter(|&i| spec::rs_replicas(&ctx.rss[i]) > 0)
        .collect();
    // One active (or, with none, the new or else the newest) takes it all.
    let sole = match active.len() {
        0 => ctx.new.or_else(|| {
            ctx.old()
                .into_iter()
                .max_by(|&a, &b| created(&ctx.rss[a]).cmp(&created(&ctx.rss[b])))
        }),
        1 => active.first().copied(),
        _ => None,
    };
    if let Some(i) = sole {
        if spec::rs_replicas(&ctx.rss[i]) != desired {
            ctx.scale(i, desired).await?;
        }
        return Ok(());
    }
    if saturated(ctx) {
        for i in ctx.old() {
            if spec::rs_replicas(&ctx.rss[i]) > 0 {
                ctx.scale(i, 0).await?;
            }
        }
        return Ok(());
    }
    if spec::is_recreate(&ctx.d) {
        return Ok(());
    }
    let sizes = proportional_sizes(ctx, &active);
    for i in active {
        ctx.scale(i, sizes[&i]).await?;
    }
    Ok(())
}

/// The new ReplicaSet already has every replica, available.
fn saturated(ctx: &Ctx) -> bool {
    let desired = spec::replicas(&ctx.d);
    ctx.new_rs().is_some_and(|rs| {
        spec::rs_replicas(rs) == desired
            && annotations::annotation(rs, DESIRED_REPLICAS) == Some(desired.into())
            && spec::rs_available(rs) == desired
    })
}

/// New sizes sharing `replicas + maxSurge - current` among the active
/// ReplicaSets by their share of the size they were scaled for
/// (`max-replicas`); the rounding leftover goes to the largest.
fn proportional_sizes(ctx: &Ctx, active: &[usize]) -> HashMap<usize, i32> {
    let d = &ctx.d;
    let desired = spec::replicas(d);
    let allowed = if desired > 0 {
        desired + spec::max_surge(d)
    } else {
        0
    };
    let current = ctx.sum(active, spec::rs_replicas);
    let to_add = allowed - current;
    let mut order = active.to_vec();
    // Largest first; ties go to the newer when growing, the older when
    // shrinking.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&ctx.rss[a], &ctx.rss[b]);
        spec::rs_replicas(rb)
            .cmp(&spec::rs_replicas(ra))
            .then_with(|| {
                if to_add > 0 {
                    created(rb).cmp(&created(ra))
                } else {
                    created(ra).cmp(&created(rb))
                }
            })
    });
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut added = 0;
    let mut sizes = HashMap::new();
    for &i in &order {
        let rs = &ctx.rss[i];
        let size = spec::rs_replicas(rs);
        let mut share = 0;
        if to_add != 0 && to_add != added && size > 0 {
            let fraction = if desired == 0 {
                -size
            } else {
                let annotated = annotations::annotation(rs, MAX_REPLICAS)
                    .map(|v| i32::try_from(v).unwrap_or(i32::MAX))
                    .unwrap_or(status_replicas);
                if annotated > 0 {
                    let scaled = f64::from(size) * f64::from(allowed) / f64::from(annotated);
                    scaled.round() as i32 - size
                } else {
                    0
                }
            };
            let left = to_add - added;
            share = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
        }
        added += share;
        sizes.insert(i, size + share);
    }
    if to_add != 0
        && added != to_add
        && let Some(&first) = order.first()
        && let Some(v) = sizes.get_mut(&first)
    {
        *v = (*v + to_add - added).max(0);
    }
    sizes
}
