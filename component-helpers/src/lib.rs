//! Rules of the Kubernetes API that more than one component applies the
//! same way (upstream's `k8s.io/component-helpers`): the scheduler, the
//! DaemonSet controller and node lifecycle must agree on which node a pod
//! fits and which taints it tolerates.

pub mod quantity;
pub mod scheduling;
