//! Everything the scheduler writes to the API, done asynchronously so the
//! scheduling thread never waits on the network: bindings, the
//! `PodScheduled=False` condition and nominated node, preemption's
//! deletions, and Events (dropped rather than queued without bound when
//! the API is slow, as upstream's event broadcaster does).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};

use crate::framework::PodInfo;
use crate::informers::ClusterEvent;
use crate::metrics::Metrics;

/// Bindings in flight at once; more wait for a slot, so a burst of
/// decisions does not open thousands of streams.
const MAX_BINDINGS_IN_FLIGHT: usize = 256;
/// Events waiting to be sent; beyond this new ones are dropped.
const MAX_QUEUED_EVENTS: usize = 1000;
/// Tasks sending events.
const EVENT_WORKERS: usize = 4;

/// The longest Event note the API accepts (upstream truncates to it).
const MAX_NOTE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// An Event to publish about a pod.
struct PodEvent {
    pod: ObjectReference,
    event: Event,
}

/// The scheduler's handle for API writes.
#[derive(Clone)]
pub struct Actions {
    client: kube::Client,
    runtime: Handle,
    feedback: mpsc::UnboundedSender<ClusterEvent>,
    bind_slots: Arc<Semaphore>,
    events: mpsc::Sender<PodEvent>,
    metrics: Metrics,
}

