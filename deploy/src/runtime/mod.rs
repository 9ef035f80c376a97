//! A container runtime for a node: a private containerd configured as these
//! machines need it ([`containerd`]) and the images it runs without a
//! registry ([`images`]), and taking such a node apart without leftovers
//! ([`cleanup`]). The local-cluster launcher and the end-to-end tests start
//! nodes with it.

pub mod cleanup;
pub mod containerd;
pub mod images;
