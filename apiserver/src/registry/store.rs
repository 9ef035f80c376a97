//! The generic REST store: create, get, list, update, patch and delete,
//! written once over JSON objects for every kind, after upstream's
//! `registry/generic/registry/store.go`. Kinds differ only through their
//! [`Strategy`](super::Strategy).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::ResourceInfo;
use super::admission::service_alloc::ServiceRanges;
use super::admission::{self, Attributes, Operation, Reservation};
use super::meta::{self, finalizers, is_terminating, name, namespace};
use crate::error::{ApiError, ApiResult, FieldError, Subject};
use crate::fieldvalidation::{FieldValidation, unknown_fields};
use crate::selectors::Filter;
use crate::storage::{Storage, StorageError};
use crate::validation::{validate_labels_and_annotations, validate_name};
use crate::watchcache::{CachedObject, WatchCache, stamp_resource_version};

/// Storage plus the watch caches: what every store shares.
pub struct Backend {
    /// The key-value store.
    pub storage: Arc<dyn Storage>,
    /// Key prefix, `--etcd-prefix` (e.g. `/registry`).
    pub prefix: String,
    /// One cache per storage resource; custom resources add theirs when
    /// their CRD is established.
    caches: RwLock<HashMap<String, Arc<WatchCache>>>,
    /// Where Services' ClusterIPs and NodePorts come from.
    pub service_ranges: ServiceRanges,
}

impl Backend {
    /// Starts one watch cache per resource of the registry.
    pub fn start(storage: Arc<dyn Storage>, prefix: &str, resources: &[Arc<ResourceInfo>]) -> Self {
        let backend = Backend {
            storage,
            prefix: prefix.trim_end_matches('/').to_string(),
            caches: RwLock::new(HashMap::new()),
            service_ranges: ServiceRanges::default(),
        };
        for r in resources {
            backend.ensure_cache(r.storage_resource);
        }
        backend
    }

    /// Allocates Services' addresses and ports from `ranges`.
    pub fn with_service_ranges(mut self, ranges: ServiceRanges) -> Self {
        self.service_ranges = ranges;
        self
    }

    /// The cache of a storage resource, started if there is none yet.
    /// A cache outlives the CRD that asked for it (it is then empty and
    /// idle), so re-creating a CRD reuses it.
    pub fn ensure_cache(&self, storage_resource: &str) -> Arc<WatchCache> {
        if let Some(cache) = self.cache(storage_resource) {
            return cache;
        }
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        caches
            .entry(storage_resource.to_string())
            .or_insert_with(|| {
                WatchCache::start(
                    self.storage.clone(),
                    format!("{}/{storage_resource}/", self.prefix),
                )
            })
            .clone()
    }

    /// The cache of a storage resource, if it has one.
    pub fn cache(&self, storage_resource: &str) -> Option<Arc<WatchCache>> {
        self.caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(storage_resource)
            .cloned()
    }

    /// Every cache (for compaction and start-up).
    pub fn all_caches(&self) -> Vec<Arc<WatchCache>> {
        self.caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// One object of a cluster-scoped `resource` (its storage name, e.g.
    /// `namespaces`) for an admission check: from the watch cache, else
    /// from storage, since the cache may not have seen a write just made.
    /// `None` when it does not exist; other storage failures name `subject`,
    /// the object being written.
    pub async fn lookup(
        &self,
        resource: &str,
        name: &str,
        subject: &Subject,
    ) -> ApiResult<Option<Value>> {
        let key = format!("{}/{resource}/{name}", self.prefix);
        if let Some(cache) = self.cache(resource)
            && let Some(cached) = cache.get(&key).await
        {
            return Ok(Some(cached.value.clone()));
        }
        match self.storage.get(&key).await {
            Ok(kv) => serde_json::from_slice(&kv.value)
                .map(Some)
                .map_err(ApiError::internal),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(storage_error(e, subject.clone())),
        }
    }

    /// Every object of a cluster-scoped `resource` as its watch cache holds
    /// them (upstream's informer listers: possibly a moment behind).
    pub async fn cached_list(&self, resource: &str) -> Vec<Arc<CachedObject>> {
        match self.cache(resource) {
            Some(cache) => {
                cache
                    .snapshot(&format!("{}/{resource}/", self.prefix))
                    .await
                    .0
            }
            None => Vec::new(),
        }
    }

    /// The store of one resource.
    pub fn store<'a>(&'a self, info: &'a Arc<ResourceInfo>) -> ApiResult<Store<'a>> {
        let cache = self
            .cache(info.storage_resource)
            .ok_or_else(|| ApiError::internal(format!("no watch cache for {}", info.plural)))?;
        Ok(Store {
            backend: self,
            info,
            cache,
        })
    }
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for kinds with status).
    Main,
    /// The status subresource: only status.
    Status,
    /// A namespace's finalize subresource: only `spec.finalizers`.
    Finalize,
}

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run everything, store nothing.
    pub dry_run: bool,
    /// What to do with fields the kind does not have.
    pub field_validation: FieldValidation,
    /// Warnings for the response's `Warning` headers (unknown fields under
    /// `fieldValidation=Warn`).
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// Who writes, for `managedFields`; `force` for an apply.
    pub field_manager: crate::fieldmanager::Options,
}

