//! Keeping the zone current: reflector caches of Services and
//! EndpointSlices (all namespaces), and a rebuild of the zone from them
//! after every change. Changes that arrive during a rebuild are folded
//! into the next one, so a burst costs one or two rebuilds, not one per
//! event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::Notify;

use crate::server::SharedZone;
use crate::zone::{self, ZoneConfig};

/// Watches until an error makes it stop: fills `zone` once both caches
/// have synced, sets `ready`, and rebuilds on every change.
pub async fn run(
    client: kube::Client,
    cfg: ZoneConfig,
    zone: SharedZone,
    ready: Arc<AtomicBool>,
) -> Result<()> {
    let changed = Arc::new(Notify::new());
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();

    let svc_stream = reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let slice_stream = reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff();

    let notify = changed.clone();
    let svc_task = tokio::spawn(async move {
        svc_stream
            .for_each(|ev| {
                if let Err(e) = &ev {
                    tracing::warn!(error = %e, "watching services");
                }
                notify.notify_one();
                async {}
            })
            .await;
    });
    let notify = changed.clone();
    let slice_task = tokio::spawn(async move {
        slice_stream
            .for_each(|ev| {
                if let Err(e) = &ev {
                    tracing::warn!(error = %e, "watching endpointslices");
                }
                notify.notify_one();
                async {}
            })
            .await;
    });

    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    let mut serial: u32 = 1;
    loop {
        let z = zone::build(&cfg, serial, &services.state(), &slices.state());
        tracing::debug!(names = z.len(), serial, "zone rebuilt");
        match zone.write() {
            Ok(mut w) => *w = Some(Arc::new(z)),
            Err(poisoned) => *poisoned.into_inner() = Some(Arc::new(z)),
        }
        if !ready.swap(true, Ordering::AcqRel) {
            tracing::info!("caches synced, serving the cluster zone");
        }
        serial = serial.wrapping_add(1);
        if svc_task.is_finished() || slice_task.is_finished() {
            bail!("a watch stream ended");
        }
        changed.notified().await;
    }
}
