//! The strategies of the built-in kinds. Most kinds need only [`Plain`];
//! the rest carry upstream's defaulting and validation for their kind.

mod core;
mod event;
mod namespace;
mod node;
mod pod;
mod podspec;
mod priorityclass;
mod service;
mod workload;

pub use self::core::{ConfigMapStrategy, SecretStrategy};
pub use event::EventStrategy;
pub use namespace::NamespaceStrategy;
pub use node::NodeStrategy;
pub use pod::PodStrategy;
pub use priorityclass::PriorityClassStrategy;
pub use service::ServiceStrategy;
pub use workload::Workload;

use super::strategy::Strategy;
use serde_json::{Value, json};

/// A kind with no behaviour of its own beyond a few switches.
#[derive(Debug, Clone, Default)]
pub struct Plain {
    generation: bool,
    status: bool,
    initial_phase: Option<&'static str>,
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

    /// New objects start with `status.phase` set (PV, PVC: `Pending`).
    pub fn initial_phase(mut self, phase: &'static str) -> Self {
        self.initial_phase = Some(phase);
        self
    }
}

impl Strategy for Plain {
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
}
