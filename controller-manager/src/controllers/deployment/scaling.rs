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

/// New sizes for the `active` ReplicaSets (by index in `ctx.rss`).
fn proportional_sizes(ctx: &Ctx, active: &[usize]) -> HashMap<usize, i32> {
    let members: Vec<Member> = active
        .iter()
        .map(|&i| {
            let rs = &ctx.rss[i];
            Member {
                size: spec::rs_replicas(rs),
                max_replicas: annotations::annotation(rs, MAX_REPLICAS)
                    .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
                created: created(rs),
            }
        })
        .collect();
    let d = &ctx.d;
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let sizes = share_out(
        spec::replicas(d),
        spec::max_surge(d),
        status_replicas,
        &members,
    );
    active.iter().copied().zip(sizes).collect()
}

/// What proportional scaling knows of one active ReplicaSet.
struct Member {
    size: i32,
    /// Its `max-replicas` annotation: the total it was sized against.
    max_replicas: Option<i32>,
    created: (Option<jiff::Timestamp>, String),
}

/// Upstream's proportional `scale`: shares `replicas + maxSurge - current`
/// among the members by their share of the total they were sized against
/// (`max-replicas`, else the Deployment's `status.replicas`), largest
/// first; the rounding leftover goes to the first. Sizes in input order.
fn share_out(desired: i32, max_surge: i32, status_replicas: i32, members: &[Member]) -> Vec<i32> {
    let allowed = if desired > 0 { desired + max_surge } else { 0 };
    let current: i32 = members.iter().map(|m| m.size).sum();
    let to_add = allowed - current;
    let mut order: Vec<usize> = (0..members.len()).collect();
    // Largest first; ties go to the newer when growing, the older when
    // shrinking.
    order.sort_by(|&a, &b| {
        let (ma, mb) = (&members[a], &members[b]);
        mb.size.cmp(&ma.size).then_with(|| {
            if to_add > 0 {
                mb.created.cmp(&ma.created)
            } else {
                ma.created.cmp(&mb.created)
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<i32> = members.iter().map(|m| m.size).collect();
    for &i in &order {
        let m = &members[i];
        if to_add == 0 || to_add == added || m.size == 0 {
            continue;
        }
        let fraction = if desired == 0 {
            -m.size
        } else {
            let annotated = m.max_replicas.unwrap_or(status_replicas);
            if annotated > 0 {
                let scaled = f64::from(m.size) * f64::from(allowed) / f64::from(annotated);
                scaled.round() as i32 - m.size
            } else {
                0
            }
        };
        let left = to_add - added;
        let share = if to_add > 0 {
            fraction.min(left)
        } else {
            fraction.max(left)
        };
        added += share;
        sizes[i] += share;
    }
    if to_add != 0
        && added != to_add
        && let Some(&first) = order.first()
    {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(size: i32, max: i32, created: &str) -> Member {
        Member {
            size,
            max_replicas: Some(max),
            created: (created.parse().ok(), String::new()),
        }
    }

    #[test]
    fn a_scale_mid_rollout_is_shared_in_proportion() {
        // Upstream's documented example: 10 replicas, maxSurge 3, stuck at
        // 8 old + 5 new; scaled to 15, 3 go to the old and 2 to the new.
        let old = member(8, 13, "2024-01-01T00:00:00Z");
        let new = member(5, 13, "2024-01-01T00:01:00Z");
        assert_eq!(share_out(15, 3, 13, &[old, new]), vec![11, 7]);
        // Scaled down, the shrink is shared the same way.
        let old = member(8, 13, "2024-01-01T00:00:00Z");
        let new = member(5, 13, "2024-01-01T00:01:00Z");
        assert_eq!(share_out(5, 2, 13, &[old, new]), vec![4, 3]);
        // To zero, everything goes.
        let old = member(8, 13, "2024-01-01T00:00:00Z");
        let new = member(5, 13, "2024-01-01T00:01:00Z");
        assert_eq!(share_out(0, 0, 13, &[old, new]), vec![0, 0]);
    }
}
