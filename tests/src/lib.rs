//! The end-to-end fixture: real etcd, the built Capstan binaries and the
//! installed kubectl, on free loopback ports, torn down when dropped (also
//! when a test fails). Tests wait for conditions with deadlines, never for
//! fixed times.

pub mod bench;
pub mod dns;
pub mod fixture;
pub mod hollow;
pub mod local_cluster;
pub mod netns;
pub mod node;
pub mod registry;
pub mod table;
pub mod wait;