impl Actions {
    /// Starts the event workers on `runtime`; binding failures are sent
    /// back on `feedback`.
    pub fn new(
        client: kube::Client,
        runtime: Handle,
        feedback: mpsc::UnboundedSender<ClusterEvent>,
        metrics: Metrics,
        identity: &str,
    ) -> Self {
        let (events, rx) = mpsc::channel::<PodEvent>(MAX_QUEUED_EVENTS);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: crate::DEFAULT_SCHEDULER_NAME.to_string(),
                instance: Some(identity.to_string()),
            },
        );
        for _ in 0..EVENT_WORKERS {
            let rx = rx.clone();
            let recorder = recorder.clone();
            runtime.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(e) = next else { return };
                    if let Err(err) = recorder.publish(&e.event, &e.pod).await {
                        tracing::debug!(error = %err, "publishing an event failed");
                    }
                }
            });
        }
        Actions {
            client,
            runtime,
            feedback,
            bind_slots: Arc::new(Semaphore::new(MAX_BINDINGS_IN_FLIGHT)),
            events,
            metrics,
        }
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Binds the pod through its `binding` subresource; on failure the
    /// scheduling thread hears `BindFailed`. `queued_at` is when the pod
    /// first entered the queue (for the e2e latency).
    pub fn bind(&self, pod: Arc<PodInfo>, node: String, queued_at: Instant, attempts: u32) {
        let this = self.clone();
        self.runtime.spawn(async move {
            let Ok(_slot) = this.bind_slots.clone().acquire_owned().await else {
                return;
            };
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(pod.name().to_string()),
                    namespace: Some(pod.namespace.clone()),
                    uid: Some(pod.uid.clone()),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let result: Result<serde_json::Value, _> = this
                .pods(&pod.namespace)
                .create_subresource("binding", pod.name(), &PostParams::default(), &binding)
                .await;
            match result {
                Ok(_) => {
                    this.metrics
                        .e2e_duration
                        .with_label_values(&[&attempts.min(15).to_string()])
                        .observe(queued_at.elapsed().as_secs_f64());
                    this.event(
                        &pod,
                        EventType::Normal,
                        "Scheduled",
                        "Binding",
                        format!("Successfully assigned {} to {node}", pod.key),
                    );
                }
                Err(e) => {
                    tracing::info!(pod = %pod.key, node, error = %e, "binding failed");
                    this.report_unschedulable(
                        pod.clone(),
                        "SchedulerError",
                        format!("binding rejected: {e}"),
                        None,
                    );
                    let _ = this.feedback.send(ClusterEvent::BindFailed {
                        uid: pod.uid.clone(),
                        error: e.to_string(),
                    });
                }
            }
        });
    }

    /// Tells the user why the pod is pending: the `PodScheduled=False`
    /// condition (written only when it changes) and a FailedScheduling
    /// Event. `nominate` sets (or with `Some(None)` clears) the nominated
    /// node.
    pub fn report_unschedulable(
        &self,
        pod: Arc<PodInfo>,
        reason: &'static str,
        message: String,
        nominate: Option<Option<String>>,
    ) {
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        let current_nominee = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        let nominate = nominate.filter(|n| *n != current_nominee);
        self.event(
            &pod,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            message.clone(),
        );
        if unchanged && nominate.is_none() {
            return;
        }
        let mut status = json!({});
        if !unchanged {
            // The transition time moves only when the status does.
            let since = current
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| {
                    jiff::Timestamp::now()
                        .strftime("%Y-%m-%dT%H:%M:%SZ")
                        .to_string()
                });
            status["conditions"] = json!([{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": since,
            }]);
        }
        if let Some(n) = nominate {
            status["nominatedNodeName"] = json!(n);
        }
        // Pinned to the version decided on: if the pod has changed since
        // (bound by a later attempt, say), this stale verdict is dropped
        // instead of overwriting PodScheduled=True.
        let mut body = json!({"status": status});
        if let Some(rv) = pod.pod.metadata.resource_version.as_deref() {
            body["metadata"] = json!({"resourceVersion": rv});
        }
        self.patch_status(pod, body);
    }

    /// Clears a pod's nominated node (a lower-priority pod displaced by a
    /// preemption).
    pub fn clear_nomination(&self, pod: Arc<PodInfo>) {
        self.patch_status(pod, json!({"status": {"nominatedNodeName": null}}));
    }

    fn patch_status(&self, pod: Arc<PodInfo>, body: serde_json::Value) {
        let this = self.clone();
        self.runtime.spawn(async move {
            let result = this
                .pods(&pod.namespace)
                .patch_status(pod.name(), &PatchParams::default(), &Patch::Strategic(body))
                .await;
            if let Err(e) = result {
                tracing::debug!(pod = %pod.key, error = %e, "updating pod status failed");
            }
        });
    }

    /// Evicts preemption victims: marks each with the DisruptionTarget
    /// condition, deletes it (gracefully), and records a Preempted Event.
    pub fn preempt(&self, preemptor: Arc<PodInfo>, node: String, victims: Vec<Arc<PodInfo>>) {
        self.metrics
            .preemption_victims
            .observe(victims.len() as f64);
        for victim in victims {
            let this = self.clone();
            let preemptor = preemptor.clone();
            let node = node.clone();
            self.runtime.spawn(async move {
                let api = this.pods(&victim.namespace);
                let condition = json!({"status": {"conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!(
                        "{}: preempting to accommodate a higher priority pod",
                        preemptor
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.scheduler_name.as_deref())
                            .unwrap_or(crate::DEFAULT_SCHEDULER_NAME)
                    ),
                    "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                }]}});
                let _ = api
                    .patch_status(victim.name(), &PatchParams::default(), &Patch::Strategic(condition))
                    .await;
                let params = DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        uid: Some(victim.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(victim.name(), &params).await {
                    Ok(_) => this.event(
                        &victim,
                        EventType::Normal,
                        "Preempted",
                        "Preempting",
                        format!("Preempted by pod {} on node {node}", preemptor.uid),
                    ),
                    Err(e) => tracing::info!(victim = %victim.key, error = %e, "deleting a preemption victim failed"),
                }
            });
        }
    }

    /// Queues an Event about a pod; dropped when too many are waiting.
    fn event(&self, pod: &PodInfo, type_: EventType, reason: &str, action: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name().to_string()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            resource_version: pod.pod.metadata.resource_version.clone(),
            ..Default::default()
        };
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, MAX_NOTE_BYTES)),
            action: action.to_string(),
            secondary: None,
        };
        if self
            .events
            .try_send(PodEvent {
                pod: reference,
                event,
            })
            .is_err()
        {
            tracing::debug!(pod = %pod.key, reason, "event dropped: too many queued");
        }
    }
}
