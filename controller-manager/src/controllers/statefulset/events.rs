//! The Events a StatefulSet shows in `kubectl describe`, worded as
//! upstream's `StatefulPodControl` words them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use crate::recorder::EventSink;

/// Reports what happened to one StatefulSet's pods and claims.
pub struct Report<'a> {
    sink: &'a EventSink,
    set: String,
    namespace: String,
    regarding: ObjectReference,
}

/// A reference to the pod or claim `name` in the set's namespace.
fn related(kind: &str, name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl<'a> Report<'a> {
    /// Events about `set`.
    pub fn new(sink: &'a EventSink, set: &StatefulSet) -> Self {
        Report {
            sink,
            set: set.metadata.name.clone().unwrap_or_default(),
            namespace: set.metadata.namespace.clone().unwrap_or_default(),
            regarding: set.object_ref(&()),
        }
    }

    /// `SuccessfulCreate` "create Pod web-0 in StatefulSet web successful",
    /// or `FailedCreate` with the error (likewise `delete`, `update`).
    pub fn pod(&self, verb: &str, pod: &str, error: Option<&str>) {
        let (set, regarding) = (&self.set, self.regarding.clone());
        let other = related("Pod", pod, &self.namespace);
        match error {
            None => self.sink.normal_related(
                regarding,
                other,
                &format!("Successful{}", title(verb)),
                &title(verb),
                format!("{verb} Pod {pod} in StatefulSet {set} successful"),
            ),
            Some(e) => self.sink.warning_related(
                regarding,
                other,
                &format!("Failed{}", title(verb)),
                &title(verb),
                format!("{verb} Pod {pod} in StatefulSet {set} failed error: {e}"),
            ),
        }
    }

    /// `SuccessfulCreate` "create Claim data-web-0 Pod web-0 in StatefulSet
    /// web success", or `FailedCreate` with the error.
    pub fn claim(&self, verb: &str, claim: &str, pod: &str, error: Option<&str>) {
        let (set, regarding) = (&self.set, self.regarding.clone());
        let other = related("PersistentVolumeClaim", claim, &self.namespace);
        match error {
            None => self.sink.normal_related(
                regarding,
                other,
                &format!("Successful{}", title(verb)),
                &title(verb),
                format!("{verb} Claim {claim} Pod {pod} in StatefulSet {set} success"),
            ),
            Some(e) => self.sink.warning_related(
                regarding,
                other,
                &format!("Failed{}", title(verb)),
                &title(verb),
                format!(
                    "{verb} Claim {claim} for Pod {pod} in StatefulSet {set} failed error: {e}"
                ),
            ),
        }
    }

    /// `RecreatingFailedPod` (Warning) or `RecreatingTerminatedPod`.
    pub fn recreating(&self, pod: &str, failed: bool) {
        let (ns, set, regarding) = (&self.namespace, &self.set, self.regarding.clone());
        let other = related("Pod", pod, ns);
        if failed {
            self.sink.warning_related(
                regarding,
                other,
                "RecreatingFailedPod",
                "Recreate",
                format!("StatefulSet {ns}/{set} is recreating failed Pod {pod}"),
            );
        } else {
            self.sink.normal_related(
                regarding,
                other,
                "RecreatingTerminatedPod",
                "Recreate",
                format!("StatefulSet {ns}/{set} is recreating terminated Pod {pod}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verbs_are_titled() {
        assert_eq!(super::title("create"), "Create");
        assert_eq!(super::title(""), "");
    }
}
