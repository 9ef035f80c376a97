//! Which Job a pod event concerns (its controller reference), and the
//! creation or deletion expectations it satisfies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;

use crate::controllers::replicaset::expectations::Expectations;
use crate::controllers::replicaset::pods::{controller_of, key as pod_key};
use crate::queue::WorkQueue;
use crate::runner;

/// The key of the Job controlling `pod`.
fn job_key(pod: &Pod) -> Option<String> {
    let r = controller_of(&pod.metadata)?;
    (r.kind == "Job" && r.api_version.starts_with("batch/"))
        .then(|| runner::key(pod.metadata.namespace.as_deref(), &r.name))
}

/// Turns pod events into Job keys and observed expectations.
pub struct PodEvents {
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    /// Pods seen, with their Job: tells an add from an update.
    known: HashMap<String, String>,
    /// Pods seen during a re-list; those missing afterwards are gone.
    relisted: Option<HashSet<String>>,
}

impl PodEvents {
    /// A handler feeding `queue`.
    pub fn new(queue: Arc<WorkQueue>, expectations: Arc<Expectations>) -> Self {
        PodEvents {
            queue,
            expectations,
            known: HashMap::new(),
            relisted: None,
        }
    }

    /// Handles one watch event.
    pub fn handle(&mut self, event: &Event<Pod>) {
        match event {
            Event::Init => self.relisted = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let Some(seen) = self.relisted.as_mut() {
                    seen.insert(pod_key(pod));
                }
                self.applied(pod);
            }
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for pod in gone {
                    if let Some(job) = self.known.remove(&pod) {
                        self.expectations.deletion_observed(&job, &pod);
                        self.queue.add(job);
                    }
                }
            }
            Event::Apply(pod) => self.applied(pod),
            Event::Delete(pod) => {
                let key = pod_key(pod);
                self.known.remove(&key);
                if let Some(job) = job_key(pod) {
                    self.expectations.deletion_observed(&job, &key);
                    self.queue.add(job);
                }
            }
        }
    }

    fn applied(&mut self, pod: &Pod) {
        let Some(job) = job_key(pod) else {
            return;
        };
        let key = pod_key(pod);
        if self.known.insert(key.clone(), job.clone()).is_none() {
            self.expectations.creations_observed(&job, 1);
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.expectations.deletion_observed(&job, &key);
        }
        self.queue.add(job);
    }
}
