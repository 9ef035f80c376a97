//! Events about the objects controllers act on: component-base's
//! [`EventSink`], shared with the kubelet.

pub use capstan_component_base::events::EventSink;
