//! What a plugin answers at each extension point.

/// A plugin's verdict. Reasons are the exact phrases upstream prints, since
/// they are counted per node into the "0/N nodes are available: ..."
/// message users read in `kubectl describe pod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore): its
    /// Filter/Score is not run this cycle.
    Skip,
    /// The node does not fit now, but preempting pods on it might help.
    Unschedulable(Vec<String>),
    /// The node does not fit and preemption cannot change that.
    UnschedulableAndUnresolvable(Vec<String>),
    /// Something went wrong; the pod is retried.
    Error(String),
}

impl Status {
    /// An Unschedulable status with one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status::Unschedulable(vec![reason.into()])
    }

    /// An UnschedulableAndUnresolvable status with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status::UnschedulableAndUnresolvable(vec![reason.into()])
    }

    /// Whether scheduling may proceed.
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Success)
    }

    /// The reasons a node was rejected (empty for success, skip, error).
    pub fn reasons(&self) -> &[String] {
        match self {
            Status::Unschedulable(r) | Status::UnschedulableAndUnresolvable(r) => r,
            _ => &[],
        }
    }
}
