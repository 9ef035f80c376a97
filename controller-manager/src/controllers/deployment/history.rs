//! Upstream's `cleanupDeployment`: keep at most `revisionHistoryLimit`
//! old ReplicaSets, deleting the lowest revisions first, and only ones
//! that are fully scaled down and settled.

use anyhow::Result;
use kube::api::{DeleteParams, Preconditions};

use super::annotations;
use super::context::Ctx;
use super::spec;

/// Deletes the old ReplicaSets beyond the history limit.
pub async fn cleanup(ctx: &Ctx) -> Result<()> {
    let limit = spec::revision_history_limit(&ctx.d).max(0) as usize;
    let mut old: Vec<usize> = ctx
        .old()
        .into_iter()
        .filter(|&i| ctx.rss[i].metadata.deletion_timestamp.is_none())
        .collect();
    if old.len() <= limit {
        return Ok(());
    }
    old.sort_by_key(|&i| annotations::revision(&ctx.rss[i]));
    let api = ctx.rs_api();
    for &i in &old[..old.len() - limit] {
        let rs = &ctx.rss[i];
        let settled =
            rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation;
        if spec::rs_actual(rs) != 0 || spec::rs_replicas(rs) != 0 || !settled {
            continue;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => tracing::info!(
                replicaset = name,
                "deleted old replica set beyond the history limit"
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