/// A patch document and its type.
#[derive(Debug, Clone)]
pub enum Patch {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/strategic-merge-patch+json`, merged by the kind's
    /// patch metadata (list merge keys, directives).
    Strategic(Value),
    /// `application/apply-patch+yaml`: server-side apply of a manager's
    /// configuration (see [`crate::fieldmanager`]).
    Apply(Value),
}

/// `DeleteOptions` as far as the store acts on them.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Requested grace period.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `Foreground`, `Background` or `Orphan`.
    pub propagation_policy: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Selectors.
    pub filter: Filter,
    /// `limit` (0: all).
    pub limit: i64,
    /// `continue` token.
    pub continue_token: Option<String>,
    /// `resourceVersion` as given.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// A list result: shared encoded objects plus list metadata.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Matching objects in key order.
    pub items: Vec<Arc<CachedObject>>,
    /// The revision the list is consistent at.
    pub revision: i64,
    /// Token for the next page.
    pub continue_token: Option<String>,
}

/// The outcome of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed from storage; carries its last state.
    Gone(Value),
    /// Marked for deletion (finalizers or grace period); carries the update.
    Pending(Value),
}

/// The continue token's content, as upstream encodes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

/// The store of one resource.
pub struct Store<'a> {
    backend: &'a Backend,
    info: &'a Arc<ResourceInfo>,
    cache: Arc<WatchCache>,
}

fn storage_error(e: StorageError, subject: Subject) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::not_found(subject),
        StorageError::AlreadyExists => ApiError::already_exists(subject),
        StorageError::Conflict => ApiError::conflict(
            subject,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        StorageError::Compacted {
            requested,
            compacted,
        } => ApiError::too_old_resource_version(requested, compacted),
        StorageError::FutureRevision(r) => {
            ApiError::timeout(format!("Too large resource version: {r}, current: unknown"))
        }
        StorageError::Unavailable(m) => ApiError::unavailable(m),
    }
}

/// `generateName` suffix alphabet, as upstream's (no vowels, no confusables).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_name(base: &str) -> String {
    let mut rng = rand::rng();
    let base: String = base.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// The finalizers an object keeps when deleted with `policy`: Foreground
/// adds `foregroundDeletion`, Orphan adds `orphan`, each removing the
/// other; Background removes both; no policy leaves them as they are.
fn gc_finalizers(mut fins: Vec<String>, policy: Option<&str>) -> Vec<String> {
    let (add, drop): (Option<&str>, &[&str]) = match policy {
        Some("Foreground") => (Some(FOREGROUND_FINALIZER), &[ORPHAN_FINALIZER]),
        Some("Orphan") => (Some(ORPHAN_FINALIZER), &[FOREGROUND_FINALIZER]),
        Some("Background") => (None, &[FOREGROUND_FINALIZER, ORPHAN_FINALIZER]),
        _ => (None, &[]),
    };
    fins.retain(|f| !drop.contains(&f.as_str()));
    if let Some(add) = add
        && !fins.iter().any(|f| f == add)
    {
        fins.push(add.to_string());
    }
    fins
}

/// The finalizer of a foreground deletion (dependents first).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion (dependents kept).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Everything but metadata and status: what a generation bump watches.
fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_resource_version(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

impl<'a> Store<'a> {
    /// The resource this store serves.
    pub fn info(&self) -> &ResourceInfo {
        self.info
    }

    /// The resource, shareable beyond the request (watch streams).
    pub fn info_arc(&self) -> Arc<ResourceInfo> {
        self.info.clone()
    }

    /// The watch cache of this resource.
    pub fn cache(&self) -> &Arc<WatchCache> {
        &self.cache
    }

    /// The storage key of an object.
    pub fn key(&self, ns: &str, name: &str) -> String {
        if self.info.namespaced {
            format!(
                "{}/{}/{ns}/{name}",
                self.backend.prefix, self.info.storage_resource
            )
        } else {
            format!(
                "{}/{}/{name}",
                self.backend.prefix, self.info.storage_resource
            )
        }
    }

    /// The key prefix of a list (one namespace, or all).
    pub fn list_prefix(&self, ns: &str) -> String {
        if self.info.namespaced && !ns.is_empty() {
            format!(
                "{}/{}/{ns}/",
                self.backend.prefix, self.info.storage_resource
            )
        } else {
            format!("{}/{}/", self.backend.prefix, self.info.storage_resource)
        }
    }

    pub(crate) fn subject(&self, name: &str) -> Subject {
        Subject::new(self.info.group, self.info.plural, name)
    }

    /// Checks the body's kind and apiVersion and round-trips it through the
    /// kind's type: wrong field types are refused with 400, unknown fields
    /// handled per `fieldValidation`.
    pub fn decode(&self, mut obj: Value, opts: &WriteOptions) -> ApiResult<Value> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        };
        let api_version = self.info.api_version();
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(self.info.kind));
            }
            Some(k) if k == self.info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind of the object ({k}) does not match the kind on the URL ({})",
                    self.info.kind
                )));
            }
        }
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        let reset_managed_fields = crate::fieldmanager::managed::is_reset(&obj);
        let sent = (opts.field_validation != FieldValidation::Ignore).then(|| obj.clone());
        let mut decoded = (self.info.codec)(obj).map_err(|e| {
            ApiError::bad_request(format!("error decoding {} body: {e}", self.info.kind))
        })?;
        let unknown = sent
            .map(|s| unknown_fields(&s, &decoded))
            .unwrap_or_default();
        if self.info.strategy.omits_empty_lists() {
            meta::drop_empty_lists(&mut decoded);
        }
        if reset_managed_fields {
            // `managedFields: []` asks for ownership to be cleared; keep
            // it visible to the field manager.
            meta::set_meta(&mut decoded, "managedFields", json!([]));
        }
        if unknown.is_empty() {
            return Ok(decoded);
        }
        let listed: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        match opts.field_validation {
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                listed.join(", "),
                kind = self.info.kind,
                version = self.info.version,
            ))),
            _ => {
                if let Ok(mut w) = opts.warnings.lock() {
                    w.extend(listed);
                }
                Ok(decoded)
            }
        }
    }

    fn validate_meta(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let n = name(obj);
        if n.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            errs.extend(validate_name(
                "metadata.name",
                n,
                self.info.strategy.name_rule(),
            ));
        }
        if self.info.namespaced && namespace(obj).is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        }
        errs.extend(validate_labels_and_annotations(obj));
        errs
    }

    fn invalid(&self, obj: &Value, errs: Vec<FieldError>) -> ApiError {
        ApiError::invalid(
            self.info.kind,
            Subject::new(self.info.group, self.info.plural, name(obj)),
            errs,
        )
    }

    /// Refuses writes into a namespace that is missing (404) or terminating
    /// (403), as upstream's NamespaceLifecycle admission.
    async fn check_namespace(&self, ns: &str, name_for_error: &str) -> ApiResult<()> {
        if !self.info.namespaced {
            return Ok(());
        }
        let Some(ns_obj) = self
            .backend
            .lookup("namespaces", ns, &self.subject(name_for_error))
            .await?
        else {
            return Err(ApiError::not_found(Subject::new("", "namespaces", ns)));
        };
        if is_terminating(&ns_obj) {
            return Err(ApiError::forbidden(
                self.subject(name_for_error),
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    /// Creates an object in namespace `ns` (ignored for cluster-scoped kinds).
    pub async fn create(&self, ns: &str, body: Value, opts: &WriteOptions) -> ApiResult<Value> {
        if let Some(why) = self.info.strategy.create_refused() {
            return Err(ApiError::method_not_allowed_because(why));
        }
        let mut obj = self.decode(body, opts)?;
        let body_ns = namespace(&obj).to_string();
        if self.info.namespaced {
            if body_ns.is_empty() {
                meta::set_meta(&mut obj, "namespace", json!(ns));
            } else if body_ns != ns && !ns.is_empty() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        } else {
            meta::remove_meta(&mut obj, "namespace");
        }
        if name(&obj).is_empty() {
            let base = meta::meta_str(&obj, "generateName").to_string();
            if !base.is_empty() {
                meta::set_meta(&mut obj, "name", json!(generate_name(&base)));
            }
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta::remove_meta(&mut obj, f);
        }
        meta::set_meta(&mut obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
        meta::set_meta(&mut obj, "creationTimestamp", json!(meta::now_rfc3339()));
        if self.info.strategy.tracks_generation() {
            meta::set_meta(&mut obj, "generation", json!(1));
        } else {
            meta::remove_meta(&mut obj, "generation");
        }
        let strategy = &self.info.strategy;
        if strategy.has_status()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        strategy.apply_defaults(&mut obj);
        let attrs = Attributes {
            backend: self.backend,
            info: self.info,
            operation: Operation::Create,
            old: None,
        };
        let reservation = admission::mutate(&attrs, &mut obj).await?;
        let stored = self.store_new(&attrs, obj, opts).await;
        reservation
            .settle(self.backend, stored.is_ok() && !opts.dry_run)
            .await;
        stored
    }

    /// The rest of a create after mutating admission: validate, admit,
    /// and write unless this is a dry run.
    async fn store_new(
        &self,
        attrs: &Attributes<'_>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let strategy = &self.info.strategy;
        strategy.prepare_for_create(&mut obj);
        let mut errs = self.validate_meta(&obj);
        errs.extend(strategy.validate(&obj));
        if !errs.is_empty() {
            return Err(self.invalid(&obj, errs));
        }
        let obj_name = name(&obj).to_string();
        let obj_ns = namespace(&obj).to_string();
        self.check_namespace(&obj_ns, &obj_name).await?;
        admission::validate(attrs, &obj).await?;
        self.track_fields(None, &mut obj, Part::Main, opts);
        if opts.dry_run {
            return Ok(obj);
        }
        let key = self.key(&obj_ns, &obj_name);
        let bytes = self.encode_for_storage(&obj)?;
        let revision = self
            .backend
            .storage
            .create(&key, bytes)
            .await
            .map_err(|e| storage_error(e, self.subject(&obj_name)))?;
        stamp_resource_version(&mut obj, revision);
        Ok(obj)
    }

    /// Reads one object from storage (a consistent read).
    pub async fn get(&self, ns: &str, name: &str) -> ApiResult<Value> {
        Ok(self.get_cached(ns, name).await?.value.clone())
    }

    pub(crate) async fn get_cached(&self, ns: &str, name: &str) -> ApiResult<CachedObject> {
        let kv = self
            .backend
            .storage
            .get(&self.key(ns, name))
            .await
            .map_err(|e| storage_error(e, self.subject(name)))?;
        self.read_stored(&kv)
            .ok_or_else(|| ApiError::internal(format!("undecodable object at {}", kv.key)))
    }

    /// The bytes stored for an object: its JSON, in the storage shape.
    fn encode_for_storage(&self, obj: &Value) -> ApiResult<Bytes> {
        let bytes = match &self.info.conversion {
            Some(c) => serde_json::to_vec(&(c.to_storage)(obj.clone())),
            None => serde_json::to_vec(obj),
        };
        Ok(Bytes::from(bytes.map_err(ApiError::internal)?))
    }

    /// A stored value as this resource serves it.
    fn read_stored(&self, kv: &crate::storage::KeyValue) -> Option<CachedObject> {
        CachedObject::from_kv(kv).map(|o| self.present(o))
    }

    /// A cached object as this resource serves it (converted when the kind
    /// shares storage with another version's kind).
    pub fn present(&self, obj: CachedObject) -> CachedObject {
        match &self.info.conversion {
            Some(c) => CachedObject::new(obj.key, (c.from_storage)(obj.value), obj.revision),
            None => obj,
        }
    }

    /// Like [`Store::present`] for a shared cache entry (no copy when no
    /// conversion applies).
    pub fn present_shared(&self, obj: &Arc<CachedObject>) -> Arc<CachedObject> {
        match &self.info.conversion {
            Some(c) => Arc::new(CachedObject::new(
                obj.key.clone(),
                (c.from_storage)(obj.value.clone()),
                obj.revision,
            )),
            None => obj.clone(),
        }
    }

    /// Replaces an object (PUT). A `resourceVersion` in the body makes it a
    /// compare-and-swap; without one the write is unconditional.
    pub async fn update(
        &self,
        ns: &str,
        obj_name: &str,
        body: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let new = self.decode(body, opts)?;
        let body_name = name(&new);
        if body_name != obj_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({obj_name})"
            )));
        }
        if self.info.namespaced && !namespace(&new).is_empty() && namespace(&new) != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let expected = meta::meta_str(&new, "resourceVersion").to_string();
        loop {
            let current = match self.get_cached(ns, obj_name).await {
                Ok(c) => c,
                Err(e)
                    if e.reason == "NotFound"
                        && self.info.strategy.allow_create_on_update()
                        && part == Part::Main =>
                {
                    return self.create(ns, new, opts).await;
                }
                Err(e) => return Err(e),
            };
            if !expected.is_empty() && parse_resource_version(&expected)? != current.revision {
                return Err(storage_error(
                    StorageError::Conflict,
                    self.subject(obj_name),
                ));
            }
            match self.write_update(current, new.clone(), part, opts).await? {
                Some(written) => return Ok(written),
                // Lost a race: a pinned resourceVersion is now stale; an
                // unconditional update tries again on the newer object.
                None if expected.is_empty() => continue,
                None => {
                    return Err(storage_error(
                        StorageError::Conflict,
                        self.subject(obj_name),
                    ));
                }
            }
        }
    }

    /// Applies a patch to the current object and writes the result,
    /// retrying on a lost race unless the patch pinned a resourceVersion.
    pub async fn patch(
        &self,
        ns: &str,
        obj_name: &str,
        patch: &Patch,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if let Patch::Apply(config) = patch {
            return self
                .server_side_apply(ns, obj_name, config, part, opts)
                .await;
        }
        loop {
            let current = self.get_cached(ns, obj_name).await?;
            let doc = self.apply_patch(&current.value, patch, Some(self.info))?;
            let pinned = meta::meta_str(&doc, "resourceVersion").to_string();
            let pinned_by_patch = !pinned.is_empty() && pinned != current.revision.to_string();
            if pinned_by_patch {
                return Err(storage_error(
                    StorageError::Conflict,
                    self.subject(obj_name),
                ));
            }
            if name(&doc) != obj_name {
                return Err(self.invalid(
                    &doc,
                    vec![FieldError::invalid(
                        "metadata.name",
                        &json!(name(&doc)),
                        "field is immutable",
                    )],
                ));
            }
            let new = self.decode(doc, opts)?;
            if let Some(written) = self.write_update(current, new, part, opts).await? {
                return Ok(written);
            }
        }
    }

    /// Which fields a write of `part` may come to own.
    pub(crate) fn field_scope(&self, part: Part) -> crate::fieldmanager::Scope {
        crate::fieldmanager::Scope {
            part,
            has_status: self.info.strategy.has_status(),
        }
    }

    /// Records the write's field ownership in `new`'s `managedFields`.
    fn track_fields(&self, old: Option<&Value>, new: &mut Value, part: Part, opts: &WriteOptions) {
        crate::fieldmanager::track(
            old,
            new,
            &opts.field_manager,
            self.field_scope(part),
            &self.info.api_version(),
            &crate::fieldmanager::TypeSource::of(self.info),
        );
    }

    /// Applies a patch document to `doc`. Strategic merge needs the kind
    /// (`strategic_for`); without one (e.g. a Scale) it merges like a JSON
    /// merge patch, which is what it means for objects without lists.
    pub(crate) fn apply_patch(
        &self,
        doc: &Value,
        patch: &Patch,
        strategic_for: Option<&ResourceInfo>,
    ) -> ApiResult<Value> {
        let mut doc = doc.clone();
        match (patch, strategic_for) {
            (Patch::Merge(p), _) | (Patch::Strategic(p), None) => json_patch::merge(&mut doc, p),
            (Patch::Strategic(_), Some(info)) if !info.strategy.supports_strategic_merge() => {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            (Patch::Strategic(p), Some(info)) => {
                doc = crate::strategicmerge::apply(info, &doc, p).map_err(|e| {
                    ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
                })?;
            }
            (Patch::Apply(_), _) => {
                return Err(ApiError::unsupported_media_type(
                    "application/apply-patch+yaml",
                ));
            }
            (Patch::Json(p), _) => json_patch::patch(&mut doc, p).map_err(|e| {
                ApiError::invalid(
                    self.info.kind,
                    self.subject(name(&doc)),
                    vec![FieldError {
                        reason: "FieldValueInvalid",
                        field: String::new(),
                        message: format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    }],
                )
            })?,
        }
        Ok(doc)
    }

    /// The shared body of update and patch: merge with the stored object
    /// per `part`, run the strategy, and compare-and-swap. `None` means
    /// the compare-and-swap lost a race (the caller may retry); every
    /// other failure, a precondition included, is final.
    pub(crate) async fn write_update(
        &self,
        current: CachedObject,
        mut new: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Option<Value>> {
        let old = &current.value;
        let strategy = &self.info.strategy;
        let obj_name = name(old).to_string();
        let new_uid = meta::meta_str(&new, "uid").to_string();
        if !new_uid.is_empty() && new_uid != meta::meta_str(old, "uid") {
            return Err(ApiError::conflict(
                self.subject(&obj_name),
                &format!(
                    "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {}",
                    meta::meta_str(old, "uid")
                ),
            ));
        }
        // An apply's ownership is decided with the whole object, whatever
        // part is then taken from it.
        let applied_managed = opts
            .field_manager
            .applied
            .then(|| new.pointer("/metadata/managedFields").cloned());
        match part {
            Part::Main => {
                if strategy.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
            Part::Status => {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            Part::Finalize => {
                let fin = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                new = old.clone();
                new["spec"]["finalizers"] = fin;
            }
        }
        match applied_managed {
            Some(Some(m)) => meta::set_meta(&mut new, "managedFields", m),
            Some(None) => meta::remove_meta(&mut new, "managedFields"),
            None => {}
        }
        // Fields only the server sets are carried over from the stored object.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
        ] {
            match old.pointer(&format!("/metadata/{f}")) {
                Some(v) => meta::set_meta(&mut new, f, v.clone()),
                None => meta::remove_meta(&mut new, f),
            }
        }
        meta::remove_meta(&mut new, "resourceVersion");
        strategy.apply_defaults(&mut new);
        // Admission sees writes of the main resource only, as upstream's
        // plugins ignore subresources.
        let attrs = (part == Part::Main).then_some(Attributes {
            backend: self.backend,
            info: self.info,
            operation: Operation::Update,
            old: Some(old),
        });
        let reservation = match &attrs {
            Some(attrs) => {
                let reservation = admission::mutate(attrs, &mut new).await?;
                strategy.prepare_for_update(&mut new, old);
                reservation
            }
            None => Reservation::default(),
        };
        let stored = self
            .store_update(attrs.as_ref(), &current, new, part, opts)
            .await;
        let written = matches!(stored, Ok(Some(_))) && !opts.dry_run;
        reservation.settle(self.backend, written).await;
        stored
    }

    /// The rest of an update after mutating admission: generation,
    /// validation, admission, field ownership, then compare-and-swap
    /// (`None`: lost the race) unless this is a dry run.
    async fn store_update(
        &self,
        attrs: Option<&Attributes<'_>>,
        current: &CachedObject,
        mut new: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Option<Value>> {
        let (old, key, revision) = (&current.value, current.key.as_str(), current.revision);
        let strategy = &self.info.strategy;
        let obj_name = name(old).to_string();
        if strategy.tracks_generation() && spec_part(&new) != spec_part(old) {
            let generation = meta::int_at(old, "/metadata/generation");
            meta::set_meta(&mut new, "generation", json!(generation + 1));
        }
        let mut errs = self.validate_meta(&new);
        errs.extend(strategy.validate_update(&new, old));
        if is_terminating(old) {
            let before = finalizers(old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(self.invalid(&new, errs));
        }
        if let Some(attrs) = attrs {
            admission::validate(attrs, &new).await?;
        }
        self.track_fields(Some(old), &mut new, part, opts);
        let mut unchanged = old.clone();
        meta::remove_meta(&mut unchanged, "resourceVersion");
        if unchanged == new {
            return Ok(Some(old.clone()));
        }
        if opts.dry_run {
            stamp_resource_version(&mut new, revision);
            return Ok(Some(new));
        }
        let bytes = self.encode_for_storage(&new)?;
        let written_at = match self.backend.storage.update(key, bytes, revision).await {
            Ok(r) => r,
            Err(StorageError::Conflict) => return Ok(None),
            Err(e) => return Err(storage_error(e, self.subject(&obj_name))),
        };
        stamp_resource_version(&mut new, written_at);
        if self.ready_to_remove(&new) {
            match self.backend.storage.delete(key, written_at).await {
                Ok(_) => admission::removed(self.backend, self.info, &new).await,
                Err(StorageError::NotFound) | Err(StorageError::Conflict) => {}
                Err(e) => return Err(storage_error(e, self.subject(&obj_name))),
            }
        }
        Ok(Some(new))
    }

    /// Binds a pod to a node (the `binding` subresource): sets
    /// `spec.nodeName` once and marks the pod scheduled.
    pub async fn bind(
        &self,
        ns: &str,
        pod: &str,
        node: &str,
        uid: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let subject = Subject::new("", "pods/binding", pod);
        loop {
            let current = self.get_cached(ns, pod).await?;
            let mut new = current.value.clone();
            let current_uid = meta::meta_str(&new, "uid");
            if let Some(uid) = uid.filter(|u| *u != current_uid) {
                // The binding names the pod the scheduler decided for; a pod
                // recreated under the same name is another pod.
                return Err(ApiError::conflict(
                    subject,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                    ),
                ));
            }
            if new
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty())
            {
                return Err(ApiError::conflict(
                    subject,
                    &format!("pod {pod} has non-empty .spec.schedulingGates"),
                ));
            }
            let assigned = new
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !assigned.is_empty() {
                return Err(ApiError::conflict(
                    subject,
                    &format!("pod {pod} is already assigned to node {assigned:?}"),
                ));
            }
            if is_terminating(&new) {
                return Err(ApiError::conflict(
                    subject,
                    &format!("pod {pod} is being deleted, cannot be assigned to a host"),
                ));
            }
            new["spec"]["nodeName"] = json!(node);
            let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now_rfc3339()});
            let conditions = meta::ensure_object(&mut new["status"])
                .entry("conditions")
                .or_insert_with(|| json!([]));
            if let Some(list) = conditions.as_array_mut() {
                list.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
                list.push(condition);
            }
            meta::remove_meta(&mut new, "resourceVersion");
            if opts.dry_run {
                return Ok(new);
            }
            let bytes = self.encode_for_storage(&new)?;
            match self
                .backend
                .storage
                .update(&current.key, bytes, current.revision)
                .await
            {
                Ok(revision) => {
                    stamp_resource_version(&mut new, revision);
                    return Ok(new);
                }
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(storage_error(e, self.subject(pod))),
            }
        }
    }

    /// An object marked for deletion goes once nothing holds it: no
    /// finalizers, no remaining grace period, nothing the strategy names
    /// (a namespace's `spec.finalizers`).
    fn ready_to_remove(&self, obj: &Value) -> bool {
        if !is_terminating(obj) || !finalizers(obj).is_empty() {
            return false;
        }
        let grace = meta::int_at(obj, "/metadata/deletionGracePeriodSeconds");
        grace == 0 && !self.info.strategy.held_after_delete(obj)
    }

    /// Deletes an object, or marks it for deletion when finalizers or a
    /// grace period hold it.
    pub async fn delete(
        &self,
        ns: &str,
        obj_name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        loop {
            let current = self.get_cached(ns, obj_name).await?;
            let old = &current.value;
            if let Some(uid) = &opts.uid
                && uid != meta::meta_str(old, "uid")
            {
                return Err(ApiError::conflict(
                    self.subject(obj_name),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::meta_str(old, "uid")
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != current.revision.to_string()
            {
                return Err(ApiError::conflict(
                    self.subject(obj_name),
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.revision
                    ),
                ));
            }
            if let Some(why) = self.info.strategy.forbid_delete(old) {
                return Err(ApiError::forbidden(self.subject(obj_name), why));
            }
            let grace = self
                .info
                .strategy
                .grace_period(old, opts.grace_period_seconds)
                .unwrap_or(0);
            let mut marked = old.clone();
            // Foreground and Orphan deletions are finished by the garbage
            // collector, which removes the finalizer they add (upstream's
            // `deletionFinalizersForGarbageCollection`).
            let fins = gc_finalizers(finalizers(old), opts.propagation_policy.as_deref());
            if fins != finalizers(old) {
                meta::set_meta(&mut marked, "finalizers", json!(fins));
            }
            let held = !fins.is_empty() || grace > 0 || self.info.strategy.held_after_delete(old);
            if held {
                let already = is_terminating(old);
                let old_grace = old
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if !already || old_grace.is_some_and(|g| grace < g) {
                    meta::set_meta(
                        &mut marked,
                        "deletionTimestamp",
                        json!(meta::rfc3339_after(grace)),
                    );
                    meta::set_meta(&mut marked, "deletionGracePeriodSeconds", json!(grace));
                }
                self.info.strategy.prepare_for_delete(&mut marked);
                if opts.dry_run {
                    return Ok(Deleted::Pending(marked));
                }
                if marked == *old {
                    return Ok(Deleted::Pending(marked));
                }
                meta::remove_meta(&mut marked, "resourceVersion");
                let bytes = self.encode_for_storage(&marked)?;
                match self
                    .backend
                    .storage
                    .update(&current.key, bytes, current.revision)
                    .await
                {
                    Ok(revision) => {
                        stamp_resource_version(&mut marked, revision);
                        if self.ready_to_remove(&marked) {
                            match self.backend.storage.delete(&current.key, revision).await {
                                Ok(_) => {
                                    admission::removed(self.backend, self.info, &marked).await;
                                    return Ok(Deleted::Gone(marked));
                                }
                                Err(StorageError::NotFound) => return Ok(Deleted::Gone(marked)),
                                Err(StorageError::Conflict) => continue,
                                Err(e) => return Err(storage_error(e, self.subject(obj_name))),
                            }
                        }
                        return Ok(Deleted::Pending(marked));
                    }
                    Err(StorageError::Conflict) => continue,
                    Err(e) => return Err(storage_error(e, self.subject(obj_name))),
                }
            }
            if opts.dry_run {
                return Ok(Deleted::Gone(old.clone()));
            }
            match self
                .backend
                .storage
                .delete(&current.key, current.revision)
                .await
            {
                Ok(_) => {
                    admission::removed(self.backend, self.info, old).await;
                    return Ok(Deleted::Gone(old.clone()));
                }
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(storage_error(e, self.subject(obj_name))),
            }
        }
    }

    /// Lists objects: from the watch cache for `resourceVersion=0` (or any
    /// not-older-than version), from storage for consistent, exact or paged
    /// reads.
    pub async fn list(&self, ns: &str, opts: &ListOptions) -> ApiResult<ListResult> {
        let prefix = self.list_prefix(ns);
        if let Some(token) = &opts.continue_token {
            let token = decode_continue(token)?;
            let start = format!(
                "{}/{}/{}",
                self.backend.prefix, self.info.storage_resource, token.start
            );
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            return self.list_storage(&prefix, &start, token.rv, opts).await.map_err(|e| {
                if e.reason == "Expired" {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                } else {
                    e
                }
            });
        }
        let rv = opts.resource_version.as_deref().filter(|r| !r.is_empty());
        let exact = opts.resource_version_match.as_deref() == Some("Exact");
        match opts.resource_version_match.as_deref() {
            None | Some("") | Some("Exact") | Some("NotOlderThan") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        }
        if opts.resource_version_match.is_some() && rv.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        match rv {
            None => self.list_storage(&prefix, "", 0, opts).await,
            Some(rv) if exact => {
                let revision = parse_resource_version(rv)?;
                self.list_storage(&prefix, "", revision, opts).await
            }
            Some(rv) => {
                let revision = parse_resource_version(rv)?;
                if self.cache.revision() < revision {
                    // The cache has not seen that version yet: a consistent
                    // read from storage is newer still, so it satisfies
                    // "not older than".
                    return self.list_storage(&prefix, "", 0, opts).await;
                }
                let (objects, revision) = self.cache.snapshot(&prefix).await;
                let items = objects
                    .iter()
                    .map(|o| self.present_shared(o))
                    .filter(|o| opts.filter.matches(&o.value))
                    .collect();
                Ok(ListResult {
                    items,
                    revision,
                    continue_token: None,
                })
            }
        }
    }

    /// Reads a list straight from storage at `revision` (latest when 0),
    /// page by page until `limit` matching objects are found.
    async fn list_storage(
        &self,
        prefix: &str,
        start: &str,
        revision: i64,
        opts: &ListOptions,
    ) -> ApiResult<ListResult> {
        let subject = self.subject("");
        let mut items = Vec::new();
        let mut from = start.to_string();
        let mut at = revision;
        loop {
            let need = if opts.limit > 0 {
                opts.limit - items.len() as i64
            } else {
                0
            };
            let page = self
                .backend
                .storage
                .list(prefix, &from, at, need)
                .await
                .map_err(|e| storage_error(e, subject.clone()))?;
            at = page.revision;
            let mut last_key = None;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                if let Some(obj) = self.read_stored(kv)
                    && opts.filter.matches(&obj.value)
                {
                    items.push(Arc::new(obj));
                }
            }
            let (true, Some(last)) = (page.more, last_key) else {
                return Ok(ListResult {
                    items,
                    revision: at,
                    continue_token: None,
                });
            };
            from = format!("{last}\u{0}");
            if opts.limit > 0 && items.len() as i64 >= opts.limit {
                let resource_prefix =
                    format!("{}/{}/", self.backend.prefix, self.info.storage_resource);
                let relative = from
                    .strip_prefix(&resource_prefix)
                    .unwrap_or(&from)
                    .to_string();
                let token = encode_continue(&ContinueToken {
                    v: "meta.k8s.io/v1".into(),
                    rv: at,
                    start: relative,
                });
                return Ok(ListResult {
                    items,
                    revision: at,
                    continue_token: Some(token),
                });
            }
        }
    }
}

fn encode_continue(token: &ContinueToken) -> String {
    let json = serde_json::to_vec(token).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv <= 0 || t.start.contains("..") {
        return Err(bad());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_policies_set_the_garbage_collector_finalizers() {
        let fins = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            gc_finalizers(fins(&["example.com/x"]), Some("Foreground")),
            fins(&["example.com/x", "foregroundDeletion"])
        );
        assert_eq!(
            gc_finalizers(fins(&["foregroundDeletion"]), Some("Orphan")),
            fins(&["orphan"])
        );
        assert_eq!(
            gc_finalizers(fins(&["orphan", "foregroundDeletion"]), Some("Background")),
            fins(&[])
        );
        assert_eq!(gc_finalizers(fins(&["orphan"]), None), fins(&["orphan"]));
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(&ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv: 42,
            start: "ns/b\u{0}".into(),
        });
        let back = decode_continue(&t).ok();
        assert_eq!(
            back.map(|b| (b.rv, b.start)),
            Some((42, "ns/b\u{0}".to_string()))
        );
        assert!(decode_continue("not-a-token").is_err());
    }

    #[test]
    fn generated_names_keep_the_base_and_add_five_safe_characters() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }
}
