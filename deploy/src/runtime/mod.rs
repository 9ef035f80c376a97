//! A container runtime for a node: a private containerd configured as these
//! machines need it ([`containerd`]) and the images it runs without a
//! registry ([`images`]). The local-cluster launcher and the end-to-end
//! tests start nodes with it.

pub mod containerd;
pub mod images;
