//! Admission: the cluster-wide checks and changes a write of a main
//! resource goes through besides its kind's strategy, after upstream's
//! admission chain. Mutating plugins run after defaulting and before the
//! kind's preparation and validation; validating plugins run after them,
//! just before storage. Each plugin picks the resources it acts on, so the
//! generic store runs the chain for every write without naming a kind.

pub mod priority;
pub mod service_alloc;
pub mod tolerations;

use serde_json::Value;

use super::ResourceInfo;
use super::store::Backend;
use crate::error::ApiResult;

/// The kind of write being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to a stored object.
    Update,
}

/// What a plugin knows about the write it admits.
pub struct Attributes<'a> {
    /// Storage and watch caches, for looking up other objects.
    pub backend: &'a Backend,
    /// The resource written.
    pub info: &'a ResourceInfo,
    /// Create or update.
    pub operation: Operation,
    /// The stored object, for updates.
    pub old: Option<&'a Value>,
}

impl Attributes<'_> {
    /// Whether the write is to `group`'s resource `plural`.
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.info.group == group && self.info.plural == plural
    }
}

pub use service_alloc::Reservation;

/// Runs the mutating plugins: each may change `obj` or refuse the write.
/// What they reserved for it (Service addresses) comes back, for the store
/// to settle once it knows whether the write was stored.
pub async fn mutate(attrs: &Attributes<'_>, obj: &mut Value) -> ApiResult<Reservation> {
    priority::admit(attrs, obj).await?;
    tolerations::admit(attrs, obj);
    service_alloc::admit(attrs, obj).await
}

/// Tells the plugins an object has left storage for good, so what it held
/// (a Service's ClusterIP and NodePorts) is free again.
pub async fn removed(backend: &Backend, info: &ResourceInfo, obj: &Value) {
    if info.group.is_empty() && info.plural == "services" {
        service_alloc::release_held(backend, obj).await;
    }
}

/// Runs the validating plugins on the final object: each may refuse it.
pub async fn validate(attrs: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    priority::validate(attrs, obj).await
}
