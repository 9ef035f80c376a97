//! Events about the objects a component acts on, as upstream's
//! controllers and kubelet record them (`kubectl describe` shows them),
//! sent in the background so a slow or failing Event write never holds up
//! a reconcile or a pod sync.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes Events for one component (a controller, a kubelet).
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

impl EventSink {
    /// Events reported by `controller` (upstream's component name, e.g.
    /// `replicaset-controller`, `kubelet`) from `identity` (this replica,
    /// this node).
    pub fn new(client: kube::Client, controller: &str, identity: &str) -> Self {
        EventSink {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: controller.to_string(),
                    instance: Some(identity.to_string()),
                },
            ),
        }
    }

    /// A Normal event about `regarding`.
    pub fn normal(&self, regarding: ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, None, EventType::Normal, reason, action, note);
    }

    /// A Warning event about `regarding`.
    pub fn warning(&self, regarding: ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, None, EventType::Warning, reason, action, note);
    }

    /// A Normal event about `regarding` acting on `related` (the pod a
    /// StatefulSet created). kube's recorder folds events of one reason
    /// about one object into a single series whatever their notes, unless
    /// their related objects differ; this keeps one event per pod, as
    /// upstream shows them.
    pub fn normal_related(
        &self,
        regarding: ObjectReference,
        related: ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(
            regarding,
            Some(related),
            EventType::Normal,
            reason,
            action,
            note,
        );
    }

    /// A Warning event about `regarding` acting on `related` (see
    /// [`EventSink::normal_related`]).
    pub fn warning_related(
        &self,
        regarding: ObjectReference,
        related: ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(
            regarding,
            Some(related),
            EventType::Warning,
            reason,
            action,
            note,
        );
    }

    fn publish(
        &self,
        regarding: ObjectReference,
        related: Option<ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let recorder = self.recorder.clone();
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: related,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &regarding).await {
                tracing::debug!(error = %e, "publishing an event failed");
            }
        });
    }
}
