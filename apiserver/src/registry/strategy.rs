//! The per-kind hooks the generic store calls, each named for the moment it
//! runs, after upstream's `rest.RESTCreateStrategy` and friends. Objects are
//! JSON values already checked against the kind's typed form.

use serde_json::Value;

use crate::error::FieldError;

/// How a kind's object names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Anything that can be a path segment (events).
    Path,
}

/// One row's cells for `kubectl get`, one per [`Column`].
pub type Cells = Vec<Value>;

/// A column definition for `kubectl get`'s table, as upstream's printers
/// declare it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header, e.g. `Ready` (kubectl prints it upper-cased).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`.
    pub type_: &'static str,
    /// Shown only with `-o wide` when > 0.
    pub priority: i32,
    /// Column description.
    pub description: &'static str,
}

impl Column {
    /// A column shown by default (`priority` 0) or only with `-o wide` (1).
    pub const fn new(
        name: &'static str,
        type_: &'static str,
        priority: i32,
        description: &'static str,
    ) -> Self {
        Column {
            name,
            type_,
            priority,
            description,
        }
    }

    /// NAME, the first column of (almost) every table.
    pub const NAME: Column = Column::new(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );

    /// AGE: how long ago the object was created ([`crate::table::age`]).
    pub const AGE: Column = Column::new(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );

    /// CREATED AT: the creation timestamp itself
    /// ([`crate::table::created_at`]), in upstream's default table.
    pub const CREATED_AT: Column = Column::new(
        "Created At",
        "date",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
}

/// Upstream's table for kinds without a printer of their own: NAME and
/// CREATED AT.
pub fn default_columns() -> Vec<Column> {
    vec![Column::NAME, Column::CREATED_AT]
}

/// The cells for [`default_columns`].
pub fn default_cells(obj: &Value) -> Cells {
    vec![
        Value::String(crate::registry::meta::name(obj).to_string()),
        Value::String(crate::table::created_at(obj)),
    ]
}

/// Per-kind behaviour of the generic store.
pub trait Strategy: Send + Sync + 'static {
    /// How names are validated.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Whether `metadata.generation` starts at 1 and bumps on spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether `status` is owned by the status subresource: the main
    /// resource's writes keep the stored status, and create resets it.
    fn has_status(&self) -> bool {
        false
    }

    /// Whether PUT of a missing object creates it.
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Fills in defaulted fields (upstream's `SetDefaults_*`), on every write.
    fn apply_defaults(&self, _obj: &mut Value) {}

    /// Normalises a new object before validation (e.g. resets status).
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Normalises an update before validation, given the stored object.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Kind-specific validation of a new object.
    fn validate(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Kind-specific validation of an update (immutable fields and the like).
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate(new)
    }

    /// Whether the kind's own state still holds a deleted object (a
    /// namespace's `spec.finalizers`), besides `metadata.finalizers`.
    fn held_after_delete(&self, _obj: &Value) -> bool {
        false
    }

    /// Marks an object that a delete leaves in place (a namespace turns
    /// `Terminating`).
    fn prepare_for_delete(&self, _obj: &mut Value) {}

    /// Refuses deleting `obj` with a reason (403), e.g. system namespaces.
    fn forbid_delete(&self, _obj: &Value) -> Option<&'static str> {
        None
    }

    /// Extra field-selector labels besides `metadata.name` and
    /// `metadata.namespace`: (label, JSON pointer into the object).
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// For a delete with `requested` grace seconds (None: the default),
    /// how long the object should stay in graceful termination; `None` or
    /// `Some(0)` deletes at once.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// The table columns for `kubectl get`, all of them in upstream's
    /// order (NAME and AGE included where upstream puts them); kubectl
    /// hides those of priority > 0 unless `-o wide`.
    fn columns(&self) -> Vec<Column> {
        default_columns()
    }

    /// The cells of one object, one per [`Strategy::columns`].
    fn cells(&self, obj: &Value) -> Cells {
        default_cells(obj)
    }

    /// Whether empty lists are dropped from stored objects, as Go's
    /// `omitempty` does for built-in types; custom resources keep exactly
    /// what was sent.
    fn omits_empty_lists(&self) -> bool {
        true
    }

    /// Why creating objects is refused for now (405), e.g. custom
    /// resources whose CRD is being deleted.
    fn create_refused(&self) -> Option<&'static str> {
        None
    }

    /// The kind's structural OpenAPI schema when it has one of its own (a
    /// custom resource's `openAPIV3Schema`), whose `x-kubernetes-list-type`
    /// and map-type extensions say how server-side apply merges lists.
    fn structural_schema(&self) -> Option<std::sync::Arc<Value>> {
        None
    }

    /// Whether strategic merge patches apply (built-in kinds, whose patch
    /// metadata the server knows); custom resources refuse them with 415,
    /// as upstream.
    fn supports_strategic_merge(&self) -> bool {
        true
    }

    /// The autoscaling/v1 Scale view of an object, for kinds serving the
    /// `scale` subresource: `spec.replicas`, `status.replicas` and the
    /// rendered `spec.selector` unless the kind says otherwise.
    fn scale_view(&self, obj: &Value) -> Option<Value> {
        Some(crate::registry::scale::scale_of(obj))
    }

    /// Writes a Scale's replicas into the object.
    fn set_replicas(&self, obj: &mut Value, replicas: i64) {
        obj["spec"]["replicas"] = serde_json::json!(replicas);
    }
}
