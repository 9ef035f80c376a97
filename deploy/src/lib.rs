//! The `capstan` deployment tool as a library.
//!
//! The binary is a thin CLI over these modules; they are public so that the
//! test harness can create a cluster PKI and read kubeconfigs without
//! shelling out.

pub mod cluster;
pub mod kubeconfig;
pub mod pki;
pub mod runtime;
