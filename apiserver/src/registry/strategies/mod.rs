//! The strategies of the built-in kinds. Most kinds need only [`Plain`];
//! the rest carry upstream's defaulting and validation for their kind.

mod core;
mod namespace;
mod node;
mod pod;
mod podspec;
mod service;
mod workload;

pub use self::core::{ConfigMapStrategy, SecretStrategy};
pub use namespace::NamespaceStrategy;
pub use node::NodeStrategy;
pub use pod::PodStrategy;
pub use service::ServiceStrategy;
pub use workload::Workload;

pub use super::strategy::NameRule;
use super::strategy::Strategy;
use serde_json::{Value, json};

/// A kind with no behaviour of its own beyond a few switches.
#[derive(Debug, Clone)]
pub struct Plain {
    names: NameRule,
    generation: bool,
    status: bool,
    initial_phase: Option<&'static str>,
}

impl Default for Plain {
    fn default() -> Self {
        Plain {
            names: NameRule::Subdomain,
            generation: false,
            status: false,
            initial_phase: None,
        }
    }
}

impl Plain {
    /// A kind whose status is written through the status subresource.
    pub fn with_status() -> Self {
        Plain {
            status: true,
            ..Plain::default()
        }
    }

    /// Tracks `metadata.generation`.
    pub fn generation(mut self) -> Self {
        self.generation = true;
        self
    }

    /// Uses another name rule.
    pub fn names(mut self, rule: NameRule) -> Self {
        self.names = rule;
        self
    }

    /// New objects start with `status.phase` set (PV, PVC: `Pending`).
    pub fn initial_phase(mut self, phase: &'static str) -> Self {
        self.initial_phase = Some(phase);
        self
    }
}

impl Strategy for Plain {
    fn name_rule(&self) -> NameRule {
        self.names
    }

    fn tracks_generation(&self) -> bool {
        self.generation
    }

    fn has_status(&self) -> bool {
        self.status
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(phase) = self.initial_phase {
            obj["status"] = json!({ "phase": phase });
        }
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        // Upstream's event field labels; harmless for other kinds, whose
        // objects simply never match them.
        if self.names == NameRule::Path {
            &[
                ("involvedObject.kind", "/involvedObject/kind"),
                ("involvedObject.namespace", "/involvedObject/namespace"),
                ("involvedObject.name", "/involvedObject/name"),
                ("involvedObject.uid", "/involvedObject/uid"),
                ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
                (
                    "involvedObject.resourceVersion",
                    "/involvedObject/resourceVersion",
                ),
                ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
                ("regarding.kind", "/regarding/kind"),
                ("regarding.name", "/regarding/name"),
                ("regarding.namespace", "/regarding/namespace"),
                ("reason", "/reason"),
                ("reportingComponent", "/reportingComponent"),
                ("reportingController", "/reportingController"),
                ("source", "/source/component"),
                ("type", "/type"),
            ]
        } else {
            &[]
        }
    }
}
