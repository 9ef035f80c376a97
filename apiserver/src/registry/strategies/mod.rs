//! The strategies of the built-in kinds. Most kinds need only [`Plain`]
//! and their table's [`Printer`]; the rest carry upstream's defaulting,
//! validation and table for their kind.

mod core;
pub mod crd;
pub mod defaults;
mod event;
mod namespace;
mod node;
mod pod;
mod podspec;
mod printers;
mod priorityclass;
mod service;
mod workload;

pub use self::core::{ConfigMapStrategy, SecretStrategy};
pub use crd::CrdStrategy;
pub use event::EventStrategy;
pub use namespace::NamespaceStrategy;
pub use node::NodeStrategy;
pub use pod::PodStrategy;
pub use printers::Printer;
pub use priorityclass::PriorityClassStrategy;
pub use service::ServiceStrategy;
pub use workload::Workload;

use super::strategy::{self, Cells, Column, Strategy};
use serde_json::{Value, json};

/// A kind with no behaviour of its own beyond a few switches and, for
/// most, upstream's table ([`Printer`]); without one its table is
/// upstream's default, NAME and CREATED AT.
#[derive(Debug, Clone, Default)]
pub struct Plain {
    generation: bool,
    status: bool,
    initial_phase: Option<&'static str>,
    printer: Option<Printer>,
    defaults: Option<fn(&mut Value)>,
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

    /// Every write gets upstream's defaults for the kind (see
    /// [`defaults`]).
    pub fn defaults(mut self, apply: fn(&mut Value)) -> Self {
        self.defaults = Some(apply);
        self
    }

    /// `kubectl get` prints the kind with upstream's `printer`.
    pub fn printer(mut self, printer: Printer) -> Self {
        self.printer = Some(printer);
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

    fn apply_defaults(&self, obj: &mut Value) {
        if let Some(apply) = self.defaults {
            apply(obj);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(phase) = self.initial_phase {
            obj["status"] = json!({ "phase": phase });
        }
    }

    fn columns(&self) -> Vec<Column> {
        self.printer
            .map_or_else(strategy::default_columns, Printer::columns)
    }

    fn cells(&self, obj: &Value) -> Cells {
        match self.printer {
            Some(p) => p.cells(obj),
            None => strategy::default_cells(obj),
        }
    }
}
