//! What the server serves at one moment: the registry of kinds and the
//! discovery and OpenAPI documents rendered from it. Built-in kinds never
//! change; CustomResourceDefinitions do, so the whole set is rendered anew
//! and swapped in at once (see [`crate::crd`]). A request works on the
//! snapshot it started with.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};

use crate::discovery::Discovery;
use crate::openapi::OpenApiV3;
use crate::openapi::v2::OpenApiV2;
use crate::registry::Registry;

/// One consistent view of the served kinds and their documents.
pub struct Served {
    /// Served kinds.
    pub registry: Registry,
    /// Pre-rendered discovery.
    pub discovery: Discovery,
    /// Pre-rendered OpenAPI v3.
    pub openapi: OpenApiV3,
    /// Pre-rendered OpenAPI v2 (JSON and protobuf), for kubectl ≤ 1.28.
    pub openapi_v2: OpenApiV2,
}

impl Served {
    /// Renders the documents of `registry`.
    pub fn render(registry: Registry) -> Result<Self> {
        let openapi = OpenApiV3::new(&registry);
        let openapi_v2 = OpenApiV2::new(&openapi).context("building the OpenAPI v2 document")?;
        Ok(Served {
            discovery: Discovery::new(&registry),
            openapi,
            openapi_v2,
            registry,
        })
    }
}

/// The current [`Served`] snapshot, replaced as a whole.
pub struct ServedCell(RwLock<Arc<Served>>);

impl ServedCell {
    /// Starts with `served`.
    pub fn new(served: Served) -> Self {
        ServedCell(RwLock::new(Arc::new(served)))
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<Served> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `served` current for every later request.
    pub fn replace(&self, served: Served) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(served);
    }
}
